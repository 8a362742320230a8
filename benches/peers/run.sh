#!/usr/bin/env bash
# etl against other ways to move one day of a MongoDB collection to Parquet.
#
#   benches/peers/install.sh && benches/peers/run.sh [N]     # default N=100000
#
# Seeds a private mongo-fast server (in memory, its own port) ONCE with N
# demo orders on 2020-06-01, then runs each peer on that day (created_at in
# [2020-06-01, 2020-06-02)), under /usr/bin/time -v, writing Parquet to a
# fresh folder:
#   etl           the shipped orders spec, Parquet warehouse (etl_parquet.sh)
#   etl_base      the same with the etl binary ETL_BASE_BIN (another build, such
#                 as the base of a branch), for a before/after in one run
#   pymongoarrow  find_arrow_all -> pyarrow.parquet
#   pandas        pymongo -> pandas.json_normalize -> Parquet (what the
#                 original Python project did)
#   dlt           a dlt resource over pymongo -> filesystem destination, Parquet
#   sling         the Sling CLI, MongoDB -> local Parquet file
# and, first, the floor: examples/drain, a bare cursor drain with the Rust
# driver, no output. It prints one table: wall, client CPU (user+sys of the
# peer's process tree) per document, peak RSS, the server's CPU during the
# run, rows and tables produced and how dates, ObjectIds, the `items` array
# of objects and the drifting `total` came out (read back with pyarrow).
# The headline is the ratio to etl: CPU/doc and RSS as multiples of etl's.
# Medians of ETL_BENCH_REPEAT runs (default 3), peers interleaved per round.
#
# Env: ETL_PEERS (default "etl pymongoarrow pandas dlt sling"), ETL_BASE_BIN,
# ETL_BENCH_MONGO_PORT (27119), ETL_BENCH_MONGO_HEAP (10g), ETL_BENCH_REPEAT,
# ETL_BENCH_NO_BUILD=1. Exits non-zero if a peer fails or if a peer that
# restricts to the day produced another row count than the floor counted.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

die() { printf 'peers/run.sh: error: %s\n' "$*" >&2; exit 1; }
log() { printf 'peers/run.sh: %s\n' "$*" >&2; }

n="${1:-100000}"
[[ $n =~ ^[0-9]+$ && $n -ge 10 ]] || die "N is a document count >= 10, not '$n'"
read -r -a peers <<<"${ETL_PEERS:-etl pymongoarrow pandas dlt sling}"
port="${ETL_BENCH_MONGO_PORT:-27119}"
heap="${ETL_BENCH_MONGO_HEAP:-10g}"
repeat="${ETL_BENCH_REPEAT:-3}"
[[ $repeat =~ ^[1-9][0-9]*$ ]] || die "ETL_BENCH_REPEAT must be a positive integer"
day=2020-06-01
db=bench_peers
uri="mongodb://127.0.0.1:$port/?directConnection=true"
py="$here/.venv/bin/python"
[[ -x $py ]] || die "no peers venv: run benches/peers/install.sh first"
[[ -x /usr/bin/time ]] || die "GNU time is missing (/usr/bin/time; Debian package 'time')"

. "$root/benches/mongo_fast.sh"
jar="$(mongo_fast_jar "$root")"
if [[ ${ETL_BENCH_NO_BUILD:-0} != 1 ]]; then
  cargo build --release --locked --quiet --bin etl --example drain
fi
etl="$root/target/release/etl"
drain="$root/target/release/examples/drain"
[[ -x $etl && -x $drain ]] || die "target/release/etl or examples/drain is missing (cargo build --release --bin etl --example drain)"

# The command line of each peer; all take URI DATABASE COLLECTION DAY OUT_DIR.
peer_cmd() {
  case "$1" in
    etl) echo "$here/etl_parquet.sh" ;;
    etl_base)
      [[ -n ${ETL_BASE_BIN:-} ]] || die "peer etl_base needs ETL_BASE_BIN, the etl binary to compare with"
      echo "env ETL_BIN=${base_bin:-$ETL_BASE_BIN} $here/etl_parquet.sh" ;;
    pymongoarrow) echo "$py $here/pymongoarrow_parquet.py" ;;
    pandas) echo "$py $here/pandas_normalize.py" ;;
    dlt) echo "$py $here/dlt_parquet.py" ;;
    sling) echo "$here/sling_parquet.sh" ;;
    *) die "unknown peer '$1' (etl etl_base pymongoarrow pandas dlt sling)" ;;
  esac
}
for p in "${peers[@]}"; do peer_cmd "$p" >/dev/null; done
# dlt: no anonymous telemetry (there is no internet here anyway).
export RUNTIME__DLTHUB_TELEMETRY=false

