"""Verifies one mailgate webhook in the `mailgun` format with the mailgun SDK's own verifier.

Reads MAILGATE_WEBHOOK_BODY (the raw body) and MAILGATE_WEBHOOK_SECRET (the endpoint's secret,
used as Mailgun's webhook signing key); prints the event data, whether the signature verified,
and whether a tampered token is refused.
"""
import json
import os

from mailgun.security import SecurityGuard

body = json.loads(os.environ["MAILGATE_WEBHOOK_BODY"])
key = os.environ["MAILGATE_WEBHOOK_SECRET"]
s = body["signature"]
verified = SecurityGuard.verify_webhook(key, s["token"], s["timestamp"], s["signature"])
tampered = SecurityGuard.verify_webhook(key, s["token"] + "0", s["timestamp"], s["signature"])
print(json.dumps({"event": body["event-data"], "verified": verified,
                  "tampered_refused": not tampered}))
