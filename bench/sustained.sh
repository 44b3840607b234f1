#!/usr/bin/env bash
# Sustained end-to-end throughput, like for like (issue 17): every contender is handed N
# messages of about 2 KB while it relays them to the same smtp-sink, which writes each
# message to its own file; each is timed from its first submission to the arrival (file
# mtime) of its last message at the sink.
#
#   direct        smtp-source, 32 sessions, straight to the sink (the machine's limit)
#   postfix       smtp-source, 32 sessions, to a private Postfix (own config dir, defaults)
#                 relaying to the sink
#   defaults      mailgate at its defaults (key rate limits raised so they never refuse;
#                 Redis limiter on), 64 HTTP connections POST /v1/emails, delivery running
#   tuned         the same with $TUNED (see below)
#   prefilled     mailgate at its defaults draining a queue filled beforehand with workers
#                 off: only the relaying is timed (what bench/relay.sh used to report)
#   open loop     the defaults instance at 80 % of its sustained rate, evenly spaced (accept
#                 p50/p99 from each request's due moment) while it delivers
#   pgbench       one single-row INSERT of a 2 KB row per transaction, 16 clients: the anchor
#                 for the accept rate
#   tls           accept only (workers off), mailgate at its defaults, the database URL with
#                 `sslmode=disable` and then `sslmode=require` (TLS to Postgres, as managed
#                 Postgres demands), each round both in turn: TLS must cost under 10 % of the
#                 plaintext accept rate (issue 29: without TCP_NODELAY it cost three quarters)
#
# Everything runs against a private PostgreSQL 15 cluster this script starts (default
# settings plus pg_stat_statements, and ssl=on with a throwaway self-signed certificate, as
# Debian's own cluster has it; every row but `tls` connects with sslmode=disable), so the statement and WAL breakdown can be read and the
# machine's shared cluster is left alone. Each mailgate row gets a fresh database.
#
# For each mailgate row it also records CPU by process (from /proc, over the timed window),
# statements, transactions and WAL per message (pg_stat_statements, pg_stat_wal,
# pg_stat_database), and what the active backends waited on (pg_stat_activity, sampled every
# 0.25 s). Every message carries a sequence number in its subject; the sink's files are
# checked for the full set, once each.
#
# The sink writes to tmpfs (/dev/shm): on this machine's ext4, creating a file per message
# caps smtp-sink itself at about 1,700 msg/s, which would time the sink, not the contenders.
#
# Usage: bench/sustained.sh [messages, default 10000] [mailgate rounds, default 1]
# Env: ROWS="direct postfix defaults tuned prefilled openloop pgbench tls" picks rows (add
#      before17 for a row with issue 17's changes undone: bench/issue17_before.sql);
#      OUT=dir keeps the raw output (default /tmp/mailgate-sustained);
#      TRACK_PLANNING=on adds plan time per statement to the breakdown (off by default: its
#      counters are shared by every backend and cost throughput under many connections);
#      OTHER_BIN=path (another build, e.g. main's release binary) adds A/B rows: each
#      `defaults` and `tls` row is run again with it right after, in the same round;
#      PRE_SQL=file runs that SQL on each mailgate row's database once mailgate has migrated
#      it, e.g. the 30 past day partitions the default retention keeps (bench/RESULTS.md,
#      "the queue's own table": a fresh database has 10 and hides what the rest cost);
#      WARMUP=M (default 5000) messages go through each row untimed before its N: see below.
#
# The warm-up: a process that has just started pays once for what a running one has done
# already. For mailgate that is PostgreSQL's, per pool connection: each new backend loads the
# catalog entries of every partition and index the hot statements touch, and plans each
# statement five times before it settles on a generic plan (`plans` in the breakdown with
# TRACK_PLANNING=on: about six a statement a connection). bench/RESULTS.md ("Warm and cold")
# measured it on a fresh database at 13 % of a 10,000-message run's rate (Postgres CPU a
# message 0.78–0.85 ms cold against 0.64–0.76 warm). Sustained throughput is the steady
# state, so every row (Postfix and direct too: Postfix starts its smtpd and smtp processes
# on demand) first handles M messages, waited for at the sink and then removed, and only
# then is timed. WARMUP=0 times from cold, as every run before that section did.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
N=${1:-10000}
ROUNDS=${2:-1}
ROWS=${ROWS:-direct postfix defaults tuned prefilled openloop pgbench tls}
OUT=${OUT:-/tmp/mailgate-sustained}
SINK_ROOT=$(mktemp -d /dev/shm/mailgate-sustained-sink.XXXXXX)
chmod 755 "$SINK_ROOT"
CONNS=64
SESSIONS=32
OPEN_SECS=${OPEN_SECS:-10}
WARMUP=${WARMUP:-5000}
PGBENCH_SECS=${PGBENCH_SECS:-10}
# The tuned row: more deliveries in flight, larger claims, a larger pool, a relay pool as
# large as the concurrency.
TUNED=${TUNED:-MAILGATE_DELIVERY__CONCURRENCY=64 MAILGATE_DELIVERY__CLAIM_BATCH=256 MAILGATE_DATABASE_POOL_SIZE=32 MAILGATE_RELAYS__DEFAULT__POOL_SIZE=64}
REDIS=${MAILGATE_BENCH_REDIS_URL:-redis://127.0.0.1:6379}
rm -rf "$OUT"
mkdir -p "$OUT"
cargo build --release --quiet --example open_loop
LOADGEN=$CARGO_TARGET_DIR/release/examples/open_loop
has_row() { [[ " $ROWS " == *" $1 "* ]]; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# --- A private PostgreSQL 15 -----------------------------------------------------------------
PG_BIN=/usr/lib/postgresql/15/bin
[ -x "$PG_BIN/initdb" ] || mg_die "PostgreSQL 15 server binaries not found in $PG_BIN (apt-get install postgresql-15)"
PG_DIR=$(mktemp -d /tmp/mailgate-bench-pg.XXXXXX)
chown postgres "$PG_DIR"
PG_PORT=$(free_port)
mg_log "bench: private PostgreSQL on port $PG_PORT ($PG_DIR)"
runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres --no-sync >/dev/null
# TLS as Debian's cluster offers it (a self-signed certificate); only the `tls` row uses it.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
	-keyout "$PG_DIR/data/server.key" -out "$PG_DIR/data/server.crt" 2>/dev/null
chown postgres "$PG_DIR/data/server.key" "$PG_DIR/data/server.crt"
chmod 600 "$PG_DIR/data/server.key"
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w -o \
	"-c port=$PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$PG_DIR -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track_planning=${TRACK_PLANNING:-off} -c ssl=on" \
	start >/dev/null
PG=postgres://postgres@127.0.0.1:$PG_PORT
psql -X -q "$PG/postgres" -c "CREATE EXTENSION pg_stat_statements" >/dev/null
SINK_PID=""
PF_DIR=""
# Every step may fail (already stopped) without skipping the next: errexit is on.
sustained_cleanup() {
	if [ -n "$SINK_PID" ]; then kill "$SINK_PID" 2>/dev/null || true; fi
	if [ -n "$PF_DIR" ]; then postfix -c "$PF_DIR/conf" stop >/dev/null 2>&1 || true; fi
	bench_cleanup
	runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$PG_DIR" "${PF_DIR:-/nonexistent}" "$SINK_ROOT"
}
trap sustained_cleanup EXIT
PG_MASTER=$(head -n1 "$PG_DIR/data/postmaster.pid")

# --- The sink: one file per message -----------------------------------------------------------
SINK_PORT=$(free_port)
# start_sink DIR: a fresh smtp-sink writing each message to a file in DIR.
start_sink() {
	if [ -n "$SINK_PID" ]; then
		kill "$SINK_PID" 2>/dev/null || true
		wait "$SINK_PID" 2>/dev/null || true
	fi
	rm -rf "$1"
	mkdir -p "$1"
	chown postfix "$1"
	smtp-sink $SINK_USER -d "$1/m." 127.0.0.1:"$SINK_PORT" 1024 &
	SINK_PID=$!
	for _ in $(seq 1 100); do
		(exec 3<>/dev/tcp/127.0.0.1/"$SINK_PORT") 2>/dev/null && return 0
		sleep 0.05
	done
	mg_die "smtp-sink did not listen"
}
files_in() { find "$1" -type f | wc -l; }
# warmed DIR: after a row's warm-up messages reached the sink in DIR, removes them, so the
# timed messages are counted and checked alone.
warmed() {
	wait_sink "$1" "$WARMUP"
	find "$1" -type f -delete
}
# wait_sink DIR COUNT: until COUNT files arrived; gives up after 30 s without progress.
wait_sink() {
	local have last=-1 still=0
	while :; do
		have=$(files_in "$1")
		[ "$have" -ge "$2" ] && return 0
		if [ "$have" = "$last" ]; then
			still=$((still + 1))
			[ "$still" -ge 150 ] && { mg_warn "sink stuck at $have of $2 messages"; return 0; }
		else
			still=0
			last=$have
		fi
		sleep 0.2
	done
}
# last_arrival DIR: the newest file's mtime, Unix seconds.
last_arrival() { find "$1" -type f -printf '%T@\n' | sort -n | tail -n1; }
# check_seqs DIR FIRST COUNT: "lost L duplicated D" over the subjects `bench FIRST..`.
check_seqs() {
	python3 - "$1" "$2" "$3" <<'PY'
import os, re, sys, collections
d, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
seen = collections.Counter()
for name in os.listdir(d):
    with open(os.path.join(d, name), 'rb') as f:
        m = re.search(rb'^Subject: bench (\d+)\r?$', f.read(), re.M)
    if m:
        seen[int(m.group(1))] += 1
want = range(first, first + count)
print(f"lost {sum(1 for s in want if s not in seen)} duplicated {sum(c - 1 for c in seen.values() if c > 1)}")
PY
}

# --- CPU by process, from /proc ---------------------------------------------------------------
# cpu_snap FILE: ticks so far of mailgate, the sink, Redis and Postgres (backends apart from
# its own processes: WAL writer, checkpointer, background writer, autovacuum).
REDIS_PID=$(ss -ltnpH 'sport = :6379' 2>/dev/null | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2 || true)
cpu_snap() {
	python3 - "$1" "${MAILGATE_PID:-0}" "${SINK_PID:-0}" "${REDIS_PID:-0}" "$PG_MASTER" <<'PY'
import json, os, sys
out, mg, sink, redis, master = sys.argv[1], *map(int, sys.argv[2:])
def ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read().rsplit(")", 1)[1].split()
        return int(s[11]) + int(s[12])  # utime + stime
    except OSError:
        return 0
snap = {"mailgate": ticks(mg), "sink": ticks(sink), "redis": ticks(redis),
        "pg_backends": {}, "pg_other": ticks(master)}
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    try:
        with open(f"/proc/{pid}/stat") as f:
            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        if ppid != master:
            continue
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().decode(errors="replace")
    except OSError:
        continue
    if cmd.startswith("postgres: postgres "):  # a client's backend: user postgres
        snap["pg_backends"][pid] = ticks(pid)
    else:
        snap["pg_other"] += ticks(pid)
json.dump(snap, open(out, "w"))
PY
}
# cpu_report BEFORE AFTER SECONDS LOADGEN_CPU_SECONDS: cores used by each over the window.
cpu_report() {
	python3 - "$@" <<'PY'
import json, os, sys
a, b, secs, loadgen = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), float(sys.argv[3]), float(sys.argv[4])
hz = os.sysconf("SC_CLK_TCK")
core = lambda t: t / hz / secs
backends = sum(t - a["pg_backends"].get(p, 0) for p, t in b["pg_backends"].items())
rows = [("mailgate", core(b["mailgate"] - a["mailgate"])),
        (f"postgres backends ({len(b['pg_backends'])})", core(backends)),
        ("postgres WAL writer, checkpointer, bgwriter, autovacuum", core(b["pg_other"] - a["pg_other"])),
        ("smtp-sink", core(b["sink"] - a["sink"])), ("redis", core(b["redis"] - a["redis"])),
        ("load generator", loadgen / secs)]
print("cpu (cores over the window): " + "; ".join(f"{n} {c:.2f}" for n, c in rows)
      + f"; total {sum(c for _, c in rows):.2f}")
PY
}

# --- Postgres statistics ----------------------------------------------------------------------
pg_reset() {
	psql -X -q "$PG/postgres" -c "SELECT pg_stat_statements_reset()" -c "SELECT pg_stat_reset_shared('wal')" \
		-c "SELECT pg_stat_reset()" >/dev/null
	psql -X -q "$PG/$1" -c "SELECT pg_stat_reset()" >/dev/null
}
# pg_report DB MESSAGES: statements, transactions and WAL per message, the top statements.
pg_report() {
	# The counters reach the statistics views within a second of a backend going idle.
	sleep 1.5
	psql -X -q "$PG/postgres" -v n="$2" -v db="$1" <<'SQL'
\pset footer off
SELECT round(sum(calls) / :n, 2) AS statements_per_msg,
       round((SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = :'db') / :n::numeric, 2) AS xacts_per_msg,
       round(sum(wal_bytes) / :n) AS stmt_wal_bytes_per_msg,
       (SELECT round(wal_bytes / :n) FROM pg_stat_wal) AS wal_bytes_per_msg,
       (SELECT round(wal_records / :n::numeric, 1) FROM pg_stat_wal) AS wal_records_per_msg,
       (SELECT round(wal_fpi / :n::numeric, 2) FROM pg_stat_wal) AS wal_fpi_per_msg,
       (SELECT round(wal_sync / :n::numeric, 3) FROM pg_stat_wal) AS wal_syncs_per_msg
FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = :'db');
SELECT round(calls / :n::numeric, 3) AS per_msg, round(rows / :n::numeric, 2) AS rows_per_msg,
       round(total_exec_time::numeric / :n, 3) AS ms_per_msg,
       round(total_plan_time::numeric / :n, 3) AS plan_ms_per_msg, plans, round(wal_bytes / :n) AS wal_per_msg,
       left(regexp_replace(query, '\s+', ' ', 'g'), 110) AS statement
FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = :'db')
ORDER BY total_exec_time + total_plan_time DESC LIMIT 14;
SQL
	psql -X -q "$PG/$1" <<'SQL'
