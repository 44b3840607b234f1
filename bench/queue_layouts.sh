#!/usr/bin/env bash
# What keeping the queue's state out of `recipients`' indexes would buy (issue 29 §2, "claim
# and complete as HOT updates"), measured in the database alone before building it: mailgate's
# claim statement and the heart of its outcome statement (the fenced update of the recipients
# and their events; not the suppressions, the webhook check or `refresh_status`, which no
# layout changes), on four layouts side by side.
#
#   current  the schema as migrations up to 0036 left it, before the queue had a table of
#            its own (0037 built the `split` layout below): `status` in the predicates of
#            recipients_due, recipients_leased and recipients_held, so the claim and the
#            outcome each write a new recipient version and an entry in every index
#   hot      status and the lease in no index: one due index `WHERE waiting` (a flag only the
#            outcome clears), fillfactor 70 so the claim's new version fits on its page. The
#            upper bound: nothing can then find an expired lease but a scan of every waiting row
#   side     hot, plus what reclaiming needs: the lease in a side table with an index on its
#            expiry, written at the claim and deleted with the outcome
#   split    the waiting state in a narrow `queue` table of its own (its due and leased
#            indexes), `recipients` keeping no status in any index, so both of its updates
#            can be HOT; the outcome deletes the queue row
#
# Each database gets the migrations before 0037 (the layouts are compared from there), then
# its layout, then FILL accepts of 8 messages of 2 KB with one recipient each (the accept's
# group insert). A cycle claims 8 due recipients
# (the claim statement) and records them delivered (the fenced outcome update and its
# events, in a transaction), from 2 pgbench clients with prepared statements. Reported per
# recipient: WAL bytes of the accept and of claim + outcome, and how many recipient updates
# were HOT. Rates are printed too: compare them within one run, on an otherwise idle machine
# (they share its cores with everything else; the WAL figures do not move with load).
#
# Usage: bench/queue_layouts.sh [rounds, default 2]
# Env: CYCLES (per client and round, default 1000), FILL (accepts per client, default 5000),
#      PAST_DAYS (day partitions made before yesterday, empty, as retention keeps them: 30
#      is a month at the default retention.days; default 0, what a fresh database has),
#      MAILGATE_BENCH_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$MAILGATE_ROOT"
ensure_postgres
command -v pgbench >/dev/null 2>&1 || mg_die "pgbench not found (apt-get install postgresql-contrib or postgresql-15)"
ROUNDS=${1:-2}
CYCLES=${CYCLES:-1000}
FILL=${FILL:-5000}
PAST_DAYS=${PAST_DAYS:-0}
ADMIN=${MAILGATE_BENCH_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
LAYOUTS="current hot side split"
WORK=$(mktemp -d)
db_url() { echo "${ADMIN%/*}/mailgate_bench_layout_$1"; }
cleanup() {
	for l in $LAYOUTS; do
		psql -X -q "$ADMIN" -c "DROP DATABASE IF EXISTS mailgate_bench_layout_$l WITH (FORCE)" >/dev/null 2>&1 || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT

# --- The statements ------------------------------------------------------------------------
# The accept's group insert (store::messages::insert), 8 messages of about 2 KB, v7 ids.
cat >"$WORK/fill.sql" <<'SQL'
WITH m_in AS (
  SELECT '00000000-0000-0000-0000-000000000001'::uuid AS project_id, false AS sandbox, bench_v7() AS id,
         convert_to(repeat(md5(random()::text), 64), 'UTF8') AS mime, g AS ord
  FROM generate_series(1, 8) g
), msg AS (
  INSERT INTO messages (id, project_id, status, from_addr, subject, message_id, mime, sandbox)
  SELECT id, project_id, 'queued', 'from@example.com', 'a subject line', '<x@example.com>', mime, sandbox FROM m_in
), rcpt AS (
  INSERT INTO recipients (message_id, email, kind, status, next_attempt_at)
  SELECT id, 'rcpt' || ord || '@example.org', 'to', 'queued', now() FROM m_in ORDER BY ord
  RETURNING id, message_id, email, status
), queued AS (
  INSERT INTO queue (id, message_id, status, next_attempt_at)
  SELECT id, message_id, status, now() FROM rcpt WHERE bench_split()
), ev AS (
  INSERT INTO events (message_id, recipient_id, recipient, type) SELECT message_id, id, email, status FROM rcpt
)
SELECT count(*) FROM rcpt;
SQL
OWNER="'00000000-0000-0000-0000-0000000000aa'::uuid"
OUTCOME="smtp_code = 250, enhanced_code = '2.0.0', smtp_response = '250 2.0.0 Ok: queued as ABCDEF', relay_host = '127.0.0.1', updated_at = now()"
EVENT="INSERT INTO events (message_id, recipient_id, recipient, type, attempt, smtp_code, smtp_response) SELECT message_id, id, email, 'delivered', 1, 250, '250 2.0.0 Ok' FROM upd"
# current (queue::mail::claim and complete); hot and side differ by a predicate and a table.
cycle_in_recipients() { # $1: extra due predicate, $2: extra claim CTE, $3: extra outcome CTE, $4: extra outcome assignment
	cat <<SQL
WITH due AS (SELECT message_id, id FROM recipients WHERE $1 status IN ('queued', 'deferred', 'scheduled') AND next_attempt_at <= now() ORDER BY next_attempt_at LIMIT 8 FOR UPDATE SKIP LOCKED),
claimed AS (UPDATE recipients r SET status = 'sending', attempts = r.attempts + 1, lease_owner = $OWNER, lease_until = now() + interval '30 s', updated_at = now() FROM due WHERE r.message_id = due.message_id AND r.id = due.id RETURNING r.id, r.message_id)$2
SELECT array_agg(id) AS ids, array_agg(message_id) AS mids FROM claimed \gset
BEGIN;
WITH input AS (SELECT * FROM unnest(:ids::bigint[], :mids::uuid[]) AS t(id, message_id)),
fenced AS MATERIALIZED (SELECT i.* FROM input i CROSS JOIN LATERAL (SELECT 1 FROM recipients r0 WHERE r0.message_id = i.message_id AND r0.id = i.id AND r0.lease_owner = $OWNER AND r0.status IN ('sending', 'deferred') FOR UPDATE OF r0) held),
upd AS (UPDATE recipients r SET status = 'delivered',$4 lease_owner = NULL, lease_until = NULL, $OUTCOME FROM fenced i WHERE r.message_id = i.message_id AND r.id = i.id RETURNING r.id, r.message_id, r.email),$3
ev AS ($EVENT)
SELECT count(*) FROM upd;
COMMIT;
SQL
}
cycle_in_recipients "" "" "" "" >"$WORK/current.sql"
cycle_in_recipients "waiting AND" "" "" " waiting = false," >"$WORK/hot.sql"
cycle_in_recipients "waiting AND" ", leased AS (INSERT INTO leases SELECT id, message_id, $OWNER, now() + interval '30 s' FROM claimed)" \
	"
gone AS (DELETE FROM leases WHERE id IN (SELECT id FROM upd))," " waiting = false," >"$WORK/side.sql"
cat >"$WORK/split.sql" <<SQL
WITH due AS (SELECT id FROM queue WHERE status IN ('queued', 'deferred', 'scheduled') AND next_attempt_at <= now() ORDER BY next_attempt_at LIMIT 8 FOR UPDATE SKIP LOCKED),
q AS (UPDATE queue q SET status = 'sending', lease_owner = $OWNER, lease_until = now() + interval '30 s' FROM due WHERE q.id = due.id RETURNING q.id, q.message_id),
claimed AS (UPDATE recipients r SET status = 'sending', attempts = r.attempts + 1, updated_at = now() FROM q WHERE r.message_id = q.message_id AND r.id = q.id RETURNING r.id, r.message_id)
SELECT array_agg(id) AS ids, array_agg(message_id) AS mids FROM claimed \gset
BEGIN;
WITH input AS (SELECT * FROM unnest(:ids::bigint[], :mids::uuid[]) AS t(id, message_id)),
fenced AS MATERIALIZED (DELETE FROM queue q USING input i WHERE q.id = i.id AND q.lease_owner = $OWNER AND q.status = 'sending' RETURNING i.*),
upd AS (UPDATE recipients r SET status = 'delivered', $OUTCOME FROM fenced i WHERE r.message_id = i.message_id AND r.id = i.id RETURNING r.id, r.message_id, r.email),
ev AS ($EVENT)
SELECT count(*) FROM upd;
COMMIT;
SQL

# --- The layouts ---------------------------------------------------------------------------
layout_sql() {
	local recipients_fillfactor="SELECT format('ALTER TABLE %I SET (fillfactor = 70)', c.relname)
	    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'recipients'::regclass \gexec"
	echo "INSERT INTO projects (id, name) VALUES ('00000000-0000-0000-0000-000000000001', 'bench');"
	echo "CREATE FUNCTION bench_v7() RETURNS uuid LANGUAGE sql VOLATILE AS \$\$
	    SELECT (lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0') || '7'
	            || substr(md5(random()::text), 1, 3) || '8' || substr(md5(random()::text), 1, 15))::uuid \$\$;"
	echo "CREATE TABLE queue (id bigint PRIMARY KEY, message_id uuid NOT NULL, status text NOT NULL,
	    next_attempt_at timestamptz NOT NULL, lease_owner uuid, lease_until timestamptz);"
	echo "CREATE FUNCTION bench_split() RETURNS boolean LANGUAGE sql STABLE AS \$\$ SELECT $([ "$1" = split ] && echo true || echo false) \$\$;"
	case $1 in
	current) ;;
	hot | side)
		echo "ALTER TABLE recipients ADD COLUMN waiting boolean NOT NULL DEFAULT true;"
		echo "DROP INDEX recipients_due, recipients_leased, recipients_held;"
		echo "CREATE INDEX recipients_due ON recipients (next_attempt_at) WHERE waiting;"
		echo "$recipients_fillfactor"
		if [ "$1" = side ]; then
			echo "CREATE TABLE leases (id bigint PRIMARY KEY, message_id uuid NOT NULL, owner uuid NOT NULL, until timestamptz NOT NULL);"
			echo "CREATE INDEX leases_until ON leases (until);"
		fi
		;;
	split)
		echo "DROP INDEX recipients_due, recipients_leased, recipients_held;"
		echo "CREATE INDEX queue_due ON queue (next_attempt_at) WHERE status IN ('queued', 'deferred', 'scheduled');"
		echo "CREATE INDEX queue_leased ON queue (lease_until) WHERE status = 'sending';"
		echo "$recipients_fillfactor"
		;;
	esac
}

