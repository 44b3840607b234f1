#!/usr/bin/env bash
# Storage at scale (issue 30): a database filled with MESSAGES finished messages spread evenly
# over the DAYS UTC days before today (one recipient and three events each, ten projects),
# then, in one run:
#
#   disk          bytes on disk per million messages: pg_total_relation_size (heap, TOAST,
#                 indexes) summed over every partition of messages, recipients, events and
#                 message_opens, ÷ messages; and the MIME alone, raw (octet_length) against
#                 stored (pg_column_size)
#   compression   one day's messages copied four ways (MIME lz4, pglz, uncompressed at the
#                 partitions' fillfactor 75, and lz4 at fillfactor 100): table size (heap +
#                 TOAST, no indexes) of each, per million messages
#   list          GET /v1/emails for the project `bench` (a tenth of the mail), one connection,
#                 LIST_REQS requests per filter, each timed from send to the last byte read:
#                 p50 and p99 per filter (target p99 < 50 ms)
#   accept        POST /v1/emails, ACCEPT_N sends of about 2 KB over 64 connections as fast
#                 as they are answered (bench/open_loop.rs --count), workers off: sends/s and
#                 p99; rounds alternate between nothing else running and retention dropping
#                 the oldest day 1 s into the round (mailgate_drop_day_partitions, the function
#                 retention calls) (target: rate >= 0.9x, p99 within 2x of the round before)
#   purge cost    dropping one day (mailgate_drop_day_partitions) against deleting the same
#                 rows with retention's row-by-row statement (purge_finished's DELETE, batches
#                 of 1,000, each committed) on a copy of the database (CREATE DATABASE
#                 TEMPLATE), then the VACUUM the deletes leave behind: seconds and WAL bytes
#                 (pg_current_wal_insert_lsn before and after; the cluster is shared, so other
#                 sessions' WAL in that window is included)
#   claim         the workers delivering JOBS sandbox messages queued beforehand (bench/lib.sh
#                 time_deliveries: process start to the JOBS-th delivery) in an empty
#                 database (JOBS accepted through the API), against the filled one with
#                 QUEUE_ROWS more written in SQL as sends are (plus the accept rounds' mail)
#                 (target: flat, >= 0.9x)
#
# The ids are UUIDv7 of each message's own moment, made in SQL, so every row lands in its
# day's partition as mail accepted then would (0031). The MIME is about 2.5 KB of headers and
# English-like text (words from a small vocabulary), so it compresses about as mail text does,
# not as one repeated phrase would.
#
# Usage: bench/scale.sh [messages, default 5000000] [days, default 30]
#        PHASES="list claim" bench/scale.sh   (the fill, then only those phases)
#        OTHER_BIN=path: the list phase runs that build too, in turn with this one (A/B)
# Env: ACCEPT_N (default 20000), ACCEPT_ROUNDS (pairs, default 2), LIST_REQS (default 200),
#      JOBS (default 20000), QUEUE_ROWS (default messages ÷ 5, i.e. 1,000,000 at full size).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
N=${1:-5000000}
DAYS=${2:-30}
ACCEPT_N=${ACCEPT_N:-20000}
ACCEPT_ROUNDS=${ACCEPT_ROUNDS:-2}
LIST_REQS=${LIST_REQS:-200}
JOBS=${JOBS:-20000}
QUEUE_ROWS=${QUEUE_ROWS:-$((N / 5))}
PHASES=${PHASES:-disk list accept purge claim}
has_phase() { [[ " $PHASES " == *" $1 "* ]]; }
PER_DAY=$((N / DAYS))
N=$((PER_DAY * DAYS))
cargo build --release --quiet --example open_loop
LOADGEN=$CARGO_TARGET_DIR/release/examples/open_loop
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
RESULTS=$(mktemp)
row() { echo "$*" | tee -a "$RESULTS"; }
row "scale: $N messages over $DAYS days ($PER_DAY a day); start $(date -u +%FT%TZ); load $(loadavg)"

