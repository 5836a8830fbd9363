#!/usr/bin/env bash
# Benchmarks, reported as ratios against baselines measured in the same run.
#
#   scripts/bench.sh [migrations|workflow|docs|lint|backup]…   (default: migrations docs lint; backup builds a ~500 MB pgbench database)
#
# Starts its own throw-away PostgreSQL cluster (default settings: fsync on, so commit
# costs are real) unless DBFLOW_BENCH_PG_URL points at a server (its database is used as
# the admin database). Needs hyperfine (`apt-get install hyperfine`) and a release build
# (DBFLOW_BENCH_BIN=path runs that binary instead, e.g. to compare two builds).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
sections=("$@")
[ ${#sections[@]} -gt 0 ] || sections=(migrations docs lint)

command -v hyperfine >/dev/null || { echo "hyperfine is required: apt-get install -y hyperfine" >&2; exit 1; }
if [ -n "${DBFLOW_BENCH_BIN:-}" ]; then
  dbflow=$DBFLOW_BENCH_BIN
else
  cargo build --release --locked --quiet
  dbflow="$root/target/release/dbflow"
fi
work=$(mktemp -d /tmp/dbflow-bench.XXXXXX)
chmod 755 "$work"
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
export PATH="$pgbin:$PATH"

cleanup() {
  if [ -n "${started_cluster:-}" ]; then
    as_pg "$pgbin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

if [ -n "${DBFLOW_BENCH_PG_URL:-}" ]; then
  admin_url=$DBFLOW_BENCH_PG_URL
else
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  [ "$(id -u)" = 0 ] && chown postgres "$work"
  as_pg "$pgbin/initdb" -D "$work/data" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
  as_pg "$pgbin/pg_ctl" -D "$work/data" -l "$work/pg.log" -w -o "-p $port -k $work -c listen_addresses=127.0.0.1" start >/dev/null
  started_cluster=1
  admin_url="postgres://postgres@127.0.0.1:$port/postgres"
fi
db_url() { echo "${admin_url%/*}/$1"; }
recreate() { psql -X -q "$admin_url" -c "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" -c "CREATE DATABASE \"$1\""; }
peak_rss_mib() { /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -1 | awk '{printf "%.1f", $1/1024}'; }
ratio() { python3 -c "import json,sys; a=json.load(open('$1'))['results']; print(f'{a[1][\"mean\"]/a[0][\"mean\"]:.2f}x  ({a[1][\"mean\"]*1000:.1f} ms vs {a[0][\"mean\"]*1000:.1f} ms)')"; }

write_migrations() {
  local project=$1
  mkdir -p "$project/prisma/migrations"
  : > "$work/all.sql"
  for i in $(seq -w 1 500); do
    local dir="$project/prisma/migrations/2024010100${i}_m${i}"
    mkdir -p "$dir"
    printf 'CREATE TABLE "t%s" (\n    "id" INTEGER NOT NULL PRIMARY KEY,\n    "name" TEXT NOT NULL DEFAULT '"'"''"'"',\n    "created_at" TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP\n);\nCREATE INDEX "t%s_name_idx" ON "t%s"("name");\n' "$i" "$i" "$i" > "$dir/migration.sql"
    cat "$dir/migration.sql" >> "$work/all.sql"
  done
}

bench_migrations() {
  local project="$work/migrations"
  write_migrations "$project"
  printf 'environments:\n  bench:\n    url: ${DATABASE_URL}\n    protection: sandbox\n' > "$project/Workflowfile.yaml"
  local url; url=$(db_url bench_deploy)
  echo "== migrate deploy: 500 migrations on an empty database"
  hyperfine --warmup 1 --runs 10 --export-json "$work/deploy.json" \
    --prepare "psql -X -q '$admin_url' -c 'DROP DATABASE IF EXISTS bench_deploy WITH (FORCE)' -c 'CREATE DATABASE bench_deploy'" \
    -n "psql -1 (baseline)" "psql -X -q -1 -v ON_ERROR_STOP=1 -f $work/all.sql '$url'" \
    -n "dbflow migrate deploy" "cd $project && DATABASE_URL='$url' $dbflow migrate deploy >/dev/null"
  echo "deploy ratio: $(ratio "$work/deploy.json")"
  recreate bench_deploy
  echo "deploy peak RSS: $(cd "$project" && DATABASE_URL="$url" peak_rss_mib "$dbflow" migrate deploy) MiB"

  echo "== migrate status on the up-to-date database"
  hyperfine --warmup 3 --runs 30 --export-json "$work/status.json" \
    -n "psql -c 'select 1' (baseline)" "psql -X -q -c 'select 1' '$url'" \
    -n "dbflow migrate status" "cd $project && DATABASE_URL='$url' $dbflow migrate status >/dev/null"
  echo "status ratio: $(ratio "$work/status.json")"
  echo "status peak RSS: $(cd "$project" && DATABASE_URL="$url" peak_rss_mib "$dbflow" migrate status) MiB"
}

bench_workflow() {
  # The whole deploy workflow (guard → status → backup → deploy → verify) on 500 pending
  # migrations: what one run repeats (reading the folder, connecting, linting) shows here.
  local project="$work/workflow"
  write_migrations "$project"
  printf 'environments:\n  bench:\n    url: ${DATABASE_URL}\n    protection: sandbox\nworkflows:\n  release:\n    steps:\n      - guard: {}\n      - status: { fail_on: [failed, modified] }\n      - backup: {}\n      - deploy: {}\n      - verify: { checks: [ { name: clean, status_clean: true } ] }\n' > "$project/Workflowfile.yaml"
  local url; url=$(db_url bench_workflow)
  echo "== run release (guard, status, backup, deploy, verify): 500 pending migrations"
  hyperfine --warmup 1 --runs 10 --export-json "$work/workflow.json" \
    --prepare "psql -X -q '$admin_url' -c 'DROP DATABASE IF EXISTS bench_workflow WITH (FORCE)' -c 'CREATE DATABASE bench_workflow' && rm -rf $project/.dbflow" \
    -n "psql -1 (baseline)" "psql -X -q -1 -v ON_ERROR_STOP=1 -f $work/all.sql '$url'" \
    -n "dbflow run release" "cd $project && DATABASE_URL='$url' $dbflow run release >/dev/null"
  echo "workflow ratio: $(ratio "$work/workflow.json")"
}

bench_docs() {
  # 10 environments x 50 workflows of 5 steps, every shipped template.
  local project="$work/docs"
  mkdir -p "$project"
  {
    echo "project: big"
    echo "environments:"
    for e in $(seq 1 10); do
      printf '  env%s:\n    url: postgres://app:pw@db%s.internal:5432/app\n    protection: %s\n' "$e" "$e" "$([ "$e" -le 3 ] && echo sandbox || echo shared)"
    done
    echo "tasks:"
    echo "  build: { command: npm, args: [run, build], description: Build }"
    echo "workflows:"
    for w in $(seq 1 50); do
      printf '  wf%s:\n    description: Workflow %s\n    steps:\n      - status: { fail_on: [failed] }\n      - task: build\n      - shell: echo step %s\n      - deploy: {}\n      - verify: { checks: [ { name: clean, status_clean: true } ] }\n' "$w" "$w" "$w"
    done
  } > "$project/Workflowfile.yaml"
  echo "== docs: 10 environments x 50 workflows, every shipped template"
  hyperfine --warmup 2 --runs 20 --export-json "$work/docs.json" \
    -n "dbflow validate (loading only, baseline)" "cd $project && $dbflow validate >/dev/null" \
    -n "dbflow docs" "cd $project && $dbflow docs --out $work/docs-out >/dev/null"
  echo "docs vs loading: $(ratio "$work/docs.json")"
  python3 -c "import json; r=json.load(open('$work/docs.json'))['results'][1]; print(f'docs mean {r[\"mean\"]*1000:.1f} ms (goal: under 100 ms)')"
}

for section in "${sections[@]}"; do
  case "$section" in
    migrations) bench_migrations ;;
    workflow) bench_workflow ;;
    docs) bench_docs ;;
    *) if [ -x "scripts/bench-$section.sh" ]; then "scripts/bench-$section.sh"; else echo "unknown section: $section" >&2; exit 2; fi ;;
  esac
done
