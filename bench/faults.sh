#!/usr/bin/env bash
# The fault suite (tests/faults.rs) in a release build, one fault at a time, and its summary:
# one `fault <name>: accepted A, delivered D, lost L, duplicated X` line per fault.
# Needs what the tests need: the shared Postgres (for databases per test), redis-server and
# the PostgreSQL server binaries (private instances are started and removed by the tests).
# Usage: bench/faults.sh [test name filter]
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$MAILGATE_ROOT"

ensure_rust
target_dir
ensure_postgres
ensure_redis || mg_warn "redis: none on 6379; the in-process faults use per-process limits"
export MAILGATE_TEST_DATABASE_URL="${MAILGATE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

log="${TMPDIR:-/tmp}/mailgate-faults.log"
mg_log "==> cargo test --release --test faults -- --nocapture --test-threads=1 $*"
status=0
cargo test --release --test faults -- --nocapture --test-threads=1 "$@" 2>&1 | tee "$log" || status=$?
echo
echo "Fault suite (full output in $log):"
grep -E '^(test )?.*fault [a-z_]+: accepted' "$log" | sed -E 's/^.*(fault [a-z_]+: )/\1/' || true
grep -E '^test result:' "$log" || true
exit "$status"