DB=$(new_db mailgate_bench_scale_main)
BENCH_DBS+=(mailgate_bench_scale_main) # new_db ran in a subshell: drop it at exit from here
MAILGATE_DATABASE_URL=$DB "$BIN" migrate >/dev/null 2>&1
KEY=$(MAILGATE_DATABASE_URL=$DB "$BIN" keys create --project bench --scopes send,messages 2>/dev/null | tail -n1)
q() { psql -X -q -v ON_ERROR_STOP=1 "$DB" "$@"; }
qv() { psql -X -tA -v ON_ERROR_STOP=1 "$DB" -c "$1"; }

# Retention stays out of the way (the bench drops days itself): at its default of 30 days each
# instance's first pass would start deleting the oldest day's rows behind the measurements.
KEEP=(MAILGATE_RETENTION__DAYS=3650)
QUEUE_WORKERS+=("${KEEP[@]}")

# --- Fill ---------------------------------------------------------------------------------------
q <<'SQL'
INSERT INTO projects (id, name) SELECT gen_random_uuid(), 'other-' || n FROM generate_series(1, 9) n;
-- A pool of 1,000 paragraphs of about 2,000 characters: each message takes one, so the MIME
-- varies from row to row and compresses like text, not like a repeated phrase. (The `i` and
-- the `n` in the subquery make it run once a paragraph, each with its own random words.)
CREATE TABLE bench_words (w text[]);
INSERT INTO bench_words VALUES (string_to_array(
  'the of and to in is you that it he was for on are as with his they at be this have from or one had by word but not what all were we when your can said there use an each which she do how their if will up other about out many then them these so some her would make like him into time has look two more write go see number no way could people my than first water been call who oil its now find long down day did get come made may part over new sound take only little work know place year live me back give most very after thing our just name good sentence man think say great where help through much before line right too mean old any same tell boy follow came want show also around form three small set put end does another well large must big even such because turn here why ask went men read need land different home us move try kind hand picture again change off play spell air away animal house point page letter mother answer found study still learn should america world order invoice shipping account delivery receipt password reset confirm',
  ' '));
CREATE TABLE bench_paragraphs AS
SELECT n, (SELECT string_agg(w[1 + floor(random() * array_length(w, 1))::int + 0 * i], ' ')
           FROM generate_series(1, 420) i WHERE n >= 0) AS text
FROM bench_words, generate_series(0, 999) n;
SQL

