-- Bodies live shorter than metadata (`retention.body_days`, issue 30): the MIME of an old,
-- finished message is cleared while its status, recipients and events stay. This says when.
ALTER TABLE messages ADD COLUMN body_purged_at timestamptz;
-- The bodies still kept, oldest first, so a clean-up pass reads only what it may clear, never
-- the days already cleared.
CREATE INDEX messages_body_kept ON messages (created_at) WHERE body_purged_at IS NULL;
