-- How an endpoint's deliveries are shaped and signed: `standard` (mailgate's own body,
-- Standard Webhooks headers) or `resend` (Resend's event body, Svix headers), so an app's
-- existing Resend webhook handler and verifier work unchanged.
ALTER TABLE webhook_endpoints
    ADD COLUMN format text NOT NULL DEFAULT 'standard'
        CONSTRAINT webhook_endpoints_format CHECK (format IN ('standard', 'resend'));
