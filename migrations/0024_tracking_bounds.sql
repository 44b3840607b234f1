-- Opens of tracked mail are counted here, one row per opened message, and only some become
-- `opened` events (and webhooks): the first, and then one per `tracking.open_window_secs`.
-- A mail client that loads the pixel 300 times makes one event and a count of 300.
--
-- `recorded_opens` is the count at the last recorded event: an open is recorded exactly when
-- its own upsert sets it to the new count, which concurrent opens (serialised by the row
-- lock) cannot both do.
CREATE TABLE message_opens (
    message_id      uuid PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    opens           bigint NOT NULL,
    first_at        timestamptz NOT NULL,
    last_at         timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL,
    recorded_opens  bigint NOT NULL
);
