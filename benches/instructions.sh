#!/usr/bin/env bash
# Instructions per document of a day's run: the one CPU figure this shared,
# noisy machine cannot move. CPU seconds swing by 10% and more from run to
# run here (docs/performance.md), which hides any change worth less than
# that; the instructions a run executes do not depend on the load.
#
#   benches/instructions.sh [N]     # default N=20000
#
# Seeds a private mongo-fast server (in memory, its own port) once with N
# demo orders on 2020-06-01, then runs benches/peers/etl_parquet.sh (the
# shipped orders spec, raw archive and Parquet) under valgrind's cachegrind
# (instruction counts only, no cache simulation) for target/release/etl,
# and for ETL_BASE_BIN too when it is set, ETL_BENCH_REPEAT times each
# (default 2), interleaved. It prints each run's instructions (etl's process
# alone, every thread; the server's are not counted) and per document.
#
# Instructions are not time: a change that trades instructions for cache
# misses or page faults, or that moves work between threads, shows here as
# it is not. Confirm a gain in CPU seconds too (benches/peers/run.sh); use
# this to see which way a change goes, and by how much, when the seconds
# cannot tell. Under valgrind a run is 30 to 50 times slower, and its
# threads take turns on one core.
#
# Env: ETL_BASE_BIN, ETL_BENCH_REPEAT, ETL_BENCH_MONGO_PORT (27121),
# ETL_BENCH_NO_BUILD=1.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

die() { printf 'instructions.sh: error: %s\n' "$*" >&2; exit 1; }
log() { printf 'instructions.sh: %s\n' "$*" >&2; }

n="${1:-20000}"
[[ $n =~ ^[0-9]+$ && $n -ge 10 ]] || die "N is a document count >= 10, not '$n'"
port="${ETL_BENCH_MONGO_PORT:-27121}"
repeat="${ETL_BENCH_REPEAT:-2}"
[[ $repeat =~ ^[1-9][0-9]*$ ]] || die "ETL_BENCH_REPEAT must be a positive integer"
day=2020-06-01
db=bench_instructions
uri="mongodb://127.0.0.1:$port/?directConnection=true"
command -v valgrind >/dev/null || die "valgrind is missing (Debian package 'valgrind')"

. "$root/benches/mongo_fast.sh"
jar="$(mongo_fast_jar "$root")"
if [[ ${ETL_BENCH_NO_BUILD:-0} != 1 ]]; then
  cargo build --release --locked --quiet --bin etl
fi

mongo_fast_work etl-instructions

# Snapshots: a build beside this script must not change a binary between runs.
mkdir -p "$work/bin"
cp target/release/etl "$work/bin/etl"
builds=(etl)
if [[ -n ${ETL_BASE_BIN:-} ]]; then
  [[ -x $ETL_BASE_BIN ]] || die "ETL_BASE_BIN=$ETL_BASE_BIN is not an executable"
  cp "$ETL_BASE_BIN" "$work/bin/etl_base"
  builds+=(etl_base)
fi
# etl_parquet.sh runs ETL_BIN: a wrapper that runs the snapshot under
# cachegrind, its counts in the file the wrapper is told.
for b in "${builds[@]}"; do
  cat >"$work/bin/cg-$b" <<EOF
#!/usr/bin/env bash
exec valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file="\$ETL_CG_OUT" "$work/bin/$b" "\$@"
EOF
  chmod +x "$work/bin/cg-$b"
done

mongo_fast_start "$jar" "$port" 4g "$work/mongo.log"
log "seeding $n orders into $db.orders on 127.0.0.1:$port ..."
mongo_fast_create "$port" "$db" users orders products
cp etl.yaml "$work/etl.yaml"
(cd "$work" && ETL_MONGO_FAST_PORT="$port" "$work/bin/etl" --profile fast demo --database "$db" \
  --orders "$n" --users 1 --products 1 --start "$day" --end "$day" >"$work/seed.txt" 2>&1) ||
  { cat "$work/seed.txt" >&2; die "etl demo failed"; }
# Warm the server (its JIT) with one plain run.
ETL_BIN="$work/bin/etl" benches/peers/etl_parquet.sh "$uri" "$db" orders "$day" "$work/out" >/dev/null
rm -rf "$work/out"

echo "benches/instructions.sh $n   $(date -u +%Y-%m-%dT%H:%MZ), etl build $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo +dirty)${ETL_BASE_BIN:+, etl_base $ETL_BASE_BIN}"
printf '%-10s %5s %8s %16s %12s\n' build run rows instructions per_doc
for r in $(seq "$repeat"); do
  for b in "${builds[@]}"; do
    out="$work/cg.$b.$r"
    rows="$(ETL_CG_OUT="$out" ETL_BIN="$work/bin/cg-$b" benches/peers/etl_parquet.sh "$uri" "$db" orders "$day" "$work/out" 2>"$work/err")" ||
      { cat "$work/err" >&2; die "$b failed"; }
    rm -rf "$work/out"
    ir="$(awk '/^summary:/ {print $2}' "$out")"
    [[ $ir =~ ^[0-9]+$ ]] || die "no instruction count in $out"
    awk -v b="$b" -v r="$r" -v rows="$rows" -v ir="$ir" 'BEGIN { printf "%-10s %5s %8s %16s %12.0f\n", b, r, rows, ir, ir / rows }'
  done
done
