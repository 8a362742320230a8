#!/usr/bin/env bash
# The test command: install the local stack, start it, build, run every test
# (unit and integration, on the real servers), and stop the stack again.
# Safe to run on a fresh machine.
#
# Each phase has a budget in seconds, written beside it: the phase prints
# its time, and a warning when it passes its budget. The end prints every
# phase against its budget and the ten slowest test binaries; the table is
# kept in target/test-phases.txt (.ci/run prints it if the whole run passes
# its limit). Install and build budgets are for a cold machine; a run after
# stack/demo.sh (same machine) spends seconds there.
#
# Which test runs on which server, and why: docs/local-stack.md.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
mkdir -p target
phases=target/test-phases.txt
: >"$phases"
run_start=$(date +%s)

phase_start=0
# phase NAME BUDGET_SECONDS
phase() { phase_name="$1"; phase_budget="$2"; phase_start=$(date +%s); echo "== ${phase_name}"; }
phase_end() {
  local took=$(( $(date +%s) - phase_start )) mark=""
  echo "== ${phase_name}: ${took}s (budget ${phase_budget}s)"
  if (( took > phase_budget )); then
    mark="OVER"
    echo "warning: phase \"${phase_name}\" took ${took}s, over its budget of ${phase_budget}s (stack/test.sh)" >&2
  fi
  printf '%s\t%s\t%s\t%s\n' "$took" "$phase_budget" "$mark" "$phase_name" >>"$phases"
}

# The BigQuery emulator slows as its jobs pile up: each test phase starts
# with an empty one (a reset takes about 2 s).
fresh_emulator() { stack/stack.sh reset bigquery >/dev/null; stack/stack.sh up >/dev/null; }

started_here=0
cleanup() {
  if [ "$started_here" = 1 ]; then
    phase "stop" 30
    stack/stack.sh down || true
    phase_end
  fi
}
trap cleanup EXIT

phase "install (Go servers, mongo-fast.jar)" 600
stack/stack.sh install
phase_end

phase "install (Python tools: Airflow, kubernetes-validate, moto, aiosmtpd)" 240
stack/python.sh
phase_end

phase "install (Debian packages: tmux, chromium)" 120
stack/debian.sh
phase_end

phase "start" 60
if ! stack/stack.sh status >/dev/null 2>&1; then started_here=1; fi
stack/stack.sh up
# A stack kept running for days holds an emulator that has slowed with
# every job it ran (the FerretDB phase took about 25 minutes longer on one).
fresh_emulator
eval "$(stack/stack.sh env)"
phase_end

phase "build" 900
# The release profile, as stack/demo.sh builds it: the two README commands
# share one build of the dependencies instead of a release and a debug one.
# --timings keeps where the build went in target/cargo-timings/.
cargo build --locked --release --all-targets --features test-hooks --timings
python3 - <<'PY' || true
import json, re
html = open("target/cargo-timings/cargo-timing.html").read()
units = json.loads(re.search(r"const UNIT_DATA = (\[.*?\]);\n", html, re.S).group(1))
units = [u for u in units if u["duration"] >= 0.1]  # the others were fresh
if units:
    print(f"== build: {len(units)} units compiled, {sum(u['duration'] for u in units):.0f}s of unit time; the slowest:")
    for u in sorted(units, key=lambda u: -u["duration"])[:8]:
        print(f"{u['duration']:8.1f}  {u['name']} {u['version']} {u.get('target', '').strip()}")
PY
phase_end

phase "etl test, etl schema lock --check (the specs' flatten cases, the committed locks)" 20
target/release/etl test
target/release/etl schema lock --check
phase_end

status=0
test_cmd=(cargo test --locked --release --features test-hooks --no-fail-fast)
# What only FerretDB shows (docs/local-stack.md): authentication and the
# secrets that carry it; the three demo pipelines end to end; one outage
# (its MongoDB stopped mid-day); and what `etl validate --connect`,
# `etl infer` and `etl verify` read from the server, which each server
# answers its own way (the same tests run on mongo-java-server too).
ferretdb_only=(secrets_reach_no_file_log_or_output three_pipelines_ten_days_reconciled_idempotent)

