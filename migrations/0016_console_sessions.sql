-- Signed-in console sessions. The browser holds a random token in an HttpOnly cookie; only
-- its SHA-256 is stored. A session signed in with an API key follows the key: revoking the
-- key ends it (the join in `store::console_sessions::find_live`), deleting it removes it.
CREATE TABLE console_sessions (
    id          uuid PRIMARY KEY,
    token_hash  bytea NOT NULL UNIQUE,
    -- Sent back with every form that changes something, compared with the form's field.
    csrf_token  text NOT NULL,
    api_key_id  uuid REFERENCES api_keys (id) ON DELETE CASCADE,
    operator    boolean NOT NULL,
    -- The project an operator's pages show (a key's session shows its key's project).
    project_id  uuid REFERENCES projects (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    -- Exactly one way in: a key, or the operator.
    CHECK ((api_key_id IS NULL) = operator)
);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);
