#!/usr/bin/env bash
# shellcheck shell=bash
# Shared set-up functions for scripts/dev, scripts/test and .ci/run. Source it; don't run it.
#
#   ensure_rust             cargo on PATH (or ~/.cargo), else exit 1
#   target_dir              CARGO_TARGET_DIR outside the clone (incremental builds)
#   ensure_postgres         a reachable PostgreSQL + MAILGATE_DATABASE_URL + its database
#   ensure_redis            a reachable Redis + MAILGATE_REDIS_URL (returns 1 if none can be had)
#   ensure_tools_for_tests  swaks, smtp-sink/smtp-source (postfix), python3, dkimpy, openssl,
#                           redis-server (with TLS), PostgreSQL's server binaries (tests/tls
#                           starts private clusters), systemd-analyze (tests/deploy),
#                           ldnsutils and nsd (tests/api/dane.rs);
#                           exits 1 naming what it could not install
#   ensure_browser          chromium + chromedriver (Debian's chromium, chromium-driver) for
#                           the console's browser tests; exits 1 naming them if it cannot
#   scanners_start / scanners_wait  private rspamd and clamd (installed when missing) for the
#                           content-scanning tests: MAILGATE_TEST_RSPAMD_URL, MAILGATE_TEST_CLAMD_ADDR
#   ensure_pypi_tool CMD [PACKAGE]  a command-line tool from PyPI (schemathesis,
#                           openapi-spec-validator), else exit 1
#
# Progress goes to stderr, one short line per step.
set -euo pipefail

MAILGATE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export MAILGATE_ROOT

MG_DEFAULT_DATABASE_URL="postgres://postgres@127.0.0.1:5432/mailgate"
MG_DEFAULT_REDIS_URL="redis://127.0.0.1:6379"
_MG_APT_UPDATED=0

mg_log() { printf '%s\n' "$*" >&2; }
mg_warn() { printf 'warning: %s\n' "$*" >&2; }
mg_die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

