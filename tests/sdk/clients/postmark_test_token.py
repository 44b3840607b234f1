"""Drives postmarker and postmark-python with Postmark's test token, POSTMARK_API_TEST.

Reads MAILGATE_URL; prints one JSON object of what each client returned or raised, which
tests/sdk/postmark.rs checks (and that nothing was stored or sent). With the test token
Postmark checks the request and answers "Test job accepted" without sending it.
"""
import asyncio
import json
import os

import postmark
from postmarker.core import PostmarkClient
from postmarker.exceptions import ClientError

TOKEN = "POSTMARK_API_TEST"
URL = os.environ["MAILGATE_URL"]
FROM = "Acme <from@acme.test>"
out = {}

client = PostmarkClient(server_token=TOKEN, root_api_url=URL + "/")
sent = client.emails.send(From=FROM, To="ada@x.test", Subject="test", TextBody="hello")
out["postmarker_send"] = {"code": sent["ErrorCode"], "message": sent["Message"],
                          "id": sent["MessageID"], "to": sent["To"]}
sent = client.emails.send_with_template(
    TemplateAlias="welcome", TemplateModel={"name": "Ada"}, From=FROM, To="tpl@x.test")
out["postmarker_template"] = {"code": sent["ErrorCode"], "message": sent["Message"]}
batch = client.emails.send_batch(
    {"From": FROM, "To": "b1@x.test", "Subject": "batch 1", "TextBody": "one"},
    {"From": FROM, "To": "not-an-address", "Subject": "batch 2", "TextBody": "two"},
)
out["postmarker_batch"] = [r["ErrorCode"] for r in batch]
try:
    client.emails.send(From=FROM, To="not-an-address", Subject="x", TextBody="x")
    out["postmarker_invalid"] = None
except ClientError as e:
    out["postmarker_invalid"] = e.error_code


async def official():
    sdk = postmark.ServerClient(TOKEN, base_url=URL, retries=0)
    sent = await sdk.outbound.send(
        {"From": FROM, "To": "ada@x.test", "Subject": "test", "TextBody": "hello"})
    out["official_send"] = {"code": sent.error_code, "message": sent.message}
    try:
        await sdk.outbound.send({"From": FROM, "To": "ada@x.test", "TextBody": "no subject"})
        out["official_invalid"] = None
    except Exception as e:  # noqa: BLE001 - the class is what is checked
        out["official_invalid"] = {"class": type(e).__name__,
                                   "code": getattr(e, "error_code", None)}


asyncio.run(official())
print(json.dumps(out))
