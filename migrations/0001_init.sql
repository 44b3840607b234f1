-- Projects own everything; API keys belong to one project.
CREATE TABLE projects (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    project_id   uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name         text,
    prefix       text NOT NULL,
    -- SHA-256 of the key; the key itself is shown once and never stored.
    key_hash     bytea NOT NULL UNIQUE,
    scopes       text[] NOT NULL,
    test_mode    boolean NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_keys_project ON api_keys (project_id);

-- One row per accepted message; `mime` is the exact bytes relayed on every attempt.
CREATE TABLE messages (
    id          uuid PRIMARY KEY,
    project_id  uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    api_key_id  uuid,
    status      text NOT NULL,
    from_addr   text NOT NULL,
    subject     text NOT NULL,
    message_id  text NOT NULL,
    mime        bytea NOT NULL,
    tags        text[] NOT NULL DEFAULT '{}',
    metadata    jsonb NOT NULL DEFAULT '{}',
    relay       text,
    sandbox     boolean NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_project_created ON messages (project_id, created_at DESC, id DESC);

-- One row per envelope recipient; it is also the delivery job, so each recipient gets
-- its own SMTP transaction and its own exact outcome.
CREATE TABLE recipients (
    id               bigserial PRIMARY KEY,
    message_id       uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    email            text NOT NULL,
    kind             text NOT NULL,
    status           text NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_owner      uuid,
    lease_until      timestamptz,
    smtp_code        integer,
    enhanced_code    text,
    smtp_response    text,
    relay_host       text,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recipients_message ON recipients (message_id);
-- Claim order: due work, and leases left behind by dead workers.
CREATE INDEX recipients_due ON recipients (next_attempt_at) WHERE status IN ('queued', 'deferred');
CREATE INDEX recipients_leased ON recipients (lease_until) WHERE status = 'sending';

-- Every recipient transition, with what the upstream said.
CREATE TABLE events (
    id             bigserial PRIMARY KEY,
    message_id     uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    recipient_id   bigint,
    recipient      text NOT NULL,
    type           text NOT NULL,
    at             timestamptz NOT NULL DEFAULT clock_timestamp(),
    attempt        integer,
    smtp_code      integer,
    enhanced_code  text,
    smtp_response  text,
    relay_host     text,
    detail         text
);
CREATE INDEX events_message ON events (message_id, id);

-- Addresses never mailed again (5xx bounces, complaints, manual entries).
CREATE TABLE suppressions (
    project_id  uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    email       text NOT NULL,
    reason      text NOT NULL,
    detail      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, email)
);

-- A message's status summarises its recipients: in-flight states first, then the
-- common terminal state, `partially_delivered` for mixed outcomes with a delivery.
CREATE FUNCTION mailgate_message_status(statuses text[]) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN 'sending' = ANY (statuses) THEN 'sending'
        WHEN 'deferred' = ANY (statuses) THEN 'deferred'
        WHEN 'queued' = ANY (statuses) THEN 'queued'
        WHEN 'scheduled' = ANY (statuses) THEN 'scheduled'
        WHEN (SELECT count(DISTINCT s) FROM unnest(statuses) AS s) = 1 THEN statuses[1]
        WHEN 'delivered' = ANY (statuses) THEN 'partially_delivered'
        ELSE 'failed'
    END
$$;