# fill_day DAY_INDEX: the PER_DAY messages of day DAY_INDEX (1 = the oldest), their recipients
# and events (queued, the outcome, opened). Status (1 % bounced, 1 % failed), sender (20),
# tag (100) and recipient (50,000 addresses) come from the id's hash, so none of them follows
# the project (the message number modulo 10). FK checks and the webhook trigger are off for the session: the rows are consistent
# by construction, and the trigger would only look for endpoints there are none of.
fill_day() {
	local d=$1
	q -v d="$d" -v days="$DAYS" -v per="$PER_DAY" <<'SQL'
SET session_replication_role = replica;
SELECT (now() AT TIME ZONE 'UTC')::date - (:days - :d + 1) AS day \gset
SELECT mailgate_create_day_partitions(:'day'::date) \gset
INSERT INTO messages (id, project_id, status, from_addr, subject, message_id, mime, tags, metadata,
                      sandbox, created_at, updated_at)
SELECT id, projects[1 + g % 10], status, from_addr, subject, '<' || id || '@bench.example>',
       convert_to('From: ' || from_addr || E'\r\nTo: user' || rcpt || E'@example.net\r\nSubject: '
                  || subject || E'\r\nDate: ' || to_char(at, 'Dy, DD Mon YYYY HH24:MI:SS') || E' +0000\r\nMessage-ID: <'
                  || id || E'@bench.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n'
                  || E'Content-Transfer-Encoding: 8bit\r\n\r\nHello user' || rcpt || E',\r\n\r\n' || p.text
                  || E'\r\n\r\nOrder ' || g || E'\r\n', 'UTF8'),
       ARRAY['campaign-' || tag], jsonb_build_object('order', g::text, 'rcpt', rcpt), true, at, at + interval '2 s'
FROM (
    SELECT g, at,
           (lpad(to_hex(floor(extract(epoch FROM at) * 1000)::bigint), 12, '0') || '7' || substr(h, 1, 3)
            || '8' || substr(h, 4, 3) || substr(h, 7, 12))::uuid AS id,
           CASE ('x' || substr(h, 16, 4))::bit(16)::int % 100 WHEN 0 THEN 'bounced' WHEN 1 THEN 'failed'
                ELSE 'delivered' END AS status,
           'sender' || ('x' || substr(h, 20, 4))::bit(16)::int % 20 || '@bench.example' AS from_addr,
           ('x' || substr(h, 24, 4))::bit(16)::int % 100 AS tag,
           ('x' || substr(h, 28, 5))::bit(20)::int % 50000 AS rcpt,
           'Your order ' || g || ' has shipped' AS subject
    FROM (SELECT g, :'day'::date::timestamp AT TIME ZONE 'UTC'
                    + make_interval(secs => (g - (:d - 1) * :per) * 86400.0 / :per) AS at,
                 md5(g::text) AS h
          FROM generate_series((:d - 1) * :per, :d * :per - 1) g) t
) m
CROSS JOIN (SELECT array_agg(id ORDER BY name) AS projects FROM projects) p0
JOIN bench_paragraphs p ON p.n = m.g % 1000;
INSERT INTO recipients (message_id, email, kind, status, attempts, next_attempt_at, smtp_code,
                        smtp_response, relay_host, updated_at)
SELECT id, 'user' || (metadata ->> 'rcpt') || '@example.net', 'to', status, 1, created_at,
       CASE status WHEN 'delivered' THEN 250 ELSE 550 END,
       CASE status WHEN 'delivered' THEN '250 2.0.0 Ok: queued as ' || left(md5(id::text), 10)
                   ELSE '550 5.1.1 user unknown' END, 'mx.example.net', updated_at
FROM messages
WHERE id >= mailgate_v7_floor(:'day'::date::timestamp AT TIME ZONE 'UTC')
  AND id < mailgate_v7_floor((:'day'::date + 1)::timestamp AT TIME ZONE 'UTC');
INSERT INTO events (message_id, recipient_id, recipient, type, at, attempt, smtp_code, smtp_response, relay_host)
SELECT r.message_id, r.id, r.email, e.type, r.next_attempt_at + e.after,
       CASE WHEN e0.type = 'result' THEN 1 END, CASE WHEN e0.type = 'result' THEN r.smtp_code END,
       CASE WHEN e0.type = 'result' THEN r.smtp_response END, CASE WHEN e0.type = 'result' THEN r.relay_host END
FROM recipients r
CROSS JOIN (VALUES ('queued', interval '0'), ('result', interval '2 s'), ('opened', interval '1 h')) e0(type, after)
CROSS JOIN LATERAL (SELECT CASE e0.type WHEN 'result' THEN r.status ELSE e0.type END AS type, e0.after) e
WHERE r.message_id >= mailgate_v7_floor(:'day'::date::timestamp AT TIME ZONE 'UTC')
  AND r.message_id < mailgate_v7_floor((:'day'::date + 1)::timestamp AT TIME ZONE 'UTC');
SQL
}

mg_log "bench: filling $N messages over $DAYS days (load $(loadavg))"
fill_t0=$(date +%s.%N)
for d in $(seq 1 "$DAYS"); do
	fill_day "$d"
	python3 - "$d" "$DAYS" "$PER_DAY" "$fill_t0" "$(date +%s.%N)" "$(loadavg)" <<'PY' >&2
