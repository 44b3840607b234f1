#!/usr/bin/env bash
# Direct delivery against relaying (issue 26): the same N messages of about 2 KB, one recipient
# each, spread evenly over 20 destination domains (rcpt<i>@dNN.bench.test), delivered two ways
# by mailgate at its defaults (release build, no tuning):
#
#   relay   a `url` relay: every message to one smtp-sink, 127.32.0.25:25
#   direct  an `mx` relay: each domain's MX looked up in DNS (bench/mx_dns.py on
#           127.32.0.53:53, `[dns] nameservers`), each MX a smtp-sink on its own loopback
#           address 127.32.1.N:25 (`allow_private_mx = true`, which loopback MXs need)
#
# Each round accepts the messages over HTTP (batch endpoint) with workers off, not timed; then
# a fresh `mailgate serve` with workers on drains the queue. Two figures per row:
#   drain   from starting that process to the moment no recipient is left undelivered
#           (polled every 0.2 s), msg/s
#   span    from the first recipient's delivered event to the last one's (event times in
#           Postgres): the delivery rate without process start and the poll
# plus the mailgate process's CPU time per 1,000 messages over the drain (utime + stime),
# which machine load does not move as much as the rates. Rows alternate (relay, direct,
# relay, direct, …) so both see the same load; the load average is printed with each.
# Usage: bench/direct.sh [messages, default 20000] [rounds, default 2]
# Env: EXTRA_ENV="MAILGATE_X=… …" adds settings to both rows (off the defaults: for diagnosis).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
N=${1:-20000}
ROUNDS=${2:-2}
DOMAINS=20
read -r -a EXTRA <<<"${EXTRA_ENV:-}"
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# The sinks: one for the relay, one per destination domain's MX, each on port 25 of its own
# loopback address (direct delivery only ever connects to port 25).
smtp-sink $SINK_USER 127.32.0.25:25 512 &
BENCH_PIDS+=($!)
zone=()
for i in $(seq 1 "$DOMAINS"); do
	smtp-sink $SINK_USER "127.32.1.$i:25" 512 &
	BENCH_PIDS+=($!)
	zone+=("$(printf 'd%02d.bench.test' "$i")=127.32.1.$i")
done
python3 bench/mx_dns.py 127.32.0.53 53 "${zone[@]}" &
BENCH_PIDS+=($!)
sleep 0.5

RELAY=(MAILGATE_RELAYS__DEFAULT__URL="smtp://127.32.0.25:25?tls=none" "${EXTRA[@]}")
DIRECT=(MAILGATE_RELAYS__DEFAULT__MX=true MAILGATE_RELAYS__DEFAULT__ALLOW_PRIVATE_MX=true
	MAILGATE_DNS__NAMESERVERS='["127.32.0.53:53"]' "${EXTRA[@]}")

# cpu_ticks PID: user + system CPU of the process so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# run NAME ENV…: one row; prints "NAME drain_rate span_rate cpu_ms_per_1000 delivered load".
run() {
	local name=$1 db key port t0 t1 ticks left load
	shift
	db=$(new_db "mailgate_bench_direct_$name")
	key=$(MAILGATE_DATABASE_URL=$db "$BIN" keys create --project bench --scopes send,messages 2>/dev/null | tail -n1)
	port=$(free_port)
	start_mailgate "$db" "$port" MAILGATE_WORKERS_ENABLED=false "$@"
	python3 - "$port" "$key" "$N" "$DOMAINS" <<'PY'
import json, sys, urllib.request, concurrent.futures
port, key, n, domains = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
text = ("lorem ipsum dolor sit amet " * 80)[:2000]
items = [{"from": "bench@example.com", "to": f"rcpt{i}@d{i % domains + 1:02d}.bench.test",
          "subject": f"bench {i}", "text": text} for i in range(n)]
def post(start):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/emails/batch", method="POST",
        data=json.dumps(items[start:start + 500]).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        assert r.status == 200
with concurrent.futures.ThreadPoolExecutor(8) as pool:
    list(pool.map(post, range(0, n, 500)))
PY
	kill "$MAILGATE_PID"
	wait "$MAILGATE_PID" 2>/dev/null || true
	psql -X -q "$db" -c "ANALYZE" >/dev/null
	load=$(loadavg)
	t0=$(date +%s.%N)
	start_mailgate "$db" "$port" "$@"
	while :; do
		left=$(psql -X -tA "$db" -c "SELECT count(*) FROM recipients WHERE status NOT IN ('delivered','bounced','failed')")
		[ "$left" -eq 0 ] && break
		if python3 -c "import sys; sys.exit(0 if $(date +%s.%N) - $t0 > 600 else 1)"; then
			mg_die "$name: $left recipients still undelivered after 600 s (see ${TMPDIR:-/tmp}/mailgate-bench.log)"
		fi
		sleep 0.2
	done
	t1=$(date +%s.%N)
	ticks=$(cpu_ticks "$MAILGATE_PID")
	kill "$MAILGATE_PID"
	wait "$MAILGATE_PID" 2>/dev/null || true
	psql -X -tA -F' ' "$db" -c "
		SELECT '$name',
		       round($N / ($t1 - $t0)),
		       round($N / extract(epoch FROM max(at) - min(at))),
		       round($ticks * 1000.0 / $(getconf CLK_TCK) * 1000 / $N),
		       (SELECT count(*) FROM recipients WHERE status = 'delivered'),
		       '$load'
		FROM events WHERE type = 'delivered'"
}

mg_log "bench: $N messages to $DOMAINS domains, relay vs direct, $ROUNDS round(s)"
results=()
for round in $(seq 1 "$ROUNDS"); do
	results+=("$(run relay "${RELAY[@]}")")
	mg_log "  round $round: ${results[-1]}"
	results+=("$(run direct "${DIRECT[@]}")")
	mg_log "  round $round: ${results[-1]}"
done

printf '%s\n' "${results[@]}" | python3 -c '
import sys, statistics
rows = {"relay": [], "direct": []}
for line in sys.stdin:
    name, drain, span, cpu, delivered, *load = line.split()
    rows[name].append((int(drain), int(span), int(cpu), int(delivered), " ".join(load)))
n = sys.argv[1]
print(f"\n{n} messages, 20 domains, defaults; per round: drain msg/s, span msg/s, CPU ms per 1000, delivered, load")
for name, runs in rows.items():
    print(f"{name:7} " + " | ".join(f"{d} / {s} msg/s, {c} ms CPU, {v}/{n}, load {l}" for d, s, c, v, l in runs))
for i, (r, d) in enumerate(zip(rows["relay"], rows["direct"]), 1):
    print(f"round {i}: direct/relay drain {d[0]/r[0]:.2f}, span {d[1]/r[1]:.2f}, CPU {d[2]/r[2]:.2f}")
drain = statistics.median(d[0] for d in rows["direct"]) / statistics.median(r[0] for r in rows["relay"])
print(f"median direct/relay drain {drain:.2f} (target >= 0.9)")
' "$N"
