-- The schema as it was before issue 17's changes (migrations 0020 and 0021 undone), for the
-- side-by-side row `before17` of bench/sustained.sh; with MAILGATE_RELAYS__DEFAULT__POOL_SIZE=8
-- it is the old default in one run with the new one.
CREATE INDEX messages_project_status ON messages (project_id, status, id DESC);
ALTER TABLE messages RESET (fillfactor);
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
