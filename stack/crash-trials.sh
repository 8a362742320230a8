#!/usr/bin/env bash
# The long crash trials: tests/stack_crash.rs with many trials. Each kills a
# 10-day backfill of the three demo pipelines (at a crash point, or with
# SIGKILL after a random delay), runs a plain catch-up, and checks that the
# lake, the warehouses, the staging folder and `etl status` are what a clean
# run leaves. The seed is printed first; the same seed draws the same
# trials.
#
#   stack/crash-trials.sh               24 trials, a new seed
#   stack/crash-trials.sh 40 1733370000 40 trials of that seed
#
# Starts the local stack if it is not running (and leaves it running).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

trials="${1:-24}"
seed="${2:-$(date +%s)}"

stack/stack.sh up
eval "$(stack/stack.sh env)"
echo "== crash trials: ${trials} trials, seed ${seed}"
started=$(date +%s)
ETL_CRASH_TRIALS="$trials" ETL_CRASH_SEED="$seed" \
  cargo test --locked --release --test stack_crash -- --nocapture
echo "== crash trials: ${trials} trials, seed ${seed}: passed in $(( $(date +%s) - started ))s"
