-- Delivery truth: what happens to mail after the upstream's 250. Bounces and complaints come
-- back by mail (VERP return paths, an inbound listener), opens and clicks by HTTP, and mail
-- to a project's inbound domains is handed to its webhooks.

-- Per-project settings: the bounce domain of its return paths (over `bounce.domain`), the
-- domains whose mail is delivered to its webhooks, and whether sends are tracked by default.
ALTER TABLE projects
    ADD COLUMN bounce_domain   text,
    ADD COLUMN inbound_domains text[] NOT NULL DEFAULT '{}',
    ADD COLUMN track_opens     boolean NOT NULL DEFAULT false,
    ADD COLUMN track_clicks    boolean NOT NULL DEFAULT false;
-- The inbound listener looks a recipient's domain up among every project's.
CREATE INDEX projects_inbound_domains ON projects USING gin (inbound_domains);
CREATE INDEX projects_bounce_domain ON projects (lower(bounce_domain)) WHERE bounce_domain IS NOT NULL;

-- What an event carries beyond the SMTP reply: a DSN's fields, an open's user agent, a
-- click's URL. Merged into the webhook's `data`.
ALTER TABLE events ADD COLUMN data jsonb;

-- Keys the server signs its own tokens with (VERP return paths, tracking links). Made once
-- by the first process to need one and shared by every process, so nothing has to be
-- configured and a token made by one instance verifies on any other.
CREATE TABLE server_keys (
    name        text PRIMARY KEY,
    key         bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Mail the inbound listener accepted: committed before its 250, then processed by a runner
-- (leased like every queue). The row stays as the inbound log, with what it came to.
CREATE TABLE inbound_messages (
    id               uuid PRIMARY KEY,
    received_at      timestamptz NOT NULL DEFAULT now(),
    peer             text NOT NULL,
    -- The envelope; an empty sender is the null return path of a DSN.
    mail_from        text NOT NULL,
    rcpt_to          text[] NOT NULL,
    raw              bytea NOT NULL,
    -- pending | sending | processed
    status           text NOT NULL DEFAULT 'pending',
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_owner      uuid,
    lease_until      timestamptz,
    -- What it came to: bounce | delay | complaint | received | unmatched | forged | not_a_report
    kind             text,
    project_id       uuid REFERENCES projects (id) ON DELETE CASCADE,
    message_id       uuid,
    detail           text,
    processed_at     timestamptz
);
CREATE INDEX inbound_messages_due ON inbound_messages (next_attempt_at) WHERE status = 'pending';
CREATE INDEX inbound_messages_leased ON inbound_messages (lease_until) WHERE status = 'sending';
CREATE INDEX inbound_messages_received ON inbound_messages (received_at) WHERE status = 'processed';
CREATE INDEX inbound_messages_project ON inbound_messages (project_id, received_at DESC)
    WHERE project_id IS NOT NULL;

-- The status summary learns `complained` and the webhook trigger learns the new event types
-- and `data` in 0009, together with that migration's `held`: each is redefined once.
