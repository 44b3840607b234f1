"""Drives the official sendgrid Python SDK against mailgate.

Reads MAILGATE_URL, MAILGATE_KEY, MAILGATE_BAD_KEY and MAILGATE_LIMITED_KEY; prints one JSON
object of what the SDK returned or raised, which tests/sdk/sendgrid.rs checks along with the
mail as it reaches the SMTP sink. The key goes in with SendGrid's `SG.` prefix.
"""
import base64
import json
import os

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import (Attachment, Bcc, Category, Cc, CustomArg, Disposition,
                                   FileContent, FileName, FileType, Header, Mail,
                                   MailSettings, Personalization, ReplyTo, SandBoxMode,
                                   To)

URL = os.environ["MAILGATE_URL"]
FROM = ("from@acme.test", "Acme")
client = SendGridAPIClient(api_key="SG." + os.environ["MAILGATE_KEY"], host=URL)
out = {}


def sent(mail, sg=client):
    """The status and X-Message-Id of a send."""
    response = sg.send(mail)
    return {"status": response.status_code, "id": response.headers.get("X-Message-Id"),
            "ids": response.headers.get("X-Mailgate-Message-Ids")}


def raised(call):
    """The exception class the SDK raised, with its status."""
    try:
        call()
    except HTTPError as e:
        return {"class": type(e).__name__, "status": e.status_code,
                "body": json.loads(e.body)}
    except Exception as e:  # noqa: BLE001 - the class is what is checked
        return {"class": type(e).__name__, "detail": repr(e)}
    return {"class": None}


out["plain"] = sent(Mail(from_email=FROM, to_emails=To("ada@x.test", "Ada Lovelace"),
                         subject="plain", plain_text_content="hello plain",
                         html_content="<p>hello plain</p>"))
mail = Mail(from_email=FROM, to_emails="att@x.test", subject="attachment",
            plain_text_content="see attached")
mail.attachment = Attachment(FileContent(base64.b64encode(bytes(range(256))).decode()),
                             FileName("report.bin"), FileType("application/octet-stream"),
                             Disposition("attachment"))
out["attachment"] = sent(mail)
mail = Mail(from_email=FROM, to_emails="to@x.test", subject="extras", plain_text_content="extras")
mail.add_cc(Cc("cc@x.test"))
mail.add_bcc(Bcc("bcc@x.test"))
mail.reply_to = ReplyTo("reply@x.test")
mail.header = Header("X-Entity-Ref-ID", "123")
mail.category = Category("welcome")
mail.custom_arg = CustomArg("user_id", "42")
out["extras"] = sent(mail)
mail = Mail(from_email=FROM, to_emails="tpl@x.test")
mail.template_id = "d-welcome"
mail.dynamic_template_data = {"name": "Ada"}
out["template"] = sent(mail)
# A "batch": one personalization per message, each with its own subject.
mail = Mail(from_email=FROM, subject="batch", plain_text_content="batched")
for n in (2, 1):
    p = Personalization()
    p.add_to(To(f"b{n}@x.test"))
    p.subject = f"batch {n}"
    mail.add_personalization(p)
out["batch"] = sent(mail)
mail = Mail(from_email=FROM, to_emails="sandbox@x.test", subject="sandbox",
            plain_text_content="never sent")
mail.mail_settings = MailSettings(sandbox_mode=SandBoxMode(True))
out["sandbox"] = sent(mail)
# The Mail helper refuses this address itself: the request body is given as a dict.
out["invalid"] = raised(lambda: client.send({
    "from": {"email": "from@acme.test"}, "subject": "x",
    "personalizations": [{"to": [{"email": "not-an-address"}]}],
    "content": [{"type": "text/plain", "value": "x"}]}))
limited = SendGridAPIClient(api_key="SG." + os.environ["MAILGATE_LIMITED_KEY"], host=URL)
message = Mail(from_email=FROM, to_emails="limit@x.test", subject="limited",
               plain_text_content="x")
limited.send(message)
out["rate_limited"] = raised(lambda: limited.send(message))
bad = SendGridAPIClient(api_key=os.environ["MAILGATE_BAD_KEY"], host=URL)
out["bad_key"] = raised(lambda: bad.send(message))
print(json.dumps(out))
