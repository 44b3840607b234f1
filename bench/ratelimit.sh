#!/usr/bin/env bash
# What the rate limiter costs: requests/s of one endpoint with the limiter off, on with Redis,
# and on with the per-process governor (no Redis), measured by wrk on loopback, same machine,
# one run. The three are interleaved for ROUNDS rounds (default 3) and the medians compared,
# so load from elsewhere on the machine blurs them alike. Because throughput on a shared
# machine swings with other load, it also reports CPU time per request (mailgate's plus
# redis-server's), which depends far less on it. Limits are set far above what the load reaches, so every request is charged and
# none is refused.
#
#   bench/ratelimit.sh                  # GET /v1/emails/{id}, 64 connections, 10 s per run
#   DURATION=20 CONNECTIONS=128 ROUNDS=5 bench/ratelimit.sh
#   ENDPOINT=send bench/ratelimit.sh    # POST /v1/emails instead (fills a bench database)
#
# Needs PostgreSQL (found, started or installed as for scripts/test), redis-server and wrk
# (installed from Debian when missing). Uses its own database, mailgate_bench_ratelimit, and
# its own redis-server on a free loopback port, so other users of the machine's Redis neither
# disturb nor are disturbed; both go at the end.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$MAILGATE_ROOT"

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-64}
ENDPOINT=${ENDPOINT:-read}
case $ENDPOINT in read | send) ;; *) mg_die "ENDPOINT is read or send" ;; esac

ensure_rust
target_dir
ensure_postgres
if ! command -v redis-server >/dev/null 2>&1; then
	_mg_apt_install redis-server || mg_die "redis-server: not installed and could not be installed"
fi
if ! command -v wrk >/dev/null 2>&1; then
	_mg_apt_install wrk || mg_die "wrk: not installed and could not be installed"
fi
command -v psql >/dev/null 2>&1 || mg_die "psql: needed to create the bench database"
command -v curl >/dev/null 2>&1 || mg_die "curl: needed"

mg_log "==> cargo build --release --bin mailgate"
cargo build --release --bin mailgate
BIN=$CARGO_TARGET_DIR/release/mailgate

