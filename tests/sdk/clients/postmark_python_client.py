"""Drives postmark-python (Postmark's official, async Python SDK) against mailgate.

Reads MAILGATE_URL, MAILGATE_KEY, MAILGATE_BAD_KEY and MAILGATE_LIMITED_KEY; prints one JSON
object of what the SDK returned or raised, which tests/sdk/postmark.rs checks along with the
mail as it reaches the SMTP sink. Its responses are strict pydantic models, so a reply
missing any of To, SubmittedAt, MessageID, ErrorCode and Message fails here.
"""
import asyncio
import base64
import json
import os

import postmark

URL = os.environ["MAILGATE_URL"]
FROM = "Acme <from@acme.test>"


async def raised(call):
    """The exception class and Postmark ErrorCode the SDK raised."""
    try:
        await call()
    except Exception as e:  # noqa: BLE001 - the class is what is checked
        return {"class": type(e).__name__, "code": getattr(e, "error_code", None)}
    return {"class": None}


async def main():
    out = {}
    # retries=0: the SDK would otherwise retry the 429 on purpose below.
    client = postmark.ServerClient(os.environ["MAILGATE_KEY"], base_url=URL, retries=0)
    out["plain"] = (await client.outbound.send({
        "From": FROM, "To": "Ada Lovelace <ada@x.test>", "Subject": "plain",
        "TextBody": "hello plain", "HtmlBody": "<p>hello plain</p>"})).message_id
    out["attachment"] = (await client.outbound.send({
        "From": FROM, "To": "att@x.test", "Subject": "attachment", "TextBody": "see attached",
        "Attachments": [{"Name": "report.bin",
                         "Content": base64.b64encode(bytes(range(256))).decode(),
                         "ContentType": "application/octet-stream"}]})).message_id
    out["extras"] = (await client.outbound.send({
        "From": FROM, "To": "to@x.test", "Cc": "cc@x.test", "Bcc": "bcc@x.test",
        "ReplyTo": "reply@x.test", "Subject": "extras", "TextBody": "extras",
        "Headers": [{"Name": "X-Entity-Ref-ID", "Value": "123"}],
        "Tag": "welcome", "Metadata": {"user_id": "42"}})).message_id
    out["template"] = (await client.outbound.send_with_template({
        "TemplateAlias": "welcome", "TemplateModel": {"name": "Ada"},
        "From": FROM, "To": "tpl@x.test"})).message_id
    batch = await client.outbound.send_batch([
        {"From": FROM, "To": "b1@x.test", "Subject": "batch 1", "TextBody": "one"},
        {"From": FROM, "To": "b2@x.test", "Subject": "batch 2", "TextBody": "two"},
        {"From": FROM, "To": "not-an-address", "Subject": "batch 3", "TextBody": "three"},
    ])
    out["batch"] = [{"id": r.message_id, "code": r.error_code} for r in batch]
    out["invalid"] = await raised(lambda: client.outbound.send(
        {"From": FROM, "To": "not-an-address", "Subject": "x", "TextBody": "x"}))
    limited = postmark.ServerClient(os.environ["MAILGATE_LIMITED_KEY"], base_url=URL, retries=0)
    message = {"From": FROM, "To": "limit@x.test", "Subject": "limited", "TextBody": "x"}
    await limited.outbound.send(message)
    out["rate_limited"] = await raised(lambda: limited.outbound.send(message))
    bad = postmark.ServerClient(os.environ["MAILGATE_BAD_KEY"], base_url=URL, retries=0)
    out["bad_key"] = await raised(lambda: bad.outbound.send(message))
    for c in (client, limited, bad):
        await c.close()
    print(json.dumps(out))


asyncio.run(main())
