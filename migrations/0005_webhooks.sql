-- Webhook endpoints of a project and the deliveries queued for them.

CREATE TABLE webhook_endpoints (
    id                     uuid PRIMARY KEY,
    project_id             uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    url                    text NOT NULL,
    description            text,
    -- NULL means every event type, including ones added later.
    event_types            text[],
    enabled                boolean NOT NULL DEFAULT true,
    disabled_reason        text,
    disabled_at            timestamptz,
    -- Stored as issued (`whsec_…`): an HMAC key must be at hand to sign, so it cannot be
    -- hashed like an API key. It is shown once, at creation or rotation, and never logged.
    secret                 text NOT NULL,
    -- After a rotation the old secret signs alongside the new one until `previous_secret_until`.
    previous_secret        text,
    previous_secret_until  timestamptz,
    -- First failure since the last success; an endpoint failing for too long is disabled.
    failing_since          timestamptz,
    last_success_at        timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_project ON webhook_endpoints (project_id, created_at);
CREATE INDEX webhook_endpoints_enabled ON webhook_endpoints (project_id) WHERE enabled;

-- One row per (event, endpoint): the delivery job, with its payload fixed at enqueue so the
-- body (and so its signature input) is the same on every attempt. Its id is the `webhook-id`.
CREATE TABLE webhook_deliveries (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    endpoint_id      uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_type       text NOT NULL,
    payload          jsonb NOT NULL,
    -- pending | sending | succeeded | failed
    status           text NOT NULL DEFAULT 'pending',
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_owner      uuid,
    lease_until      timestamptz,
    -- The last attempt; `log` keeps the recent ones.
    response_status  integer,
    latency_ms       integer,
    error            text,
    log              jsonb NOT NULL DEFAULT '[]',
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
-- Claim: due work per endpoint, and what each endpoint has in flight.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (endpoint_id, next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_sending ON webhook_deliveries (endpoint_id) WHERE status = 'sending';
-- Listing, newest first, and retention.
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at DESC, id DESC);
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (created_at)
    WHERE status IN ('succeeded', 'failed');

-- Suppression listing, newest first.
CREATE INDEX suppressions_project_created ON suppressions (project_id, created_at DESC, email DESC);

-- Every event row enqueues one delivery per enabled endpoint of the message's project that
-- wants its type. As a trigger it covers every place that records events, inside the same
-- transaction: an event is committed with its deliveries or not at all (at least once).
-- `scheduled` is announced as `email.queued` with status `scheduled`.
CREATE FUNCTION mailgate_enqueue_webhooks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- The common case, no endpoint anywhere, costs one index probe per statement.
    IF NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE enabled) THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhook_deliveries (endpoint_id, event_type, payload)
    SELECT w.id, ev.event_type,
           jsonb_build_object(
               'type', ev.event_type,
               'timestamp', to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               'data', jsonb_build_object(
                   'email_id', e.message_id,
                   'message_id', m.message_id,
                   'recipient', e.recipient,
                   'status', e.type,
                   'smtp', jsonb_build_object('code', e.smtp_code, 'enhanced', e.enhanced_code,
                                              'message', e.smtp_response),
                   'attempt', e.attempt,
                   'relay_host', e.relay_host,
                   'detail', e.detail,
                   'from', m.from_addr,
                   'subject', m.subject,
                   'sandbox', m.sandbox,
                   'tags', to_jsonb(m.tags),
                   'metadata', m.metadata))
    FROM new_events e
    CROSS JOIN LATERAL (SELECT 'email.' || CASE e.type WHEN 'scheduled' THEN 'queued' ELSE e.type END
                        AS event_type) ev
    JOIN messages m ON m.id = e.message_id
    JOIN webhook_endpoints w ON w.project_id = m.project_id AND w.enabled
    WHERE e.type IN ('queued', 'scheduled', 'delivered', 'deferred', 'bounced', 'failed',
                     'suppressed', 'cancelled')
      AND (w.event_types IS NULL OR ev.event_type = ANY (w.event_types))
    ORDER BY e.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_enqueue_webhooks
    AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION mailgate_enqueue_webhooks();
