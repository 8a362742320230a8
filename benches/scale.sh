#!/usr/bin/env bash
# How one `etl run` day scales, against the floor of a bare cursor drain.
#
#   benches/scale.sh [N ...]      # default: 100000 1000000
#
# For each N, seeds N orders into ONE day (2020-06-01) of a private, in-memory
# MongoDB-protocol server (mongo-fast: mongo-java-server), then, for that day,
# measures in the same run:
#   - the floor: examples/drain, the same query etl sends, drained with the
#     same Rust driver, doing nothing with the documents. No extractor can be
#     faster than this against this server, so `etl wall / floor wall` is what
#     etl's own work (archive, flatten, Parquet, checks) costs on top;
#   - `etl run pipelines/orders.yaml --date 2020-06-01 --rerun`, the shipped
#     orders spec with its warehouse swapped for a local Parquet dataset (as
#     benches/e2e.sh does for users): wall, documents/s, etl's own CPU and
#     µs per document, peak RSS, peak staging disk, lake and warehouse bytes,
#     and the server's CPU during the run, kept apart from etl's.
# Each pair of measurements is repeated ETL_BENCH_REPEAT times (default 3),
# floor and etl interleaved so drift on a noisy machine hits both alike; the
# table shows medians. It exits non-zero if etl fails or if the rows it loaded
# differ from the documents the floor counted for the day.
#
# Env: ETL_BENCH_MONGO_PORT (27118), ETL_BENCH_MONGO_HEAP (java -Xmx, 10g),
# ETL_BENCH_REPEAT (3), ETL_BENCH_NO_BUILD=1 (use the binaries as they are),
# ETL_MONGO_FAST_JAR (default stack/bin/mongo-fast.jar, from
# `stack/stack.sh install`). Needs java, GNU time (/usr/bin/time), awk.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

die() { printf 'scale.sh: error: %s\n' "$*" >&2; exit 1; }
log() { printf 'scale.sh: %s\n' "$*" >&2; }

