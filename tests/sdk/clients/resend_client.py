"""Drives the official resend-python SDK against mailgate: one run per scenario set.

Reads MAILGATE_URL, MAILGATE_KEY, MAILGATE_BAD_KEY and MAILGATE_LIMITED_KEY; prints one JSON
object of what the SDK returned or raised, which tests/sdk/resend.rs checks along with the
mail as it reaches the SMTP sink.
"""
import json
import os

import resend

URL, KEY = os.environ["MAILGATE_URL"], os.environ["MAILGATE_KEY"]
FROM = "Acme <from@acme.test>"
resend.api_url = URL
resend.api_key = KEY
out = {"sdk_version": resend.__version__ if hasattr(resend, "__version__") else None}


def raised(call):
    """The exception class the SDK raised, with the status it carries."""
    try:
        call()
    except Exception as e:  # noqa: BLE001 - the class is what is checked
        return {"class": type(e).__name__, "code": str(getattr(e, "code", ""))}
    return {"class": None}


out["plain"] = resend.Emails.send({
    "from": FROM, "to": ["Ada Lovelace <ada@x.test>"], "subject": "plain",
    "text": "hello plain", "html": "<p>hello plain</p>",
})["id"]
out["attachment"] = resend.Emails.send({
    "from": FROM, "to": "att@x.test", "subject": "attachment", "text": "see attached",
    "attachments": [{"filename": "report.bin", "content": list(bytes(range(256))),
                     "content_type": "application/octet-stream"}],
})["id"]
out["extras"] = resend.Emails.send({
    "from": FROM, "to": "to@x.test", "cc": "cc@x.test", "bcc": ["bcc@x.test"],
    "reply_to": "reply@x.test", "subject": "extras", "text": "extras",
    "headers": {"X-Entity-Ref-ID": "123"},
    "tags": [{"name": "category", "value": "welcome"}],
})["id"]
out["template"] = resend.Emails.send({
    "from": FROM, "to": "tpl@x.test",
    "template": {"id": "welcome", "variables": {"name": "Ada"}},
})["id"]
batch = resend.Batch.send([
    {"from": FROM, "to": "b1@x.test", "subject": "batch 1", "text": "one"},
    {"from": FROM, "to": "b2@x.test", "subject": "batch 2", "text": "two"},
])
out["batch"] = [item["id"] for item in batch["data"]]
once = {"from": FROM, "to": "idem@x.test", "subject": "idempotent", "text": "once"}
out["idempotent"] = [
    resend.Emails.send(once, {"idempotency_key": "order-1042"})["id"] for _ in range(2)
]
# The same key with another body: Resend's 409 invalid_idempotent_request.
out["idempotency_conflict"] = raised(lambda: resend.Emails.send(
    dict(once, subject="changed"), {"idempotency_key": "order-1042"}))
# Permissive batch validation: the good item is sent, the bad one listed by index.
permissive = resend.Batch.send([
    {"from": FROM, "to": "b3@x.test", "subject": "permissive", "text": "three"},
    {"from": FROM, "to": "not-an-address", "subject": "bad", "text": "x"},
], {"batch_validation": "permissive"})
out["permissive"] = {"data": permissive["data"], "errors": permissive.get("errors")}
out["get"] = dict(resend.Emails.get(out["extras"]))
# Scheduled in Resend's plain words, then cancelled.
out["scheduled"] = resend.Emails.send({
    "from": FROM, "to": "later@x.test", "subject": "later", "text": "x",
    "scheduled_at": "in 1 hour"})["id"]
out["cancel"] = dict(resend.Emails.cancel(out["scheduled"]))
out["invalid"] = raised(lambda: resend.Emails.send(
    {"from": FROM, "to": "not-an-address", "subject": "x", "text": "x"}))
resend.api_key = os.environ["MAILGATE_LIMITED_KEY"]
limited = {"from": FROM, "to": "limit@x.test", "subject": "limited", "text": "x"}
resend.Emails.send(limited)
out["rate_limited"] = raised(lambda: resend.Emails.send(limited))
resend.api_key = os.environ["MAILGATE_BAD_KEY"]
out["bad_key"] = raised(lambda: resend.Emails.send(once))
print(json.dumps(out, default=str))
