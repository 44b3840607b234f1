#!/usr/bin/env bash
# Relaying a queue filled beforehand: N messages accepted over HTTP (batch endpoint) first,
# then the time until all are relayed to Postfix's smtp-sink (accepting is not timed),
# against smtp-source blasting the same count and size straight to the same sink, and against
# Postfix (configured here on loopback) accepting and relaying the same load. Not like for
# like: bench/sustained.sh times every contender accepting and relaying at once. Also
# reports mailgate's peak RSS during the run.
# Usage: bench/relay.sh [messages, default 20000]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
N=${1:-20000}
sink_port=$(free_port)
smtp-sink $SINK_USER 127.0.0.1:"$sink_port" 512 &
BENCH_PIDS+=($!)
sleep 0.3

# The raw limit: smtp-source → smtp-sink, 32 sessions, same size.
mg_log "bench: smtp-source → smtp-sink, $N messages"
t0=$(date +%s.%N)
smtp-source -s 32 -m "$N" -l 2048 -f bench@example.com -t rcpt@example.com 127.0.0.1:"$sink_port"
t1=$(date +%s.%N)
raw=$(python3 -c "print($N/($t1-$t0))")

db=$(new_db mailgate_bench_relay)
key=$(MAILGATE_DATABASE_URL=$db "$BIN" keys create --project bench --scopes send,messages 2>/dev/null | tail -n1)
port=$(free_port)
start_mailgate "$db" "$port" MAILGATE_RELAYS__DEFAULT__URL="smtp://127.0.0.1:$sink_port?tls=none" \
	MAILGATE_DELIVERY__CONCURRENCY=64 MAILGATE_DELIVERY__CLAIM_BATCH=256 MAILGATE_DATABASE_POOL_SIZE=32 \
	MAILGATE_RELAYS__DEFAULT__POOL_SIZE=32

python3 - "$port" "$key" "$N" <<'PY'
import json, sys, urllib.request, concurrent.futures
port, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
item = {"from": "bench@example.com", "to": "rcpt@example.com", "subject": "benchmark",
        "text": ("lorem ipsum dolor sit amet " * 80)[:2000]}
def post(count):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/emails/batch", method="POST",
        data=json.dumps([item] * count).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        assert r.status == 200
with concurrent.futures.ThreadPoolExecutor(8) as pool:
    list(pool.map(post, [500] * (n // 500) + ([n % 500] if n % 500 else [])))
PY
t0=$(date +%s.%N)
peak=0
while :; do
	left=$(psql -X -tA "$db" -c "SELECT count(*) FROM recipients WHERE status NOT IN ('delivered','bounced','failed')")
	rss=$(awk '/VmRSS/ {print $2}' "/proc/$MAILGATE_PID/status")
	[ "$rss" -gt "$peak" ] && peak=$rss
	[ "$left" -eq 0 ] && break
	sleep 0.2
done
t1=$(date +%s.%N)
e2e=$(python3 -c "print($N/($t1-$t0))")
delivered=$(psql -X -tA "$db" -c "SELECT count(*) FROM recipients WHERE status = 'delivered'")
kill "$MAILGATE_PID"; wait "$MAILGATE_PID" 2>/dev/null || true

# Postfix relaying the same load to the same sink: a loopback listener on a free port,
# relayhost = the sink. The system's main.cf and master.cf are restored afterwards.
postfix_rate=0
if command -v postfix >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
	pf_port=$(free_port)
	# Debian's package installed non-interactively ("No configuration") has no main.cf: start
	# from an empty one (Postfix's defaults) and remove it again afterwards.
	had_main_cf=0
	if [ -f /etc/postfix/main.cf ]; then
		had_main_cf=1
		cp /etc/postfix/main.cf /tmp/mailgate-bench-main.cf
	else
		: >/etc/postfix/main.cf
	fi
	cp /etc/postfix/master.cf /tmp/mailgate-bench-master.cf
	restore_postfix() {
		postfix stop >/dev/null 2>&1 || true
		if [ "$had_main_cf" = 1 ]; then
			cp /tmp/mailgate-bench-main.cf /etc/postfix/main.cf
		else
			rm -f /etc/postfix/main.cf
		fi
		cp /tmp/mailgate-bench-master.cf /etc/postfix/master.cf
	}
	trap 'restore_postfix; bench_cleanup' EXIT
	postconf -e "myhostname = localhost.localdomain" "compatibility_level = 3.6" "inet_interfaces = loopback-only" "mydestination =" "relayhost = [127.0.0.1]:$sink_port" \
		"mynetworks = 127.0.0.0/8" "smtp_tls_security_level = none" "default_destination_concurrency_limit = 32" \
		"maillog_file = /var/log/postfix-bench.log" "smtpd_recipient_restrictions = permit_mynetworks, reject"
	postconf -M "$pf_port/inet=$pf_port inet n - n - - smtpd"
	postfix start >/dev/null 2>&1 || postfix reload >/dev/null 2>&1
	sleep 1
	mg_log "bench: smtp-source → Postfix → smtp-sink, $N messages"
	t0=$(date +%s.%N)
	smtp-source -s 32 -m "$N" -l 2048 -f bench@example.com -t rcpt@example.com 127.0.0.1:"$pf_port"
	while [ "$(postqueue -j 2>/dev/null | wc -l)" -gt 0 ]; do sleep 0.2; done
	t1=$(date +%s.%N)
	postfix_rate=$(python3 -c "print($N/($t1-$t0))")
	restore_postfix
else
	mg_warn "postfix not installed (or not root): skipping the Postfix comparison"
fi

python3 - "$e2e" "$raw" "$delivered" "$N" "$peak" "$postfix_rate" <<'PY'
import sys
e2e, raw, delivered, n, peak, pf = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), float(sys.argv[6])
print(f"\nrelay: mailgate {e2e:.0f} msg/s queued→delivered ({delivered}/{n} delivered); "
      f"smtp-source→smtp-sink {raw:.0f} msg/s (ratio {e2e/raw:.2f}); "
      + (f"Postfix→smtp-sink {pf:.0f} msg/s (mailgate/Postfix {e2e/pf:.2f}, target >= 2); " if pf else "")
      + f"mailgate peak RSS {peak/1024:.0f} MiB (target < 150)")
PY