\pset footer off
SELECT relname, n_tup_ins AS ins, n_tup_upd AS upd, n_tup_hot_upd AS hot_upd, n_tup_del AS del
FROM pg_stat_user_tables WHERE n_tup_ins + n_tup_upd + n_tup_del > 0 ORDER BY relname;
SQL
}
# Samples what active backends of DB wait on, until stopped: one psql, `\watch`ing.
start_wait_sampler() {
	printf '%s\n\\watch 0.25\n' "SELECT coalesce(wait_event_type || ':' || wait_event, 'on CPU') FROM pg_stat_activity
		WHERE datname = '$1' AND state = 'active' AND pid <> pg_backend_pid()" |
		psql -X -tA "$PG/postgres" >"$OUT/waits-$1.txt" 2>/dev/null &
	WAIT_SAMPLER=$!
}
stop_wait_sampler() {
	kill "$WAIT_SAMPLER" 2>/dev/null
	wait "$WAIT_SAMPLER" 2>/dev/null || true
	echo "waits (active backends, sampled every 0.25 s): $(grep -v '^$' "$OUT/waits-$1.txt" | sort | uniq -c | sort -rn | awk '{printf "%s %s; ", $2, $1}')"
}

RESULTS=$OUT/results.txt
: >"$RESULTS"
row() { echo "$*" | tee -a "$RESULTS"; }

