-- Every process that leases queue work registers here and renews `beat_at` about once a
-- second; its id is the `lease_owner` of every row it claims. A holder that stopped beating
-- lost its work to the others at once, not after a whole lease (issue 29 §3): after a few
-- missed beats, or sooner when a successor under the same identity (same host, same
-- listening addresses: the process restarted) has started and it has not beaten since.
-- Rows are few (one per running process) and their updates touch no index (HOT).
CREATE TABLE lease_holders (
    id          uuid PRIMARY KEY,
    -- `host listen-addresses`, when the process listens on fixed ports; else NULL.
    identity    text,
    started_at  timestamptz NOT NULL DEFAULT now(),
    beat_at     timestamptz NOT NULL DEFAULT now()
);
