#!/usr/bin/env bash
# Accept rate: POST /v1/emails (one recipient, ~2 KB text) at 64 connections, against pgbench
# running the same rows (message + recipient + event, one transaction each) on the same
# Postgres, measured one after the other in this run. Prints both and the ratio.
# Usage: bench/accept.sh [seconds per run, default 10]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SECS=${1:-10}
CONNS=64

db=$(new_db mailgate_bench_accept)
key=$(MAILGATE_DATABASE_URL=$db "$BIN" keys create --project bench --scopes send,messages 2>/dev/null | tail -n1)
port=$(free_port)
# Workers off: this measures accepting, not relaying.
start_mailgate "$db" "$port" MAILGATE_WORKERS_ENABLED=false MAILGATE_DATABASE_POOL_SIZE=32

script=$(wrk_send_script "$key" "$(body_2k)")
mg_log "bench: mailgate accept, $CONNS connections, ${SECS}s"
wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s "$script" "http://127.0.0.1:$port/v1/emails" | tee /tmp/bench-accept-wrk.txt
api_rate=$(awk '/Requests\/sec/ {print $2}' /tmp/bench-accept-wrk.txt)
non2xx=$(awk '/Non-2xx/ {print $NF}' /tmp/bench-accept-wrk.txt)
accepted=$(psql -X -tA "$db" -c "SELECT count(*) FROM messages")
if [ -n "${non2xx:-}" ] && [ "$non2xx" != 0 ]; then
	mg_die "mailgate answered $non2xx requests with non-2xx: the figure would be meaningless"
fi
kill "$MAILGATE_PID"; wait "$MAILGATE_PID" 2>/dev/null || true

# The same rows, straight into Postgres: the raw limit of this machine's database.
pgb=$(mktemp)
# One statement per transaction, like mailgate's accept: message, recipient and event.
cat >"$pgb" <<'SQL'
\set n random(1, 1000000000)
WITH m AS (
  INSERT INTO messages (id, project_id, status, from_addr, subject, message_id, mime, sandbox)
  VALUES (gen_random_uuid(), (SELECT id FROM projects LIMIT 1), 'queued', 'bench@example.com', 'benchmark',
          '<' || :n || '@example.com>', convert_to(repeat('lorem ipsum dolor sit amet ', 90), 'UTF8'), false)
  RETURNING id),
r AS (
  INSERT INTO recipients (message_id, email, kind, status) SELECT id, 'rcpt@example.com', 'to', 'queued' FROM m
  RETURNING id, message_id)
INSERT INTO events (message_id, recipient_id, recipient, type) SELECT message_id, id, 'rcpt@example.com', 'queued' FROM r;
SQL
mg_log "bench: pgbench, same rows, $CONNS clients, ${SECS}s"
pgbench -n -h 127.0.0.1 -U postgres -c "$CONNS" -j 2 -T "$SECS" -f "$pgb" "${db##*/}" | tee /tmp/bench-accept-pgbench.txt
pg_rate=$(awk '/^tps/ {print $3}' /tmp/bench-accept-pgbench.txt)
rm -f "$script" "$pgb"

python3 - "$api_rate" "$pg_rate" "$accepted" "${non2xx:-0}" <<'PY'
import sys
api, pg, accepted, non2xx = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
print(f"\naccept: mailgate {api:.0f} msg/s ({accepted} committed, non-2xx {non2xx}); "
      f"pgbench same rows {pg:.0f} tx/s; ratio {api/pg:.2f} (target >= 0.5)")
PY