wal_lsn() { psql -X -tA "$1" -c "SELECT pg_current_wal_lsn()"; }
# measure URL SCRIPT TRANSACTIONS_PER_CLIENT RECIPIENTS: "rate/s WAL-bytes-per-recipient
# full-page-images-per-recipient updates hot". Full-page images (the first change to a page
# after a checkpoint) come in bursts when a checkpoint falls inside a run: compare rows with
# few of them.
measure() {
	local url=$1 script=$2 t=$3 n=$4 before after out
	psql -X -q "$url" -c "SELECT pg_stat_reset(), pg_stat_reset_shared('wal')" >/dev/null
	before=$(wal_lsn "$url")
	out=$(PGOPTIONS='-c enable_hashjoin=off -c enable_mergejoin=off' pgbench -n -M prepared -f "$script" -c 2 -t "$t" "$url" 2>&1) ||
		mg_die "pgbench on $url failed: $out"
	after=$(wal_lsn "$url")
	grep -q "processed: $((2 * t))/$((2 * t))" <<<"$out" || mg_die "pgbench on $url: not every transaction ran: $out"
	sleep 0.6 # the statistics reach the views after a moment
	printf '%s %s %s %s\n' "$(sed -n 's/^tps = \([0-9]*\).*/\1/p' <<<"$out")" \
		"$(psql -X -tA "$url" -c "SELECT round(pg_wal_lsn_diff('$after', '$before') / $n)")" \
		"$(psql -X -tA "$url" -c "SELECT round(wal_fpi::numeric / $n, 3) FROM pg_stat_wal")" \
		"$(psql -X -tA "$url" -c "SELECT coalesce(sum(n_tup_upd), 0) || ' ' || coalesce(sum(n_tup_hot_upd), 0)
		                        FROM pg_stat_user_tables WHERE relname LIKE 'recipients_p%'")"
}