# --- direct and Postfix -----------------------------------------------------------------------
# smtp_row NAME PORT: smtp-source sends N messages to PORT; timed to the last at the sink.
smtp_row() {
	local dir=$SINK_ROOT/$1 t0 last out
	# The warm-up and the timed run send the same messages the same way; only the count differs.
	local source=(smtp-source -s "$SESSIONS" -l 2048 -f bench@example.com -t rcpt@example.com)
	start_sink "$dir"
	if [ "$WARMUP" -gt 0 ]; then
		"${source[@]}" -m "$WARMUP" 127.0.0.1:"$2" >/dev/null 2>&1
		warmed "$dir"
	fi
	mg_log "bench: $1: smtp-source, $SESSIONS sessions, $N messages (load $(loadavg))"
	t0=$(date +%s.%N)
	out=$(/usr/bin/time -f '%U %S' "${source[@]}" -m "$N" 127.0.0.1:"$2" 2>&1 >/dev/null | tail -n1)
	wait_sink "$dir" "$N"
	last=$(last_arrival "$dir")
	row "$1: $(python3 -c "print(round($N / ($last - $t0)))") msg/s end to end (after $WARMUP untimed); $(files_in "$dir") of $N at the sink; smtp-source cpu $(awk '{print $1 + $2}' <<<"$out") s; load $(loadavg)"
}
if has_row direct; then
	smtp_row direct "$SINK_PORT"