# URL without its user:password or password query parameters (for printing).
mg_redact_url() {
	local url=$1 scheme rest userinfo
	if [[ $url == *://*@* ]]; then
		scheme=${url%%://*}
		rest=${url#*://}
		userinfo=${rest%%@*}
		rest=${rest#*@}
		if [[ $userinfo == *:* ]]; then userinfo="${userinfo%%:*}:***"; fi
		url="$scheme://$userinfo@$rest"
	fi
	# A password in the query too: libpq's password= and sslpassword= (as mailgate redacts them).
	printf '%s\n' "$url" | sed -E 's/([?&][A-Za-z_]*[Pp][Aa][Ss][Ss][Ww][Oo][Rr][Dd]=)[^&]*/\1***/g'
}

_mg_is_root() { [ "$(id -u)" = 0 ]; }

# Is something listening on HOST PORT? (no client tools needed)
_mg_tcp_open() {
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

# Print "HOST PORT" of a URL like scheme://user:pw@host:port/path?query (IPv6 in brackets ok).
_mg_url_hostport() {
	local url=$1 port=$2 rest host tail
	rest=${url#*://}
	rest=${rest%%/*}
	rest=${rest%%\?*}
	rest=${rest##*@}
	host=$rest
	if [[ $rest == \[* ]]; then
		host=${rest%%]*}
		host=${host#[}
		tail=${rest#*]}
		if [[ $tail == :* ]]; then port=${tail#:}; fi
	elif [[ $rest == *:* ]]; then
		host=${rest%%:*}
		port=${rest##*:}
	fi
	printf '%s %s\n' "${host:-127.0.0.1}" "${port:-$2}"
}

_mg_is_local_host() {
	case $1 in
	127.0.0.1 | localhost | ::1 | "") return 0 ;;
	*) return 1 ;;
	esac
}

# apt-get install, only as root with apt; `apt-get update` at most once per run.
_mg_apt_install() {
	if ! command -v apt-get >/dev/null 2>&1 || ! _mg_is_root; then
		return 1
	fi
	if [ "$_MG_APT_UPDATED" = 0 ]; then
		mg_log "apt: updating package lists"
		apt-get update -qq >&2 || return 1
		_MG_APT_UPDATED=1
	fi
	mg_log "apt: installing $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 "$@" >&2
}

# ---------------------------------------------------------------------------------------------
# Rust

ensure_rust() {
	if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
		# shellcheck disable=SC1091
		. "$HOME/.cargo/env"
	fi
	if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
		export PATH="$HOME/.cargo/bin:$PATH"
	fi
	if ! command -v cargo >/dev/null 2>&1; then
		mg_log "rust: cargo not found (looked on PATH, in \$HOME/.cargo/env and \$HOME/.cargo/bin)."
		mg_log "rust: install the Rust toolchain with rustup (https://rustup.rs), then run this again."
		exit 1
	fi
	mg_log "rust: $(cargo --version)"
}

target_dir() {
	export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mailgate-target}"
	mkdir -p "$CARGO_TARGET_DIR"
	mg_log "cargo: target dir $CARGO_TARGET_DIR"
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL

# Newest PostgreSQL server bin dir on this machine (initdb + pg_ctl), if any.
_mg_pg_bindir() {
	local d best=""
	if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
		best=$(dirname "$(command -v initdb)")
	fi
	for d in $(printf '%s\n' /usr/lib/postgresql/*/bin /usr/local/pgsql/bin | sort -V); do
		if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then best=$d; fi
	done
	[ -n "$best" ] && printf '%s\n' "$best"
}

# Make psql/pg_isready/createdb usable if they exist anywhere on the machine.
_mg_pg_client_path() {
	local d
	if ! command -v psql >/dev/null 2>&1; then
		for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -rV); do
			if [ -x "$d/psql" ]; then
				export PATH="$PATH:$d"
				break
			fi
		done
	fi
}

_mg_pg_ready() {
	local host=$1 port=$2
	if command -v pg_isready >/dev/null 2>&1; then
		pg_isready -q -h "$host" -p "$port" -t 3 >/dev/null 2>&1
	else
		_mg_tcp_open "$host" "$port"
	fi
}

# Wait until HOST PORT answers, up to SECONDS (default 30).
_mg_pg_wait() {
	local host=$1 port=$2 deadline=$((SECONDS + ${3:-30}))
	until _mg_pg_ready "$host" "$port"; do
		[ "$SECONDS" -lt "$deadline" ] || return 1
		sleep 0.5
	done
}

# Print "VERSION NAME" of a Debian cluster (/etc/postgresql/V/N) configured for PORT.
_mg_pg_find_cluster() {
	local want=$1 conf dir p
	for conf in $(printf '%s\n' /etc/postgresql/*/*/postgresql.conf | sort -rV); do
		[ -f "$conf" ] || continue
		dir=$(dirname "$conf")
		p=$(sed -n 's/^[[:space:]]*port[[:space:]]*=[[:space:]]*\([0-9][0-9]*\).*/\1/p' "$conf" | tail -n1)
		if [ "${p:-5432}" = "$want" ]; then
			printf '%s %s\n' "$(basename "$(dirname "$dir")")" "$(basename "$dir")"
			return 0
		fi
	done
	return 1
}

_mg_pg_start_cluster() {
	local port=$1 ver name
	read -r ver name < <(_mg_pg_find_cluster "$port") || return 1
	command -v pg_ctlcluster >/dev/null 2>&1 || return 1
	mg_log "postgres: starting cluster $ver/$name"
	pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start >&2 || return 1
	_mg_pg_wait 127.0.0.1 "$port"
}

# A cluster we just installed: trust auth on localhost (dev/CI machine), like the CI image.
_mg_pg_trust_fresh_cluster() {
	local port=$1 ver name hba
	read -r ver name < <(_mg_pg_find_cluster "$port") || return 0
	hba=/etc/postgresql/$ver/$name/pg_hba.conf
	if [ -f "$hba" ] && ! grep -q '^# mailgate: trust' "$hba"; then
		mg_log "postgres: trust auth for local connections in $hba"
		{
			echo '# mailgate: trust auth for local connections (dev/CI), added by scripts/lib.sh'
			echo 'local all all trust'
			echo 'host all all 127.0.0.1/32 trust'
			echo 'host all all ::1/128 trust'
			cat "$hba"
		} >"$hba.mailgate.tmp"
		cat "$hba.mailgate.tmp" >"$hba"
		rm -f "$hba.mailgate.tmp"
		pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" reload >&2 2>/dev/null || true
	fi
}

_mg_pg_install() {
	local port=$1
	if ! command -v apt-get >/dev/null 2>&1 || ! _mg_is_root; then return 1; fi
	mg_log "postgres: installing postgresql from apt"
	_mg_apt_install postgresql postgresql-client || return 1
	_mg_pg_trust_fresh_cluster "$port"
	if _mg_pg_ready 127.0.0.1 "$port"; then return 0; fi
	_mg_pg_start_cluster "$port" || return 1
	# The CI image also has a superuser named root; match it (ignore if it exists).
	su postgres -c "psql -X -q -p $port -c 'CREATE ROLE root SUPERUSER LOGIN'" >/dev/null 2>&1 || true
}

# A private server in $MAILGATE_ROOT/.data/pg from the machine's binaries (non-root only:
# initdb refuses to run as root).
_mg_pg_start_private() {
	local port=$1 bindir data log
	_mg_is_root && return 1
	bindir=$(_mg_pg_bindir) || return 1
	data=$MAILGATE_ROOT/.data/pg
	log=$MAILGATE_ROOT/.data/pg.log
	mkdir -p "$MAILGATE_ROOT/.data"
	if [ ! -f "$data/PG_VERSION" ]; then
		mg_log "postgres: initdb $data ($bindir)"
		rm -rf "$data"
		"$bindir/initdb" -D "$data" -A trust -U postgres -E UTF8 >"$MAILGATE_ROOT/.data/initdb.log" 2>&1 ||
			{
				mg_warn "initdb failed, see $MAILGATE_ROOT/.data/initdb.log"
				return 1
			}
	fi
	mg_log "postgres: starting private server in $data on 127.0.0.1:$port (log $log)"
	"$bindir/pg_ctl" -D "$data" -l "$log" -w -t 30 \
		-o "-p $port -k /tmp -c listen_addresses=127.0.0.1" start >/dev/null 2>&1 ||
		{
			mg_warn "pg_ctl start failed, see $log"
			return 1
		}
	export PATH="$PATH:$bindir"
	_mg_pg_wait 127.0.0.1 "$port"
}

# Create the database named in URL if missing (via the server's "postgres" database).
_mg_pg_create_db() {
	local url=$1 db admin query=""
	db=${url##*/}
	if [[ $db == *\?* ]]; then
		query="?${db#*\?}"
		db=${db%%\?*}
	fi
	if [[ ! $db =~ ^[A-Za-z0-9_]+$ ]] || [ "$db" = postgres ]; then
		return 0
	fi
	admin="${url%/*}/postgres$query"
	if ! command -v psql >/dev/null 2>&1; then
		mg_warn "psql not found: cannot check that database '$db' exists"
		return 0
	fi
	local exists
	exists=$(PGCONNECT_TIMEOUT=5 psql -X -q "$admin" -tAc "SELECT 1 FROM pg_database WHERE datname='$db'") ||
		mg_die "postgres: cannot connect to $(mg_redact_url "$admin") (check auth and MAILGATE_DATABASE_URL)"
	if [ "$exists" = 1 ]; then
		mg_log "postgres: database $db exists"
	else
		mg_log "postgres: creating database $db"
		PGCONNECT_TIMEOUT=5 psql -X -q "$admin" -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$db\"" >/dev/null ||
			mg_die "postgres: could not create database $db"
	fi
}

ensure_postgres() {
	local url host port
	if [ -n "${MAILGATE_DATABASE_URL:-}" ]; then
		url=$MAILGATE_DATABASE_URL
	elif [ -n "${DATABASE_URL:-}" ]; then
		url=$DATABASE_URL
	else
		url=$MG_DEFAULT_DATABASE_URL
	fi
	export MAILGATE_DATABASE_URL=$url
	read -r host port < <(_mg_url_hostport "$url" 5432)
	_mg_pg_client_path

	if ! _mg_is_local_host "$host"; then
		_mg_pg_wait "$host" "$port" 10 || mg_die "postgres: $host:$port (from the database URL) is not reachable"
		mg_log "postgres: running on $host:$port"
	elif _mg_pg_ready 127.0.0.1 "$port"; then
		mg_log "postgres: running on 127.0.0.1:$port"
	elif _mg_pg_start_cluster "$port"; then
		mg_log "postgres: running on 127.0.0.1:$port"
	elif [ -z "$(_mg_pg_find_cluster "$port" 2>/dev/null)" ] && _mg_pg_install "$port"; then
		mg_log "postgres: running on 127.0.0.1:$port"
	elif _mg_pg_start_private "$port"; then
		mg_log "postgres: running on 127.0.0.1:$port"
	else
		mg_log "postgres: nothing listens on 127.0.0.1:$port and none could be started or installed."
		mg_log "postgres: start PostgreSQL yourself, or set MAILGATE_DATABASE_URL to one you have."
		exit 1
	fi

	if ! command -v psql >/dev/null 2>&1; then
		_mg_apt_install postgresql-client >/dev/null 2>&1 || true
	fi
	_mg_pg_create_db "$url"
}

# ---------------------------------------------------------------------------------------------
# Redis

_mg_redis_ready() {
	local host=$1 port=$2 out
	if command -v redis-cli >/dev/null 2>&1; then
		out=$(timeout 3 redis-cli -h "$host" -p "$port" ping 2>&1) || true
		[ "$out" = PONG ] || [[ $out == *NOAUTH* ]]
	else
		_mg_tcp_open "$host" "$port"
	fi
}

_mg_redis_wait() {
	local host=$1 port=$2 deadline=$((SECONDS + ${3:-30}))
	until _mg_redis_ready "$host" "$port"; do
		[ "$SECONDS" -lt "$deadline" ] || return 1
		sleep 0.5
	done
}

_mg_redis_start() {
	local port=$1 dir logdir logfile
	command -v redis-server >/dev/null 2>&1 || return 1
	if _mg_is_root; then
		dir=/var/lib/redis
		logdir=/var/log/redis
	else
		dir=$MAILGATE_ROOT/.data/redis
		logdir=$dir
	fi
	mkdir -p "$dir" "$logdir" || return 1
	logfile=$logdir/ci.log
	if [ "$port" != 6379 ]; then logfile=$logdir/ci-$port.log; fi
	mg_log "redis: starting redis-server on 127.0.0.1:$port (log $logfile)"
	redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$port" --save "" --appendonly no \
		--dir "$dir" --logfile "$logfile" >&2 || return 1
	_mg_redis_wait 127.0.0.1 "$port"
}

# Returns 1 (after saying why) when no Redis can be had; callers decide whether that's fatal.
ensure_redis() {
	local url host port
	if [ -n "${MAILGATE_REDIS_URL:-}" ]; then
		url=$MAILGATE_REDIS_URL
	elif [ -n "${REDIS_URL:-}" ]; then
		url=$REDIS_URL
	else
		url=$MG_DEFAULT_REDIS_URL
	fi
	read -r host port < <(_mg_url_hostport "$url" 6379)

	if ! _mg_is_local_host "$host"; then
		if ! _mg_redis_wait "$host" "$port" 10; then
			mg_warn "redis: $host:$port (from the Redis URL) is not reachable"
			return 1
		fi
	elif _mg_redis_ready 127.0.0.1 "$port"; then
		:
	else
		if ! command -v redis-server >/dev/null 2>&1; then
			mg_log "redis: redis-server not found; installing it from apt"
			if ! _mg_apt_install redis-server; then
				mg_warn "redis: redis-server is not installed and could not be installed"
				return 1
			fi
			# Some images start it on install.
			_mg_redis_ready 127.0.0.1 "$port" || true
		fi
		if ! _mg_redis_ready 127.0.0.1 "$port" && ! _mg_redis_start "$port"; then
			mg_warn "redis: could not start redis-server on 127.0.0.1:$port"
			return 1
		fi
	fi
	export MAILGATE_REDIS_URL=$url
	mg_log "redis: running on $host:$port"
}

# ---------------------------------------------------------------------------------------------
# Tools the integration tests and benchmarks drive. A test whose tool is missing fails (it
# never skips), so this installs what is missing and stops, naming it, when it cannot.

# Whether redis-server was built with TLS (tests/tls needs `--tls-port`): Debian builds it
# against libssl; a build without TLS does not link it.
_mg_redis_has_tls() {
	# Read ldd's whole answer before matching: with pipefail, `ldd | grep -q` fails when grep
	# exits at the match and ldd's next line (it writes one line at a time) meets a closed pipe
	# (SIGPIPE). Under load that happened 4 times in 500, and once it stopped CI.
	local libs
	libs=$(ldd "$(readlink -f "$(command -v redis-server)")" 2>/dev/null) || return 1
	[[ $libs == *libssl* ]]
}

ensure_tools_for_tests() {
	local pkgs=() missing=() tool want_postfix=0 postfix_was_installed=0
	# smtp-sink and smtp-source live in /usr/sbin, often not on a non-root PATH.
	case ":$PATH:" in *:/usr/sbin:*) ;; *) export PATH="$PATH:/usr/sbin" ;; esac

	command -v swaks >/dev/null 2>&1 || pkgs+=(swaks)
	if ! command -v smtp-sink >/dev/null 2>&1 || ! command -v smtp-source >/dev/null 2>&1; then
		pkgs+=(postfix)
		want_postfix=1
	fi
	command -v python3 >/dev/null 2>&1 || pkgs+=(python3)
	command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
	command -v redis-server >/dev/null 2>&1 || pkgs+=(redis-server)
	# tests/tls runs initdb and postgres itself, with ssl on.
	compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || pkgs+=(postgresql)
	command -v systemd-analyze >/dev/null 2>&1 || pkgs+=(systemd)
	# tests/api/dane.rs signs a test zone (ldns-keygen, ldns-signzone) and serves it (nsd).
	command -v ldns-signzone >/dev/null 2>&1 || pkgs+=(ldnsutils)
	command -v nsd >/dev/null 2>&1 || pkgs+=(nsd)
	if [ "${#pkgs[@]}" -gt 0 ]; then
		if ! command -v apt-get >/dev/null 2>&1 || ! _mg_is_root; then
			mg_die "tools: missing ${pkgs[*]} and cannot install them here (needs root and apt-get): install them (Debian: apt-get install ${pkgs[*]}) and run again"
		fi
		if [ "$want_postfix" = 1 ]; then
			if dpkg -s postfix >/dev/null 2>&1; then postfix_was_installed=1; fi
			if command -v debconf-set-selections >/dev/null 2>&1; then
				echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
			fi
		fi
		_mg_apt_install "${pkgs[@]}" || mg_die "tools: apt-get install ${pkgs[*]} failed"
		# We only want postfix's tools, not an MTA on port 25.
		if [ "$want_postfix" = 1 ] && [ "$postfix_was_installed" = 0 ]; then
			postfix stop >/dev/null 2>&1 || true
			if command -v service >/dev/null 2>&1; then service postfix stop >/dev/null 2>&1 || true; fi
		fi
		mg_log "tools: installed ${pkgs[*]}"
	fi
	for tool in swaks smtp-sink smtp-source python3 openssl redis-server systemd-analyze ldns-keygen ldns-signzone nsd; do
		command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
	done
	compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(initdb)
	# Debian's redis-server is built with TLS; a build without it cannot run tests/tls.
	if ! _mg_redis_has_tls; then
		mg_die "tools: this redis-server has no TLS support (tests/tls needs --tls-port): install Debian's redis-server"
	fi
	if [ "${#missing[@]}" -gt 0 ]; then
		mg_die "tools: ${missing[*]} still not on PATH after installing ${pkgs[*]}"
	fi
	mg_log "tools: swaks, smtp-sink, smtp-source, python3, openssl, redis-server (TLS), initdb, systemd-analyze, ldns-signzone, nsd present"
	_mg_ensure_dkimpy
}

# Headless Chromium and its WebDriver, which the console's tests (tests/console) drive. Only
# Debian's packages: nothing downloads a browser of its own.
ensure_browser() {
	if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
		mg_log "browser: chromium and chromedriver present"
		return 0
	fi
	if ! command -v apt-get >/dev/null 2>&1 || ! _mg_is_root; then
		mg_die "browser: chromium or chromedriver missing and cannot install them here (needs root and apt-get): apt-get install chromium chromium-driver"
	fi
	_mg_apt_install chromium chromium-driver fonts-dejavu-core ||
		mg_die "browser: apt-get install chromium chromium-driver failed"
	command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 ||
		mg_die "browser: chromium or chromedriver still not on PATH after installing them"
	mg_log "browser: installed chromium and chromium-driver"
}

# dkimpy (with PyNaCl for Ed25519) checks mailgate's DKIM signatures independently. It must
# import into the python3 on PATH, which the tests run: pip first (pyenv, venvs), then
# Debian's packages (a system python3 refuses pip installs).
_mg_ensure_dkimpy() {
	if python3 -c 'import dkim, nacl' >/dev/null 2>&1; then
		mg_log "tools: dkimpy present"
		return 0
	fi
	if python3 -m pip install --quiet dkimpy pynacl >&2; then
		:
	elif _mg_apt_install python3-dkim python3-nacl; then
		:
	fi
	if ! python3 -c 'import dkim, nacl' >/dev/null 2>&1; then
		mg_die "tools: dkimpy and pynacl do not import into $(command -v python3): install them (python3 -m pip install dkimpy pynacl, or apt-get install python3-dkim python3-nacl) and run again"
	fi
	mg_log "tools: installed dkimpy, pynacl"
}

# ---------------------------------------------------------------------------------------------
# Tools from PyPI (CI fails without them: they check the API and its spec).

# ensure_pypi_tool CMD [PACKAGE]: CMD on PATH, installed with pip from PACKAGE (default CMD).
ensure_pypi_tool() {
	local cmd=$1 pkg=${2:-$1}
	if command -v "$cmd" >/dev/null 2>&1; then
		return 0
	fi
	command -v python3 >/dev/null 2>&1 || _mg_apt_install python3 python3-pip ||
		mg_die "$cmd: python3 is needed to install it from PyPI"
	mg_log "$cmd: installing $pkg from PyPI"
	python3 -m pip install -q --disable-pip-version-check "$pkg" >&2 ||
		python3 -m pip install -q --disable-pip-version-check --break-system-packages "$pkg" >&2 ||
		mg_die "$cmd: could not install $pkg with pip"
	# pip --user puts scripts in ~/.local/bin, not always on PATH.
	case ":$PATH:" in *":$HOME/.local/bin:"*) ;; *) export PATH="$PATH:$HOME/.local/bin" ;; esac
	command -v "$cmd" >/dev/null 2>&1 || mg_die "$cmd: installed $pkg but $cmd is not on PATH"
}

# ---------------------------------------------------------------------------------------------
# Content scanners for the tests: a private rspamd (built-in rules, offline) and a private
# clamd whose only signature is the standard EICAR test string (ClamAV cannot download its
# databases here). Both listen on loopback ports of their own and are left running, like the
# private Postgres and Redis, so the next run reuses them. rspamd takes about 25 s to load its
# rules, so scripts/test starts it first and waits for it just before the tests.

MG_SCANNERS_DIR="${TMPDIR:-/tmp}/mailgate-scanners"
MG_RSPAMD_PORT=11433
MG_CLAMD_PORT=3410
MG_DNS_PORT=11453

_mg_rspamd_ready() {
	local answer
	answer=$(curl -fsS --max-time 2 "http://127.0.0.1:$MG_RSPAMD_PORT/ping" 2>/dev/null) || return 1
	[[ $answer == *pong* ]]
}
_mg_udp_dns_ready() {
	python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1)
s.sendto(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01a\x00\x00\x01\x00\x01", ("127.0.0.1", int(sys.argv[1])))
sys.exit(0 if s.recv(512)[:2] == b"\x12\x34" else 1)
' "$MG_DNS_PORT" 2>/dev/null
}
_mg_clamd_ready() {
	python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
s.sendall(b"zPING\0")
sys.exit(0 if s.recv(16).startswith(b"PONG") else 1)
' "$MG_CLAMD_PORT" 2>/dev/null
}

scanners_start() {
	local pkgs=() user_args=()
	command -v rspamd >/dev/null 2>&1 || pkgs+=(rspamd)
	command -v clamd >/dev/null 2>&1 || pkgs+=(clamav-daemon)
	command -v sigtool >/dev/null 2>&1 || pkgs+=(clamav)
	if [ "${#pkgs[@]}" -gt 0 ]; then
		_mg_apt_install "${pkgs[@]}" ||
			mg_die "scanners: missing ${pkgs[*]} and cannot install them here: apt-get install ${pkgs[*]}"
	fi
	mkdir -p "$MG_SCANNERS_DIR/clamdb"
	if ! _mg_clamd_ready; then
		# The EICAR test string, as every antivirus knows it, is clamd's only signature: a body
		# pattern (.ndb, made with sigtool), so it matches however a message encodes the file.
		rm -f "$MG_SCANNERS_DIR/clamdb/"*
		echo "Mailgate.Test.EICAR:0:*:$(printf '%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*' |
			sigtool --hex-dump)" >"$MG_SCANNERS_DIR/clamdb/eicar.ndb"
		{
			echo "DatabaseDirectory $MG_SCANNERS_DIR/clamdb"
			echo "TCPSocket $MG_CLAMD_PORT"
			echo "TCPAddr 127.0.0.1"
			echo "LogFile $MG_SCANNERS_DIR/clamd.log"
			echo "PidFile $MG_SCANNERS_DIR/clamd.pid"
			echo "Foreground no"
			echo "User $(id -un)"
		} >"$MG_SCANNERS_DIR/clamd.conf"
		mg_log "scanners: starting clamd on 127.0.0.1:$MG_CLAMD_PORT (log $MG_SCANNERS_DIR/clamd.log)"
		clamd -c "$MG_SCANNERS_DIR/clamd.conf" >>"$MG_SCANNERS_DIR/clamd.out" 2>&1 ||
			mg_die "scanners: clamd did not start; see $MG_SCANNERS_DIR/clamd.log"
	fi
	# Offline, rspamd's DNS checks (RBLs, MX lookups) go to the machine's resolver, which
	# answers them slowly or not at all: every scan then stalls up to its 1 s DNS timeout. A
	# stand-in for a local caching resolver answers every query NXDOMAIN at once.
	if ! _mg_udp_dns_ready; then
		cat >"$MG_SCANNERS_DIR/nxdns.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
while True:
    data, addr = s.recvfrom(4096)
    if len(data) >= 12:
        # Same id and question; a response (QR), recursion available, NXDOMAIN, no records.
        s.sendto(data[:2] + b"\x81\x83" + data[4:6] + bytes(6) + data[12:], addr)
PY
		nohup python3 "$MG_SCANNERS_DIR/nxdns.py" "$MG_DNS_PORT" >/dev/null 2>&1 &
	fi
	if ! _mg_rspamd_ready; then
		mkdir -p "$MG_SCANNERS_DIR/local.d"
		printf 'dns { nameserver = ["127.0.0.1:%s"]; timeout = 1s; retransmits = 0; }\n' "$MG_DNS_PORT" \
			>"$MG_SCANNERS_DIR/local.d/options.inc"
		# shellcheck disable=SC2016 # rspamd expands its own $VARIABLES
		{
			echo '.include "$CONFDIR/common.conf"'
			echo 'options { pidfile = "$RUNDIR/rspamd.pid"; .include "$CONFDIR/options.inc"'
			echo '    .include(try=true; priority=1,duplicate=merge) "$LOCAL_CONFDIR/local.d/options.inc" }'
			echo 'logging { type = "file"; filename = "$LOGDIR/rspamd.log"; level = "error"; }'
			echo "worker \"normal\" { bind_socket = \"127.0.0.1:$MG_RSPAMD_PORT\";"
			echo '    .include "$CONFDIR/worker-normal.inc"'
			echo '}'
		} >"$MG_SCANNERS_DIR/rspamd.conf"
		if _mg_is_root; then user_args=(-u root -g root -i); fi
		mg_log "scanners: starting rspamd on 127.0.0.1:$MG_RSPAMD_PORT (loading its rules takes a while)"
		rspamd -c "$MG_SCANNERS_DIR/rspamd.conf" "${user_args[@]}" \
			--var CONFDIR=/etc/rspamd --var LOCAL_CONFDIR="$MG_SCANNERS_DIR" \
			--var RUNDIR="$MG_SCANNERS_DIR" --var LOGDIR="$MG_SCANNERS_DIR" --var DBDIR="$MG_SCANNERS_DIR" \
			--var PLUGINSDIR=/usr/share/rspamd/plugins --var RULESDIR=/usr/share/rspamd/rules \
			--var LUALIBDIR=/usr/share/rspamd/lualib --var SHAREDIR=/usr/share/rspamd \
			--var WWWDIR=/usr/share/rspamd/www >>"$MG_SCANNERS_DIR/rspamd.out" 2>&1 ||
			mg_die "scanners: rspamd did not start; see $MG_SCANNERS_DIR/rspamd.out"
	fi
	export MAILGATE_TEST_RSPAMD_URL="http://127.0.0.1:$MG_RSPAMD_PORT"
	export MAILGATE_TEST_CLAMD_ADDR="127.0.0.1:$MG_CLAMD_PORT"
}

scanners_wait() {
	local deadline=$((SECONDS + 120))
	until _mg_rspamd_ready && _mg_clamd_ready; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			mg_die "scanners: rspamd or clamd did not answer within 120 s; see $MG_SCANNERS_DIR/*.log"
		fi
		sleep 1
	done
	mg_log "scanners: rspamd $MAILGATE_TEST_RSPAMD_URL and clamd $MAILGATE_TEST_CLAMD_ADDR answer"
}
