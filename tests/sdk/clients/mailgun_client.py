"""Drives the official mailgun Python SDK against mailgate.

Reads MAILGATE_URL, MAILGATE_KEY, MAILGATE_BAD_KEY and MAILGATE_LIMITED_KEY; prints one JSON
object of what the SDK returned, which tests/sdk/mailgun.rs checks along with the mail as it
reaches the SMTP sink. The SDK returns the HTTP response (it raises only on network errors),
and accepts plain http only for 127.0.0.1 and localhost.
"""
import json
import os

from mailgun.client import Client
from mailgun.config import RetryPolicy

URL = os.environ["MAILGATE_URL"]
FROM = "Acme <from@acme.test>"
DOMAIN = "acme.test"


def client(key):
    # No retries: the SDK would otherwise retry the 429 on purpose below.
    return Client(auth=("api", key), api_url=URL, retry_policy=RetryPolicy(max_retries=0))


def answer(response):
    """The status and body of a response."""
    try:
        body = response.json()
    except ValueError:
        body = response.text
    return {"status": response.status_code, "body": body}


mg = client(os.environ["MAILGATE_KEY"])
send = lambda data, files=None, via=mg: answer(  # noqa: E731
    via.messages.create(data=data, files=files, domain=DOMAIN))
out = {
    "plain": send({"from": FROM, "to": ["Ada Lovelace <ada@x.test>"], "subject": "plain",
                   "text": "hello plain", "html": "<p>hello plain</p>"}),
    "attachment": send({"from": FROM, "to": "att@x.test", "subject": "attachment",
                        "text": "see attached"},
                       files=[("attachment", ("report.bin", bytes(range(256)),
                                              "application/octet-stream"))]),
    "extras": send({"from": FROM, "to": "to@x.test", "cc": "cc@x.test", "bcc": "bcc@x.test",
                    "subject": "extras", "text": "extras", "h:Reply-To": "reply@x.test",
                    "h:X-Entity-Ref-ID": "123", "o:tag": ["welcome"], "v:user_id": "42"}),
    "template": send({"from": FROM, "to": "tpl@x.test", "template": "welcome",
                      "t:variables": json.dumps({"name": "Ada"})}),
    # Batch sending: one request, one message per recipient with its own values.
    "batch": send({"from": FROM, "to": ["b1@x.test", "B Two <b2@x.test>"],
                   "subject": "batch %recipient.n%", "text": "batched for %recipient.name%",
                   "recipient-variables": json.dumps({"b1@x.test": {"n": 1, "name": "One"},
                                                      "b2@x.test": {"n": 2, "name": "Two"}})}),
    "recipient_variables": send({"from": FROM, "to": ["b3@x.test"], "subject": "batch 3",
                                 "text": "x", "recipient-variables": "[]"}),
    "test_mode": send({"from": FROM, "to": "test@x.test", "subject": "test mode",
                       "text": "never sent", "o:testmode": "yes"}),
    "invalid": send({"from": FROM, "to": "not-an-address", "subject": "x", "text": "x"}),
}
limited = client(os.environ["MAILGATE_LIMITED_KEY"])
message = {"from": FROM, "to": "limit@x.test", "subject": "limited", "text": "x"}
send(message, via=limited)
out["rate_limited"] = send(message, via=limited)
out["bad_key"] = send(message, via=client(os.environ["MAILGATE_BAD_KEY"]))
print(json.dumps(out))