sizes=("$@")
((${#sizes[@]})) || sizes=(100000 1000000)
for n in "${sizes[@]}"; do
  [[ $n =~ ^[0-9]+$ && $n -ge 10 ]] || die "sizes are document counts >= 10, not '$n'"
done
port="${ETL_BENCH_MONGO_PORT:-27118}"
heap="${ETL_BENCH_MONGO_HEAP:-10g}"
repeat="${ETL_BENCH_REPEAT:-3}"
[[ $repeat =~ ^[1-9][0-9]*$ ]] || die "ETL_BENCH_REPEAT must be a positive integer"
day=2020-06-01
db=bench_scale
uri="mongodb://127.0.0.1:$port/?directConnection=true"
[[ -x /usr/bin/time ]] || die "GNU time is missing (/usr/bin/time; Debian package 'time')"

. "$root/benches/mongo_fast.sh"
jar="$(mongo_fast_jar "$root")"

# Build like benches/e2e.sh, unless told not to (another build may own the
# cargo lock, or the work tree may be mid-edit: then time what is there).
if [[ ${ETL_BENCH_NO_BUILD:-0} != 1 ]]; then
  cargo build --release --locked --quiet --bin etl --example drain
fi
etl="$root/target/release/etl"
drain="$root/target/release/examples/drain"
[[ -x $etl ]] || die "$etl is missing (cargo build --release)"
[[ -x $drain ]] || die "$drain is missing (cargo build --release --example drain)"

work="$(mktemp -d "${TMPDIR:-/tmp}/etl-scale.XXXXXX")"
sampler_pid=""
cleanup() {
  local rc=$?
  if [[ -n $sampler_pid ]]; then kill "$sampler_pid" 2>/dev/null || true; fi
  mongo_fast_stop
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Time a snapshot of the binaries: a build running next to this script
# replaces target/release/* and must not change binaries between rounds.
mkdir -p "$work/bin"
cp "$etl" "$drain" "$work/bin/"
etl="$work/bin/etl" drain="$work/bin/drain"
build="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo +dirty)"

mongo_fast_start "$jar" "$port" "$heap" "$work/mongo.log"

# ---------------------------------------------------------- bench project

# A copy of the project file whose `mongo` connection is the private server.
cp etl.yaml "$work/etl.yaml"
profile=()
if grep -qE '^  fast:' etl.yaml && grep -q 'ETL_MONGO_FAST_PORT' etl.yaml; then
  # The project's own profile for mongo-fast, pointed at our port.
  profile=(--profile fast)
  export ETL_MONGO_FAST_PORT="$port"
else
  sed -i 's#mongodb://127\.0\.0\.1:{{ env("ETL_MONGO_PORT", "27017") }}/?directConnection=true#'"$uri"'#' "$work/etl.yaml"
  grep -qF "$uri" "$work/etl.yaml" || die "could not point the local profile's mongo uri at $uri (etl.yaml changed?)"
fi
mkdir -p "$work/pipelines" "$work/schemas/tables"
# The shipped orders spec, loaded into Parquet instead of BigQuery, reading
# every document of the day: its `status != test` filter is dropped so that
# etl, the floor and benches/peers read exactly the same documents and the
# row check below can compare with the floor's count.
sed -e "s/database: shop/database: $db/" -e '/^  filter:$/d' -e '/^    status: { \$ne: test }$/d' pipelines/orders.yaml |
  awk '/^  warehouse:/ {print "  warehouse:\n    type: parquet\n    connection: warehouse_files\n    path: \"{{ pipeline }}\""; skip=1; next} skip && /^    / {next} {skip=0; print}' \
  >"$work/pipelines/orders.yaml"
grep -q 'type: parquet' "$work/pipelines/orders.yaml" || die "could not rewrite the orders warehouse to Parquet"
! grep -q 'status: { \$ne: test }' "$work/pipelines/orders.yaml" || die "could not drop the orders filter"
# The reviewed schema lock, as a real run has it.
if [[ -f schemas/tables/orders.json ]]; then cp schemas/tables/orders.json "$work/schemas/tables/"; fi

# ------------------------------------------------------------- measuring

# Peak size of etl's staging folder while it runs: etl deletes a finished
# day's staging, so only sampling shows the peak.
sample_staging() {
  local dir="$1" out="$2" max=0 b
  while :; do
    b="$(du -sb "$dir" 2>/dev/null | cut -f1)" || true
    if [[ -n $b && $b -gt $max ]]; then max=$b; echo "$max" >"$out"; fi
    sleep 0.2
  done
}

header='%-9s %9s %8s %8s %6s %9s %7s %7s %8s %10s %8s %8s %9s %9s\n'
rows_out=()
commands=()
script_t0=$(date +%s)
for n in "${sizes[@]}"; do
  log "seeding $n orders into $db.orders on 127.0.0.1:$port ..."
  mongo_fast_create "$port" "$db" users orders products
  t0=$(date +%s.%N)
  seed_cmd=("$etl" "${profile[@]}" demo --database "$db" --orders "$n" --users 1 --products 1 --start "$day" --end "$day")
  (cd "$work" && "${seed_cmd[@]}" >"$work/seed.txt" 2>&1) || { cat "$work/seed.txt" >&2; die "etl demo failed"; }
  log "seeded in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s"

  # One untimed drain first: the server's query path gets its JIT warm-up
  # here, not inside the first timed measurement.
  "$drain" "$uri" "$db" orders created_at "$day" >/dev/null

  m="$work/m$n"
  mkdir -p "$m"
  for r in $(seq "$repeat"); do
    # The floor.
    s0=$(mongo_fast_cpu)
    /usr/bin/time -v "$drain" "$uri" "$db" orders created_at "$day" >"$m/drain.out" 2>"$m/drain.time" ||
      { cat "$m/drain.out" "$m/drain.time" >&2; die "drain failed"; }
    s1=$(mongo_fast_cpu)
    read -r docs _bytes _secs <"$m/drain.out"
    time_wall "$m/drain.time" >>"$m/floor_wall"
    awk -v a="$s0" -v b="$s1" 'BEGIN {printf "%.2f\n", b - a}' >>"$m/floor_srv"

    # etl, from an empty .etl: no ledger, lake or warehouse left by the last
    # repetition (--rerun would redo the day anyway, but the sizes below must
    # be this run's alone).
    rm -rf "$work/.etl"
    mkdir -p "$work/.etl/staging"
    echo 0 >"$m/staging_peak"
    sample_staging "$work/.etl/staging" "$m/staging_peak" &
    sampler_pid=$!
    s0=$(mongo_fast_cpu)
    rc=0
    (cd "$work" && ETL_TODAY=2020-06-02 /usr/bin/time -v "$etl" "${profile[@]}" run pipelines/orders.yaml --date "$day" --rerun \
      >"$m/etl.out" 2>"$m/etl.time") || rc=$?
    s1=$(mongo_fast_cpu)
    kill "$sampler_pid" 2>/dev/null || true
    wait "$sampler_pid" 2>/dev/null || true
    sampler_pid=""
    if ((rc != 0)); then cat "$m/etl.out" "$m/etl.time" >&2; die "etl run failed (exit $rc) at N=$n"; fi

    # The check CI relies on: every document of the day is a row in the
    # Parquet table, by etl's own count (the run summary) and the floor's.
    status="" loaded=""
    read -r status loaded < <(awk -v d="$day" '$1 == "orders" && $2 == d {print $3, $5}' "$m/etl.out") || true
    [[ ${status:-} == done ]] || { cat "$m/etl.out" >&2; die "etl did not report the day as done at N=$n"; }
    [[ $loaded == "$docs" ]] || { cat "$m/etl.out" >&2; die "etl loaded $loaded rows, the floor counted $docs documents for $day (N=$n)"; }
    # The demo puts 2 of its boundary documents outside the day (the day
    # before, and "today"): a seeded day holds N-2 documents, give or take.
    ((docs >= n - 5 && docs <= n)) || die "the day holds $docs documents after seeding $n (etl demo changed?)"
    parquet_files=$(find "$work/.etl/warehouse" -name '*.parquet' | wc -l)
    ((parquet_files > 0)) || die "no Parquet file under .etl/warehouse at N=$n"

    time_wall "$m/etl.time" >>"$m/etl_wall"
    time_cpu "$m/etl.time" >>"$m/etl_cpu"
    time_rss "$m/etl.time" >>"$m/etl_rss"
    cat "$m/staging_peak" >>"$m/staging"
    du -sb "$work/.etl/lake" | cut -f1 >>"$m/lake"
    du -sb "$work/.etl/warehouse" | cut -f1 >>"$m/wh"
    awk -v a="$s0" -v b="$s1" 'BEGIN {printf "%.2f\n", b - a}' >>"$m/etl_srv"
    # The ratio of this round's pair: on a noisy machine both halves of a
    # round see about the same load, so the median of the ratios is steadier
    # than the ratio of the medians.
    awk -v e="$(tail -1 "$m/etl_wall")" -v f="$(tail -1 "$m/floor_wall")" 'BEGIN {printf "%.2f\n", e / f}' >>"$m/ratio"
    log "N=$n run $r/$repeat: floor $(tail -1 "$m/floor_wall") s, etl $(tail -1 "$m/etl_wall") s, $loaded rows"
  done
  items=$(awk '$2 == "child" && $3 == "table" && $4 == "orders__items" {print $1}' "$m/etl.out")

  fw=$(median <"$m/floor_wall")
  ew=$(median <"$m/etl_wall")
  ec=$(median <"$m/etl_cpu")
  rows_out+=("$(printf "$header" "$n" "$docs" "$fw" "$ew" \
    "$(median <"$m/ratio")" \
    "$(awk -v d="$docs" -v w="$ew" 'BEGIN {printf "%.0f", d / w}')" \
    "$ec" "$(awk -v c="$ec" -v d="$docs" 'BEGIN {printf "%.1f", c * 1e6 / d}')" \
    "$(median <"$m/etl_rss")" \
    "$(median <"$m/staging" | awk '{printf "%.1f", $1 / 1048576}')" \
    "$(median <"$m/lake" | awk '{printf "%.1f", $1 / 1048576}')" \
    "$(median <"$m/wh" | awk '{printf "%.1f", $1 / 1048576}')" \
    "$(median <"$m/etl_srv")" "$(median <"$m/floor_srv")")")
  log "N=$n: $docs documents, $items orders__items rows"
  commands+=("N=$n: ${seed_cmd[*]}")
done

echo
echo "benches/scale.sh ${sizes[*]}   $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, etl build $build, mongo-fast -Xmx$heap --oplog off, medians of $repeat"
printf "$header" seeded docs floor_s etl_s ratio docs_per_s cpu_s us_doc rss_mb staging_mb lake_mb wh_mb srv_etl_s srv_flr_s
printf '%s\n' "${rows_out[@]}"
# Print the commands with the binaries' real paths, not the snapshots'.
sed -e "s#$work/bin/etl#$root/target/release/etl#g" -e "s#$work/bin/drain#$root/target/release/examples/drain#g" <<EOF

floor_s: wall of the drain example; etl_s: wall of etl run; ratio: median over the
rounds of etl wall / floor wall of the same round; docs_per_s: docs / etl_s;
cpu_s, us_doc: etl's user+sys CPU, per document; rss_mb: etl's peak RSS;
staging_mb: peak of .etl/staging (sampled every 0.2 s); lake_mb, wh_mb: du -sb of
.etl/lake and .etl/warehouse; srv_etl_s, srv_flr_s: the server's CPU during the
etl run and during the floor. All medians.
Total time of this script: $(($(date +%s) - script_t0)) s (seeding included).

commands (in a temp project: a copy of etl.yaml, $(if ((${#profile[@]})); then echo "profile fast, ETL_MONGO_FAST_PORT=$port"; else echo "mongo uri -> $uri"; fi),
and pipelines/orders.yaml with a Parquet warehouse and no status filter):
  java -Xmx$heap -jar $jar --host 127.0.0.1 --port $port --oplog off
$(printf '  %s\n' "${commands[@]}")
  /usr/bin/time -v $drain '$uri' $db orders created_at $day
  ETL_TODAY=2020-06-02 /usr/bin/time -v $etl ${profile[*]} run pipelines/orders.yaml --date $day --rerun
EOF
