-- Sending domains: a project's domains, the DNS records they must publish, whether they do
-- (Resend's statuses), and their DKIM keys.

CREATE TABLE domains (
    id               uuid PRIMARY KEY,
    project_id       uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    -- Lower-case A-labels, without a trailing dot.
    name             text NOT NULL,
    -- not_started | pending | verified | temporary_failure | failed
    status           text NOT NULL DEFAULT 'not_started',
    -- Where DMARC reports go in the recommended record (`mailto:` URI); NULL: dmarc@<name>.
    dmarc_rua        text,
    -- What the last check found, record by record (the records answer's `status` and
    -- `found`), kept so a read shows it without asking DNS.
    checks           jsonb NOT NULL DEFAULT '{}',
    -- When the current pending or failing spell began: 72 h later it is `failed`.
    pending_since    timestamptz,
    failing_since    timestamptz,
    verified_at      timestamptz,
    last_checked_at  timestamptz,
    -- When the background checker looks next; NULL: never (not_started, failed).
    next_check_at    timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name)
);
CREATE INDEX domains_project ON domains (project_id, created_at DESC, id DESC);
CREATE INDEX domains_due ON domains (next_check_at) WHERE next_check_at IS NOT NULL;

-- A domain's DKIM keys: the one signing (`active`), one published ahead of a switch
-- (`pending`, after a rotation), and old ones (`retired`) whose record may be removed.
CREATE TABLE domain_keys (
    id           uuid PRIMARY KEY,
    domain_id    uuid NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    selector     text NOT NULL,
    algorithm    text NOT NULL DEFAULT 'rsa-sha256',
    -- base64 of the public key as published in `p=`.
    public_key   text NOT NULL,
    -- The PKCS#8 private key sealed under MAILGATE_SECRET_KEY (`secrets::SecretBox`): the
    -- key id travels with the ciphertext, so the server key can be rotated.
    private_key  text NOT NULL,
    state        text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    activated_at timestamptz,
    retired_at   timestamptz,
    UNIQUE (domain_id, selector)
);
CREATE UNIQUE INDEX domain_keys_one_active ON domain_keys (domain_id) WHERE state = 'active';
CREATE UNIQUE INDEX domain_keys_one_pending ON domain_keys (domain_id) WHERE state = 'pending';
