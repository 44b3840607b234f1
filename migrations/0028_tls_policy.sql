-- MTA-STS policies (RFC 8461) of recipient domains, shared by every instance: fetched once,
-- used until the domain's `_mta-sts` TXT id changes or `max_age` runs out, and kept when a
-- refresh fails (the RFC asks senders to keep using a policy they have until it expires).
CREATE TABLE mta_sts_policies (
    domain      text PRIMARY KEY,
    -- The TXT record's `id` the policy was fetched under.
    policy_id   text NOT NULL,
    mode        text NOT NULL CHECK (mode IN ('enforce', 'testing', 'none')),
    -- `mx` patterns as published (`mail.example.com`, `*.example.net`).
    mx          text[] NOT NULL,
    max_age     integer NOT NULL,
    fetched_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    -- The last refresh that failed, while this policy stayed in use.
    refresh_error text,
    refresh_failed_at timestamptz
);