for l in $LAYOUTS; do
	url=$(db_url "$l")
	psql -X -q -v ON_ERROR_STOP=1 "$ADMIN" -c "DROP DATABASE IF EXISTS mailgate_bench_layout_$l WITH (FORCE)" -c "CREATE DATABASE mailgate_bench_layout_$l" >/dev/null 2>&1 ||
		mg_die "cannot create database mailgate_bench_layout_$l at $ADMIN"
	for m in migrations/*.sql; do
		# Migration 0037 is the `split` layout, built: the comparison starts before it.
		[[ $(basename "$m") < 0037 ]] || continue
		psql -X -q -v ON_ERROR_STOP=1 "$url" -f "$m" >/dev/null 2>"$WORK/err" || mg_die "$m on $l: $(cat "$WORK/err")"
	done
	psql -X -q -v ON_ERROR_STOP=1 "$url" -c "SELECT mailgate_create_day_partitions(current_date - n)
	    FROM generate_series(2, $PAST_DAYS + 1) n" >/dev/null
	layout_sql "$l" | psql -X -q -v ON_ERROR_STOP=1 "$url" >/dev/null
	mg_log "queue layouts: $l: filling with $((2 * FILL * 8)) recipients"
	read -r rate wal fpi _ _ < <(measure "$url" "$WORK/fill.sql" "$FILL" "$((2 * FILL * 8))")
	echo "$l accept: $wal B of WAL a recipient (message, recipient, event$([ "$l" = split ] && echo ", queue row"); $fpi full pages), $((rate * 8)) recipients/s" >>"$WORK/accept"
	psql -X -q "$url" -c "VACUUM ANALYZE" >/dev/null
done

mg_log "queue layouts: $(psql -X -tA "$(db_url current)" -c "SELECT count(*) FROM pg_inherits WHERE inhparent = 'recipients'::regclass") day partitions of recipients"
printf '%-8s %5s %28s %12s %22s %14s\n' layout round "claim+outcome WAL/recipient" "full pages" "recipient updates HOT" "recipients/s"
for round in $(seq 1 "$ROUNDS"); do
	for l in $LAYOUTS; do
		read -r rate wal fpi upd hot < <(measure "$(db_url "$l")" "$WORK/$l.sql" "$CYCLES" "$((2 * CYCLES * 8))")
		printf '%-8s %5s %26s B %12s %14s of %5s %14s\n' "$l" "$round" "$wal" "$fpi" "$hot" "$upd" "$((rate * 8))"
	done
done
cat "$WORK/accept"
