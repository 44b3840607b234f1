#!/usr/bin/env bash
# Queue scale: how fast workers claim and finish jobs (sandbox delivery, so SMTP is not in the
# way) with an empty recipients table, then with 1,000,000 finished rows already in it; each
# timed from the process start to the last job's `delivered` event (bench/lib.sh
# time_deliveries, which bench/scale.sh shares). Prints both rates and the ratio (target >= 0.8).
# Usage: bench/queue_scale.sh [jobs per run, default 20000] [history rows, default 1000000]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
JOBS=${1:-20000}
HISTORY=${2:-1000000}

run() { # run DB_URL → prints jobs/s
	local db=$1 key port since
	key=$(MAILGATE_DATABASE_URL=$db "$BIN" keys create --project bench --scopes send,messages 2>/dev/null | tail -n1)
	port=$(free_port)
	# Accept everything first with workers off, then time the workers alone.
	start_mailgate "$db" "$port" MAILGATE_WORKERS_ENABLED=false MAILGATE_RATELIMIT__ENABLED=false
	since=$(date +%s)
	accept_batches "$port" "$key" "$JOBS"
	kill "$MAILGATE_PID"; wait "$MAILGATE_PID" 2>/dev/null || true
	# Both runs start with fresh statistics, so they differ only in the rows already there
	# (without this the empty table's first claims are planned with no statistics at all).
	psql -X -q "$db" -c "ANALYZE" >/dev/null
	time_deliveries "$db" "$port" "$JOBS" "$since"
}

empty_db=$(new_db mailgate_bench_queue_empty)
MAILGATE_DATABASE_URL=$empty_db "$BIN" migrate >/dev/null 2>&1
mg_log "bench: claim rate, empty table"
empty=$(run "$empty_db")

full_db=$(new_db mailgate_bench_queue_full)
MAILGATE_DATABASE_URL=$full_db "$BIN" migrate >/dev/null 2>&1
mg_log "bench: loading $HISTORY finished recipients"
psql -X -q "$full_db" <<SQL
INSERT INTO projects (id, name) VALUES (gen_random_uuid(), 'history');
INSERT INTO messages (id, project_id, status, from_addr, subject, message_id, mime, sandbox, created_at)
SELECT gen_random_uuid(), (SELECT id FROM projects WHERE name = 'history'), 'delivered', 'old@example.com', 'old',
       '<' || g || '@example.com>', '\x00'::bytea, true, now() - interval '1 day'
FROM generate_series(1, $HISTORY) g;
INSERT INTO recipients (message_id, email, kind, status, attempts, next_attempt_at, updated_at)
SELECT id, 'old@example.com', 'to', 'delivered', 1, created_at, created_at FROM messages;
VACUUM ANALYZE;
SQL
mg_log "bench: claim rate, $HISTORY rows already in the table"
full=$(run "$full_db")
python3 -c "print(f'\nqueue: claim+finish {$empty} jobs/s on an empty table, {$full} jobs/s with $HISTORY rows; ratio {$full/$empty:.2f} (target >= 0.8)')"
