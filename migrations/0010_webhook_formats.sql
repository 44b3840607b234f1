-- How an endpoint's deliveries are shaped and signed: `standard` (mailgate's own body,
-- Standard Webhooks headers), `resend` (Resend's event body, Svix headers), `postmark`
-- (Postmark's RecordType objects, Basic credentials from the URL) or `sendgrid`
-- (SendGrid's event array, signed with the project's ECDSA P-256 key), so an app's existing
-- webhook handler and its provider's verifier work unchanged.
ALTER TABLE webhook_endpoints
    ADD COLUMN format text NOT NULL DEFAULT 'standard'
        CONSTRAINT webhook_endpoints_format CHECK (format IN ('standard', 'resend', 'postmark', 'sendgrid'));

-- The project's ECDSA P-256 key that signs `sendgrid` deliveries, made when first needed. The
-- public key (base64 DER, as SendGrid shows its own) is what receivers verify with.
CREATE TABLE webhook_signing_keys (
    project_id uuid PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    private_key bytea NOT NULL,
    public_key text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
