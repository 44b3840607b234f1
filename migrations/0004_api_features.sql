-- Scheduling: a scheduled recipient is claimable once its time comes.
ALTER TABLE messages ADD COLUMN send_at timestamptz;
DROP INDEX recipients_due;
CREATE INDEX recipients_due ON recipients (next_attempt_at)
    WHERE status IN ('queued', 'deferred', 'scheduled');

-- Listing: newest first (UUIDv7 ids sort by time), by status, tag, sender or recipient.
DROP INDEX messages_project_created;
CREATE INDEX messages_project_id ON messages (project_id, id DESC);
CREATE INDEX messages_project_status ON messages (project_id, status, id DESC);
CREATE INDEX messages_project_from ON messages (project_id, from_addr, id DESC);
CREATE INDEX messages_tags ON messages USING gin (tags);
CREATE INDEX messages_created ON messages (created_at);
CREATE INDEX recipients_email ON recipients (lower(email));

-- Idempotency: the first response to (project, key), replayed for the same request.
CREATE TABLE idempotency_keys (
    project_id       uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    key              text NOT NULL,
    request_hash     bytea NOT NULL,
    -- NULL while the first request is still being processed.
    response_status  integer,
    response_body    jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
