#!/usr/bin/env bash
# The claim row of bench/scale.sh again, on the database a full run left behind
# (BENCH_KEEP_DBS=1 bench/scale.sh …): its 5 M finished messages and the backlog still
# waiting. For each build in turn, the delivery workers deliver JOBS sandbox messages from
# that backlog (bench/lib.sh time_deliveries: process start to the JOBS-th `delivered`
# event), then the same from an empty database filled with JOBS through the API, so each
# build's figure has its anchor from the same run.
#
# Usage: [BENCH_BIN=bin] [OTHER_BIN=bin] [JOBS=20000] bench/claim_backlog.sh
# Env: SCALE_DB (default mailgate_bench_scale_main)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
JOBS=${JOBS:-20000}
SCALE_DB=${SCALE_DB:-mailgate_bench_scale_main}
DB=postgres://postgres@127.0.0.1:5432/$SCALE_DB
psql -X -tA "$DB" -c "SELECT 1" >/dev/null 2>&1 ||
	mg_die "no database $SCALE_DB: run BENCH_KEEP_DBS=1 bench/scale.sh first"
QUEUE_WORKERS+=(MAILGATE_RETENTION__DAYS=3650)
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# claim_of LABEL: one build's backlog and empty figures.
claim_of() {
	local waiting from full empty_db key port empty_from empty
	waiting=$(psql -X -tA "$DB" -c "SELECT count(*) FROM recipients WHERE status IN ('queued', 'deferred')")
	mg_log "bench: claim ($1), filled database: $waiting waiting (load $(loadavg))"
	from=$(date +%s)
	full=$(time_deliveries "$DB" "$(free_port)" "$JOBS" "$((from - 86400))")
	empty_db=$(new_db mailgate_bench_claim_empty)
	MAILGATE_DATABASE_URL=$empty_db "$BIN" migrate >/dev/null 2>&1
	key=$(MAILGATE_DATABASE_URL=$empty_db "$BIN" keys create --project queue --scopes send 2>/dev/null | tail -n1)
	port=$(free_port)
	empty_from=$(date +%s)
	start_mailgate "$empty_db" "$port" MAILGATE_WORKERS_ENABLED=false
	accept_batches "$port" "$key" "$JOBS"
	kill "$MAILGATE_PID"
	wait "$MAILGATE_PID" 2>/dev/null || true
	psql -X -q "$empty_db" -c "ANALYZE" >/dev/null
	empty=$(time_deliveries "$empty_db" "$(free_port)" "$JOBS" "$empty_from")
	echo "claim ($1): the first $JOBS deliveries: $full jobs/s from the filled database with $waiting waiting, $empty jobs/s from an empty one; ratio $(python3 -c "print(f'{$full / $empty:.2f}')") (target >= 0.9, flat); load $(loadavg)"
}
claim_of "$BIN"
if [ -n "${OTHER_BIN:-}" ]; then
	BIN=$OTHER_BIN claim_of "$OTHER_BIN"
fi
