#!/usr/bin/env bash
# The test command: install the local stack, start it, build, run every test
# (unit and integration, on the real servers), and stop the stack again.
# Each phase prints how long it took. Safe to run on a fresh machine.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

phase_start=0
phase() { phase_name="$1"; phase_start=$(date +%s); echo "== ${phase_name}"; }
phase_end() { echo "== ${phase_name}: $(( $(date +%s) - phase_start ))s"; }

# The BigQuery emulator slows as its jobs pile up: each phase starts
# with an empty one.
fresh_emulator() { stack/stack.sh reset bigquery; stack/stack.sh up >/dev/null; }

started_here=0
cleanup() {
  if [ "$started_here" = 1 ]; then
    phase "stop"
    stack/stack.sh down || true
    phase_end
  fi
}
trap cleanup EXIT

phase "install (Go servers)"
stack/stack.sh install
phase_end

phase "install (Python tools: Airflow, kubernetes-validate, moto, aiosmtpd)"
stack/python.sh
phase_end

phase "install (Debian packages: tmux, chromium)"
stack/debian.sh
phase_end

phase "start"
if ! stack/stack.sh status >/dev/null 2>&1; then started_here=1; fi
stack/stack.sh up
# A stack kept running for days holds an emulator that has slowed with
# every job it ran (the FerretDB phase took about 25 minutes longer on one).
fresh_emulator
eval "$(stack/stack.sh env)"
phase_end

phase "build"
# The release profile, as stack/demo.sh builds it: the two README commands
# share one build of the dependencies instead of a release and a debug one.
cargo build --locked --release --all-targets --features test-hooks
phase_end

phase "etl test (the specs' flatten cases)"
target/release/etl test
phase_end

phase "etl schema lock --check (the committed schema locks match the specs)"
target/release/etl schema lock --check
phase_end

status=0
phase "tests (MongoDB: FerretDB)"
# Integration tests talk to the stack started above; they fail (never skip)
# when it is not there.
cargo test --locked --release --features test-hooks --no-fail-fast -- \
  --skip a_killed_backfill_then_a_catch_up_equals_a_clean_run \
  2>&1 | tee target/test-output.txt || status=1
phase_end

phase "fresh BigQuery emulator (it slows as its jobs pile up)"
fresh_emulator
phase_end

phase "crash trials (tests/stack_crash.rs: 5 killed backfills, each caught up; stack/crash-trials.sh runs more)"
# Its own phase, on a fresh emulator: each trial runs the 10-day backfill
# of the three pipelines twice (killed, then caught up).
cargo test --locked --release --features test-hooks --no-fail-fast --test stack_crash -- --nocapture \
  2>&1 | tee target/test-output-crash.txt || status=1
phase_end

phase "fresh BigQuery emulator (it slows as its jobs pile up)"
fresh_emulator
phase_end

phase "end-to-end tests again (MongoDB: mongo-java-server)"
# The end-to-end suite again, with the fast server as the stack's MongoDB
# (the secrets leak test, which no server changes, ran once above).
# The outages too: the MongoDB one stops a mongo-java-server of its own here.
# And `etl validate --connect`, whose checks read what each server answers
# (listCollections, listIndexes, a sample of the newest documents), and
# `etl infer`, whose spans, counts and samples are queries each server
# answers its own way (and only this one stores Decimal128).
# tests/stack_fast.rs, which needs what FerretDB cannot store, ran above.
# So did the four-worker lease test (leases live in the state store, not in
# MongoDB, and its minutes go to the BigQuery emulator, not the server) and
# the Airflow test (Airflow runs the same `etl run`, whichever the server).
ETL_MONGO_PORT="$ETL_MONGO_FAST_PORT" ETL_MONGO_URI="$ETL_MONGO_FAST_URI" ETL_TEST_MONGO=fast \
  cargo test --locked --release --features test-hooks --no-fail-fast \
  --test stack_engine --test stack_smoke --test stack_outage --test stack_validate --test stack_infer --test stack_verify -- \
  --skip four_workers_share_one_backfill_through_leases \
  --skip an_airflow_dag_loads_each_day_once_and_a_second_pass_skips_them \
  2>&1 | tee target/test-output-fast.txt || status=1
phase_end

phase "scale benchmark at a small size (so that it cannot rot)"
# The build phase's binaries (the test-hooks build): a build without the
# feature here would compile the crate again for a smoke run.
ETL_BENCH_NO_BUILD=1 benches/scale.sh 2000 || status=1
phase_end

count() { grep -Eo '^test result: [a-zA-Z]+\. [0-9]+ passed' "$@" | awk '{s+=$4} END {print s+0}'; }
integration() { awk '/Running tests\/stack_/ {want=1; next} want && /^running [0-9]+ tests?/ {s+=$2; want=0} END {print s+0}' "$1"; }
echo "== integration tests on the local stack (tests/stack_*.rs): $(( $(integration target/test-output.txt) + $(integration target/test-output-crash.txt) )) ran on FerretDB, $(integration target/test-output-fast.txt) on mongo-java-server"
echo "== $(count target/test-output.txt target/test-output-crash.txt target/test-output-fast.txt) tests passed in all"
exit "$status"
