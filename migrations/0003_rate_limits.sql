-- A key's own send limits (messages per second, burst, messages per UTC day).
-- NULL means the configured default (`ratelimit.send.*`), so changing the default moves
-- every key that never had its own setting.
ALTER TABLE api_keys
    ADD COLUMN rate_per_sec double precision CHECK (rate_per_sec > 0),
    ADD COLUMN burst integer CHECK (burst > 0),
    ADD COLUMN daily_quota bigint CHECK (daily_quota > 0);
