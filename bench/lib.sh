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
