"""Drives resend-python's Domains calls against mailgate: create, get, list, update, verify,
remove. Reads MAILGATE_URL and MAILGATE_KEY (and PUBLISH, a file the test watches: the
script writes the records there and waits for the test to publish them in its DNS server).
Prints one JSON object of what the SDK returned, which tests/sdk/resend.rs checks.
"""
import json
import os
import time

import resend

resend.api_url = os.environ["MAILGATE_URL"]
resend.api_key = os.environ["MAILGATE_KEY"]
out = {}

created = resend.Domains.create({"name": "sdk-py.test", "region": "us-east-1"})
out["created"] = {"id": created["id"], "name": created["name"], "status": created["status"],
                  "records": created["records"]}
domain_id = created["id"]
got = resend.Domains.get(domain_id)
out["got"] = {"object": got["object"], "id": got["id"], "status": got["status"]}
listed = resend.Domains.list()
out["listed"] = {"object": listed["object"], "ids": [d["id"] for d in listed["data"]]}
updated = resend.Domains.update({"id": domain_id, "open_tracking": True, "click_tracking": True})
out["updated"] = {"object": updated["object"], "id": updated["id"]}

# The test publishes the records in its DNS server, then verify finds them.
with open(os.environ["PUBLISH"] + ".tmp", "w") as f:
    json.dump(created["records"], f)
os.rename(os.environ["PUBLISH"] + ".tmp", os.environ["PUBLISH"])
while not os.path.exists(os.environ["PUBLISH"] + ".done"):
    time.sleep(0.05)
verified = resend.Domains.verify(domain_id)
out["verified"] = {"object": verified["object"], "id": verified["id"]}
out["after_verify"] = resend.Domains.get(domain_id)["status"]

removed = resend.Domains.remove(domain_id)
out["removed"] = {"object": removed["object"], "id": removed["id"], "deleted": removed["deleted"]}
try:
    resend.Domains.get(domain_id)
    out["gone"] = None
except Exception as e:  # noqa: BLE001 - the class is what is checked
    out["gone"] = {"class": type(e).__name__, "code": str(getattr(e, "code", ""))}
print(json.dumps(out))
