#!/usr/bin/env bash
# Benchmark of the migration linter: lints 1,000 generated Prisma-layout migrations
# (~5 MB of SQL, built from the lint corpus in tests/fixtures/lint) with hyperfine.
# Target: under one second on CI's 2 cores.
# --static: the linter alone (with --env it would first try the database of `production`).
#
#   scripts/bench-lint.sh            # build --release, generate, benchmark
#   KEEP=1 scripts/bench-lint.sh     # keep the generated project (path printed)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "hyperfine is needed: apt-get install -y hyperfine" >&2; exit 1; }
scripts/prereqs.sh
cargo build --release --locked --quiet
bin="$PWD/target/release/dbflow"

dir=$(mktemp -d "${TMPDIR:-/tmp}/dbflow-bench-lint.XXXXXX")
[ -n "${KEEP:-}" ] || trap 'rm -rf "$dir"' EXIT

# Every corpus file except the two deliberately broken ones (an unterminated string
# would swallow the rest of a concatenated file).
fixtures=()
for f in tests/fixtures/lint/*.sql tests/fixtures/lint/prisma-deploy/*.sql; do
  case "$f" in *syntax_error*|*unterminated*) continue ;; esac
  fixtures+=("$f")
done

# 1,000 migrations of ~5 KB each: corpus files concatenated, each file starting at a
# different one, until the migration reaches 5,000 bytes.
awk -v dir="$dir/prisma/migrations" -v files=1000 -v target=5000 '
  FNR == 1 { n++ }
  { content[n] = content[n] $0 "\n" }
  END {
    for (i = 1; i <= files; i++) {
      folder = sprintf("%s/2024%08d_generated_%04d", dir, i, i)
      system("mkdir -p " folder)
      out = folder "/migration.sql"
      size = 0
      for (k = 0; size < target; k++) {
        c = content[((i * 7 + k) % n) + 1]
        printf "%s\n", c > out
        size += length(c) + 1
      }
      close(out)
    }
  }' "${fixtures[@]}"
printf 'provider = "postgresql"\n' > "$dir/prisma/migrations/migration_lock.toml"
printf 'environments:\n  production:\n    url: postgres://app@db/shop\n    protection: protected\n' > "$dir/Workflowfile.yaml"

files=$(find "$dir/prisma/migrations" -name migration.sql | wc -l)
bytes=$(cat "$dir"/prisma/migrations/*/migration.sql | wc -c)
echo "generated $files migrations, $bytes bytes of SQL in $dir"
(cd "$dir" && "$bin" lint --env production --static --json | grep -A6 '"summary"' || true)

cd "$dir"
# Findings make `dbflow lint` exit 1 on purpose: --ignore-failure.
hyperfine --warmup 2 --runs 10 --ignore-failure \
  --export-markdown "$dir/bench-lint.md" \
  "$bin lint --env production --static"
[ -z "${KEEP:-}" ] || echo "kept: $dir"
