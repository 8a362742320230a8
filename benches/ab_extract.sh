#!/usr/bin/env bash
# What flattening during the extract and dropping the count buy, one day of
# N orders (default 100,000) on a private mongo-fast, the same etl binary:
#
#   before:  no schema lock (so no schema is known before the extract: pass 2
#            reads the spool after it) and `source.count: true` (a
#            countDocuments beside the cursor), which is what every day did
#            until commit ed68f36;
#   count:   the schema lock, with `source.count: true`;
#   after:   the schema lock, no count: the default now.
#
# Runs interleaved, ETL_BENCH_REPEAT rounds (default 3), medians printed.
# Same environment variables as benches/scale.sh.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
die() { echo "ab_extract.sh: $*" >&2; exit 1; }
# shellcheck source=benches/mongo_fast.sh
source benches/mongo_fast.sh
n="${1:-100000}"
port="${ETL_BENCH_MONGO_PORT:-27118}"
heap="${ETL_BENCH_MONGO_HEAP:-6g}"
repeat="${ETL_BENCH_REPEAT:-3}"
etl="$root/target/release/etl"
if [[ ${ETL_BENCH_NO_BUILD:-0} != 1 ]]; then cargo build --release --locked --quiet --bin etl; fi
[[ -x $etl ]] || die "$etl is missing (cargo build --release)"
work="$(mktemp -d "${TMPDIR:-/tmp}/etl-ab.XXXXXX")"
trap 'mongo_fast_stop; rm -rf "$work"' EXIT
mongo_fast_start "$(mongo_fast_jar "$root")" "$port" "$heap" "$work/mongo.log"
export ETL_MONGO_FAST_PORT="$port"

# Three project folders, one per variant, sharing nothing but the server.
for v in before count after; do
  mkdir -p "$work/$v/pipelines" "$work/$v/schemas/tables"
  cp etl.yaml "$work/$v/etl.yaml"
  sed -e 's/database: shop/database: bench/' -e '/^  filter:$/d' -e '/^    status: { \$ne: test }$/d' pipelines/orders.yaml |
    awk '/^  warehouse:/ {print "  warehouse:\n    type: parquet\n    connection: warehouse_files\n    path: \"{{ pipeline }}\""; skip=1; next} skip && /^    / {next} {skip=0; print}' \
      >"$work/$v/pipelines/orders.yaml"
  if [[ $v != after ]]; then
    sed -i 's/^  collection: orders$/  collection: orders\n  count: true/' "$work/$v/pipelines/orders.yaml"
    grep -q '^  count: true$' "$work/$v/pipelines/orders.yaml" || die "could not add source.count"
  fi
  if [[ $v != before ]]; then cp schemas/tables/orders.json "$work/$v/schemas/tables/"; fi
done
mongo_fast_create "$port" bench users orders products
(cd "$work/after" && "$etl" --profile fast demo --database bench --orders "$n" --users 1 --products 1 \
  --start 2020-06-01 --end 2020-06-01 >"$work/seed.txt" 2>&1) || { cat "$work/seed.txt" >&2; die "etl demo failed"; }

median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m}'; }
for r in $(seq "$repeat"); do
  for v in before count after; do
    rm -rf "$work/$v/.etl"
    s0=$(mongo_fast_cpu)
    (cd "$work/$v" && ETL_TODAY=2020-06-02 /usr/bin/time -f "%e %U %S %M" -o "$work/$v.time" \
      "$etl" --profile fast run pipelines/orders.yaml --date 2020-06-01 --rerun >"$work/$v.out" 2>&1) ||
      { cat "$work/$v.out" >&2; die "etl run failed ($v)"; }
    s1=$(mongo_fast_cpu)
    grep -q '1 done' "$work/$v.out" || { cat "$work/$v.out" >&2; die "the day is not done ($v)"; }
    read -r wall user sys rss <"$work/$v.time"
    echo "$wall" >>"$work/$v.wall"
    awk -v u="$user" -v s="$sys" 'BEGIN {printf "%.2f\n", u + s}' >>"$work/$v.cpu"
    echo "$rss" >>"$work/$v.rss"
    awk -v a="$s0" -v b="$s1" 'BEGIN {printf "%.2f\n", b - a}' >>"$work/$v.srv"
    echo "round $r $v: wall $wall s" >&2
  done
done
printf '%s\n' "benches/ab_extract.sh $n   $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, etl build $(git rev-parse --short HEAD), medians of $repeat"
printf '%-8s %8s %8s %8s %10s\n' variant wall_s cpu_s rss_mb server_cpu_s
for v in before count after; do
  printf '%-8s %8s %8s %8s %10s\n' "$v" "$(median <"$work/$v.wall")" "$(median <"$work/$v.cpu")" \
    "$(awk '{print $1/1024}' "$work/$v.rss" | median)" "$(median <"$work/$v.srv")"
done
