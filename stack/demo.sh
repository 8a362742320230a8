#!/usr/bin/env bash
# The demo command: start the local stack, fill MongoDB with deterministic
# demo data, run the three pipelines over the demo days, and show the result.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# etl builds beside the servers: on a cold machine both take minutes, and
# each leaves a core idle at times (cargo's last crates and link, Go's cgo
# packages and links). The demo needs FerretDB, the GCS server and the
# BigQuery emulator only; the test command starts the rest.
mkdir -p target
echo "== building etl (release) in the background, beside the local stack: target/demo-build.log"
cargo build --locked --release >target/demo-build.log 2>&1 &
build=$!
if ! stack/stack.sh up mongo gcs bigquery; then
  kill "$build" 2>/dev/null || true
  exit 1
fi
eval "$(stack/stack.sh env)"
echo "== waiting for the build of etl (target/demo-build.log)"
if ! wait "$build"; then
  tail -n 40 target/demo-build.log >&2
  echo "error: the build of etl failed; its whole output is in target/demo-build.log" >&2
  exit 1
fi
etl=target/release/etl

# The demo data covers 2020-06-01..2020-06-10; pinning "today" to the day
# after makes the default catch-up range exactly the demo days.
export ETL_TODAY=2020-06-11

echo
"$etl" validate
echo
"$etl" demo --seed 42
echo
"$etl" run pipelines/users.yaml pipelines/orders.yaml pipelines/products.yaml --parallel 3 --rerun \
  --report .etl/report.html
echo
"$etl" status pipelines/users.yaml pipelines/orders.yaml pipelines/products.yaml
echo
echo "== what landed: the first rows of 2020-06-03, read back from the warehouses"
"$etl" preview pipelines/orders.yaml --date 2020-06-03 --limit 5 \
  --columns _id,order_id,status,total,created_at,customer__address__country
echo
"$etl" preview pipelines/products.yaml --date 2020-06-03 --limit 5 \
  --columns _id,product_id,name,category,price,in_stock
echo
echo "Report (a page of every day, open it in a browser): .etl/report.html"
echo "Lake (raw archives and manifests): .etl/lake/raw/"
echo "Warehouse: BigQuery emulator at $ETL_BQ_ENDPOINT (dataset etl_demo: users, orders);"
echo "           Parquet dataset at .etl/warehouse/products/"
echo "More rows: target/release/etl preview PIPELINE --date DAY [--table NAME] [--format json]."
echo "The stack is still running: stop it with 'stack/stack.sh down'."
