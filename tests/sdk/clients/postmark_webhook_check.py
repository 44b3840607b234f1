"""Reads one mailgate webhook in the `postmark` format with postmark-python's own model of a
Postmark bounce record (the Bounce webhook carries the same fields plus RecordType and
Metadata), so a handler that parses bounces with it works unchanged.

Reads MAILGATE_WEBHOOK_BODY; prints the parsed bounce's fields.
"""
import json
import os

from postmark.models.bounces.schemas import Bounce

record = json.loads(os.environ["MAILGATE_WEBHOOK_BODY"])
bounce = Bounce.model_validate(record)
print(json.dumps({"record_type": record["RecordType"], "type": bounce.type.value,
                  "email": bounce.email, "message_id": bounce.message_id,
                  "details": bounce.details, "inactive": bounce.inactive}))