mongo_fast_work etl-peers
script_t0=$(date +%s)

# Time a snapshot of the binaries: a build running next to this script
# replaces target/release/* and must not change binaries between rounds.
mkdir -p "$work/bin"
cp "$etl" "$drain" "$work/bin/"
etl="$work/bin/etl" drain="$work/bin/drain"
if [[ -n ${ETL_BASE_BIN:-} ]]; then
  [[ -x $ETL_BASE_BIN ]] || die "ETL_BASE_BIN=$ETL_BASE_BIN is not an executable"
  cp "$ETL_BASE_BIN" "$work/bin/etl-base"
  base_bin="$work/bin/etl-base"
fi
export ETL_BIN="$etl" # for etl_parquet.sh
build="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo +dirty)"

mongo_fast_start "$jar" "$port" "$heap" "$work/mongo.log"

# Seed once, through etl's fast profile pointed at the private port.
cp etl.yaml "$work/etl.yaml"
grep -q 'ETL_MONGO_FAST_PORT' "$work/etl.yaml" ||
  sed -i "s#^\(        uri: \)mongodb://127\.0\.0\.1:.*#\1$uri#" "$work/etl.yaml"
log "seeding $n orders into $db.orders on 127.0.0.1:$port ..."
mongo_fast_create "$port" "$db" users orders products
seed_cmd=("$etl" demo --database "$db" --orders "$n" --users 1 --products 1 --start "$day" --end "$day")
if grep -q 'ETL_MONGO_FAST_PORT' "$work/etl.yaml"; then seed_cmd=("$etl" --profile fast "${seed_cmd[@]:1}"); fi
(cd "$work" && ETL_MONGO_FAST_PORT="$port" "${seed_cmd[@]}" >"$work/seed.txt" 2>&1) ||
  { cat "$work/seed.txt" >&2; die "etl demo failed"; }
# Warm the server's query path (JIT) before anything is timed.
read -r docs _ <<<"$("$drain" "$uri" "$db" orders created_at "$day")"
log "the day holds $docs documents"

# One measured run of a peer (or the floor): wall, CPU, RSS, server CPU, and
# what its Parquet looks like, appended to $work/r.<peer>.
measure() {
  local peer="$1" out="$work/out.$1" t="$work/time.$1" s0 s1 rc=0
  rm -rf "$out"
  mkdir -p "$out"
  s0=$(mongo_fast_cpu)
  if [[ $peer == floor ]]; then
    /usr/bin/time -v "$drain" "$uri" "$db" orders created_at "$day" >"$work/stdout.$peer" 2>"$t" || rc=$?
  else
    # shellcheck disable=SC2046 # the command line is words on purpose
    /usr/bin/time -v $(peer_cmd "$peer") "$uri" "$db" orders "$day" "$out" >"$work/stdout.$peer" 2>"$t" || rc=$?
  fi
  s1=$(mongo_fast_cpu)
  if ((rc != 0)); then
    # A failed peer is a result, not the end of the comparison: keep its
    # last error line for the table, skip it in later rounds, exit 1 at the end.
    [[ $peer != floor && $peer != etl ]] || { cat "$work/stdout.$peer" "$t" >&2; die "$peer failed (exit $rc)"; }
    local why
    why="$(sed 's/\x1b\[[0-9;]*m//g' "$work/stdout.$peer" "$t" | grep -iE 'error|too large|failed' |
      grep -vE 'Command exited|execution failed|failure running' | tail -1 | cut -c1-90)" || true
    printf '%s\n' "${why:-exit $rc}" >"$work/failed.$peer"
    log "$peer failed (exit $rc): ${why:-no error line}"
    return 0
  fi
  printf '%s %s %s %s\n' "$(time_wall "$t")" "$(time_cpu "$t")" "$(time_rss "$t")" \
    "$(awk -v a="$s0" -v b="$s1" 'BEGIN {printf "%.2f", b - a}')" >>"$work/r.$peer"
  if [[ $peer == floor ]]; then
    printf '0\t%s\t-\t-\t-\t-\n' "$(cut -d' ' -f1 "$work/stdout.$peer")" >"$work/shape.$peer"
  else
    "$py" "$here/inspect_parquet.py" "$out" orders >"$work/shape.$peer"
  fi
}

