-- A message's rows in `recipients`, `events` and `message_opens` no longer carry a foreign
-- key to `messages`. Since `messages` is partitioned (0031), PostgreSQL checks each such key
-- through a query on the partitioned parent that locks the message row (FOR KEY SHARE): at
-- every accept one check for the recipient and one for its `queued` event, and one for each
-- later event. Measured with EXPLAIN ANALYZE on the accept's group insert of 8 messages, the
-- two checks took 1.07 of its 2.55 ms (issue 29).
--
-- What the keys gave is kept another way:
-- * a message's rows are only written by a statement or transaction that first reads the
--   message or its recipient rows, so none is made for a message that is not there (short of
--   a late report racing retention's deletion of that very message: its stray event goes
--   with its day's partition);
-- * deleting a message deletes its rows, by the statement trigger below (it was ON DELETE
--   CASCADE): retention's row-by-row purge and a project's deletion alike;
-- * whole days go together: `mailgate_drop_day_partitions` drops the four tables' partitions
--   of a day at once.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT conrelid::regclass AS tbl, conname FROM pg_constraint
             WHERE contype = 'f' AND confrelid = 'messages'::regclass
               AND conrelid IN ('recipients'::regclass, 'events'::regclass,
                                'message_opens'::regclass)
               AND conparentid = 0 LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.tbl, r.conname);
    END LOOP;
END
$$;

CREATE FUNCTION mailgate_delete_message_rows() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM message_opens WHERE message_id IN (SELECT id FROM gone);
    DELETE FROM events WHERE message_id IN (SELECT id FROM gone);
    DELETE FROM recipients WHERE message_id IN (SELECT id FROM gone);
    RETURN NULL;
END
$$;

CREATE TRIGGER messages_delete_rows AFTER DELETE ON messages
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION mailgate_delete_message_rows();