import sys
d, days, per, t0, now, load = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
spent = now - t0
print(f"fill: day {d}/{days}: {d * per:,} messages, {d * per * 3:,} events, {spent:.0f} s, "
      f"about {spent / d * (days - d):.0f} s left (load {load})")
PY
done
fill_secs=$(python3 -c "print(round($(date +%s.%N) - $fill_t0))")
mg_log "bench: VACUUM ANALYZE (load $(loadavg))"
vac_t0=$(date +%s.%N)
q -c "VACUUM (ANALYZE) messages, recipients, events, message_opens"
row "fill: $N messages, $(qv "SELECT count(*) FROM recipients") recipients, $(qv "SELECT count(*) FROM events") events in $fill_secs s; VACUUM ANALYZE $(python3 -c "print(round($(date +%s.%N) - $vac_t0))") s; load $(loadavg)"
q -c "DROP TABLE bench_paragraphs, bench_words"

# --- Disk ---------------------------------------------------------------------------------------
if has_phase disk; then
q -v n="$N" <<'SQL' | tee -a "$RESULTS"
\pset footer off
SELECT i.inhparent::regclass AS "table",
       pg_size_pretty(sum(pg_table_size(i.inhrelid))) AS "heap+toast",
       pg_size_pretty(sum(pg_indexes_size(i.inhrelid))) AS indexes,
       pg_size_pretty(sum(pg_total_relation_size(i.inhrelid))) AS total,
       pg_size_pretty(round(sum(pg_total_relation_size(i.inhrelid)) * 1e6 / :n)) AS per_million_messages
FROM pg_inherits i
WHERE i.inhparent IN ('messages'::regclass, 'recipients'::regclass, 'events'::regclass, 'message_opens'::regclass)
GROUP BY ROLLUP (i.inhparent) ORDER BY i.inhparent NULLS LAST;
SQL
row "disk: $(qv "SELECT pg_size_pretty(round(sum(pg_total_relation_size(inhrelid)) * 1e6 / $N)) FROM pg_inherits
  WHERE inhparent IN ('messages'::regclass, 'recipients'::regclass, 'events'::regclass, 'message_opens'::regclass)") per million messages (4 tables, heap + TOAST + indexes)"
# The MIME on its own, over one day (all days are alike): raw against as stored (lz4).
DAY3=$(qv "SELECT to_char((now() AT TIME ZONE 'UTC')::date - ($DAYS - 2), 'YYYYMMDD')")
row "mime: $(qv "SELECT 'raw ' || round(avg(octet_length(mime))) || ' B, stored ' || round(avg(pg_column_size(mime)))
  || ' B a message (ratio ' || round(sum(octet_length(mime))::numeric / sum(pg_column_size(mime)), 2) || '); compression '
  || string_agg(DISTINCT coalesce(pg_column_compression(mime), 'none'), ',') FROM messages_p$DAY3")"
