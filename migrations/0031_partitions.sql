-- Messages and the rows that belong to them (recipients, events, opens) are partitioned by
-- day, so retention drops a whole day at once instead of deleting rows one by one (which
-- costs as much WAL and vacuum as writing them; issue 30).
--
-- Message ids are UUIDv7: their first 48 bits are the milliseconds since the epoch, so a
-- range of ids is a range of time. Every table is partitioned by the message id (recipients,
-- events and opens by their `message_id`), so one day's partitions of the four tables hold
-- the same messages and go together, and the routes that read one message prune to one day.
-- Ids that are not v7 (or fall on a day with no partition yet) land in the default partition,
-- so an insert never fails for want of a partition.
--
-- The existing rows are copied across in this migration; nothing is lost.

-- The smallest v7 id of a moment: its millisecond count, then zeros.
CREATE FUNCTION mailgate_v7_floor(at timestamptz) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (overlay(lpad(to_hex(floor(extract(epoch FROM at) * 1000)::bigint), 12, '0')
                    PLACING '-' FROM 9 FOR 0) || '-0000-0000-000000000000')::uuid
$$;

-- The UTC day a v7 id was made on; NULL for other versions.
CREATE FUNCTION mailgate_v7_day(id uuid) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN substr(id::text, 15, 1) = '7' THEN
        (to_timestamp(('x' || substr(replace(id::text, '-', ''), 1, 12))::bit(48)::bigint
                      / 1000.0) AT TIME ZONE 'UTC')::date
    END
$$;

-- Creates one UTC day's partitions of the four tables (those missing). Instances race to
-- create the same day; the advisory lock makes them take turns.
CREATE FUNCTION mailgate_create_day_partitions(day date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    lo uuid := mailgate_v7_floor(day::timestamp AT TIME ZONE 'UTC');
    hi uuid := mailgate_v7_floor((day + 1)::timestamp AT TIME ZONE 'UTC');
    suffix text := '_p' || to_char(day, 'YYYYMMDD');
    t text;
    created integer := 0;
BEGIN
    IF to_regclass('public.message_opens' || suffix) IS NOT NULL THEN
        RETURN 0;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('mailgate_partitions'));
    FOREACH t IN ARRAY ARRAY['messages', 'recipients', 'events', 'message_opens'] LOOP
        IF to_regclass('public.' || t || suffix) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                           t || suffix, t, lo, hi);
            created := created + 1;
        END IF;
    END LOOP;
    -- Room on each page for the status updates, so they stay HOT (0020).
    EXECUTE format('ALTER TABLE %I SET (fillfactor = 75)', 'messages' || suffix);
    RETURN created;
END
$$;

-- Drops one day's partitions unless a recipient in it still waits to be sent (the day then
-- stays until its mail is done). The rows that point at a message go first, then the messages
-- (detached first: a partition others refer to cannot be dropped while attached). Returns
-- whether the day was dropped.
CREATE FUNCTION mailgate_drop_day_partitions(day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    suffix text := '_p' || to_char(day, 'YYYYMMDD');
    waiting boolean;
    t text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('mailgate_partitions'));
    IF to_regclass('public.recipients' || suffix) IS NOT NULL THEN
        -- Nothing may start waiting in it between the look and the drop.
        EXECUTE format('LOCK TABLE %I IN SHARE MODE', 'recipients' || suffix);
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE status IN
                            (''queued'', ''scheduled'', ''sending'', ''deferred''))',
                       'recipients' || suffix) INTO waiting;
        IF waiting THEN
            RETURN false;
        END IF;
    END IF;
    FOREACH t IN ARRAY ARRAY['message_opens', 'events', 'recipients'] LOOP
        EXECUTE format('DROP TABLE IF EXISTS %I', t || suffix);
    END LOOP;
    IF to_regclass('public.messages' || suffix) IS NOT NULL THEN
        EXECUTE format('ALTER TABLE messages DETACH PARTITION %I', 'messages' || suffix);
        EXECUTE format('DROP TABLE %I', 'messages' || suffix);
    END IF;
    RETURN true;
END
$$;

-- The old tables step aside, with their indexes (names are schema-wide).
ALTER TABLE message_opens DROP CONSTRAINT message_opens_message_id_fkey;
ALTER TABLE events DROP CONSTRAINT events_message_id_fkey;
ALTER TABLE recipients DROP CONSTRAINT recipients_message_id_fkey;
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT c.relname FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
             WHERE x.indrelid IN ('messages'::regclass, 'recipients'::regclass,
                                  'events'::regclass, 'message_opens'::regclass) LOOP
        EXECUTE format('ALTER INDEX %I RENAME TO %I', r.relname, r.relname || '_old');
    END LOOP;
