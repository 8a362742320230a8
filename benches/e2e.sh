#!/usr/bin/env bash
# End-to-end timing and memory of `etl run` on the local stack.
#
#   benches/e2e.sh [N]        # default N=20000
#
# Seeds N users into ONE day, runs the users pipeline for that day, then does
# the same with 10*N, and prints wall time, documents/s and peak RSS of the
# `etl` process for both. Streaming means the peak RSS should stay about the
# same while the partition grows tenfold. The warehouse is a local Parquet
# dataset so the numbers are etl's own, not the BigQuery emulator's.
# Needs: the stack up (stack/stack.sh up) and GNU time (/usr/bin/time).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
n="${1:-20000}"
cargo build --release --locked --quiet
etl="$root/target/release/etl"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cp etl.yaml "$work/etl.yaml"
mkdir -p "$work/pipelines"
# The shipped users spec, loaded into Parquet instead of BigQuery.
sed -e 's/database: shop/database: bench_e2e/' pipelines/users.yaml |
  awk '/^  warehouse:/ {print "  warehouse:\n    type: parquet\n    connection: warehouse_files\n    path: \"{{ pipeline }}\""; skip=1; next} skip && /^    / {next} {skip=0; print}' \
  > "$work/pipelines/users.yaml"

printf '%-10s %10s %10s %12s %14s\n' docs wall_s docs_per_s peak_rss_mb raw_bytes
for docs in "$n" $((n * 10)); do
  (cd "$work" && "$etl" demo --database bench_e2e --users "$docs" --orders 1 --products 1 \
    --start 2020-06-01 --end 2020-06-01 >/dev/null 2>&1)
  rm -rf "$work/.etl"
  (cd "$work" && ETL_TODAY=2020-06-02 /usr/bin/time -v "$etl" run pipelines/users.yaml --date 2020-06-01 \
    >"$work/out.txt" 2>"$work/time.txt") || { cat "$work/out.txt" "$work/time.txt"; exit 1; }
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time.txt" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2/1024}' "$work/time.txt")
  bytes=$(awk '$1=="users" && $2=="2020-06-01" {print $6}' "$work/out.txt")
  rows=$(awk '$1=="users" && $2=="2020-06-01" {print $4}' "$work/out.txt")
  printf '%-10s %10.2f %10.0f %12s %14s\n' "$rows" "$wall" "$(echo "$rows / $wall" | bc -l)" "$rss" "$bytes"
done
