# Shared by the bench scripts: build the release binary, make a database, start mailgate.
# shellcheck shell=bash
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$MAILGATE_ROOT"

ensure_rust
target_dir
ensure_postgres
command -v wrk >/dev/null 2>&1 || { mg_log "installing wrk"; apt-get install -y -qq wrk >/dev/null; }
command -v smtp-sink >/dev/null 2>&1 || ensure_tools_for_tests

# BENCH_BIN: a binary built elsewhere (another branch, a debug build), used as it is.
if [ -n "${BENCH_BIN:-}" ]; then
	BIN=$BENCH_BIN
else
	cargo build --release --quiet --bin mailgate
	BIN=$CARGO_TARGET_DIR/release/mailgate
fi
ADMIN_URL=postgres://postgres@127.0.0.1:5432/postgres
# smtp-sink refuses to run as root without a user to switch to.
SINK_USER=""
if [ "$(id -u)" = 0 ]; then SINK_USER="-u postfix"; fi
BENCH_PIDS=()
BENCH_DBS=()

bench_cleanup() {
	for pid in "${BENCH_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${BENCH_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	# BENCH_KEEP_DBS=1 leaves them for a look afterwards (EXPLAIN on a filled database).
	[ -n "${BENCH_KEEP_DBS:-}" ] && return 0
	for db in "${BENCH_DBS[@]}"; do
		psql -X -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
	done
}
trap bench_cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# new_db NAME: a fresh database, dropped at exit; prints its URL.
new_db() {
	psql -X -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >/dev/null
	BENCH_DBS+=("$1")
	echo "postgres://postgres@127.0.0.1:5432/$1"
}

# start_mailgate DB_URL HTTP_PORT [ENV=VALUE…]: runs `mailgate serve` in the background.
start_mailgate() {
	local db=$1 port=$2
	shift 2
	# Rate limits off: these benches measure the raw path (bench/ratelimit.sh measures the
	# limiter); the SMTP listener on a free port so runs never clash.
	env MAILGATE_DATABASE_URL="$db" MAILGATE_HTTP_ADDR="127.0.0.1:$port" MAILGATE_SMTP_ADDR=127.0.0.1:0 MAILGATE_METRICS__ADDR=127.0.0.1:0 \
		MAILGATE_LOG=warn MAILGATE_RATELIMIT__ENABLED=false "$@" \
		"$BIN" serve >>"${TMPDIR:-/tmp}/mailgate-bench.log" 2>&1 &
	BENCH_PIDS+=($!)
	MAILGATE_PID=$!
	for _ in $(seq 1 200); do
		curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	mg_die "mailgate did not start (see ${TMPDIR:-/tmp}/mailgate-bench.log)"
}

# wrk_send_script KEY BODY: a temporary wrk script that POSTs BODY with KEY; prints its path.
wrk_send_script() {
	local script
	script=$(mktemp)
	cat >"$script" <<LUA
wrk.method = "POST"
wrk.body = [[$2]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $1"
LUA
	echo "$script"
}

# A ~2 KB text body, the size the issue's benchmarks use.
body_2k() {
	python3 - <<'PY'
import json
print(json.dumps({"from": "bench@example.com", "to": "rcpt@example.com", "subject": "benchmark",
                  "text": ("lorem ipsum dolor sit amet " * 80)[:2000]}))
PY
}

# accept_batches PORT KEY N: accepts N small messages (one recipient each) through
# POST /v1/emails/batch, 500 a request, 4 requests at once: how the queue benches fill a queue.
accept_batches() {
	python3 - "$@" <<'PY'
import json, sys, urllib.request, concurrent.futures
port, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
item = {"from": "bench@example.com", "to": "rcpt@example.com", "subject": "q", "text": "x" * 200}
def post(count):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/emails/batch", method="POST",
        data=json.dumps([item] * count).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
with concurrent.futures.ThreadPoolExecutor(4) as pool:
    list(pool.map(post, [500] * (n // 500) + ([n % 500] if n % 500 else [])))
PY
}

# The delivery settings the queue benches time the workers with.
QUEUE_WORKERS=(MAILGATE_DELIVERY__CONCURRENCY=64 MAILGATE_DELIVERY__CLAIM_BATCH=256 MAILGATE_RATELIMIT__ENABLED=false)

# time_deliveries DB_URL PORT JOBS SINCE: starts mailgate with its workers on a queue filled
# beforehand (sandbox delivery: no SMTP in the way) and prints JOBS ÷ the seconds from the
# process start to the JOBS-th `delivered` event made after it; stops it. The queue may hold
# more than JOBS (a backlog): only the first JOBS deliveries are timed. SINCE (Unix seconds)
# is before the first of the queued messages was accepted: their events are looked for in the
# day partitions from then on, so a large history is not read to count them.
time_deliveries() {
	local db=$1 port=$2 jobs=$3 t0 since
	since=$(psql -X -tA "$db" -c "SELECT mailgate_v7_floor(to_timestamp($4))")
	t0=$(date +%s.%N)
	start_mailgate "$db" "$port" "${QUEUE_WORKERS[@]}"
	# The upper bound keeps the range within the day partitions, so the default partition (ids
	# that are not v7) is pruned too.
	local count="SELECT count(*) FROM (SELECT 1 FROM events WHERE type = 'delivered'
	    AND message_id >= '$since' AND message_id < mailgate_v7_floor(now() + interval '1 hour')
	    AND at >= to_timestamp($t0) LIMIT $jobs) d"
	local waited=0
	while [ "$(psql -X -tA "$db" -c "$count")" -lt "$jobs" ]; do
		waited=$((waited + 1))
		if [ "$waited" -ge 1200 ]; then
			# This runs in a command substitution: the EXIT trap would not stop the process.
			kill "$MAILGATE_PID"
			wait "$MAILGATE_PID" 2>/dev/null || true
			mg_die "fewer than $jobs deliveries after 10 minutes"
		fi
		sleep 0.5
	done
	kill "$MAILGATE_PID"
	wait "$MAILGATE_PID" 2>/dev/null || true
	psql -X -tA "$db" -c "SELECT round($jobs / extract(epoch FROM max(at) - to_timestamp($t0)))
	    FROM (SELECT at FROM events WHERE type = 'delivered' AND message_id >= '$since'
	          AND message_id < mailgate_v7_floor(now() + interval '1 hour')
	          AND at >= to_timestamp($t0) ORDER BY at LIMIT $jobs) d"
}
