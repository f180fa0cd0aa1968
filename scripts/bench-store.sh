#!/usr/bin/env bash
# Measures appends to the PostgreSQL store beside pgbench inserting rows
# of the same size on the same throwaway server (docs/performance.md):
#
#   scripts/bench-store.sh [SECONDS]     # pgbench runs SECONDS each (default 10)
#   OPSGATE_PG_DATA_ROOT=/var/tmp scripts/bench-store.sh   # data on a disk
#
# Starts a private server with scripts/test-env-pg.sh (data on /dev/shm,
# synchronous_commit on), runs pgbench for 1 and 16 clients (one INSERT and
# COMMIT per transaction, prepared statements), then
# `cargo bench --bench store` (with OPSGATE_BENCH_DEBUG=1, the same bench
# from the test profile: no release build of the whole tree), and stops the
# server.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
dir=$(mktemp -d)
trap './scripts/test-env-pg.sh down "$dir/pg" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
url=$(./scripts/test-env-pg.sh up "$dir/pg" 2>/dev/null | sed -n 's/^DATABASE_URL=//p')
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
psql() { "$bin/psql" -q -X "$url" "$@"; }
psql -c "DROP TABLE IF EXISTS pgb; CREATE TABLE pgb (seq bigint, record bytea)"
cat >"$dir/insert.sql" <<'SQL'
\set s random(1, 1000000000)
INSERT INTO pgb (seq, record) VALUES (:s, convert_to(repeat('x', 400), 'UTF8'));
SQL
echo "| pgbench (INSERT + COMMIT of a 400-byte row) | transactions/s |"
echo "|---|---|"
for c in 1 16; do
    tps=$("$bin/pgbench" -n -M prepared -f "$dir/insert.sql" -c "$c" -j "$(( c < 2 ? 1 : 2 ))" -T "$secs" "$url" 2>/dev/null |
        sed -n 's/^tps = \([0-9.]*\).*/\1/p')
    echo "| $c client(s) | ${tps%.*} |"
done
echo
if [ -n "${OPSGATE_BENCH_DEBUG:-}" ]; then
    OPSGATE_TEST_PG_URL="$url" cargo test --bench store -- --bench 2>/dev/null | grep '^|'
else
    OPSGATE_TEST_PG_URL="$url" cargo bench --bench store 2>/dev/null
fi
