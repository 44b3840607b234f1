"""Verifies one mailgate webhook in the `sendgrid` format with the sendgrid Python SDK's own
EventWebhook helper.

Reads MAILGATE_WEBHOOK_BODY (the raw body), MAILGATE_WEBHOOK_HEADERS (a JSON object of the
headers as received) and MAILGATE_SENDGRID_PUBLIC_KEY (from GET /v1/webhooks/signing-key);
prints whether the signature verifies, whether a tampered body does, and the events.
"""
import json
import os

from sendgrid.helpers.eventwebhook import EventWebhook, EventWebhookHeader

body = os.environ["MAILGATE_WEBHOOK_BODY"]
headers = {k.lower(): v for k, v in json.loads(os.environ["MAILGATE_WEBHOOK_HEADERS"]).items()}
signature = headers[EventWebhookHeader.SIGNATURE.lower()]
timestamp = headers[EventWebhookHeader.TIMESTAMP.lower()]
verifier = EventWebhook(os.environ["MAILGATE_SENDGRID_PUBLIC_KEY"])
print(json.dumps({
    "verified": verifier.verify_signature(body, signature, timestamp),
    "tampered_verified": verifier.verify_signature(body.replace("delivered", "dropped"),
                                                   signature, timestamp),
    "events": json.loads(body),
}))
