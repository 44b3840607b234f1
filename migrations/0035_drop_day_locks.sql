-- Dropping (or detaching) a partition takes ACCESS EXCLUSIVE on its parent table. 0031's
-- mailgate_drop_day_partitions took the four parents' locks one by one as its DROPs reached
-- them, so under load it deadlocked with sends: a send held `messages` and waited for
-- `recipients`, which the drop held while it waited for `messages` (bench/scale.sh: sends
-- answered 500 "deadlock detected" while retention dropped a day). Now it takes all four
-- parents' locks before it drops anything, each try bounded by a short lock_timeout; when
-- it cannot have them all, it lets go of what it got, waits a moment and tries again, and
-- after a few seconds of that leaves the day for the next pass. So the drop is what waits or
-- gives up, never a send, and a send waits at most one short try behind it.
CREATE OR REPLACE FUNCTION mailgate_drop_day_partitions(day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    suffix text := '_p' || to_char(day, 'YYYYMMDD');
    waiting boolean;
    locked boolean := false;
    timeout text := current_setting('lock_timeout');
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
    IF to_regclass('public.messages' || suffix) IS NOT NULL THEN
        EXECUTE format('ALTER TABLE messages DETACH PARTITION %I', 'messages' || suffix);
        EXECUTE format('DROP TABLE %I', 'messages' || suffix);
    END IF;
    RETURN true;
END
$$;
