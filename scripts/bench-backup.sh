#!/usr/bin/env bash
# Backup and restore overhead, measured with hyperfine on a pgbench database:
#   dbflow backup create (streamed, hashed, verified, cataloged)  vs  pg_dump -Fc
#   dbflow restore --into NAME (sha256 check, createdb, pg_restore, validation)
#                                                  vs  createdb + pg_restore
# The targets (issue 5): within 1.15x for backups and 1.1x for restores at scale 30-50
# (~500 MB).
#
# Usage: scripts/bench-backup.sh [SCALE]      (default 35, about 500 MB)
#   RUNS=N           hyperfine runs per command (default 3)
#   BENCH_PG_URL=…   use this server (its admin database) instead of a throw-away cluster
#   BENCH_PORT=N     port of the throw-away cluster (default 54329)
set -euo pipefail
SCALE=${1:-${SCALE:-35}}
RUNS=${RUNS:-3}
cd "$(dirname "$0")/.."
for tool in hyperfine pgbench jq; do
  command -v "$tool" >/dev/null || { echo "bench-backup: $tool is required" >&2; exit 2; }
done

cargo build --release --locked --quiet
DBFLOW="$PWD/target/release/dbflow"
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
[ -n "$BIN" ] && export PATH="$BIN:$PATH"

WORK=$(mktemp -d /tmp/dbflow-bench.XXXXXX)
chmod 755 "$WORK"
cleanup() {
  if [ -n "${CLUSTER:-}" ]; then
    as_pg pg_ctl -D "$CLUSTER" stop -m fast >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ -n "${BENCH_PG_URL:-}" ]; then
  ADMIN_URL=$BENCH_PG_URL
else
  PORT=${BENCH_PORT:-54329}
  CLUSTER="$WORK/data"
  [ "$(id -u)" = 0 ] && chown postgres "$WORK"
  as_pg initdb -D "$CLUSTER" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
  as_pg pg_ctl -D "$CLUSTER" -l "$WORK/server.log" -w \
    -o "-p $PORT -k $WORK -c listen_addresses=127.0.0.1 -c shared_buffers=256MB -c max_wal_size=4GB" \
    start >/dev/null
  ADMIN_URL="postgres://postgres@127.0.0.1:$PORT/postgres"
fi
url_for() { echo "${ADMIN_URL%/*}/$1"; }
SOURCE=$(url_for dbflow_bench)

psql -X -q -d "$ADMIN_URL" -c "DROP DATABASE IF EXISTS dbflow_bench" -c "CREATE DATABASE dbflow_bench"
echo "pgbench -i -s $SCALE …" >&2
pgbench -i -q -s "$SCALE" "$SOURCE" >/dev/null 2>&1
psql -X -q -d "$SOURCE" -c "VACUUM ANALYZE"
SIZE=$(psql -X -At -d "$SOURCE" -c "SELECT pg_size_pretty(pg_database_size(current_database()))")

PROJECT="$WORK/project"
mkdir -p "$PROJECT"
cat >"$PROJECT/Workflowfile.yaml" <<EOF
environments:
  bench:
    url: $SOURCE
    protection: sandbox
EOF

echo "== backup: pgbench scale $SCALE, $SIZE, $(nproc) CPUs, $(pg_dump --version)" >&2
hyperfine --runs "$RUNS" --warmup 1 --export-json "$WORK/backup.json" \
  --prepare "rm -rf '$WORK/plain.dump' '$PROJECT/backups'" \
  -n "pg_dump -Fc" "pg_dump -Fc -f '$WORK/plain.dump' '$SOURCE'" \
  -n "dbflow backup create" "cd '$PROJECT' && '$DBFLOW' backup create --env bench"

ID=$(cd "$PROJECT" && "$DBFLOW" backup create --env bench --json 2>/dev/null | jq -r '.outputs.backup.backup_id')
pg_dump -Fc -f "$WORK/plain.dump" "$SOURCE"
DUMP_SIZE=$(du -h "$WORK/plain.dump" | cut -f1)

echo "== restore: dump of $DUMP_SIZE" >&2
hyperfine --runs "$RUNS" --export-json "$WORK/restore.json" \
  --prepare "psql -X -q -d '$ADMIN_URL' -c 'DROP DATABASE IF EXISTS bench_plain' -c 'DROP DATABASE IF EXISTS bench_dbflow'" \
  -n "createdb + pg_restore" "createdb --maintenance-db='$ADMIN_URL' --template=template0 bench_plain && pg_restore --no-owner --exit-on-error --dbname='$(url_for bench_plain)' '$WORK/plain.dump'" \
  -n "dbflow restore" "cd '$PROJECT' && '$DBFLOW' restore '$ID' --env bench --into bench_dbflow"
psql -X -q -d "$ADMIN_URL" -c "DROP DATABASE IF EXISTS bench_plain" -c "DROP DATABASE IF EXISTS bench_dbflow" -c "DROP DATABASE dbflow_bench"

ratio() {
  jq -r '[.results[].mean] | "\(.[1] / .[0] * 1000 | round / 1000) (\(.[1] * 100 | round / 100)s vs \(.[0] * 100 | round / 100)s)"' "$1"
}
echo
echo "pgbench scale $SCALE ($SIZE, dump $DUMP_SIZE), $RUNS runs each, means:"
echo "  dbflow backup create / pg_dump -Fc              = $(ratio "$WORK/backup.json")   target <= 1.15"
echo "  dbflow restore / createdb + pg_restore          = $(ratio "$WORK/restore.json")   target <= 1.10"
