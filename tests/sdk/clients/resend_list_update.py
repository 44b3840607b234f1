"""Drives resend-python's Emails.list and Emails.update (reschedule) against mailgate.

Reads MAILGATE_URL and MAILGATE_KEY; prints one JSON object of what the SDK returned or
raised, which tests/sdk/resend.rs checks against what mailgate stored.
"""
import json
import os
from datetime import datetime, timedelta, timezone

import resend

resend.api_url = os.environ["MAILGATE_URL"]
resend.api_key = os.environ["MAILGATE_KEY"]
FROM = "Acme <from@acme.test>"
out = {}

now = resend.Emails.send({"from": FROM, "to": "now@x.test", "cc": "cc@x.test",
                          "subject": "now", "text": "x"})["id"]
later = resend.Emails.send({"from": FROM, "to": "later@x.test", "subject": "later",
                            "text": "x", "scheduled_at": "in 1 hour"})["id"]
out["ids"] = {"now": now, "later": later}
first = resend.Emails.list({"limit": 1})
out["first_page"] = {"object": first["object"], "has_more": first["has_more"],
                     "ids": [e["id"] for e in first["data"]], "to": first["data"][0]["to"],
                     "last_event": first["data"][0]["last_event"]}
second = resend.Emails.list({"limit": 1, "after": first["data"][0]["id"]})
out["second_page"] = {"has_more": second["has_more"], "ids": [e["id"] for e in second["data"]],
                      "cc": second["data"][0]["cc"]}
out["new_time"] = (datetime.now(timezone.utc) + timedelta(hours=2)).isoformat()
updated = resend.Emails.update({"id": later, "scheduled_at": out["new_time"]})
out["updated"] = {"object": updated["object"], "id": updated["id"]}
try:
    resend.Emails.update({"id": now, "scheduled_at": out["new_time"]})
    out["not_scheduled"] = None
except Exception as e:  # noqa: BLE001 - the class is what is checked
    out["not_scheduled"] = {"class": type(e).__name__, "code": str(getattr(e, "code", ""))}
print(json.dumps(out))
