#!/usr/bin/env bash
# What one request costs mailgate in memory (issue 25): SendGrid's POST /v3/mail/send in sandbox
# mode with 100 personalizations sharing one 2 MB attachment (a 2.7 MB body). For each row a
# fresh `mailgate serve` on a fresh database gets one warm-up request (1 personalization), then
# the request; the figure is the growth of the process's peak resident set (VmHWM in
# /proc/<pid>/status) across the request, with its status and wall time.
#
# Rows: this tree's binary with the default http.max_request_bytes_rendered (50 MiB: refused,
# 413) and with it raised to 1 GiB (all 100 rendered and checked, 200); with OTHER_BIN=path
# also another build (e.g. main's) without the new key.
# Usage: [BENCH_BIN=bin] [OTHER_BIN=bin] bench/memory.sh
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

measure() { # measure NAME BIN [ENV=VALUE…]: prints one result line
	local name=$1 bin=$2 db key port
	shift 2
	db=$(new_db "mailgate_bench_memory_$name")
	key=$(MAILGATE_DATABASE_URL=$db "$bin" keys create --project bench --scopes send 2>>"${TMPDIR:-/tmp}/mailgate-bench.log" | tail -n1)
	port=$(free_port)
	local saved=$BIN
	BIN=$bin
	start_mailgate "$db" "$port" MAILGATE_WORKERS_ENABLED=false "$@"
	BIN=$saved
	python3 - "$name" "$port" "$key" "$MAILGATE_PID" <<'PY'
import base64, json, sys, time, urllib.error, urllib.request
name, port, key, pid = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
attachment = base64.b64encode(bytes((i * 7) % 256 for i in range(2_000_000))).decode()  # binary, as a PDF
def mail(n):
    return {"from": {"email": "reports@example.com"}, "subject": "Your monthly report",
            "personalizations": [{"to": [{"email": f"r{i}@example.org"}]} for i in range(n)],
            "content": [{"type": "text/plain", "value": "The report is attached."}],
            "attachments": [{"content": attachment, "filename": "report.pdf", "type": "application/pdf"}],
            "mail_settings": {"sandbox_mode": {"enable": True}}}
def send(n):
    body = json.dumps(mail(n)).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v3/mail/send", data=body, method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
def hwm():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
warm = send(1)
before = hwm()
t0 = time.monotonic()
status = send(100)
secs = time.monotonic() - t0
after = hwm()
print(f"{name:<28} warm-up {warm}, request {status} in {secs:5.2f} s; peak RSS {before / 2**20:6.1f} -> {after / 2**20:6.1f} MiB, grew {(after - before) / 2**20:6.1f} MiB")
PY
	kill "$MAILGATE_PID"
	wait "$MAILGATE_PID" 2>/dev/null || true
}

if [ -n "${OTHER_BIN:-}" ]; then
	measure other "$OTHER_BIN"
fi
measure bound_default "$BIN"
measure bound_1gib "$BIN" MAILGATE_HTTP__MAX_REQUEST_BYTES_RENDERED=1073741824
