-- Each message's summary status changes as its recipients are delivered (queued → delivered,
-- once or a few times per message). `messages_project_status` indexed that column, so every
-- such change was a non-HOT update: a new copy of the row (with its MIME) and a new entry in
-- each of the table's indexes, about 1.4 KB of WAL per message and a third of the database's
-- work on the delivery path (bench/RESULTS.md, issue 17).
--
-- With no index on `status` (and `updated_at` unindexed), the update is HOT: the new version
-- goes on the same page and no index is touched, provided the page has room. Listing by
-- status walks `messages_project_id` newest first and filters, as its query already did for
-- its generic plan (`$2 IS NULL OR status = $2` cannot use a status index).
DROP INDEX IF EXISTS messages_project_status;
-- Room on each page for the updated versions; pruning frees the old ones.
ALTER TABLE messages SET (fillfactor = 75);