fi
if has_row postfix; then
	PF_DIR=$(mktemp -d /tmp/mailgate-bench-postfix.XXXXXX)
	chmod 755 "$PF_DIR" # Postfix's own processes run as its mail owner and look inside
	mkdir -p "$PF_DIR/conf" "$PF_DIR/queue" "$PF_DIR/data"
	chown postfix "$PF_DIR/data"
	pf_port=$(free_port)
	cat >"$PF_DIR/conf/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $PF_DIR/queue
data_directory = $PF_DIR/data
maillog_file_prefixes = $PF_DIR
maillog_file = $PF_DIR/maillog
syslog_name = mailgate-bench-postfix
myhostname = bench.localdomain
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
mynetworks = 127.0.0.0/8
smtpd_recipient_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:$SINK_PORT
smtp_tls_security_level = none
alias_maps =
alias_database =
local_recipient_maps =
CF
	# Postfix's own master.cf services, none chrooted (as tests/support/postfix.rs).
	{
		echo "127.0.0.1:$pf_port inet n - n - - smtpd"
		sed -n '/^const MASTER_CF/,/^";/p' tests/support/postfix.rs | sed '1d;$d'
	} >"$PF_DIR/conf/master.cf"
	postfix -c "$PF_DIR/conf" start >/dev/null 2>&1 || mg_die "private postfix did not start (see $PF_DIR/maillog)"
	for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/"$pf_port") 2>/dev/null && break; sleep 0.1; done
	smtp_row postfix "$pf_port"
	postfix -c "$PF_DIR/conf" stop >/dev/null 2>&1 || true