for r in $(seq "$repeat"); do
  for p in floor "${peers[@]}"; do
    [[ ! -f $work/failed.$p ]] || continue
    measure "$p"
    [[ ! -f $work/failed.$p ]] || continue
    log "round $r/$repeat: $p $(tail -1 "$work/r.$p" | cut -d' ' -f1) s, $(cut -f2 "$work/shape.$p") rows"
  done
done

# Medians per peer: wall cpu rss server_cpu.
med() { awk -v c="$2" '{print $c}' "$work/r.$1" | median; }
ref=etl
[[ " ${peers[*]} " == *" etl "* ]] || ref=""
if [[ -n $ref ]]; then
  ref_cpu=$(med etl 2)
  ref_rss=$(med etl 3)
fi
fmt='%-13s %7s %7s %7s %6s %8s %6s %7s %8s %6s  %-24s %-22s %-52s %s\n'
status=0
{
  echo "benches/peers/run.sh $n   $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, etl build $build, mongo-fast -Xmx$heap --oplog off, $docs documents on $day, medians of $repeat"
  printf "$fmt" peer wall_s cpu_s us_doc x_etl rss_mb x_etl srv_cpu rows tables created_at _id items total
  for p in floor "${peers[@]}"; do
    if [[ -f $work/failed.$p ]]; then
      printf '%-13s FAILED: %s\n' "$p" "$(cat "$work/failed.$p")"
      status=1
      continue
    fi
    IFS=$'\t' read -r tables rows created oid items total <"$work/shape.$p"
    cpu=$(med "$p" 2)
    rss=$(med "$p" 3)
    xc=- xr=-
    if [[ -n $ref ]]; then
      xc=$(awk -v a="$cpu" -v b="$ref_cpu" 'BEGIN {printf "%.2f", a / b}')
      xr=$(awk -v a="$rss" -v b="$ref_rss" 'BEGIN {printf "%.2f", a / b}')
    fi
    name=$p
    [[ $p == floor ]] && name="floor(drain)"
    printf "$fmt" "$name" "$(med "$p" 1)" "$cpu" "$(awk -v c="$cpu" -v d="$docs" 'BEGIN {printf "%.1f", c * 1e6 / d}')" \
      "$xc" "$rss" "$xr" "$(med "$p" 4)" "$rows" "$tables" "$created" "$oid" "$items" "$total"
    if [[ $rows != "$docs" ]]; then status=1; fi
  done
} >"$work/table.txt"
cat "$work/table.txt"
# Print the commands with the binaries' real paths, not the snapshots'.
sed -e "s#$work/bin/etl-base#${ETL_BASE_BIN:-}#g" -e "s#$work/bin/etl#$root/target/release/etl#g" -e "s#$work/bin/drain#$root/target/release/examples/drain#g" <<EOF

wall_s: elapsed; cpu_s: user+sys of the peer's whole process tree (interpreter
start and imports included); us_doc: cpu_s per document of the day; x_etl:
that peer's us_doc and rss_mb as a multiple of etl's; srv_cpu: the server's CPU
during the run; rows: rows of the main table; tables: Parquet tables written.
etl also writes the raw zstd archive to a lake and checks counts; the others
write only Parquet. Total time of this script: $(($(date +%s) - script_t0)) s (seeding included).

commands (URI=$uri, OUT a fresh folder per run):
  java -Xmx$heap -jar $jar --host 127.0.0.1 --port $port --oplog off
  ${seed_cmd[*]}   (ETL_MONGO_FAST_PORT=$port)
  /usr/bin/time -v $drain URI $db orders created_at $day
$(for p in "${peers[@]}"; do echo "  /usr/bin/time -v $(peer_cmd "$p") URI $db orders $day OUT"; done)
EOF
((status == 0)) || die "a peer failed, or its row count differs from the $docs documents of the day (see the table)"
