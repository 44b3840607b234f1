"""Drives postmarker (the most used Python Postmark client) against mailgate.

Reads MAILGATE_URL, MAILGATE_KEY, MAILGATE_BAD_KEY and MAILGATE_LIMITED_KEY; prints one JSON
object of what the client returned or raised, which tests/sdk/postmark.rs checks along with
the mail as it reaches the SMTP sink. postmarker sends `null` for every unset field and calls
the template routes with a trailing slash.
"""
import base64
import json
import os

from postmarker.core import PostmarkClient
from postmarker.exceptions import ClientError

URL = os.environ["MAILGATE_URL"] + "/"
FROM = "Acme <from@acme.test>"
client = PostmarkClient(server_token=os.environ["MAILGATE_KEY"], root_api_url=URL)
out = {}


def raised(call):
    """The exception class and Postmark ErrorCode the client raised."""
    try:
        call()
    except ClientError as e:
        return {"class": type(e).__name__, "code": e.error_code}
    except Exception as e:  # noqa: BLE001 - the class is what is checked
        return {"class": type(e).__name__, "code": None}
    return {"class": None}


out["plain"] = client.emails.send(
    From=FROM, To="Ada Lovelace <ada@x.test>", Subject="plain",
    TextBody="hello plain", HtmlBody="<p>hello plain</p>")["MessageID"]
out["attachment"] = client.emails.send(
    From=FROM, To="att@x.test", Subject="attachment", TextBody="see attached",
    Attachments=[("report.bin", base64.b64encode(bytes(range(256))).decode(),
                  "application/octet-stream")])["MessageID"]
out["extras"] = client.emails.send(
    From=FROM, To="to@x.test", Cc="cc@x.test", Bcc="bcc@x.test", ReplyTo="reply@x.test",
    Subject="extras", TextBody="extras", Headers={"X-Entity-Ref-ID": "123"},
    Tag="welcome", Metadata={"user_id": "42"})["MessageID"]
out["template"] = client.emails.send_with_template(
    TemplateAlias="welcome", TemplateModel={"name": "Ada"},
    From=FROM, To="tpl@x.test")["MessageID"]
batch = client.emails.send_batch(
    {"From": FROM, "To": "b1@x.test", "Subject": "batch 1", "TextBody": "one"},
    {"From": FROM, "To": "b2@x.test", "Subject": "batch 2", "TextBody": "two"},
    {"From": FROM, "To": "not-an-address", "Subject": "batch 3", "TextBody": "three"},
)
out["batch"] = [{"id": r["MessageID"], "code": r["ErrorCode"]} for r in batch]
out["invalid"] = raised(lambda: client.emails.send(
    From=FROM, To="not-an-address", Subject="x", TextBody="x"))
limited = PostmarkClient(server_token=os.environ["MAILGATE_LIMITED_KEY"], root_api_url=URL)
limited.emails.send(From=FROM, To="limit@x.test", Subject="limited", TextBody="x")
out["rate_limited"] = raised(lambda: limited.emails.send(
    From=FROM, To="limit@x.test", Subject="limited", TextBody="x"))
bad = PostmarkClient(server_token=os.environ["MAILGATE_BAD_KEY"], root_api_url=URL)
out["bad_key"] = raised(lambda: bad.emails.send(
    From=FROM, To="ada@x.test", Subject="x", TextBody="x"))
print(json.dumps(out))
