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

phase "start"
if ! stack/stack.sh status >/dev/null 2>&1; then started_here=1; fi
stack/stack.sh up
eval "$(stack/stack.sh env)"
phase_end

phase "build"
cargo build --locked --all-targets
phase_end

phase "etl test (the specs' flatten cases)"
target/debug/etl test
phase_end

phase "etl schema lock --check (the committed schema locks match the specs)"
target/debug/etl schema lock --check
phase_end

phase "tests"
# Integration tests talk to the stack started above; they fail (never skip)
# when it is not there.
cargo test --locked --no-fail-fast 2>&1 | tee target/test-output.txt
status=${PIPESTATUS[0]}
passed=$(grep -Eo '^test result: [a-zA-Z]+\. [0-9]+ passed' target/test-output.txt | awk '{s+=$4} END {print s+0}')
integration=$(awk '/Running tests\/stack_/ {want=1; next} want && /^running [0-9]+ tests?/ {s+=$2; want=0} END {print s+0}' target/test-output.txt)
echo "== integration tests on the local stack (tests/stack_*.rs): ${integration} ran"
echo "== ${passed} tests passed in all"
phase_end
exit "$status"
