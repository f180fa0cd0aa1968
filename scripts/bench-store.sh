#!/usr/bin/env bash
# Measures appends to the PostgreSQL store beside pgbench inserting rows
# of the same size on the same throwaway server (docs/performance.md):
#
#   scripts/bench-store.sh [SECONDS]     # pgbench runs SECONDS each (default 10)
#   OPSGATE_PG_DATA_ROOT=/var/tmp scripts/bench-store.sh   # data on a disk
#
# Starts a private server with scripts/test-env-pg.sh (data on /dev/shm,
# synchronous_commit on), runs pgbench for 1 client on the rows of the
# store (a table shaped as opsgate_audit) and on a bare table, and for 16
# clients on the bare table (one INSERT and
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
# Two baselines: a bare table (no index), and the same rows as the
# store's: a table shaped as opsgate_audit, with its unique indexes and
# its plan index, rows of the same sizes (a 71-character prev and hash,
# a 400-byte record). The chained append is judged against the second,
# "pgbench inserting the same rows"; both are printed.
psql -c "DROP TABLE IF EXISTS pgb, pga;
CREATE TABLE pgb (seq bigint, record bytea);
CREATE TABLE pga (seq bigint PRIMARY KEY, prev text NOT NULL UNIQUE, hash text NOT NULL UNIQUE,
    record bytea NOT NULL, event_id uuid UNIQUE, type text NOT NULL, plan_id text, run_id text,
    written_at timestamptz NOT NULL);
CREATE INDEX ON pga (plan_id) WHERE plan_id IS NOT NULL;
CREATE INDEX ON pga (run_id) WHERE run_id IS NOT NULL;"
cat >"$dir/bare.sql" <<'SQL'
\set s random(1, 1000000000)
INSERT INTO pgb (seq, record) VALUES (:s, convert_to(repeat('x', 400), 'UTF8'));
SQL
cat >"$dir/same.sql" <<'SQL'
\set s random(1, 1000000000000)
INSERT INTO pga (seq, prev, hash, record, type, plan_id, written_at)
VALUES (:s::bigint, 'sha256:' || md5(:s::bigint::text) || md5((:s::bigint + 1)::text),
        'sha256:' || md5((:s::bigint + 2)::text) || md5((:s::bigint + 3)::text),
        convert_to(repeat('x', 400), 'UTF8'), 'refused', 'plan-1', now());
SQL
tps() { # SCRIPT CLIENTS
    "$bin/pgbench" -n -M prepared -f "$dir/$1.sql" -c "$2" -j "$(( $2 < 2 ? 1 : 2 ))" -T "$secs" "$url" 2>/dev/null |
        sed -n 's/^tps = \([0-9]*\).*/\1/p'
}
# Built first, so the build does not run between the measurements.
if [ -n "${OPSGATE_BENCH_DEBUG:-}" ]; then
    cargo test --bench store --no-run >/dev/null 2>&1
    bench() { cargo test --bench store -- --bench 2>/dev/null; }
else
    cargo bench --bench store --no-run >/dev/null 2>&1
    bench() { cargo bench --bench store 2>/dev/null; }
fi
# The disk's rate drifts over a minute: pgbench on the store's rows runs
# right before and right after the store's own bench, whose one writer
# runs as long, and the writer is compared with the mean of the two.
same_before=$(tps same 1)
out=$(OPSGATE_TEST_PG_URL="$url" OPSGATE_BENCH_SECS="$secs" bench | grep '^|')
same_after=$(tps same 1)
bare1=$(tps bare 1)
bare16=$(tps bare 16)
same1=$(( (same_before + same_after) / 2 ))
echo "| pgbench (INSERT + COMMIT per transaction) | transactions/s |"
echo "|---|---|"
echo "| 1 client, the store's rows (its table and indexes), before / after / mean | $same_before / $same_after / $same1 |"
echo "| 1 client, a bare table (a 400-byte row, no index) | $bare1 |"
echo "| 16 clients, a bare table | $bare16 |"
echo
echo "$out"
one=$(echo "$out" | sed -n 's/^| 1 writer, 1 record per commit | \([0-9]*\) |$/\1/p')
echo
if [ -n "$one" ] && [ -n "$same1" ] && [ -n "$bare1" ]; then
    awk -v o="$one" -v s="$same1" -v b="$bare1" 'BEGIN {
        printf "one writer: %.2fx pgbench on the same rows (goal >= 0.8), %.2fx on a bare table\n", o / s, o / b }'
fi