mg_log "bench: compression copies of messages_p$DAY3 (load $(loadavg))"
# Four copies of the day, each made the same way so they differ only in their settings:
# lz4, pglz and none (STORAGE EXTERNAL: out of line, never compressed) at the partitions'
# fillfactor of 75 (0031 leaves room for HOT status updates), and lz4 at 100 to show what that
# room costs. `mime || ''` makes a fresh value, so each copy compresses it with its own
# column's method (a value copied as it is keeps the compression it was stored with).
copy_day() { # copy_day NAME FILLFACTOR COLUMN-SETTING
	q <<SQL
CREATE TABLE $1 (LIKE messages_p$DAY3) WITH (fillfactor = $2);
ALTER TABLE $1 ALTER COLUMN mime $3;
INSERT INTO $1 SELECT id, project_id, api_key_id, status, from_addr, subject, message_id,
  mime || ''::bytea, tags, metadata, relay, sandbox, created_at, updated_at, send_at, scan, body_purged_at
  FROM messages_p$DAY3;
VACUUM $1;
SQL
	qv "SELECT pg_table_size('$1')"
}
lz4=$(copy_day bench_copy_lz4 75 "SET COMPRESSION lz4")
pglz=$(copy_day bench_copy_pglz 75 "SET COMPRESSION pglz")
none=$(copy_day bench_copy_none 75 "SET STORAGE EXTERNAL")
lz4_full=$(copy_day bench_copy_lz4_ff100 100 "SET COMPRESSION lz4")
per_m() { numfmt --to=iec $(($1 * 1000000 / PER_DAY)); }
row "compression (one day's messages, $PER_DAY rows, copied four ways; heap + TOAST, no indexes; per million messages): lz4 $(per_m "$lz4"), pglz $(per_m "$pglz"), uncompressed $(per_m "$none") (fillfactor 75, as the partitions); lz4 at fillfactor 100 $(per_m "$lz4_full"). uncompressed ÷ lz4 $(python3 -c "print(f'{$none / $lz4:.2f}')"), pglz ÷ lz4 $(python3 -c "print(f'{$pglz / $lz4:.2f}')"), fillfactor 100 ÷ 75 $(python3 -c "print(f'{$lz4_full / $lz4:.2f}')")"
q -c "DROP TABLE bench_copy_lz4, bench_copy_pglz, bench_copy_none, bench_copy_lz4_ff100"
fi

# The accept rounds below leave their mail queued: it is part of the claim's backlog, so the
# claim looks for deliveries from here on.
BACKLOG_FROM=$(date +%s)

