-- One-click unsubscribe (RFC 8058). A project's default for sends that do not say; it applies
-- to sends with one recipient (a link names the address it unsubscribes).
ALTER TABLE projects ADD COLUMN unsubscribe_default boolean NOT NULL DEFAULT false;

-- An `unsubscribed` event on the message whose link was used sends `email.unsubscribed`. As in
-- 0009, with that type added to the list.
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
                     'held', 'unsubscribed')
      AND (w.event_types IS NULL OR ev.event_type = ANY (w.event_types))
    ORDER BY e.id;
    RETURN NULL;
END
$$;