fi

# --- mailgate ---------------------------------------------------------------------------------
BODY=$OUT/body.json
python3 - >"$BODY" <<'PY'
import json
print(json.dumps({"from": "bench@example.com", "to": "rcpt@example.com", "subject": "bench {seq}",
                  "text": ("lorem ipsum dolor sit amet " * 80)[:2000]}))
PY
# Key limits out of the way (the issue's "key limits raised"); the Redis limiter stays on.
LIMITS=(MAILGATE_REDIS_URL="$REDIS" MAILGATE_RATELIMIT__ENABLED=true
	MAILGATE_RATELIMIT__SEND__RATE_PER_SEC=1000000 MAILGATE_RATELIMIT__SEND__BURST=1000000
	MAILGATE_RATELIMIT__API__RATE_PER_SEC=1000000 MAILGATE_RATELIMIT__API__BURST=1000000)
# mg_db NAME [SSLMODE]: a fresh database on the private cluster and an API key; sets DB_URL
# (with sslmode, default disable) and KEY.
mg_db() {
	psql -X -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >/dev/null
	DB_URL="$PG/$1?sslmode=${2:-disable}"
	KEY=$(MAILGATE_DATABASE_URL=$DB_URL "$BIN" keys create --project bench --scopes send,messages 2>/dev/null | tail -n1)
}
# mg_start DB_URL SINK_URL [ENV…]: mailgate relaying to the sink; sets MG_PORT, MAILGATE_PID.
mg_start() {
	local db=$1 relay=$2
	shift 2
	MG_PORT=$(free_port)
	start_mailgate "$db" "$MG_PORT" MAILGATE_RELAYS__DEFAULT__URL="$relay" "${LIMITS[@]}" "$@"
}
mg_stop() { kill "$MAILGATE_PID"; wait "$MAILGATE_PID" 2>/dev/null || true; }
# loadgen ARGS…: open_loop under /usr/bin/time; prints its line plus `cpu SECONDS`.
loadgen() {
	local t
	t=$(mktemp)
	/usr/bin/time -o "$t" -f '%U %S' "$LOADGEN" "$@" "http://127.0.0.1:$MG_PORT/v1/emails" 0 0 "$CONNS" "$BODY" \
		"Authorization: Bearer $KEY" "Content-Type: application/json" 2>/dev/null | tr -d '\n'
	echo " cpu $(awk '{print $1 + $2}' "$t")"
	rm -f "$t"
}
# mg_warm_up: the row's untimed sends, numbered after the timed ones, so a stray one could
# never pass for one of them.
mg_warm_up() { loadgen --count "$WARMUP" --seq-from $((N + 1000000)) >/dev/null; }
field() { awk -v k="$1" '{for (i = 1; i < NF; i++) if ($i == k) {print $(i + 1); exit}}' <<<"$2"; }

