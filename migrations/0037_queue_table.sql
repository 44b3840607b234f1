-- The queue's waiting state in a narrow table of its own (issue 29). `recipients` stays the
-- record of every recipient and its status, but no index of it holds `status` or the lease
-- any more, so the claim and the outcome rewrite its rows in place (HOT) instead of adding an
-- entry to each of its indexes, and a claim reads one small index instead of merging the due
-- index of every day partition kept (bench/queue_layouts.sh: 1.7-2.5x the claim-and-outcome
-- rate on a fresh database, 2.3-4.2x at a month of partitions).
--
-- `queue` holds one row per recipient that waits (queued, scheduled, deferred), is in a
-- runner's hands (sending) or is held, with the columns the queue's statements search by.
-- Triggers on `recipients` keep it: every statement that inserts, updates or deletes
-- recipients mirrors the rows it touched, so no writer can forget it; the three hot ones (the
-- accept, the claim, the outcome) write their queue rows themselves and skip the mirror. Lock order: a claim
-- locks `queue` rows first and then takes only the recipients nobody holds (SKIP LOCKED);
-- every other writer locks `recipients` rows and then, through the trigger, their queue rows.
-- So no writer waits for a claim while the claim waits for it.
CREATE TABLE queue (
    id bigint PRIMARY KEY,          -- the recipient's id
    message_id uuid NOT NULL,
    status text NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    lease_owner uuid,
    lease_until timestamptz
);
CREATE INDEX queue_due ON queue (next_attempt_at) WHERE status IN ('queued', 'deferred', 'scheduled');
CREATE INDEX queue_leased ON queue (lease_until) WHERE status = 'sending';
CREATE INDEX queue_message ON queue (message_id);
CREATE INDEX queue_held ON queue (message_id) WHERE status = 'held';

INSERT INTO queue (id, message_id, status, next_attempt_at, lease_owner, lease_until)
SELECT id, message_id, status, next_attempt_at, lease_owner, lease_until FROM recipients
WHERE status IN ('queued', 'scheduled', 'deferred', 'sending', 'held');

