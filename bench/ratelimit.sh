#!/usr/bin/env bash
# What the rate limiter costs: requests/s of one endpoint with the limiter off, on with Redis,
# and on with the per-process governor (no Redis), measured by wrk on loopback, same machine,
# one run. Limits are set far above what the load reaches, so every request is charged and
# none is refused.
#
#   bench/ratelimit.sh                  # GET /v1/emails/{id}, 64 connections, 10 s per run
#   DURATION=20 CONNECTIONS=128 bench/ratelimit.sh
#   ENDPOINT=send bench/ratelimit.sh    # POST /v1/emails instead (fills a bench database)
#
# Needs PostgreSQL and Redis (started or installed as for scripts/test) and wrk (installed from
# Debian when missing). Uses its own database, mailgate_bench_ratelimit, dropped at the end.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$MAILGATE_ROOT"

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
ENDPOINT=${ENDPOINT:-read}
case $ENDPOINT in read | send) ;; *) mg_die "ENDPOINT is read or send" ;; esac

ensure_rust
target_dir
ensure_postgres
ensure_redis || mg_die "redis: needed for the shared-limiter figure"
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
REDIS_URL=$MAILGATE_REDIS_URL
PREFIX="mailgate-bench-$$:"
SERVER_PID=""
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mailgate-bench.XXXXXX")

cleanup() {
	if [ -n "$SERVER_PID" ]; then
		kill "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
	fi
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

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 18080)
BASE=http://127.0.0.1:$PORT
SEND_BODY='{"from":"bench@example.com","to":"sink@example.com","subject":"bench","text":"hello"}'

# start_server LABEL ENV...: mailgate with the API only (no workers, so delivery does not
# compete for the CPU), limits far above the load.
start_server() {
	local label=$1
	shift
	env MAILGATE_HTTP_ADDR="127.0.0.1:$PORT" MAILGATE_WORKERS_ENABLED=false MAILGATE_LOG=warn \
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

stop_server() {
	kill "$SERVER_PID"
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=""
}

# measure LABEL: writes "requests/s p50 p99" to $WORK/LABEL.result; refuses a run with any
# non-2xx answer.
measure() {
	local label=$1 out rps p50 p99
	if [ "$ENDPOINT" = send ]; then
		cat >"$WORK/send.lua" <<EOF
wrk.method = "POST"
wrk.body = '$SEND_BODY'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $KEY"
EOF
		# A short warm-up, then the measured run.
		wrk -t2 -c"$CONNECTIONS" -d2s -s "$WORK/send.lua" "$BASE/v1/emails" >/dev/null
		out=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$WORK/send.lua" "$BASE/v1/emails")
	else
		wrk -t2 -c"$CONNECTIONS" -d2s -H "Authorization: Bearer $KEY" "$URL" >/dev/null
		out=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "Authorization: Bearer $KEY" "$URL")
	fi
	printf '%s\n' "$out" >"$WORK/$label.wrk"
	if grep -q "Non-2xx" <<<"$out"; then
		printf '%s\n' "$out" >&2
		mg_die "$label: some requests were not answered 2xx"
	fi
	rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
	p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
	p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
	mg_log "$label: $rps requests/s (p50 $p50, p99 $p99)"
	printf '%s %s %s\n' "$rps" "$p50" "$p99" >"$WORK/$label.result"
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

mg_log "==> $ENDPOINT, $CONNECTIONS connections, ${DURATION} s per run, $(nproc) cores"
# Run in this shell (not $(…)), so the trap always knows the server to stop.
run off MAILGATE_RATELIMIT__ENABLED=false
run redis MAILGATE_REDIS_URL="$REDIS_URL"
run local MAILGATE_RATELIMIT__ENABLED=true
read -r OFF OFF_P50 OFF_P99 <"$WORK/off.result"
read -r REDIS REDIS_P50 REDIS_P99 <"$WORK/redis.result"
read -r LOCAL LOCAL_P50 LOCAL_P99 <"$WORK/local.result"

python3 - "$OFF" "$REDIS" "$LOCAL" <<'EOF'
import sys
off, redis, local = map(float, sys.argv[1:])
print(f"limiter off:               {off:10.0f} requests/s")
print(f"limiter on, Redis:         {redis:10.0f} requests/s  ratio {redis / off:.3f}  overhead {100 * (1 - redis / off):5.1f} %")
print(f"limiter on, governor only: {local:10.0f} requests/s  ratio {local / off:.3f}  overhead {100 * (1 - local / off):5.1f} %")
EOF
printf 'latency p50/p99: off %s/%s, redis %s/%s, governor %s/%s\n' \
	"$OFF_P50" "$OFF_P99" "$REDIS_P50" "$REDIS_P99" "$LOCAL_P50" "$LOCAL_P99"
