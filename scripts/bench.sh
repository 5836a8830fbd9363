#!/usr/bin/env bash
# Benchmarks, reported as ratios against baselines measured in the same run.
#
#   scripts/bench.sh [migrations|workflow|docs|site|lint|backup|scale|scale-20000|fleet]…   (default: migrations docs lint; backup builds a ~500 MB pgbench database)
#
# site: `dbflow docs --site` (every runbook and drill page as HTML, every workflow's flowchart
# as SVG) for 10 environments x 50 workflows, against `dbflow validate` in the same run.
#
# fleet: 200 tenant databases × 20 pending migrations (DBFLOW_BENCH_FLEET_TARGETS,
# DBFLOW_BENCH_FLEET_MIGRATIONS), `dbflow run migrate --concurrency 8` over the fleet against a
# shell loop of `dbflow migrate deploy` per tenant (and `npx prisma migrate deploy` when Prisma
# is installed); prints both times, the ratio and the fleet run's peak RSS.
#
# scale: status (on an idle and on a busy server), deploy and lint at N = 50, 500, 5,000 migrations (scale-20000: also 20,000, whose
# set-up takes minutes; DBFLOW_BENCH_SCALE_SIZES="…" for any sizes), against
# `psql -c 'select 1'` and dbmate (its binary from the npm package, installed into
# ~/.cache/dbflow-bench on first use) in the same run; DBFLOW_BENCH_BASE_BIN=path adds the
# same columns for a second build (before/after in one run).
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

bench_site() {
  # 10 environments (sandbox, shared, protected) x 50 workflows of 7 steps each, with a
  # `when` condition, a question, a failure handler that restores, backup/deploy/verify.
  local project="$work/site"
  mkdir -p "$project"
  {
    echo "project: big"
    echo "contacts: { on_call: '#oncall', escalation: [lead, cto] }"
    echo "backups: { stop_writes: maintenance, switch_to_restored: cut-over }"
    echo "environments:"
    for e in $(seq 1 10); do
      printf '  env%s:\n    url: ${ENV%s_DATABASE_URL:-postgres://app@db%s.internal:5432/app}\n    protection: %s\n' "$e" "$e" "$e" \
        "$([ "$e" -le 3 ] && echo sandbox || { [ "$e" -le 8 ] && echo shared || echo protected; })"
    done
    echo "tasks:"
    echo "  build: { command: npm, args: [run, build], description: Build }"
    echo "  maintenance: { script: echo maintenance on, description: Maintenance mode }"
    echo "  cut-over: { script: echo cut over, description: Point the app at the copy }"
    echo "workflows:"
    echo "  undo: { description: Roll back, steps: [ { rollback: {} } ] }"
    for w in $(seq 1 49); do
      printf '  wf%s:\n    description: Workflow %s\n    on_failure: undo\n    steps:\n      - status: { fail_on: [failed] }\n      - task: build\n      - name: Ask\n        when: { protection: [shared, protected] }\n        confirm: Go on with %s?\n      - backup: { label: wf%s }\n      - deploy: {}\n      - verify: { checks: [ { name: clean, status_clean: true }, { name: up, http: { url: "https://app.example/health" } } ] }\n      - shell: echo step %s\n' "$w" "$w" "$w" "$w" "$w"
    done
  } > "$project/Workflowfile.yaml"
  (cd "$project" && "$dbflow" validate >/dev/null)
  echo "== site: 10 environments x 50 workflows, HTML pages with every flowchart as SVG"
  hyperfine --warmup 2 --runs 20 --export-json "$work/site.json" \
    -n "dbflow validate (loading only, baseline)" "cd $project && $dbflow validate >/dev/null" \
    -n "dbflow docs --site" "cd $project && $dbflow docs --site $work/site-out >/dev/null"
  echo "site vs loading: $(ratio "$work/site.json")"
  python3 -c "import json; r=json.load(open('$work/site.json'))['results'][1]; print(f'site mean {r[\"mean\"]*1000:.1f} ms (goal: under 200 ms)')"
  echo "pages: $(ls "$work/site-out" | wc -l), $(du -sh "$work/site-out" | cut -f1), $(cat "$work"/site-out/runbook-*.html | grep -c '<svg ') flowcharts"
}

