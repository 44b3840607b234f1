#!/usr/bin/env bash
# Renders per second of the example receipt template with a warm cache (compiled once,
# rendered many times on one thread), in release mode. Usage: bench/templates.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(uname -m), $(nproc) cores, $(rustc --version)"
exec cargo run --release --quiet --example render_bench -- "$@"
