#!/usr/bin/env bash
# How long `etl infer` takes on a big collection with years of history.
#
#   benches/infer.sh [N] [FIRST_DAY] [LAST_DAY]   # default: 1000000 2022-01-01 2024-12-31
#
# Seeds N demo orders spread over FIRST_DAY..LAST_DAY into a PRIVATE,
# in-memory MongoDB-protocol server (mongo-fast: mongo-java-server, oplog
# off), then times `etl infer` with no range: the partition field's span in
# two sorted queries, two counts, and a sample of windows over the span
# (issue 28: infer once read the last day only; before that, a query per
# day). Prints wall, CPU and peak RSS of the infer, and its own output.
#
# Env: ETL_BENCH_MONGO_PORT (27119), ETL_BENCH_MONGO_HEAP (java -Xmx, 10g),
# ETL_BENCH_NO_BUILD=1 (time the binary as it is), ETL_BENCH_SAMPLE (infer's
# --sample, default its own). Needs java and GNU time (/usr/bin/time).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

die() { printf 'infer.sh: error: %s\n' "$*" >&2; exit 1; }
log() { printf 'infer.sh: %s\n' "$*" >&2; }

n="${1:-1000000}"
first="${2:-2022-01-01}"
last="${3:-2024-12-31}"
[[ $n =~ ^[0-9]+$ && $n -ge 10 ]] || die "N is a document count >= 10, not '$n'"
port="${ETL_BENCH_MONGO_PORT:-27119}"
heap="${ETL_BENCH_MONGO_HEAP:-10g}"
db=bench_infer
[[ -x /usr/bin/time ]] || die "GNU time is missing (/usr/bin/time; Debian package 'time')"

. "$root/benches/mongo_fast.sh"
jar="$(mongo_fast_jar "$root")"
if [[ ${ETL_BENCH_NO_BUILD:-0} != 1 ]]; then
  cargo build --release --locked --quiet --bin etl
fi
etl="$root/target/release/etl"
[[ -x $etl ]] || die "$etl is missing (cargo build --release)"

mongo_fast_work etl-infer

cp "$etl" "$work/etl"
etl="$work/etl"
mongo_fast_start "$jar" "$port" "$heap" "$work/mongo.log"
cp etl.yaml "$work/etl.yaml"
export ETL_MONGO_FAST_PORT="$port"

log "seeding $n orders over $first..$last into $db.orders on 127.0.0.1:$port ..."
mongo_fast_create "$port" "$db" users orders products
t0=$(date +%s.%N)
(cd "$work" && "$etl" --profile fast demo --database "$db" --orders "$n" --users 1 --products 1 \
  --start "$first" --end "$last" >"$work/seed.txt" 2>&1) || { cat "$work/seed.txt" >&2; die "etl demo failed"; }
log "seeded in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s"

sample=()
if [[ -n ${ETL_BENCH_SAMPLE:-} ]]; then sample=(--sample "$ETL_BENCH_SAMPLE"); fi
cmd=("$etl" --profile fast infer --database "$db" --collection orders --name bench_orders "${sample[@]}")
(cd "$work" && /usr/bin/time -f '%e %U %S %M' -o "$work/time.txt" "${cmd[@]}" >"$work/out.txt" 2>&1) ||
  { cat "$work/out.txt" >&2; die "etl infer failed"; }
read -r wall user sys rss_kb <"$work/time.txt"
echo "== etl infer output"
cat "$work/out.txt"
echo "== etl infer on $n documents over $first..$last (mongo-java-server, private, oplog off)"
printf 'wall %s s, CPU %.2f s (user %s, sys %s), peak RSS %d MiB\n' \
  "$wall" "$(awk -v u="$user" -v s="$sys" 'BEGIN {print u + s}')" "$user" "$sys" $((rss_kb / 1024))
echo "command: ${cmd[*]/#$work\//}"
