"""Verifies one mailgate webhook in the `resend` format with resend-python's own verifier.

Reads MAILGATE_WEBHOOK_BODY (the raw body), MAILGATE_WEBHOOK_HEADERS (a JSON object of the
svix-* headers as received) and MAILGATE_WEBHOOK_SECRET; prints the verified event, and
whether a tampered body is refused.
"""
import json
import os

import resend

body = os.environ["MAILGATE_WEBHOOK_BODY"]
received = json.loads(os.environ["MAILGATE_WEBHOOK_HEADERS"])
headers = {"id": received["svix-id"], "timestamp": received["svix-timestamp"],
           "signature": received["svix-signature"]}
secret = os.environ["MAILGATE_WEBHOOK_SECRET"]
event = resend.Webhooks.verify({"payload": body, "headers": headers, "webhook_secret": secret})
try:
    resend.Webhooks.verify({"payload": body.replace("email", "emaiI"), "headers": headers,
                            "webhook_secret": secret})
    tampered_refused = False
except ValueError:
    tampered_refused = True
print(json.dumps({"event": event, "tampered_refused": tampered_refused}))
