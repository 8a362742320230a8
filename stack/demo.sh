#!/usr/bin/env bash
# The demo command: start the local stack, fill MongoDB with deterministic
# demo data, run the three pipelines over the demo days, and show the result.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# The demo needs FerretDB, the GCS server and the BigQuery emulator only;
# the test command starts the rest. etl builds after them, not beside:
# on 2 cores the two builds side by side took longer than one after the
# other (a cold demo took 24 minutes so, 2026-12-06; README).
stack/stack.sh up mongo gcs bigquery
eval "$(stack/stack.sh env)"
echo "== building etl (release)"
cargo build --locked --release --quiet
etl=target/release/etl
# The `local` profile keeps its lake, Parquet warehouse and ledger in gs://
# buckets on gcs-front, with a service-account key from an age secret, as a
# production profile would: seal that key, then take the stack's identity.
stack/stack.sh key
eval "$(stack/stack.sh env)"

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
echo "Lake (raw archives and manifests): gs://etl-local-lake/raw/ on gcs-front ($ETL_GCS_ENDPOINT),"
echo "      listed by: curl '$ETL_GCS_ENDPOINT/storage/v1/b/etl-local-lake/o?prefix=raw/orders/'"
echo "Ledger: gs://etl-local-state/; Parquet dataset: gs://etl-local-warehouse/products/"
echo "Warehouse: BigQuery emulator at $ETL_BQ_ENDPOINT (dataset etl_demo: users, orders)."
echo "More rows, in a shell that has the stack's settings and age identity:"
echo "  eval \"\$(stack/stack.sh env)\""
echo "  target/release/etl preview PIPELINE --date DAY [--table NAME] [--format json]"
echo "--profile files keeps the lake, the Parquet dataset and the ledger in folders under .etl/ instead."
echo "The stack is still running: stop it with 'stack/stack.sh down'."
