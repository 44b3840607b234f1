#!/usr/bin/env bash
# What content scanning costs the accept path: POST /v1/emails (one recipient, ~2 KB text) at
# 64 connections with scanning off, then with rspamd on (the issue's target: less than 15 %
# slower), then with rspamd and clamd, one after the other in this run, on fresh databases.
# The scanners are the private rspamd and clamd of scripts/test (started here when missing).
# Usage: bench/scan.sh [seconds per run, default 10]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SECS=${1:-10}
CONNS=64
scanners_start
scanners_wait

run() { # run NAME [ENV=VALUE…]: prints the accepted rate
	local name=$1 db key port script rate non2xx
	shift
	db=$(new_db "mailgate_bench_scan_$name")
	key=$(MAILGATE_DATABASE_URL=$db "$BIN" keys create --project bench --scopes send 2>/dev/null | tail -n1)
	port=$(free_port)
	start_mailgate "$db" "$port" MAILGATE_WORKERS_ENABLED=false MAILGATE_DATABASE_POOL_SIZE=32 "$@"
	script=$(wrk_send_script "$key" "$(body_2k)")
	mg_log "bench: accept with scanning $name, $CONNS connections, ${SECS}s"
	wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s "$script" "http://127.0.0.1:$port/v1/emails" >"/tmp/bench-scan-$name.txt"
	rate=$(awk '/Requests\/sec/ {print $2}' "/tmp/bench-scan-$name.txt")
	non2xx=$(awk '/Non-2xx/ {print $NF}' "/tmp/bench-scan-$name.txt")
	if [ -n "${non2xx:-}" ] && [ "$non2xx" != 0 ]; then
		mg_die "scanning $name: $non2xx non-2xx answers; the figure would be meaningless"
	fi
	grep -E "Latency|99%" "/tmp/bench-scan-$name.txt" >&2
	kill "$MAILGATE_PID"
	wait "$MAILGATE_PID" 2>/dev/null || true
	rm -f "$script"
	echo "$rate"
}

off=$(run off)
rspamd=$(run rspamd MAILGATE_SCAN__RSPAMD_URL="$MAILGATE_TEST_RSPAMD_URL")
both=$(run both MAILGATE_SCAN__RSPAMD_URL="$MAILGATE_TEST_RSPAMD_URL" MAILGATE_SCAN__CLAMD_ADDR="$MAILGATE_TEST_CLAMD_ADDR")
python3 - "$off" "$rspamd" "$both" <<'PY'
import sys
off, rspamd, both = map(float, sys.argv[1:])
print(f"\naccept msg/s: scanning off {off:.0f}; rspamd {rspamd:.0f} ({(1 - rspamd / off) * 100:.0f} % less, target < 15 %); "
      f"rspamd + clamd {both:.0f} ({(1 - both / off) * 100:.0f} % less)")
PY
