#!/usr/bin/env bash
# Every test: unit tests, and integration tests that drive the real binary against a
# throw-away PostgreSQL cluster (or DBFLOW_TEST_PG_URL) and real SQLite, plus the
# example project's own checks (the Workflowfile validates, the generated docs are fresh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/prereqs.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Lints first (warnings are errors): cheap next to the tests, which reuse the build scripts.
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked --lib --bins --tests 2>&1 | tee "$log"
target/debug/dbflow validate
target/debug/dbflow docs --check
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