# N migrations in bench_migrations' workload (one table and one index each), written by one
# process: a shell loop spends minutes on 20,000 folders. With a third argument, the same
# scripts also in dbmate's layout there (`<version>_<name>.sql` with a `-- migrate:up` section).
write_n_migrations() {
  python3 - "$1/prisma/migrations" "$2" "${3:-}" <<'PY'
import os, sys
root, n, dbmate = sys.argv[1], int(sys.argv[2]), sys.argv[3]
width = len(str(n))
if dbmate:
    os.makedirs(dbmate, exist_ok=True)
for i in range(1, n + 1):
    k = str(i).zfill(width)
    name = f"2024{i:010d}_m{k}"
    d = os.path.join(root, name)
    os.makedirs(d)
    sql = (f'CREATE TABLE "t{k}" (\n    "id" INTEGER NOT NULL PRIMARY KEY,\n    "name" TEXT NOT NULL DEFAULT \'\',\n'
           f'    "created_at" TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP\n);\nCREATE INDEX "t{k}_name_idx" ON "t{k}"("name");\n')
    with open(os.path.join(d, "migration.sql"), "w") as f:
        f.write(sql)
    if dbmate:
        with open(os.path.join(dbmate, f"{name}.sql"), "w") as f:
            f.write("-- migrate:up\n" + sql + "\n-- migrate:down\n")
PY
}

mean_ms() { python3 -c "import json; r=json.load(open('$1'))['results']; print(f'{r[$2][\"mean\"]*1000:.1f}')"; }

# dbmate's own binary from its npm package (the package ships it), installed once into a
# cache directory outside the repository; empty when npm is missing or the install fails
# (its columns are then left out, with a note). DBFLOW_BENCH_DBMATE=path uses that binary.
dbmate_bin() {
  if [ -n "${DBFLOW_BENCH_DBMATE:-}" ]; then echo "$DBFLOW_BENCH_DBMATE"; return; fi
  local cache="${XDG_CACHE_HOME:-$HOME/.cache}/dbflow-bench/dbmate" bin
  bin=$(find "$cache/node_modules/@dbmate" -path '*/bin/dbmate' -type f 2>/dev/null | head -1)
  if [ -z "$bin" ] && command -v npm >/dev/null; then
    mkdir -p "$cache"
    npm install --silent --no-audit --no-fund --prefix "$cache" dbmate >/dev/null 2>&1 || true
    bin=$(find "$cache/node_modules/@dbmate" -path '*/bin/dbmate' -type f 2>/dev/null | head -1)
  fi
  # The native binary, not node_modules/.bin/dbmate (a node script: node's start-up is not dbmate's).
  [ -n "$bin" ] && "$bin" --version >/dev/null 2>&1 && echo "$bin"
}