# mg_row NAME ROUND [ENV…]: mailgate accepting N over HTTP while it relays; timed from the
# first submission to the last message at the sink, with the breakdown.
mg_row() {
	local name=$1 round=$2 dir db t0 last out secs
	shift 2
	db=mg_${name}_$round
	dir=$SINK_ROOT/$db
	start_sink "$dir"
	mg_db "$db"
	mg_start "$DB_URL" "smtp://127.0.0.1:$SINK_PORT?tls=none" "$@"
	if [ -n "${PRE_SQL:-}" ]; then psql -X -q "$DB_URL" -f "$PRE_SQL" >/dev/null; fi
	if [ "$WARMUP" -gt 0 ]; then
		mg_warm_up
		warmed "$dir"
	fi
	pg_reset "$db"
	mg_log "bench: $name (round $round): $N sends over $CONNS connections while relaying (load $(loadavg))"
	cpu_snap "$OUT/cpu0"
	start_wait_sampler "$db"
	t0=$(date +%s.%N)
	out=$(loadgen --count "$N")
	wait_sink "$dir" "$N"
	cpu_snap "$OUT/cpu1"
	stop_wait_sampler "$db" >"$OUT/waits-summary-$db.txt"
	last=$(last_arrival "$dir")
	secs=$(python3 -c "print($last - $t0)")
	local accept_secs rate
	accept_secs=$(python3 -c "print($(field end "$out") - $t0)")
	rate=$(python3 -c "print(f'{$N / $secs:.0f}')")
	row "$name (round $round): $rate msg/s end to end ($N in $(printf %.2f "$secs") s, after $WARMUP untimed); accept $(python3 -c "print(f'{$N / $accept_secs:.0f}')") msg/s, p50 $(field p50 "$out") ms, p99 $(field p99 "$out") ms, failed $(field failed "$out"); at the sink $(files_in "$dir"): $(check_seqs "$dir" 0 "$N"); peak RSS $(awk '/VmHWM/ {printf "%.0f MiB", $2 / 1024}' "/proc/$MAILGATE_PID/status"); load $(loadavg)"
	{
		echo "== $name round $round: $rate msg/s"
		cpu_report "$OUT/cpu0" "$OUT/cpu1" "$secs" "$(field cpu "$out")"
		cat "$OUT/waits-summary-$db.txt"
		pg_report "$db" "$N"
	} | tee -a "$OUT/breakdown.txt"
	LAST_RATE=$rate
	LAST_DIR=$dir
}

