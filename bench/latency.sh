#!/usr/bin/env bash
# Latency: (1) p50/p99 of POST /v1/emails at about half the maximum accept rate, after
# measuring the maximum in the same run, two ways: wrk with a per-connection delay (closed
# loop: its 64 connections fall into step and fire in bursts) and bench/open_loop.rs (requests
# evenly spaced, each timed from its due moment); (2) accept-to-upstream-250 p50/p99 with an
# idle gateway relaying to smtp-sink, read from the event timeline.
# Usage: bench/latency.sh [seconds per run, default 10]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SECS=${1:-10}
CONNS=64

db=$(new_db mailgate_bench_latency)
key=$(MAILGATE_DATABASE_URL=$db "$BIN" keys create --project bench --scopes send,messages 2>/dev/null | tail -n1)
port=$(free_port)
start_mailgate "$db" "$port" MAILGATE_WORKERS_ENABLED=false MAILGATE_DATABASE_POOL_SIZE=32 \
	MAILGATE_RATELIMIT__ENABLED=false

body=$(body_2k)
full=$(wrk_send_script "$key" "$body")
mg_log "bench: maximum accept rate, $CONNS connections"
max=$(wrk -t2 -c"$CONNS" -d"${SECS}s" -s "$full" "http://127.0.0.1:$port/v1/emails" | awk '/Requests\/sec/ {print $2}')

# Half the maximum: each connection waits so that all of them together send max/2 per second.
delay_ms=$(python3 -c "print(max(1, round($CONNS * 1000 / ($max / 2))))")
half=$(mktemp)
cat "$full" >"$half"
echo "function delay() return $delay_ms end" >>"$half"
mg_log "bench: half rate (~$(python3 -c "print(round($max/2))") req/s: ${delay_ms} ms between requests per connection)"
wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s "$half" "http://127.0.0.1:$port/v1/emails" | tee /tmp/bench-latency-half.txt
rate=$(awk '/Requests\/sec/ {print $2}' /tmp/bench-latency-half.txt)
p50=$(awk '$1 == "50%" {print $2}' /tmp/bench-latency-half.txt)
p99=$(awk '$1 == "99%" {print $2}' /tmp/bench-latency-half.txt)

# The same rate, open loop: evenly spaced requests, at most $CONNS in flight.
cargo build --release --quiet --example open_loop
body_file=$(mktemp)
printf '%s' "$body" >"$body_file"
half_rate=$(python3 -c "print(round($max / 2))")
mg_log "bench: open loop at $half_rate req/s"
open=$("$CARGO_TARGET_DIR/release/examples/open_loop" "http://127.0.0.1:$port/v1/emails" "$half_rate" "$SECS" \
	"$CONNS" "$body_file" "Authorization: Bearer $key" "Content-Type: application/json")
echo "$open"
rm -f "$body_file"
read -r o_rate o_p50 o_p99 o_failed <<<"$(awk '{for (i = 1; i < NF; i++) v[$i] = $(i + 1)} END {print v["rate"], v["p50"], v["p99"], v["failed"]}' <<<"$open")"
kill "$MAILGATE_PID"; wait "$MAILGATE_PID" 2>/dev/null || true
rm -f "$full" "$half"

# Idle accept → upstream 250: one message at a time, relayed to smtp-sink.
sink_port=$(free_port)
smtp-sink $SINK_USER 127.0.0.1:"$sink_port" 64 &
BENCH_PIDS+=($!)
db2=$(new_db mailgate_bench_latency_e2e)
key2=$(MAILGATE_DATABASE_URL=$db2 "$BIN" keys create --project bench --scopes send,messages 2>/dev/null | tail -n1)
port2=$(free_port)
start_mailgate "$db2" "$port2" MAILGATE_RELAY_URL="smtp://127.0.0.1:$sink_port?tls=none"
for _ in $(seq 1 200); do
	curl -fsS -o /dev/null "http://127.0.0.1:$port2/v1/emails" -H "Authorization: Bearer $key2" \
		-H 'Content-Type: application/json' -d "$body"
	sleep 0.02
done
sleep 1
e2e=$(psql -X -tA "$db2" -c "
	SELECT round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM e.at - m.created_at))::numeric, 1)
	       || ' ' ||
	       round(1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM e.at - m.created_at))::numeric, 1)
	FROM events e JOIN messages m ON m.id = e.message_id WHERE e.type = 'delivered'")
read -r e2e_p50 e2e_p99 <<<"$e2e"
echo
echo "latency: max accept ${max} req/s; at ${rate} req/s (about half), wrk closed loop: p50 ${p50}, p99 ${p99} (target p99 < 20 ms)"
echo "latency: at ${o_rate} req/s (about half), open loop: p50 ${o_p50}ms, p99 ${o_p99}ms, failed ${o_failed} (target p99 < 20 ms)"
echo "latency: idle accept → upstream 250: p50 ${e2e_p50} ms, p99 ${e2e_p99} ms over 200 messages (target p50 < 50 ms)"