phase "tests (both MongoDB servers at once: every test on mongo-java-server, what only FerretDB shows on FerretDB)" 540
# Two cargo processes side by side: the servers mostly wait (FerretDB on
# SQLite, the emulator on its jobs), and the two cores with them. Tests use
# databases, datasets and folders of their own, named by test and process.
# Integration tests talk to the stack started above; they fail (never
# skip) when it is not there.
(
  # `cargo test` builds nothing here (the build phase did), so the two
  # processes do not wait on each other's lock.
  t0=$(date +%s) rc=0
  exec >target/test-output-ferretdb.txt 2>&1
  ETL_TEST_MONGO=ferretdb "${test_cmd[@]}" \
    --test stack_secrets --test stack_smoke --test stack_validate --test stack_infer --test stack_verify || rc=1
  ETL_TEST_MONGO=ferretdb "${test_cmd[@]}" \
    --test stack_engine --test stack_outage -- --exact \
    three_pipelines_ten_days_reconciled_idempotent mongodb_stopped_mid_day || rc=1
  echo "FerretDB tests: $(( $(date +%s) - t0 ))s, exit ${rc}"
  exit "$rc"
) &
ferretdb_pid=$!
skips=()
for t in "${ferretdb_only[@]}" a_killed_backfill_then_a_catch_up_equals_a_clean_run; do skips+=(--skip "$t"); done
t0=$(date +%s)
ETL_TEST_MONGO=fast "${test_cmd[@]}" -- "${skips[@]}" 2>&1 | tee target/test-output-fast.txt || status=1
echo "== mongo-java-server tests: $(( $(date +%s) - t0 ))s"
wait "$ferretdb_pid" || status=1
echo "== FerretDB tests (ran beside them; their output):"
cat target/test-output-ferretdb.txt
phase_end

phase "crash trials (tests/stack_crash.rs: 5 killed 3-day backfills, each caught up, with lake, Parquet dataset and ledger in gs:// buckets, then in folders; stack/crash-trials.sh runs more)" 180
# Its own phase, on a fresh emulator, on mongo-java-server: each trial runs
# the backfill of the three pipelines twice (killed, then caught up).
: >target/test-output-crash.txt
for lake in gcs files; do
  fresh_emulator
  ETL_TEST_MONGO=fast ETL_CRASH_LAKE="$lake" "${test_cmd[@]}" --test stack_crash -- --nocapture \
    2>&1 | tee -a target/test-output-crash.txt || status=1
done
phase_end

phase "scale benchmark at a small size (so that it cannot rot)" 30
# The build phase's binaries (the test-hooks build): a build without the
# feature here would compile the crate again for a smoke run.
ETL_BENCH_NO_BUILD=1 benches/scale.sh 2000 || status=1
phase_end

outputs=(target/test-output-fast.txt target/test-output-ferretdb.txt target/test-output-crash.txt)
count() { grep -Eo '^test result: [a-zA-Z]+\. [0-9]+ passed' "$@" | awk '{s+=$4} END {print s+0}'; }
integration() { awk '/Running tests\/stack_/ {want=1; next} want && /^running [0-9]+ tests?/ {s+=$2; want=0} END {print s+0}' "$@"; }
echo
echo "== integration tests on the local stack (tests/stack_*.rs): $(integration target/test-output-fast.txt target/test-output-crash.txt) ran on mongo-java-server, $(integration target/test-output-ferretdb.txt) on FerretDB"
echo "== $(count "${outputs[@]}") tests passed in all"
echo "== the ten slowest test binaries (seconds, binary, server):"
for f in "${outputs[@]}"; do
  server=mongo-java-server
  [[ $f == *ferretdb* ]] && server=FerretDB
  awk -v server="$server" '/^ +Running / {bin=$2} /^test result:/ {sub(/s$/, "", $NF); printf "%8.1f  %s  %s\n", $NF, bin, server}' "$f"
done | sort -rn | head -10
echo "== phases (seconds, budget):"
awk -F'\t' '{ printf "%6s %6s %-4s  %s\n", $1, $2, $3, $4 }' "$phases"
echo "== total: $(( $(date +%s) - run_start ))s"
if grep -q $'\tOVER\t' "$phases"; then
  echo "warning: $(grep -c $'\tOVER\t' "$phases") phase(s) over budget: see the table above" >&2
fi
exit "$status"
