-- Sending domains, second part: an Ed25519 key signing beside the RSA one (RFC 8463), and a
-- return path under each domain (`<return_path>.<name>`) whose MX points at the inbound
-- listener, so bounces come back to mailgate and SPF aligns with the From domain.

-- One active and one pending key per algorithm, not per domain.
DROP INDEX domain_keys_one_active;
DROP INDEX domain_keys_one_pending;
CREATE UNIQUE INDEX domain_keys_one_active ON domain_keys (domain_id, algorithm) WHERE state = 'active';
CREATE UNIQUE INDEX domain_keys_one_pending ON domain_keys (domain_id, algorithm) WHERE state = 'pending';

-- The label of the return-path subdomain (`bounces` gives bounces.example.com).
ALTER TABLE domains ADD COLUMN return_path text NOT NULL DEFAULT 'bounces';
-- The inbound listener asks, per RCPT, whether a domain is some domain's return path.
CREATE INDEX domains_return_path ON domains ((return_path || '.' || name));
