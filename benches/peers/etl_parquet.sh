#!/usr/bin/env bash
# etl itself, as a peer: the shipped orders spec in a temp project, its
# warehouse a Parquet dataset in OUT_DIR (as benches/scale.sh runs it).
#
#   etl_parquet.sh URI DATABASE orders DAY OUT_DIR
#
# Unlike the other peers it also writes the raw archive (zstd Extended JSON
# lines) to a lake and checks source count = raw lines = rows: that is in
# its numbers. The spec's `status != test` filter is dropped so it reads the
# same documents as the other peers.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
(($# == 5)) || { echo "usage: etl_parquet.sh URI DATABASE orders DAY OUT_DIR" >&2; exit 2; }
uri="$1" database="$2" collection="$3" day="$4" out="$5"
[[ $collection == orders ]] || { echo "etl_parquet.sh: only the orders spec is wired up, not '$collection'" >&2; exit 2; }
etl="${ETL_BIN:-$root/target/release/etl}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Every local mongo uri -> URI (the prod one is a secret), and the Parquet
# files straight into OUT_DIR. It runs the `files` profile: its lake, warehouse
# and ledger are folders (the lake and the ledger under the temp project's
# .etl/), where the default profile keeps them in buckets on a GCS emulator.
sed -e "s#^\(        uri: \)mongodb://127\.0\.0\.1:.*#\1$uri#" -e "s#^\(        url: \)\.etl/warehouse\$#\1$out#" \
  "$root/etl.yaml" >"$work/etl.yaml"
grep -qF "uri: $uri" "$work/etl.yaml" && grep -qF "url: $out" "$work/etl.yaml" ||
  { echo "etl_parquet.sh: could not rewrite etl.yaml (mongo uri, warehouse url)" >&2; exit 1; }
mkdir -p "$work/pipelines" "$work/schemas/tables"
sed -e "s/database: shop/database: $database/" -e '/^  filter:$/d' -e '/^    status: { \$ne: test }$/d' "$root/pipelines/orders.yaml" |
  awk '/^  warehouse:/ {print "  warehouse:\n    type: parquet\n    connection: warehouse_files\n    path: \"{{ pipeline }}\""; skip=1; next} skip && /^    / {next} {skip=0; print}' \
  >"$work/pipelines/orders.yaml"
if [[ -f $root/schemas/tables/orders.json ]]; then cp "$root/schemas/tables/orders.json" "$work/schemas/tables/"; fi

next="$(date -u -d "$day + 1 day" +%F)"
(cd "$work" && ETL_TODAY="$next" "$etl" --profile files run pipelines/orders.yaml --date "$day" --rerun >"$work/run.txt" 2>&1) ||
  { cat "$work/run.txt" >&2; exit 1; }
awk -v d="$day" '$1 == "orders" && $2 == d {print $5}' "$work/run.txt"
