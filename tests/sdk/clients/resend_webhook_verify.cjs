// Verifies one mailgate webhook in the `resend` format with the resend Node SDK's own
// verifier (standardwebhooks underneath). Reads MAILGATE_WEBHOOK_BODY, MAILGATE_WEBHOOK_HEADERS
// (a JSON object of the svix-* headers as received) and MAILGATE_WEBHOOK_SECRET; prints the
// verified event, and whether a tampered body is refused.
const { Resend } = require("resend");

const resend = new Resend("unused");
const body = process.env.MAILGATE_WEBHOOK_BODY;
const received = JSON.parse(process.env.MAILGATE_WEBHOOK_HEADERS);
const headers = { id: received["svix-id"], timestamp: received["svix-timestamp"],
                  signature: received["svix-signature"] };
const webhookSecret = process.env.MAILGATE_WEBHOOK_SECRET;
const event = resend.webhooks.verify({ payload: body, headers, webhookSecret });
let tamperedRefused = false;
try {
  resend.webhooks.verify({ payload: body.replace("email", "emaiI"), headers, webhookSecret });
} catch {
  tamperedRefused = true;
}
console.log(JSON.stringify({ event, tampered_refused: tamperedRefused }));