ADMIN_URL=${MAILGATE_DATABASE_URL%/*}/postgres
BENCH_DB=mailgate_bench_ratelimit
DB_URL=${MAILGATE_DATABASE_URL%/*}/$BENCH_DB
PREFIX="mailgate-bench:"
SERVER_PID=""
REDIS_PID=""
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mailgate-bench.XXXXXX")

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

cleanup() {
	for pid in "$SERVER_PID" "$REDIS_PID"; do
		if [ -n "$pid" ]; then
			kill "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
		fi
	done
	psql -X -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $BENCH_DB" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

psql -X -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $BENCH_DB" >/dev/null
psql -X -q "$ADMIN_URL" -c "CREATE DATABASE $BENCH_DB" >/dev/null
export MAILGATE_DATABASE_URL=$DB_URL
unset MAILGATE_REDIS_URL REDIS_URL DATABASE_URL
"$BIN" migrate
KEY=$("$BIN" keys create --project bench --scopes send,messages \
	--rate 1000000 --burst 1000000 2>/dev/null | tail -n1)

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!
SHARED_REDIS_URL=redis://127.0.0.1:$REDIS_PORT
for _ in $(seq 1 100); do
	if (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null; then break; fi
	sleep 0.05
done

PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
SEND_BODY='{"from":"bench@example.com","to":"sink@example.com","subject":"bench","text":"hello"}'

# start_server LABEL ENV...: mailgate with the API only (no workers, so delivery does not
# compete for the CPU), limits far above the load.
start_server() {
	local label=$1
	shift
	env MAILGATE_HTTP_ADDR="127.0.0.1:$PORT" MAILGATE_METRICS__ADDR=127.0.0.1:0 MAILGATE_WORKERS_ENABLED=false MAILGATE_LOG=warn \
		MAILGATE_REDIS__KEY_PREFIX="$PREFIX" \
		MAILGATE_RATELIMIT__API__RATE_PER_SEC=1000000 MAILGATE_RATELIMIT__API__BURST=1000000 \
		"$@" "$BIN" serve 2>"$WORK/$label.log" &
	SERVER_PID=$!
	for _ in $(seq 1 200); do
		if curl -sf "$BASE/healthz" >/dev/null 2>&1; then return 0; fi
		sleep 0.05
	done
	cat "$WORK/$label.log" >&2
	mg_die "mailgate ($label) did not come up"
}

# CPU ticks (user + system) a process has used so far; 0 when it is not visible here.
cpu_ticks() {
	if [ -n "$1" ] && [ -r "/proc/$1/stat" ]; then
		# After the ")" that ends the command name: field 14 (utime) is the 12th, 15 the 13th.
		sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
	else
		echo 0
	fi
}

TICKS_PER_SEC=$(getconf CLK_TCK)

stop_server() {
	kill "$SERVER_PID"
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=""
}

# measure LABEL: writes "requests/s p50 p99" to $WORK/LABEL.result; refuses a run with any
# non-2xx answer.
measure() {
	local label=$1 out rps p50 p99 requests cpu0 cpu1 rcpu0 rcpu1
	if [ "$ENDPOINT" = send ]; then
		cat >"$WORK/send.lua" <<EOF
wrk.method = "POST"
wrk.body = '$SEND_BODY'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $KEY"
EOF
		# A short warm-up, then the measured run.
		wrk -t2 -c"$CONNECTIONS" -d2s -s "$WORK/send.lua" "$BASE/v1/emails" >/dev/null
		cpu0=$(cpu_ticks "$SERVER_PID") rcpu0=$(cpu_ticks "$REDIS_PID")
		out=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$WORK/send.lua" "$BASE/v1/emails")
	else
		wrk -t2 -c"$CONNECTIONS" -d2s -H "Authorization: Bearer $KEY" "$URL" >/dev/null
		cpu0=$(cpu_ticks "$SERVER_PID") rcpu0=$(cpu_ticks "$REDIS_PID")
		out=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "Authorization: Bearer $KEY" "$URL")
	fi
	cpu1=$(cpu_ticks "$SERVER_PID") rcpu1=$(cpu_ticks "$REDIS_PID")
	printf '%s\n' "$out" >"$WORK/$label.wrk"
	if grep -q "Non-2xx" <<<"$out"; then
		printf '%s\n' "$out" >&2
		mg_die "$label: some requests were not answered 2xx"
	fi
	rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
	p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
	p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
	requests=$(awk '/requests in/ {print $1}' <<<"$out")
	# Microseconds of CPU per request.
	cpu=$(awk -v t=$((cpu1 - cpu0)) -v hz="$TICKS_PER_SEC" -v n="$requests" 'BEGIN {printf "%.1f", t / hz / n * 1e6}')
	rcpu=$(awk -v t=$((rcpu1 - rcpu0)) -v hz="$TICKS_PER_SEC" -v n="$requests" 'BEGIN {printf "%.1f", t / hz / n * 1e6}')
	mg_log "$label: $rps requests/s (p50 $p50, p99 $p99), CPU per request: mailgate $cpu µs, redis-server $rcpu µs"
	printf '%s %s %s %s %s\n' "$rps" "$p50" "$p99" "$cpu" "$rcpu" >"$WORK/$label.result"
}

run() {
	local label=$1
	shift
	start_server "$label" "$@"
	if [ -z "${URL:-}" ]; then
		ID=$(curl -sf "$BASE/v1/emails" -H "Authorization: Bearer $KEY" \
			-H 'Content-Type: application/json' -d "$SEND_BODY" |
			sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
		[ -n "$ID" ] || mg_die "could not send the message to read"
		URL=$BASE/v1/emails/$ID
	fi
	measure "$label"
	stop_server
}

mg_log "==> $ENDPOINT, $CONNECTIONS connections, ${DURATION} s per run, $ROUNDS rounds, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
# Run in this shell (not $(…)), so the trap always knows the server to stop.
for round in $(seq 1 "$ROUNDS"); do
	run "off-$round" MAILGATE_RATELIMIT__ENABLED=false
	run "redis-$round" MAILGATE_REDIS_URL="$SHARED_REDIS_URL"
	run "governor-$round" MAILGATE_RATELIMIT__ENABLED=true
done

python3 - "$WORK" "$ROUNDS" <<'EOF'
import statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
def results(label):
    rows = [open(f"{work}/{label}-{r}.result").read().split() for r in range(1, rounds + 1)]
    return {
        "rps": [float(row[0]) for row in rows],
        "p50": [row[1] for row in rows],
        "p99": [row[2] for row in rows],
        "cpu": [float(row[3]) for row in rows],
        "rcpu": [float(row[4]) for row in rows],
    }
off = results("off")
base_rps = statistics.median(off["rps"])
base_cpu = statistics.median(a + b for a, b in zip(off["cpu"], off["rcpu"]))
for label, name in [("off", "limiter off"), ("redis", "limiter on, Redis"), ("governor", "limiter on, governor only")]:
    r = results(label)
    rps, cpu, rcpu = (statistics.median(r[k]) for k in ("rps", "cpu", "rcpu"))
    total = statistics.median(a + b for a, b in zip(r["cpu"], r["rcpu"]))
    print(f"{name}:")
    print(f"    {rps:6.0f} requests/s (median of {', '.join(f'{x:.0f}' for x in r['rps'])});"
          f" p50 {'/'.join(r['p50'])}, p99 {'/'.join(r['p99'])}")
    print(f"    CPU per request: mailgate {cpu:.0f} µs (median of {', '.join(f'{x:.0f}' for x in r['cpu'])}),"
          f" redis-server {rcpu:.0f} µs")
    if label != "off":
        print(f"    throughput ratio to off {rps / base_rps:.3f} ({100 * (1 - rps / base_rps):+.1f} % overhead);"
              f" CPU per request {total - base_cpu:+.0f} µs ({100 * (total / base_cpu - 1):+.1f} %)")
EOF
