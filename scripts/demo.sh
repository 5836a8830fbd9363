#!/usr/bin/env bash
# The quick-start: builds dbflow and runs the example project's deploy workflow on the
# `local` environment (embedded SQLite, no server needed). Run it twice: the second run
# finds nothing to apply.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/prereqs.sh
cargo build --quiet --locked
exec target/debug/dbflow run deploy --env local "$@"
