#!/usr/bin/env bash
# Webhook latency at an idle gateway: from a send's 202 to the receiver getting its
# `email.delivered` POST, one message at a time, mailgate at its defaults relaying to
# smtp-sink on loopback (webhook targets on loopback allowed, rate limits off). Anchor in the
# same run: the same client POSTing straight to the same receiver.
# Usage: bench/webhook_latency.sh [messages, default 200]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
COUNT=${1:-200}

sink_port=$(free_port)
smtp-sink $SINK_USER 127.0.0.1:"$sink_port" 64 &
BENCH_PIDS+=($!)
db=$(new_db mailgate_bench_webhook_latency)
key=$(MAILGATE_DATABASE_URL=$db "$BIN" keys create --project bench --scopes send,messages,webhooks 2>/dev/null | tail -n1)
port=$(free_port)
start_mailgate "$db" "$port" MAILGATE_RELAY_URL="smtp://127.0.0.1:$sink_port?tls=none" \
	MAILGATE_WEBHOOKS__ALLOW_PRIVATE_TARGETS=true
mg_log "bench: $COUNT sends, one at a time, each timed from its 202 to its email.delivered webhook"
result=$(python3 bench/webhook_latency.py "http://127.0.0.1:$port" "$key" "$COUNT")
echo "$result"
read -r p50 p99 max f50 f99 <<<"$(awk '{for (i = 1; i < NF; i++) v[$i] = $(i + 1)} END {print v["p50"], v["p99"], v["max"], v["floor_p50"], v["floor_p99"]}' <<<"$result")"
printf '\nsend 202 → email.delivered webhook (%s messages, idle, defaults): p50 %s ms, p99 %s ms, max %s ms\n' "$COUNT" "$p50" "$p99" "$max"
printf 'anchor, a direct POST to the same receiver: p50 %s ms, p99 %s ms\n' "$f50" "$f99"
printf 'targets: p50 < 50 ms, p99 < 200 ms\n'
