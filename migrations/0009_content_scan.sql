-- Content policy: rspamd and ClamAV verdicts at accept, per-project policy, and the `held`
-- status for mail the policy stops until someone releases or discards it.

-- `null`: the server's `scan.spam`, `scan.virus`, `scan.on_error`.
ALTER TABLE projects
    ADD COLUMN scan_spam     text CHECK (scan_spam IN ('reject', 'hold', 'tag')),
    ADD COLUMN scan_virus    text CHECK (scan_virus IN ('reject', 'hold', 'tag')),
    ADD COLUMN scan_on_error text CHECK (scan_on_error IN ('fail_open', 'fail_closed', 'hold'));

-- What the scanners said (action, score, symbols; the virus found), kept with the message.
ALTER TABLE messages ADD COLUMN scan jsonb;

-- Held recipients wait for a person: found when they expire, and for the queue depth.
CREATE INDEX recipients_held ON recipients (message_id) WHERE status = 'held';

-- The summary of this tranche's statuses. `held` waits like the in-flight states, after them.
-- A complaint (0008) is about mail that was delivered: mixed with deliveries it still reads as
-- delivered, alone it reads as complained.
CREATE OR REPLACE FUNCTION mailgate_message_status(statuses text[]) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN 'sending' = ANY (statuses) THEN 'sending'
        WHEN 'deferred' = ANY (statuses) THEN 'deferred'
        WHEN 'queued' = ANY (statuses) THEN 'queued'
        WHEN 'scheduled' = ANY (statuses) THEN 'scheduled'
        WHEN 'held' = ANY (statuses) THEN 'held'
        WHEN (SELECT count(DISTINCT s) FROM unnest(statuses) AS s) = 1 THEN statuses[1]
        WHEN statuses <@ ARRAY['delivered', 'complained'] THEN 'delivered'
        WHEN 'delivered' = ANY (statuses) OR 'complained' = ANY (statuses) THEN 'partially_delivered'
        ELSE 'failed'
    END
$$;

-- As in 0005, plus the event types of 0008 (what came back after delivery) and `held`
-- (`email.held`), and each event's own `data` merged into the webhook's. Opens and clicks of a
-- message with several recipients name none (one copy of the MIME went to all).
CREATE OR REPLACE FUNCTION mailgate_enqueue_webhooks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
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
                   'recipient', nullif(e.recipient, ''),
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
                   'metadata', m.metadata) || coalesce(e.data, '{}'::jsonb))
    FROM new_events e
    CROSS JOIN LATERAL (SELECT 'email.' || CASE e.type WHEN 'scheduled' THEN 'queued' ELSE e.type END
                        AS event_type) ev
    JOIN messages m ON m.id = e.message_id
    JOIN webhook_endpoints w ON w.project_id = m.project_id AND w.enabled
    WHERE e.type IN ('queued', 'scheduled', 'delivered', 'deferred', 'bounced', 'failed',
                     'suppressed', 'cancelled', 'complained', 'delayed', 'opened', 'clicked',
                     'held')
      AND (w.event_types IS NULL OR ev.event_type = ANY (w.event_types))
    ORDER BY e.id;
    RETURN NULL;
END
$$;