# scale "N…": status and deploy at each N, with psql's `select 1` and dbmate in the same run.
bench_scale() {
  local sizes=(${DBFLOW_BENCH_SCALE_SIZES:-$1})
  local base=${DBFLOW_BENCH_BASE_BIN:-}
  local dbmate; dbmate=$(dbmate_bin || true)
  [ -n "$dbmate" ] || echo "note: dbmate is not available (npm install dbmate failed): its columns are left out" >&2
  local rows=()
  for n in "${sizes[@]}"; do
    local project="$work/scale-$n" db="bench_scale_$n" mdb="bench_scale_dbmate_$n"
    write_n_migrations "$project" "$n" "${dbmate:+$work/dbmate-$n}"
    printf 'environments:\n  bench:\n    url: ${DATABASE_URL}\n    protection: sandbox\n' > "$project/Workflowfile.yaml"
    local url; url=$(db_url "$db")
    local murl; murl="$(db_url "$mdb")?sslmode=disable"
    # Small N: hyperfine means of 5 deploys. From 5,000 on (minutes per deploy): the one
    # deploy that also measures the peak RSS, timed.
    local base_deploy_rss="" base_status_rss="" dbmate_up_ms="" dbmate_up_rss="" dbmate_status_rss=""
    local deploy_ms="" base_deploy_ms="" t0
    if [ "$n" -lt 5000 ]; then
      echo "== scale N=$n: migrate deploy on an empty database (5 runs)"
      local deploy_cmds=(-n "dbflow migrate deploy" "cd $project && DATABASE_URL='$url' $dbflow migrate deploy >/dev/null")
      [ -n "$base" ] && deploy_cmds+=(-n "base migrate deploy" "cd $project && DATABASE_URL='$url' $base migrate deploy >/dev/null")
      hyperfine --runs 5 --export-json "$work/scale-deploy-$n.json" \
        --prepare "psql -X -q '$admin_url' -c 'DROP DATABASE IF EXISTS $db WITH (FORCE)' -c 'CREATE DATABASE $db' && rm -rf $project/.dbflow" \
        "${deploy_cmds[@]}" >/dev/null
      deploy_ms=$(mean_ms "$work/scale-deploy-$n.json" 0)
      [ -n "$base" ] && base_deploy_ms=$(mean_ms "$work/scale-deploy-$n.json" 1)
    fi
    echo "== scale N=$n: migrate deploy on an empty database, peak RSS"
    if [ -n "$base" ]; then
      recreate "$db"; rm -rf "$project/.dbflow"
      t0=$(date +%s%N)
      base_deploy_rss=$(cd "$project" && DATABASE_URL="$url" peak_rss_mib "$base" migrate deploy)
      [ -n "$base_deploy_ms" ] || base_deploy_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    fi
    recreate "$db"; rm -rf "$project/.dbflow"
    t0=$(date +%s%N)
    local deploy_rss; deploy_rss=$(cd "$project" && DATABASE_URL="$url" peak_rss_mib "$dbflow" migrate deploy)
    [ -n "$deploy_ms" ] || deploy_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    local dm=(--no-dump-schema --migrations-dir "$work/dbmate-$n" --url "$murl")
    if [ -n "$dbmate" ]; then
      echo "== scale N=$n: dbmate up on an empty database (1 run)"
      recreate "$mdb"
      local t0; t0=$(date +%s%N)
      dbmate_up_rss=$(peak_rss_mib "$dbmate" "${dm[@]}" up)
      dbmate_up_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    fi
    echo "== scale N=$n: migrate status, all applied"
    local status_cmds=(-n "psql -c 'select 1'" "psql -X -q -c 'select 1' '$url'"
      -n "dbflow migrate status" "cd $project && DATABASE_URL='$url' $dbflow migrate status >/dev/null")
    [ -n "$dbmate" ] && status_cmds+=(-n "dbmate status" "$dbmate ${dm[*]} status >/dev/null")
    [ -n "$base" ] && status_cmds+=(-n "base migrate status" "cd $project && DATABASE_URL='$url' $base migrate status >/dev/null")
    hyperfine --warmup 3 --runs 20 --export-json "$work/scale-status-$n.json" "${status_cmds[@]}" >/dev/null
    # The same status on a busy server: another session commits a transaction about every
    # 2 ms (no catalog change), so no commit horizon repeats and every status reads the
    # catalog token in full (what a production database under traffic costs).
    echo "== scale N=$n: migrate status, all applied, on a busy server"
    psql -X -q "$admin_url" -c "DO \$\$ BEGIN LOOP PERFORM pg_current_xact_id(); COMMIT; PERFORM pg_sleep(0.002); END LOOP; END \$\$" >/dev/null 2>&1 &
    local busy=$!
    sleep 0.5
    hyperfine --warmup 3 --runs 20 --export-json "$work/scale-busy-$n.json" \
      -n "psql -c 'select 1' (busy)" "psql -X -q -c 'select 1' '$url'" \
      -n "dbflow migrate status (busy)" "cd $project && DATABASE_URL='$url' $dbflow migrate status >/dev/null" >/dev/null
    kill "$busy" 2>/dev/null; wait "$busy" 2>/dev/null || true
    psql -X -q "$admin_url" -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE 'DO %pg_current_xact_id%' AND pid <> pg_backend_pid()" >/dev/null
    local busy_psql_ms busy_status_ms
    busy_psql_ms=$(mean_ms "$work/scale-busy-$n.json" 0)
    busy_status_ms=$(mean_ms "$work/scale-busy-$n.json" 1)
    local status_rss; status_rss=$(cd "$project" && DATABASE_URL="$url" peak_rss_mib "$dbflow" migrate status)
    [ -n "$dbmate" ] && dbmate_status_rss=$(peak_rss_mib "$dbmate" "${dm[@]}" status)
    [ -n "$base" ] && base_status_rss=$(cd "$project" && DATABASE_URL="$url" peak_rss_mib "$base" migrate status)
    echo "== scale N=$n: lint, every migration of the history (static)"
    hyperfine --warmup 1 --runs 3 --export-json "$work/scale-lint-$n.json" -n "dbflow lint" "cd $project && $dbflow lint >/dev/null" >/dev/null
    local psql_ms status_ms lint_ms next=2
    psql_ms=$(mean_ms "$work/scale-status-$n.json" 0)
    status_ms=$(mean_ms "$work/scale-status-$n.json" 1)
    lint_ms=$(mean_ms "$work/scale-lint-$n.json" 0)
    local row; row=$(python3 -c "print(f'| {int($n):,} | $psql_ms ms | $status_ms ms ({$status_ms/$psql_ms:.2f}×) | $busy_status_ms ms ({$busy_status_ms/$busy_psql_ms:.2f}× $busy_psql_ms ms) | $status_rss MiB | {$deploy_ms/1000:.2f} s | $deploy_rss MiB | $lint_ms ms |', end='')")
    if [ -n "$dbmate" ]; then
      local ds; ds=$(mean_ms "$work/scale-status-$n.json" 2); next=3
      row+=$(python3 -c "print(f' $ds ms ({$ds/$psql_ms:.2f}×) | $dbmate_status_rss MiB | {$dbmate_up_ms/1000:.2f} s | $dbmate_up_rss MiB |', end='')")
    fi
    if [ -n "$base" ]; then
      local bs bd=$base_deploy_ms; bs=$(mean_ms "$work/scale-status-$n.json" "$next")
      row+=$(python3 -c "print(f' $bs ms ({$bs/$psql_ms:.2f}×) | $base_status_rss MiB | {$bd/1000:.2f} s | $base_deploy_rss MiB |', end='')")
    fi
    rows+=("$row")
    echo "$row"
    psql -X -q "$admin_url" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "DROP DATABASE IF EXISTS $mdb WITH (FORCE)" 2>/dev/null
    rm -rf "$project" "$work/dbmate-$n"
  done
  echo
  echo "== scale: one table and one index per migration; times are hyperfine means; $(uptime | sed 's/.*load/load/')"
  local head="| N | \`psql -c 'select 1'\` | \`migrate status\` (× psql) | status, busy server (× psql then) | status peak RSS | \`migrate deploy\` (empty db; 1 run from 5,000) | deploy peak RSS | \`lint\` (all N files) |"
  local rule="|---:|---:|---:|---:|---:|---:|---:|---:|"
  if [ -n "$dbmate" ]; then
    head+=" \`dbmate status\` (× psql) | dbmate status RSS | \`dbmate up\` (empty db, 1 run) | dbmate up RSS |"
    rule+="---:|---:|---:|---:|"
  fi
  if [ -n "$base" ]; then
    head+=" base status (× psql) | base status RSS | base deploy | base deploy RSS |"
    rule+="---:|---:|---:|---:|"
  fi
  echo "$head"; echo "$rule"
  printf '%s\n' "${rows[@]}"
}