CREATE FUNCTION mailgate_mirror_queue() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- The accept, the claim and the outcome write their queue rows themselves, in the same
    -- statement, and say so: this statement's mirror is skipped, once.
    IF current_setting('mailgate.queue_kept', true) = 'on' THEN
        PERFORM set_config('mailgate.queue_kept', 'off', true);
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
        DELETE FROM queue q USING mailgate_gone g WHERE q.id = g.id;
        RETURN NULL;
    END IF;
    DELETE FROM queue q USING mailgate_touched t
    WHERE q.id = t.id AND t.status NOT IN ('queued', 'scheduled', 'deferred', 'sending', 'held');
    INSERT INTO queue AS q (id, message_id, status, next_attempt_at, lease_owner, lease_until)
    SELECT id, message_id, status, next_attempt_at, lease_owner, lease_until FROM mailgate_touched
    WHERE status IN ('queued', 'scheduled', 'deferred', 'sending', 'held')
    ON CONFLICT (id) DO UPDATE
        SET status = excluded.status, next_attempt_at = excluded.next_attempt_at,
            lease_owner = excluded.lease_owner, lease_until = excluded.lease_until
        -- A statement that changed none of these (an outcome's text, `updated_at`) writes nothing.
        WHERE (q.status, q.next_attempt_at, q.lease_owner, q.lease_until)
              IS DISTINCT FROM (excluded.status, excluded.next_attempt_at, excluded.lease_owner,
                                excluded.lease_until);
    RETURN NULL;
END
$$;
-- PostgreSQL allows a transition table on a trigger for one event only.
CREATE TRIGGER recipients_queue_insert AFTER INSERT ON recipients
    REFERENCING NEW TABLE AS mailgate_touched FOR EACH STATEMENT EXECUTE FUNCTION mailgate_mirror_queue();
CREATE TRIGGER recipients_queue_update AFTER UPDATE ON recipients
    REFERENCING NEW TABLE AS mailgate_touched FOR EACH STATEMENT EXECUTE FUNCTION mailgate_mirror_queue();
CREATE TRIGGER recipients_queue_delete AFTER DELETE ON recipients
    REFERENCING OLD TABLE AS mailgate_gone FOR EACH STATEMENT EXECUTE FUNCTION mailgate_mirror_queue();

-- No index of `recipients` holds status or the lease now: `queue` answers those questions.
DROP INDEX recipients_due, recipients_leased, recipients_held;

-- Room on each page for the claim's and the outcome's new row versions, so they stay HOT.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'recipients'::regclass LOOP
        EXECUTE format('ALTER TABLE %I SET (fillfactor = 70)', r.relname);
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION mailgate_create_day_partitions(day date) RETURNS integer
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
    -- Room on each page for the status updates, so they stay HOT (0020, 0037).
    EXECUTE format('ALTER TABLE %I SET (fillfactor = 75)', 'messages' || suffix);
    EXECUTE format('ALTER TABLE %I SET (fillfactor = 70)', 'recipients' || suffix);
    RETURN created;
END
$$;

-- As 0035, but whether the day still has waiting mail is asked of `queue` (by the day's range
-- of message ids), and the queue rows of a day dropped (held mail) go with it: dropping a
-- partition fires no trigger.
CREATE OR REPLACE FUNCTION mailgate_drop_day_partitions(day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    lo uuid := mailgate_v7_floor(day::timestamp AT TIME ZONE 'UTC');
    hi uuid := mailgate_v7_floor((day + 1)::timestamp AT TIME ZONE 'UTC');
    suffix text := '_p' || to_char(day, 'YYYYMMDD');
    waiting boolean;
    locked boolean := false;
    timeout text := current_setting('lock_timeout');
    t text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('mailgate_partitions'));
    IF to_regclass('public.recipients' || suffix) IS NOT NULL THEN
        -- Nothing may start waiting in it between the look and the drop: a recipient starts
        -- waiting only by a write to its partition, which this lock holds off.
        EXECUTE format('LOCK TABLE %I IN SHARE MODE', 'recipients' || suffix);
        SELECT EXISTS (SELECT 1 FROM queue WHERE message_id >= lo AND message_id < hi
                         AND status IN ('queued', 'scheduled', 'sending', 'deferred'))
            INTO waiting;
        IF waiting THEN
            RETURN false;
        END IF;
    END IF;
    -- ONLY: the parents themselves (every read and write through a parent locks it first),
    -- not each of their partitions.
    FOR attempt IN 1..20 LOOP
        BEGIN
            PERFORM set_config('lock_timeout', '50ms', true);
            LOCK TABLE ONLY messages, ONLY recipients, ONLY events, ONLY message_opens
                IN ACCESS EXCLUSIVE MODE;
            locked := true;
            EXIT;
        EXCEPTION WHEN lock_not_available THEN
            -- The failed try's locks went with its subtransaction.
            PERFORM pg_sleep(0.05 + random() * 0.2);
        END;
    END LOOP;
    IF NOT locked THEN
        RETURN false;
    END IF;
    -- The partitions' own locks come after their parents', as before.
    PERFORM set_config('lock_timeout', timeout, true);
    FOREACH t IN ARRAY ARRAY['message_opens', 'events', 'recipients'] LOOP
        EXECUTE format('DROP TABLE IF EXISTS %I', t || suffix);
    END LOOP;
    DELETE FROM queue WHERE message_id >= lo AND message_id < hi;
    IF to_regclass('public.messages' || suffix) IS NOT NULL THEN
        EXECUTE format('ALTER TABLE messages DETACH PARTITION %I', 'messages' || suffix);
        EXECUTE format('DROP TABLE %I', 'messages' || suffix);
    END IF;
    RETURN true;
END
$$;