# --- List and search ----------------------------------------------------------------------------
# list_pass LABEL REQS: one mailgate of $BIN, LIST_REQS requests a filter, lines prefixed LABEL.
list_pass() {
	local port
	port=$(free_port)
	start_mailgate "$DB" "$port" MAILGATE_WORKERS_ENABLED=false "${KEEP[@]}"
	mg_log "bench: list and search ($1), $2 requests a filter (load $(loadavg))"
	python3 - "$port" "$KEY" "$2" "$DAYS" "$1" <<'PY'
import datetime, http.client, json, sys, time, urllib.parse
port, key, reqs, days, label = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
conn = http.client.HTTPConnection("127.0.0.1", int(port))
today = datetime.datetime.now(datetime.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
mid = today - datetime.timedelta(days=days // 2)
iso = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")
cases = [
    ("newest page, no filter", lambda i: {}),
    ("status=bounced (1 % of the mail)", lambda i: {"status": "bounced"}),
    ("tag=campaign-N (1 %)", lambda i: {"tag": f"campaign-{i % 100}"}),
    ("from=senderN (5 %)", lambda i: {"from": f"sender{i % 20}@bench.example"}),
    ("recipient=userN (search; about one message in 50,000 each)", lambda i: {"recipient": f"user{(i * 7919) % 50000}@example.net"}),
    ("since/until: one day, half way back", lambda i: {"since": iso(mid), "until": iso(mid + datetime.timedelta(days=1))}),
    ("until half way back (a deep page)", lambda i: {"until": iso(mid + datetime.timedelta(minutes=i))}),
]
pct = lambda s, p: s[min(len(s), max(1, -(-len(s) * p // 100))) - 1]
for name, params in cases:
    times, rows = [], 0
    for i in range(reqs):
        q = urllib.parse.urlencode({**params(i), "limit": 20})
        t0 = time.perf_counter()
        conn.request("GET", f"/v1/emails?{q}", headers={"Authorization": f"Bearer {key}"})
        resp = conn.getresponse()
        body = resp.read()
        times.append((time.perf_counter() - t0) * 1000)
        if resp.status != 200:
            sys.exit(f"{name}: HTTP {resp.status}: {body[:200]}")
        rows += len(json.loads(body)["data"])
    times.sort()
    print(f"{label}: {name}: p50 {pct(times, 50):.1f} ms, p99 {pct(times, 99):.1f} ms, max {times[-1]:.1f} ms "
          f"({reqs} requests, {rows / reqs:.1f} rows a page) (target p99 < 50 ms)")
PY
	kill "$MAILGATE_PID"
	wait "$MAILGATE_PID" 2>/dev/null || true
}
if has_phase list; then
	if [ -n "${OTHER_BIN:-}" ]; then
		# The other build first, once unreported to warm the caches, then each in turn.
		BIN=$OTHER_BIN list_pass "list (warm-up, other)" 20 >/dev/null
		list_pass list "$LIST_REQS" | tee -a "$RESULTS"
		BIN=$OTHER_BIN list_pass "list (other: $OTHER_BIN)" "$LIST_REQS" | tee -a "$RESULTS"
	else
		list_pass list "$LIST_REQS" | tee -a "$RESULTS"
	fi
fi

# --- Accept, with and without a day being dropped -----------------------------------------------
if has_phase accept; then
PORT=$(free_port)
start_mailgate "$DB" "$PORT" MAILGATE_WORKERS_ENABLED=false "${KEEP[@]}"
BODY=$(mktemp)
body_2k >"$BODY"
# accept_round LABEL [drop]: one closed-loop round; with `drop`, the oldest day left is dropped
# 1 s in. Prints the round's row.
accept_round() {
	local out drop_out=""
	if [ "${2:-}" = drop ]; then
		local day
		day=$(qv "SELECT min(to_date(substr(c.relname, 11), 'YYYYMMDD')) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		          WHERE i.inhparent = 'messages'::regclass AND c.relname ~ '^messages_p[0-9]{8}$'")
		(sleep 1; psql -X -tA "$DB" -c "SELECT extract(epoch FROM clock_timestamp())" \
			-c "SELECT mailgate_drop_day_partitions('$day')" -c "SELECT extract(epoch FROM clock_timestamp())" >"$BODY.drop" 2>&1) &
		drop_out=$!
	fi
	out=$("$LOADGEN" --count "$ACCEPT_N" "http://127.0.0.1:$PORT/v1/emails" 0 0 64 "$BODY" \
		"Authorization: Bearer $KEY" "Content-Type: application/json")
	local rate
	field() { awk -v k="$1" '{for (i = 1; i < NF; i++) if ($i == k) {print $(i + 1); exit}}' <<<"$out"; }
	rate=$(python3 -c "print(round($ACCEPT_N / ($(field end) - $(field start))))")
	local what="nothing else running"
	if [ -n "$drop_out" ]; then
		wait "$drop_out"
		if grep -q ERROR "$BODY.drop"; then
			what="retention dropping day $day: failed: $(grep -m1 ERROR "$BODY.drop")"
		else
			what="retention dropping day $day: $(awk 'NR == 1 {t0 = $1} NR == 2 {d = $1} NR == 3 {printf "dropped %s, %.0f ms", d, ($1 - t0) * 1000}' "$BODY.drop")"
		fi
	fi
	ACCEPT_RATE=$rate
	ACCEPT_P99=$(field p99)
	row "accept ($1, $what): $rate sends/s, p50 $(field p50) ms, p99 $(field p99) ms, max $(field max) ms, failed $(field failed); load $(loadavg)"
}
for r in $(seq 1 "$ACCEPT_ROUNDS"); do
	mg_log "bench: accept round $r (load $(loadavg))"
	accept_round "round $r"
	base_rate=$ACCEPT_RATE base_p99=$ACCEPT_P99
	accept_round "round $r" drop
	row "accept round $r: while dropping ÷ without: rate $(python3 -c "print(f'{$ACCEPT_RATE / $base_rate:.2f}')") (target >= 0.9), p99 $(python3 -c "print(f'{$ACCEPT_P99 / $base_p99:.2f}')") (target <= 2)"
done
kill "$MAILGATE_PID"
wait "$MAILGATE_PID" 2>/dev/null || true
fi

# --- Dropping a day against deleting it row by row -----------------------------------------------
if has_phase purge; then
DAY=$(qv "SELECT min(to_date(substr(c.relname, 11), 'YYYYMMDD')) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'messages'::regclass AND c.relname ~ '^messages_p[0-9]{8}$'")
DAY_ROWS=$(qv "SELECT (SELECT count(*) FROM messages_p${DAY//-/}) || ' messages, '
  || (SELECT count(*) FROM recipients_p${DAY//-/}) || ' recipients, ' || (SELECT count(*) FROM events_p${DAY//-/}) || ' events'")
mg_log "bench: copying the database for the row-by-row delete (load $(loadavg))"
COPY=mailgate_bench_scale_copy
psql -X -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $COPY WITH (FORCE)" >/dev/null
BENCH_DBS+=("$COPY")
# FILE_COPY: the copy is made by copying files after a checkpoint, not by writing it to WAL.
copy_t0=$(date +%s.%N)
psql -X -q "$ADMIN_URL" -c "CREATE DATABASE $COPY TEMPLATE mailgate_bench_scale_main STRATEGY FILE_COPY" >/dev/null
mg_log "bench: copy made in $(python3 -c "print(round($(date +%s.%N) - $copy_t0))") s"
COPY_URL=postgres://postgres@127.0.0.1:5432/$COPY
psql -X -q "$ADMIN_URL" -c "CHECKPOINT" >/dev/null
# cost DB_URL SQL: runs SQL and prints "S s, W of WAL (B bytes)" for it.
cost() {
	psql -X -tA -q -v ON_ERROR_STOP=1 "$1" <<SQL | tail -n1
SELECT pg_current_wal_insert_lsn() AS l0, extract(epoch FROM clock_timestamp()) AS t0 \gset
$2
SELECT round(extract(epoch FROM clock_timestamp()) - :t0, 2) || ' s, '
       || pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_insert_lsn(), :'l0')) || ' of WAL ('
       || pg_wal_lsn_diff(pg_current_wal_insert_lsn(), :'l0') || ' bytes)';
SQL
}
mg_log "bench: deleting day $DAY row by row on the copy (load $(loadavg))"
# purge_finished's statement (src/store/messages.rs), bounded to the day: 1,000 messages a
# batch, each batch its own transaction, as retention runs it; recipients and events go by
# the foreign keys' ON DELETE CASCADE.
delete_cost=$(cost "$COPY_URL" "
DO \$\$
DECLARE n bigint;
BEGIN
  LOOP
    DELETE FROM messages WHERE id IN (
        SELECT m.id FROM messages m
        WHERE m.created_at >= '$DAY'::date::timestamp AT TIME ZONE 'UTC'
          AND m.created_at < ('$DAY'::date + 1)::timestamp AT TIME ZONE 'UTC'
          AND NOT EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id
                          AND r.status IN ('queued', 'scheduled', 'sending', 'deferred'))
        LIMIT 1000
        FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS n = ROW_COUNT;
    COMMIT;
    EXIT WHEN n < 1000;
  END LOOP;
END
\$\$;")
vacuum_cost=$(cost "$COPY_URL" "VACUUM messages_p${DAY//-/}, recipients_p${DAY//-/}, events_p${DAY//-/}, message_opens_p${DAY//-/};")
left_after=$(psql -X -tA "$COPY_URL" -c "SELECT count(*) FROM messages_p${DAY//-/}")
psql -X -q "$ADMIN_URL" -c "DROP DATABASE $COPY WITH (FORCE)" >/dev/null
psql -X -q "$ADMIN_URL" -c "CHECKPOINT" >/dev/null
mg_log "bench: dropping day $DAY (load $(loadavg))"
drop_cost=$(cost "$DB" "SELECT mailgate_drop_day_partitions('$DAY');")
row "purge one day ($DAY: $DAY_ROWS): drop the partitions $drop_cost; row-by-row DELETE on the copy $delete_cost ($left_after messages left), then VACUUM $vacuum_cost; load $(loadavg)"

fi

# --- Claim: an empty queue against a backlog of QUEUE_ROWS on the filled database --------------
if has_phase claim; then
EMPTY=$(new_db mailgate_bench_scale_empty)
BENCH_DBS+=(mailgate_bench_scale_empty)
MAILGATE_DATABASE_URL=$EMPTY "$BIN" migrate >/dev/null 2>&1
# fill_queue DB_URL ROWS: accepts ROWS with workers off, then ANALYZE (as queue_scale.sh).
fill_queue() {
	local key port
	key=$(MAILGATE_DATABASE_URL=$1 "$BIN" keys create --project queue --scopes send 2>/dev/null | tail -n1)
	port=$(free_port)
	start_mailgate "$1" "$port" MAILGATE_WORKERS_ENABLED=false "${KEEP[@]}"
	accept_batches "$port" "$key" "$2"
	kill "$MAILGATE_PID"
	wait "$MAILGATE_PID" 2>/dev/null || true
	psql -X -q "$1" -c "ANALYZE" >/dev/null
}
mg_log "bench: claim, empty database: $JOBS waiting (load $(loadavg))"
empty_from=$(date +%s)
fill_queue "$EMPTY" "$JOBS"
empty_rate=$(time_deliveries "$EMPTY" "$(free_port)" "$JOBS" "$empty_from")
mg_log "bench: claim, filled database: queueing $QUEUE_ROWS (load $(loadavg))"
# The backlog is written in SQL as the submission core writes a send (a message, its queued
# recipient, its `queued` event), ids of the last minutes: through the API, a million sends
# would take longer than the rest of the run on this machine.
q -v n="$QUEUE_ROWS" <<'SQL'
INSERT INTO messages (id, project_id, status, from_addr, subject, message_id, mime, sandbox, created_at, updated_at)
SELECT id, (SELECT id FROM projects WHERE name = 'bench'), 'queued', 'bench@example.com', 'q',
       '<' || id || '@bench.example>', convert_to(E'From: bench@example.com\r\nTo: rcpt@example.com\r\nSubject: q\r\n\r\n' || repeat('x', 200), 'UTF8'),
       false, at, at
FROM (SELECT at, (lpad(to_hex(floor(extract(epoch FROM at) * 1000)::bigint), 12, '0') || '7' || substr(h, 1, 3)
                  || '9' || substr(h, 4, 3) || substr(h, 7, 12))::uuid AS id
      FROM (SELECT now() - interval '5 minutes' + make_interval(secs => g * 240.0 / :n) AS at, md5('q' || g) AS h
            FROM generate_series(1, :n) g) t) m;
INSERT INTO recipients (message_id, email, kind, status, next_attempt_at, updated_at)
SELECT id, 'rcpt@example.com', 'to', 'queued', created_at, created_at FROM messages
WHERE id >= mailgate_v7_floor(now() - interval '6 minutes') AND status = 'queued' AND subject = 'q'
ORDER BY id;
INSERT INTO events (message_id, recipient_id, recipient, type, at)
SELECT r.message_id, r.id, r.email, 'queued', r.next_attempt_at
FROM recipients r JOIN messages m ON m.id = r.message_id AND m.subject = 'q'
WHERE r.message_id >= mailgate_v7_floor(now() - interval '6 minutes');
ANALYZE;
SQL
waiting=$(qv "SELECT count(*) FROM recipients WHERE status IN ('queued', 'deferred')")
mg_log "bench: claim, filled database: $waiting waiting (load $(loadavg))"
full_rate=$(time_deliveries "$DB" "$(free_port)" "$JOBS" "$(python3 -c "print(min($BACKLOG_FROM, $(date +%s) - 400))")")
row "claim: the first $JOBS deliveries $empty_rate jobs/s from an empty database, $full_rate jobs/s from the filled one with $waiting waiting; ratio $(python3 -c "print(f'{$full_rate / $empty_rate:.2f}')") (target >= 0.9, flat); load $(loadavg)"
fi

echo
echo "results:"
cat "$RESULTS"