bench_fleet() {
  local n=${DBFLOW_BENCH_FLEET_TARGETS:-200} m=${DBFLOW_BENCH_FLEET_MIGRATIONS:-20} c=${DBFLOW_BENCH_FLEET_CONCURRENCY:-8}
  local project="$work/fleet"
  mkdir -p "$project"
  write_n_migrations "$project" "$m"
  local template; template=$(db_url 'fleet_{name}')
  cat > "$project/Workflowfile.yaml" <<YAML
environments:
  tenants:
    protection: shared
    fleet:
      command: seq -f 't%03g' 1 $n
      url: "$template"
  one:
    url: \${DATABASE_URL}
    protection: shared
workflows:
  migrate:
    description: apply pending migrations
    steps:
      - deploy: {}
YAML
  fresh() {
    seq -f 't%03g' 1 "$n" | awk '{ printf "DROP DATABASE IF EXISTS \"fleet_%s\" WITH (FORCE);\nCREATE DATABASE \"fleet_%s\";\n", $1, $1 }' > "$work/fleet.sql"
    PGOPTIONS="-c client_min_messages=warning" psql -X -q "$admin_url" -f "$work/fleet.sql" >/dev/null
  }
  now() { date +%s.%N; }
  echo "== fleet: $n tenant databases × $m pending migrations; load: $(uptime | sed 's/.*load average: //')"
  fresh
  local t0 t1 loop_s fleet_s
  t0=$(now)
  for name in $(seq -f 't%03g' 1 "$n"); do
    (cd "$project" && DATABASE_URL=$(db_url "fleet_$name") "$dbflow" migrate deploy --env one >/dev/null)
  done
  t1=$(now); loop_s=$(python3 -c "print(f'{$t1-$t0:.2f}')")
  echo "sequential \`dbflow migrate deploy\` loop: ${loop_s} s"
  if (cd "$project" && npx --no-install prisma --version >/dev/null 2>&1); then
    fresh
    t0=$(now)
    for name in $(seq -f 't%03g' 1 "$n"); do
      (cd "$project" && DATABASE_URL=$(db_url "fleet_$name") npx --no-install prisma migrate deploy >/dev/null)
    done
    t1=$(now)
    echo "sequential \`npx prisma migrate deploy\` loop: $(python3 -c "print(f'{$t1-$t0:.2f}')") s"
  else
    echo "(Prisma is not installed here: no \`npx prisma migrate deploy\` loop)"
  fi
  fresh
  t0=$(now)
  local rss
  rss=$(cd "$project" && peak_rss_mib "$dbflow" run migrate --env tenants --concurrency "$c")
  t1=$(now); fleet_s=$(python3 -c "print(f'{$t1-$t0:.2f}')")
  echo "fleet \`dbflow run migrate --concurrency $c\`: ${fleet_s} s, peak RSS ${rss} MiB"
  python3 -c "print(f'fleet vs sequential dbflow loop: {$loop_s/$fleet_s:.2f}x faster (goal >= 3x); peak RSS {$rss} MiB (goal < 100 MiB)')"
  (cd "$project" && "$dbflow" migrate status --env tenants | head -3)
  seq -f 't%03g' 1 "$n" | awk '{ printf "DROP DATABASE IF EXISTS \"fleet_%s\" WITH (FORCE);\n", $1 }' | psql -X -q "$admin_url" >/dev/null
}

for section in "${sections[@]}"; do
  case "$section" in
    migrations) bench_migrations ;;
    workflow) bench_workflow ;;
    docs) bench_docs ;;
    site) bench_site ;;
    scale) bench_scale "50 500 5000" ;;
    scale-20000) bench_scale "50 500 5000 20000" ;;
    fleet) bench_fleet ;;
    *) if [ -x "scripts/bench-$section.sh" ]; then "scripts/bench-$section.sh"; else echo "unknown section: $section" >&2; exit 2; fi ;;
  esac
done
