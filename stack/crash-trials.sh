#!/usr/bin/env bash
# The long crash trials: tests/stack_crash.rs, many times. Each trial kills
# a 10-day backfill of the three demo pipelines (at a crash point, or with
# SIGKILL after a random delay), runs a plain catch-up, and checks that the
# lake, the warehouses, the staging folder and `etl status` are what a
# clean run leaves.
#
# The trials run in batches of 5, each on a freshly reset BigQuery emulator
# (it slows as its jobs pile up: a trial took about 1 minute on a fresh one
# and 2 after fifty runs). Batch k uses seed SEED+k and prints it; the same
# seed draws the same trials:
#   ETL_CRASH_SEED=<seed> ETL_CRASH_TRIALS=5 ETL_CRASH_DAYS=10 cargo test --release --features test-hooks --test stack_crash -- --nocapture
#
# stack/test.sh runs 5 trials of a 3-day backfill, with the lake, the
# Parquet dataset and the ledger in gs:// buckets (gcs-front), and again in
# folders: every point, at the smallest backfill that reaches it. Here they
# are in buckets unless ETL_CRASH_LAKE=files.
# MongoDB is mongo-java-server, as for the rest of the suite;
# ETL_TEST_MONGO=ferretdb runs them on FerretDB.
#
#   stack/crash-trials.sh               20 trials (4 batches), a new seed
#   stack/crash-trials.sh 40 1733370000 40 trials (8 batches) from that seed
#
# Starts the local stack if it is not running (and leaves it running).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

trials="${1:-20}"
seed="${2:-$(date +%s)}"
batch=5
batches=$(( (trials + batch - 1) / batch ))
export ETL_CRASH_DAYS="${ETL_CRASH_DAYS:-10}"

stack/stack.sh up
eval "$(stack/stack.sh env)"
cargo build --locked --release --features test-hooks --tests
started=$(date +%s)
for ((k = 0; k < batches; k++)); do
  stack/stack.sh reset bigquery >/dev/null
  stack/stack.sh up >/dev/null
  echo "== crash trials: batch $((k + 1))/${batches}, seed $((seed + k))"
  ETL_CRASH_TRIALS="$batch" ETL_CRASH_SEED="$((seed + k))" \
    cargo test --locked --release --features test-hooks --test stack_crash -- --nocapture
done
echo "== crash trials: $((batches * batch)) trials from seed ${seed}: passed in $(( $(date +%s) - started ))s"
