#!/usr/bin/env bash
# The demo command: start the local stack, fill it with deterministic demo
# data, and show what the three pipelines would do for the demo days.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

stack/stack.sh up
eval "$(stack/stack.sh env)"
cargo build --locked --release --quiet
etl=target/release/etl

echo
"$etl" validate
echo
"$etl" demo --seed 42
echo
# The demo data covers 2020-06-01..2020-06-10; "today" is pinned to the day
# after, so the plan shows exactly the demo range.
ETL_TODAY=2020-06-11 "$etl" plan pipelines/users.yaml pipelines/orders.yaml pipelines/products.yaml --start 2020-06-01 --end 2020-06-03
echo
echo "The stack is still running: stop it with 'stack/stack.sh down'."
