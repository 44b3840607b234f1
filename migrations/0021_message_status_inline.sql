-- The message summary (0009) without its subquery, so Postgres inlines it: a SQL function
-- with a subquery is run through the function executor on every call, parsing its body for
-- every statement (about 8.6 µs a call against 0.7 µs inlined; it runs at every accept and
-- every recorded delivery). "All statuses are the same" is now `statuses <@ ARRAY[statuses[1]]`
-- instead of counting the distinct ones; the two agree on every array of up to three of the
-- recipient statuses and on the empty one.
CREATE OR REPLACE FUNCTION mailgate_message_status(statuses text[]) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN 'sending' = ANY (statuses) THEN 'sending'
        WHEN 'deferred' = ANY (statuses) THEN 'deferred'
        WHEN 'queued' = ANY (statuses) THEN 'queued'
        WHEN 'scheduled' = ANY (statuses) THEN 'scheduled'
        WHEN 'held' = ANY (statuses) THEN 'held'
        WHEN cardinality(statuses) > 0 AND statuses <@ ARRAY[statuses[1]] THEN statuses[1]
        WHEN statuses <@ ARRAY['delivered', 'complained'] THEN 'delivered'
        WHEN 'delivered' = ANY (statuses) OR 'complained' = ANY (statuses) THEN 'partially_delivered'
        ELSE 'failed'
    END
$$;
