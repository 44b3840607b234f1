// Verifies one mailgate webhook in the `sendgrid` format with SendGrid's own Node verifier,
// @sendgrid/eventwebhook. Reads MAILGATE_WEBHOOK_BODY, MAILGATE_WEBHOOK_HEADERS (a JSON object
// of the headers as received) and MAILGATE_SENDGRID_PUBLIC_KEY (from GET
// /v1/webhooks/signing-key); prints whether the signature verifies, whether a tampered body
// does, and the events.
const { EventWebhook, EventWebhookHeader } = require("@sendgrid/eventwebhook");

const body = process.env.MAILGATE_WEBHOOK_BODY;
const headers = JSON.parse(process.env.MAILGATE_WEBHOOK_HEADERS);
const signature = headers[EventWebhookHeader.SIGNATURE().toLowerCase()];
const timestamp = headers[EventWebhookHeader.TIMESTAMP().toLowerCase()];
const verifier = new EventWebhook();
const key = verifier.convertPublicKeyToECDSA(process.env.MAILGATE_SENDGRID_PUBLIC_KEY);
console.log(JSON.stringify({
  verified: verifier.verifySignature(key, body, signature, timestamp),
  tampered_verified: verifier.verifySignature(key, body.replace("delivered", "dropped"),
    signature, timestamp),
  events: JSON.parse(body),
}));
