"""Send → webhook latency against a running mailgate (bench/webhook_latency.sh starts it).

Registers a webhook endpoint served by this script on loopback, then sends one message at a
time (an idle gateway) and times, for each, from the moment its 202 arrived to the moment the
receiver got its `email.delivered` POST. The anchor, measured in the same run: the same client
POSTing straight to the same receiver (the floor any webhook latency sits on).

Usage: webhook_latency.py BASE_URL KEY COUNT
Prints one line: `count N p50 X p99 Y max Z floor_p50 F floor_p99 G` (milliseconds).
"""

import json
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

base, key, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
arrived = {}
cond = threading.Condition()


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        at = time.perf_counter()
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204)
        self.end_headers()
        event = json.loads(body)
        if event.get("type") in ("email.delivered", "floor"):
            with cond:
                arrived[event["data"]["email_id"]] = at
                cond.notify_all()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=server.serve_forever, daemon=True).start()
receiver = f"http://127.0.0.1:{server.server_address[1]}/hook"


def call(method, url, body, headers):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method=method)
    for k, v in headers.items():
        req.add_header(k, v)
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, json.loads(r.read() or b"null")


auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
status, _ = call("POST", f"{base}/v1/webhooks", {"url": receiver, "events": ["email.delivered"]}, auth)
assert status == 201, status


def wait_for(email_id):
    deadline = time.perf_counter() + 30
    with cond:
        while email_id not in arrived:
            left = deadline - time.perf_counter()
            if left <= 0:
                sys.exit(f"no webhook for {email_id} within 30 s")
            cond.wait(left)
        return arrived[email_id]


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


send = {"from": "bench@example.com", "to": "rcpt@example.com", "subject": "webhook latency",
        "text": "hello"}
latencies, floor = [], []
for i in range(count):
    status, body = call("POST", f"{base}/v1/emails", send, auth)
    accepted = time.perf_counter()
    assert status == 202, status
    latencies.append((wait_for(body["id"]) - accepted) * 1000)
    # The floor: the same receiver, POSTed to directly.
    fid = f"floor-{i}"
    start = time.perf_counter()
    call("POST", receiver, {"type": "floor", "data": {"email_id": fid}}, {"Content-Type": "application/json"})
    floor.append((wait_for(fid) - start) * 1000)
    time.sleep(0.05)
    if (i + 1) % 50 == 0:
        print(f"  {i + 1}/{count} sent", file=sys.stderr)

print(f"count {count} p50 {pct(latencies, 50):.1f} p99 {pct(latencies, 99):.1f} max {max(latencies):.1f} "
      f"floor_p50 {pct(floor, 50):.2f} floor_p99 {pct(floor, 99):.2f}")