for round in $(seq 1 "$ROUNDS"); do
	if has_row defaults; then
		mg_row defaults "$round"
		if has_row openloop && [ "$round" = 1 ]; then
			# The same instance at 80 % of what it just sustained, evenly spaced.
			rate80=$(python3 -c "print(round($LAST_RATE * 0.8))")
			mg_log "bench: open loop at $rate80 req/s for ${OPEN_SECS}s, delivering (load $(loadavg))"
			out=$("$LOADGEN" --seq-from "$N" "http://127.0.0.1:$MG_PORT/v1/emails" "$rate80" "$OPEN_SECS" "$CONNS" "$BODY" \
				"Authorization: Bearer $KEY" "Content-Type: application/json")
			sent=$(field sent "$out")
			wait_sink "$LAST_DIR" $((N + sent))
			row "open loop at 80 % ($rate80 req/s asked, $(field rate "$out") sent) while delivering: accept p50 $(field p50 "$out") ms, p90 $(field p90 "$out") ms, p99 $(field p99 "$out") ms, max $(field max "$out") ms, failed $(field failed "$out"); at the sink: $(check_seqs "$LAST_DIR" "$N" "$sent"); load $(loadavg)"
		fi
		mg_stop
	fi
	if has_row defaults && [ -n "${OTHER_BIN:-}" ]; then
		BIN=$OTHER_BIN mg_row other_defaults "$round"
		mg_stop
	fi
	if has_row before17; then
		# Issue 17's changes undone, side by side: the old relay pool and schema.
		PRE_SQL=bench/issue17_before.sql mg_row before17 "$round" MAILGATE_RELAYS__DEFAULT__POOL_SIZE=8
		mg_stop
	fi
	if has_row tuned; then
		# shellcheck disable=SC2086 # TUNED is a list of assignments
		mg_row tuned "$round" $TUNED
		mg_stop
	fi
done

if has_row prefilled; then
	dir=$SINK_ROOT/prefilled
	start_sink "$dir"
	mg_db mg_prefilled
	mg_start "$DB_URL" "smtp://127.0.0.1:$SINK_PORT?tls=none" MAILGATE_WORKERS_ENABLED=false
	mg_log "bench: prefilled: accepting $N with workers off"
	out=$(loadgen --count "$N")
	mg_stop
	mg_log "bench: prefilled: draining (load $(loadavg))"
	t0=$(date +%s.%N)
	mg_start "$DB_URL" "smtp://127.0.0.1:$SINK_PORT?tls=none"
	wait_sink "$dir" "$N"
	last=$(last_arrival "$dir")
	row "prefilled queue, relaying only (defaults; accepting not timed): $(python3 -c "print(f'{$N / ($last - $t0):.0f}')") msg/s from process start to the last at the sink; $(check_seqs "$dir" 0 "$N"); load $(loadavg)"
	mg_stop
fi

