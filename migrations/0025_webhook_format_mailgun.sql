-- `mailgun`: Mailgun's `signature` + `event-data` body, signed in the body with the endpoint's
-- secret as Mailgun's webhook signing key (issue 28 §5).
ALTER TABLE webhook_endpoints DROP CONSTRAINT webhook_endpoints_format;
ALTER TABLE webhook_endpoints
    ADD CONSTRAINT webhook_endpoints_format
        CHECK (format IN ('standard', 'resend', 'postmark', 'sendgrid', 'mailgun'));
