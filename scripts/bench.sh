#!/usr/bin/env bash
# Every benchmark (for now, the migration linter's: scripts/bench-lint.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
exec scripts/bench-lint.sh "$@"