END
$$;
ALTER TABLE messages RENAME TO messages_old;
ALTER TABLE recipients RENAME TO recipients_old;
ALTER TABLE events RENAME TO events_old;
ALTER TABLE message_opens RENAME TO message_opens_old;
ALTER SEQUENCE recipients_id_seq OWNED BY NONE;
ALTER SEQUENCE events_id_seq OWNED BY NONE;
DROP TRIGGER events_enqueue_webhooks ON events_old;

-- The same columns, partitioned. The keys carry the partition key, as PostgreSQL requires.
CREATE TABLE messages (LIKE messages_old INCLUDING DEFAULTS INCLUDING STORAGE
                       INCLUDING COMPRESSION INCLUDING GENERATED INCLUDING CONSTRAINTS)
    PARTITION BY RANGE (id);
ALTER TABLE messages ADD PRIMARY KEY (id);
-- MIME is most of the bytes; lz4 compresses it several times faster than the default pglz for
-- about the same size. The partitions inherit it (rows copied below keep how they were
-- compressed; new mail is lz4).
ALTER TABLE messages ALTER COLUMN mime SET COMPRESSION lz4;
ALTER TABLE messages ADD FOREIGN KEY (project_id) REFERENCES projects (id) ON DELETE CASCADE;

CREATE TABLE recipients (LIKE recipients_old INCLUDING DEFAULTS INCLUDING STORAGE
                         INCLUDING COMPRESSION INCLUDING GENERATED INCLUDING CONSTRAINTS)
    PARTITION BY RANGE (message_id);
ALTER TABLE recipients ADD PRIMARY KEY (message_id, id);
ALTER TABLE recipients ADD FOREIGN KEY (message_id) REFERENCES messages (id) ON DELETE CASCADE;
-- The queue finds a recipient by its id alone (lease fences, outcomes).
CREATE INDEX recipients_id ON recipients (id);

CREATE TABLE events (LIKE events_old INCLUDING DEFAULTS INCLUDING STORAGE
                     INCLUDING COMPRESSION INCLUDING GENERATED INCLUDING CONSTRAINTS)
    PARTITION BY RANGE (message_id);
ALTER TABLE events ADD PRIMARY KEY (message_id, id);
ALTER TABLE events ADD FOREIGN KEY (message_id) REFERENCES messages (id) ON DELETE CASCADE;

CREATE TABLE message_opens (LIKE message_opens_old INCLUDING DEFAULTS INCLUDING STORAGE
                            INCLUDING COMPRESSION INCLUDING GENERATED INCLUDING CONSTRAINTS)
    PARTITION BY RANGE (message_id);
ALTER TABLE message_opens ADD PRIMARY KEY (message_id);
ALTER TABLE message_opens ADD FOREIGN KEY (message_id) REFERENCES messages (id) ON DELETE CASCADE;

ALTER SEQUENCE recipients_id_seq OWNED BY recipients.id;
ALTER SEQUENCE events_id_seq OWNED BY events.id;

-- The other indexes, as they were (whatever earlier migrations made of them), except those
-- the new primary keys already are.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT c.relname, pg_get_indexdef(x.indexrelid) AS def
             FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
             WHERE x.indrelid IN ('messages_old'::regclass, 'recipients_old'::regclass,
                                  'events_old'::regclass, 'message_opens_old'::regclass)
               AND NOT x.indisprimary
               AND c.relname NOT IN ('recipients_message_old', 'events_message_old') LOOP
        EXECUTE replace(replace(r.def, 'INDEX ' || r.relname || ' ', 'INDEX '
                                || left(r.relname, length(r.relname) - 4) || ' '),
                        '_old USING ', ' USING ');
    END LOOP;
END
$$;

CREATE TABLE messages_default PARTITION OF messages DEFAULT;
ALTER TABLE messages_default SET (fillfactor = 75);
CREATE TABLE recipients_default PARTITION OF recipients DEFAULT;
CREATE TABLE events_default PARTITION OF events DEFAULT;
CREATE TABLE message_opens_default PARTITION OF message_opens DEFAULT;

-- A partition for every day that has mail, and for the week ahead (the maintenance task
-- keeps creating days ahead from now on).
SELECT mailgate_create_day_partitions(day)
FROM (SELECT DISTINCT mailgate_v7_day(id) AS day FROM messages_old) d
WHERE day BETWEEN DATE '2000-01-01' AND (now() AT TIME ZONE 'UTC')::date + 366;
SELECT mailgate_create_day_partitions((now() AT TIME ZONE 'UTC')::date + n) FROM generate_series(-1, 7) n;

INSERT INTO messages SELECT * FROM messages_old;
INSERT INTO recipients SELECT * FROM recipients_old;
INSERT INTO events SELECT * FROM events_old;
INSERT INTO message_opens SELECT * FROM message_opens_old;

DROP TABLE message_opens_old, events_old, recipients_old, messages_old;

CREATE TRIGGER events_enqueue_webhooks AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION mailgate_enqueue_webhooks();
