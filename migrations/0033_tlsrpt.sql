-- TLS-RPT (RFC 8460): what direct delivery's TLS sessions came to, per recipient (policy)
-- domain per UTC day, and the daily aggregate reports sent to the domains that ask for them.

-- Session counts. Each instance sums its sessions in memory and adds them here every few
-- seconds with one upsert, so delivery never waits on this table. Successful sessions have
-- result 'success' and no receiving host; failures keep the RFC's result type and the MX
-- host and address that failed (RFC 8460 §4.3).
CREATE TABLE tlsrpt_sessions (
    day            date NOT NULL,
    policy_domain  text NOT NULL,
    -- 'sts', 'tlsa' or 'no-policy-found' (RFC 8460 §4.4).
    policy_type    text NOT NULL CHECK (policy_type IN ('sts', 'tlsa', 'no-policy-found')),
    -- What tells one policy from another of the same domain: the MTA-STS id, or the MX host
    -- and its TLSA records; '' when there is no policy.
    policy_key     text NOT NULL,
    -- The policy as the report gives it: MTA-STS lines, or TLSA records.
    policy_strings text[] NOT NULL,
    -- MTA-STS `mx` patterns, or the MX host of a TLSA policy.
    mx_hosts       text[] NOT NULL,
    result         text NOT NULL,
    receiving_mx   text NOT NULL DEFAULT '',
    receiving_ip   text NOT NULL DEFAULT '',
    -- The first words of what went wrong, for the report's additional information.
    detail         text,
    sessions       bigint NOT NULL,
    PRIMARY KEY (day, policy_domain, policy_type, policy_key, result, receiving_mx, receiving_ip)
);

-- One report per (day, policy domain), claimed by one instance at a time, so no report goes
-- out twice; failed sends come back after `next_try`, up to a bounded number of attempts.
CREATE TABLE tlsrpt_reports (
    day            date NOT NULL,
    policy_domain  text NOT NULL,
    report_id      text NOT NULL,
    -- 'skipped': the domain publishes no `_smtp._tls` record.
    status         text NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'sent', 'failed', 'skipped')),
    attempts       integer NOT NULL DEFAULT 0,
    next_try       timestamptz NOT NULL DEFAULT now(),
    -- The instance sending it holds it until then; another may take it after.
    claimed_until  timestamptz,
    -- `rua` URIs that already have this report, so a retry sends only to the rest.
    delivered_to   text[] NOT NULL DEFAULT '{}',
    last_error     text,
    sent_at        timestamptz,
    PRIMARY KEY (day, policy_domain)
);
CREATE INDEX tlsrpt_reports_due ON tlsrpt_reports (next_try) WHERE status = 'pending';
