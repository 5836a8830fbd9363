#!/usr/bin/env bash
# Every test: unit tests, and integration tests that drive the real binary against a
# throw-away PostgreSQL cluster (or DBFLOW_TEST_PG_URL) and real SQLite, plus the
# example project's own checks.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/prereqs.sh
cargo test --locked
target/debug/dbflow validate
target/debug/dbflow docs --check