# tls_row MODE ROUND [LABEL]: accept only (workers off), N sends over $CONNS connections, the
# database URL with sslmode=MODE; CPU per request by process over the timed window.
tls_row() {
	local mode=$1 round=$2 label=${3:-} db out secs
	db=mg_tls${label:+_other}_${mode}_$round
	mg_db "$db" "$mode"
	mg_start "$DB_URL" "smtp://127.0.0.1:$SINK_PORT?tls=none" MAILGATE_WORKERS_ENABLED=false
	if [ "$WARMUP" -gt 0 ]; then mg_warm_up; fi
	# After the warm-up, so the pool's connections are all open.
	local tls
	tls=$(psql -X -tA "$PG/postgres" -c "SELECT count(*) FILTER (WHERE s.ssl) || ' of ' || count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.datname = '$db'")
	mg_log "bench: tls: sslmode=$mode (round $round): $N sends, workers off (load $(loadavg))"
	cpu_snap "$OUT/cpu0"
	out=$(loadgen --count "$N")
	cpu_snap "$OUT/cpu1"
	secs=$(python3 -c "print($(field end "$out") - $(field start "$out"))")
	TLS_RATE[$label$mode]=$(python3 -c "print(f'{$N / $secs:.0f}')")
	row "tls${label:+ ($label)}: accept only, sslmode=$mode (round $round): ${TLS_RATE[$label$mode]} accepts/s, p50 $(field p50 "$out") ms, p99 $(field p99 "$out") ms, failed $(field failed "$out"); mailgate's connections with TLS: $tls; $(python3 - "$OUT/cpu0" "$OUT/cpu1" "$N" <<'PY'
import json, os, sys
a, b, n = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), int(sys.argv[3])
ms = lambda t: t / os.sysconf("SC_CLK_TCK") * 1000 / n
pg = sum(t - a["pg_backends"].get(p, 0) for p, t in b["pg_backends"].items())
print(f"cpu per request: postgres backends {ms(pg):.3f} ms, mailgate {ms(b['mailgate'] - a['mailgate']):.3f} ms")
PY
); load $(loadavg)"
	mg_stop
}
if has_row tls; then
	declare -A TLS_RATE
	for round in $(seq 1 "$ROUNDS"); do
		tls_row disable "$round"
		tls_row require "$round"
		row "tls (round $round): accepts with TLS to Postgres ÷ without: $(python3 -c "print(f'{${TLS_RATE[require]} / ${TLS_RATE[disable]}:.2f}')") (target ≥ 0.90)"
		if [ -n "${OTHER_BIN:-}" ]; then
			BIN=$OTHER_BIN tls_row disable "$round" other
			BIN=$OTHER_BIN tls_row require "$round" other
			row "tls (other, round $round): accepts with TLS to Postgres ÷ without: $(python3 -c "print(f'{${TLS_RATE[otherrequire]} / ${TLS_RATE[otherdisable]}:.2f}')")"
		fi
	done
fi

if has_row pgbench; then
	psql -X -q "$PG/postgres" -c "DROP DATABASE IF EXISTS anchor" -c "CREATE DATABASE anchor" >/dev/null
	psql -X -q "$PG/anchor" -c "CREATE TABLE anchor (id bigserial PRIMARY KEY, body bytea NOT NULL)" >/dev/null
	script=$OUT/anchor.sql
	echo "INSERT INTO anchor (body) VALUES (convert_to(left(repeat('lorem ipsum dolor sit amet ', 80), 2048), 'UTF8'));" >"$script"
	mg_log "bench: pgbench, one 2 KB row per transaction, 16 clients, ${PGBENCH_SECS}s (load $(loadavg))"
	pgbench -n -h 127.0.0.1 -p "$PG_PORT" -U postgres -c 16 -j 2 -T "$PGBENCH_SECS" -f "$script" anchor >"$OUT/pgbench.txt" 2>&1
	row "pgbench: $(awk '/^tps/ {printf "%.0f", $3}' "$OUT/pgbench.txt") tx/s (one 2 KB row each, 16 clients); load $(loadavg)"
fi

echo
echo "results ($OUT/results.txt; breakdown in $OUT/breakdown.txt):"
cat "$RESULTS"
