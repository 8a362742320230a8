#!/usr/bin/env bash
# The local stack: FerretDB (MongoDB protocol, SQLite backend), gcs-front
# (fake-gcs-server's GCS JSON API plus the XML API object_store writes with,
# stack/gcs-front/) and bigquery-emulator, built from pinned Go modules, plus
# mongo-fast (mongo-java-server, a fast in-memory MongoDB protocol server) built
# from the pinned Maven module stack/mongo-fast/, and s3 (moto_server, an S3
# API with conditional puts, for state stores on an object-store URL) from
# stack/venv/, which stack/python.sh installs; `up` leaves s3 out until it
# has. All run on 127.0.0.1 only.
# No Docker needed (see docker-compose.yml for the Docker path).
#
#   stack/stack.sh install [server...]  build the three binaries and mongo-fast.jar
#                            into stack/bin/ (default all)
#   stack/stack.sh up [server...]  install if needed, start what is not running
#                            (default all), wait for health, create bucket +
#                            dataset, print settings. stack/demo.sh starts only
#                            mongo, gcs and bigquery.
#   stack/stack.sh down      stop exactly the processes in the pid files
#   stack/stack.sh reset [server...]  stop and delete the data of the servers
#                            (mongo, gcs, bigquery, mongo-fast, s3; default all); then run `up`
#   stack/stack.sh status    one line per server; exit 0 if all healthy, 3 if not
#   stack/stack.sh env       export lines:  eval "$(stack/stack.sh env)"
#   stack/stack.sh key [project-dir]  seal the `local` profile's GCS key (see
#                            cmd_key) into <project-dir>/.etl/secrets/ (default:
#                            the repository); needs target/release/etl or ETL_BIN
#
# Ports (env): ETL_MONGO_PORT (27017), ETL_GCS_PORT (4443), ETL_BQ_PORT (9050),
# ETL_BQ_GRPC_PORT (9060), ETL_MONGO_FAST_PORT (27018), ETL_S3_PORT (9070).
# mongo-fast also takes
# ETL_MONGO_FAST_HEAP (java -Xmx, 4g) and ETL_MONGO_FAST_OPLOG (on|off, on:
# change streams need it; turn it off for bulk loads of ~1M documents).
# ETL_STACK_TIMEOUT: health wait per server (60 s).
# State and logs: stack/run/<server>/data, stack/run/<server>.log, .pid.
# mongo-fast keeps its data in memory only: it is empty after every start.
set -euo pipefail

STACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN_DIR="$STACK_DIR/bin"
RUN_DIR="$STACK_DIR/run"

HOST=127.0.0.1 # never 0.0.0.0
MONGO_PORT="${ETL_MONGO_PORT:-27017}"
GCS_PORT="${ETL_GCS_PORT:-4443}"
BQ_PORT="${ETL_BQ_PORT:-9050}"
BQ_GRPC_PORT="${ETL_BQ_GRPC_PORT:-9060}"
MONGO_FAST_PORT="${ETL_MONGO_FAST_PORT:-27018}"
S3_PORT="${ETL_S3_PORT:-9070}"
MONGO_FAST_HEAP="${ETL_MONGO_FAST_HEAP:-4g}"
MONGO_FAST_OPLOG="${ETL_MONGO_FAST_OPLOG:-on}"
HEALTH_TIMEOUT="${ETL_STACK_TIMEOUT:-60}"

BQ_PROJECT=etl-local
BQ_DATASET=etl_demo
GCS_BUCKET=etl-lake
# The `local` profile's lake, Parquet warehouse and ledger (etl.yaml).
LOCAL_BUCKETS=(etl-local-lake etl-local-warehouse etl-local-state)
AGE_IDENTITY="$RUN_DIR/age/identity.txt"
S3_BUCKET=etl-state
MOTO="$STACK_DIR/venv/bin/moto_server"

MONGO_URI="mongodb://$HOST:$MONGO_PORT/?directConnection=true"
MONGO_FAST_URI="mongodb://$HOST:$MONGO_FAST_PORT/?directConnection=true"
GCS_URL="http://$HOST:$GCS_PORT"
BQ_URL="http://$HOST:$BQ_PORT"
S3_URL="http://$HOST:$S3_PORT"

SERVERS=(mongo gcs bigquery mongo-fast s3)

log() { printf '%s\n' "$*" >&2; }
die() { printf 'stack.sh: error: %s\n' "$*" >&2; exit 1; }

[[ $MONGO_FAST_OPLOG == on || $MONGO_FAST_OPLOG == off ]] ||
  die "ETL_MONGO_FAST_OPLOG must be on or off, not '$MONGO_FAST_OPLOG'"
[[ $MONGO_FAST_HEAP =~ ^[0-9]+[kKmMgG]?$ ]] ||
  die "ETL_MONGO_FAST_HEAP must be a java -Xmx size such as 4g or 6144m, not '$MONGO_FAST_HEAP'"

# Monotonic-enough wall clock in seconds with millisecond precision.
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# ---------------------------------------------------------------- per server

binary_of() {
  case "$1" in
    mongo) echo ferretdb-embedded ;;
    gcs) echo gcs-front ;;
    bigquery) echo bigquery-emulator ;;
    mongo-fast) echo mongo-fast.jar ;;
    s3) echo moto_server ;;
  esac
}

# Go module (or, for mongo-fast, Maven module) directory holding the pinned
# version of each binary.
module_of() {
  case "$1" in
    mongo) echo "$STACK_DIR/ferretdb" ;;
    gcs) echo "$STACK_DIR/gcs-front" ;;
    bigquery) echo "$STACK_DIR/tools/bigquery-emulator" ;;
    mongo-fast) echo "$STACK_DIR/mongo-fast" ;;
  esac
}

# The files a binary is built from (one per line).
sources_of() {
  local mod f
  mod="$(module_of "$1")"
  if [[ $1 == mongo-fast ]]; then
    echo "$mod/pom.xml"
    find "$mod/src" -type f 2>/dev/null || true
    return 0
  fi
  for f in "$mod"/go.mod "$mod"/go.sum "$mod"/*.go; do
    [[ -e $f ]] && echo "$f"
  done
  return 0
}

package_of() {
  case "$1" in
    mongo) echo . ;;
    gcs) echo . ;;
    bigquery) echo github.com/goccy/bigquery-emulator/cmd/bigquery-emulator ;;
  esac
}

port_of() {
  case "$1" in
    mongo) echo "$MONGO_PORT" ;;
    gcs) echo "$GCS_PORT" ;;
    bigquery) echo "$BQ_PORT" ;;
    mongo-fast) echo "$MONGO_FAST_PORT" ;;
    s3) echo "$S3_PORT" ;;
  esac
}

pid_file() { echo "$RUN_DIR/$1.pid"; }
conf_file() { echo "$RUN_DIR/$1.conf"; } # the settings it was started with
started_conf() { cat "$(conf_file "$1")" 2>/dev/null || true; }
log_file() { echo "$RUN_DIR/$1.log"; }
data_dir() { echo "$RUN_DIR/$1/data"; }

# The command line that starts a server (one word per line, for mapfile).
command_of() {
  local bin
  bin="$BIN_DIR/$(binary_of "$1")"
  case "$1" in
    mongo)
      printf '%s\n' "$bin" -listen "$HOST:$MONGO_PORT" -dir "$(data_dir mongo)" -log-level error
      ;;
    gcs)
      printf '%s\n' "$bin" -scheme http -host "$HOST" -port "$GCS_PORT" \
        -backend filesystem -filesystem-root "$(data_dir gcs)" \
        -public-host "$HOST:$GCS_PORT" -external-url "$GCS_URL" -log-level error
      ;;
    bigquery)
      # --database persists the emulator's SQLite file across restarts.
      printf '%s\n' "$bin" --project="$BQ_PROJECT" --dataset="$BQ_DATASET" \
        --host="$HOST" --port="$BQ_PORT" --grpc-port="$BQ_GRPC_PORT" \
        --database="$(data_dir bigquery)/emulator.db" --log-level=error
      ;;
    mongo-fast)
      # In memory only. ExitOnOutOfMemoryError: a full heap ends the process
      # (status says stopped, up restarts it) rather than leaving it hung.
      printf '%s\n' java -Xmx"$MONGO_FAST_HEAP" -XX:+ExitOnOutOfMemoryError -jar "$bin" \
        --host "$HOST" --port "$MONGO_FAST_PORT" --oplog "$MONGO_FAST_OPLOG"
      ;;
    s3)
      # In memory only; it checks no signatures, so any key pair works.
      printf '%s\n' "$STACK_DIR/venv/bin/python" "$MOTO" -H "$HOST" -p "$S3_PORT"
      ;;
  esac
}

# One line naming everything a server was started with (binary, command, env).
conf_of() {
  local cmd
  mapfile -t cmd < <(command_of "$1")
  # A rebuilt binary counts as a change too.
  printf 'built %s: ' "$(stat -c %Y "$BIN_DIR/$(binary_of "$1")" 2>/dev/null || echo none)"
  if [[ $1 == bigquery ]]; then
    echo "STORAGE_EMULATOR_HOST=$GCS_URL ${cmd[*]}"
  else
    echo "${cmd[*]}"
  fi
}

healthy() {
  case "$1" in
    mongo) "$BIN_DIR/ferretdb-embedded" -ping "$HOST:$MONGO_PORT" -timeout 2s >/dev/null 2>&1 ;;
    gcs) curl -fsS -m 3 -o /dev/null "$GCS_URL/storage/v1/b" 2>/dev/null ;;
    bigquery) curl -fsS -m 3 -o /dev/null "$BQ_URL/bigquery/v2/projects/$BQ_PROJECT/datasets" 2>/dev/null ;;
    # A real {ping: 1} OP_MSG from the jar's --ping mode (one JVM start, ~0.4 s).
    mongo-fast) java -jar "$BIN_DIR/mongo-fast.jar" --ping "$HOST:$MONGO_FAST_PORT" --timeout 2 >/dev/null 2>&1 ;;
    s3) curl -fsS -m 3 -o /dev/null "$S3_URL/" 2>/dev/null ;;
  esac
}

# True if the process exists and is not a zombie waiting to be reaped.
alive() {
  local state
  kill -0 "$1" 2>/dev/null || return 1
  state="$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null || true)"
  [[ $state != Z && $state != X ]]
}

# Prints the pid from the pid file if that process is alive and is our binary.
live_pid() {
  local f pid exe
  f="$(pid_file "$1")"
  [[ -f $f ]] || return 1
  pid="$(<"$f")"
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  if [[ $1 == mongo-fast || $1 == s3 ]]; then
    # Its exe is java or python: the command line must name our jar or
    # moto_server instead.
    local args want="$BIN_DIR/mongo-fast.jar"
    [[ $1 == s3 ]] && want="$MOTO"
    args="$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    if [[ -n $args ]] && ! grep -qxF "$want" <<<"$args"; then
      return 1
    fi
    echo "$pid"
    return 0
  fi
  # Guard against a recycled pid: the process must run our binary.
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
  # A stack started before stack/gcs-front ran fake-gcs-server itself: still
  # ours, so `up` restarts it (its settings differ) and `down` stops it.
  if [[ $1 == gcs && $exe == "$BIN_DIR/fake-gcs-server"* ]]; then
    echo "$pid"
    return 0
  fi
  if [[ -n $exe && $exe != "$BIN_DIR/$(binary_of "$1")"* ]]; then
    return 1
  fi
  echo "$pid"
}

port_in_use() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# True if the port stays taken for 5 s (a killed server may need a moment to let go).
port_taken() {
  local i
  for ((i = 0; i < 25; i++)); do
    port_in_use "$1" || return 1
    sleep 0.2
  done
}

# --------------------------------------------------------------------- install

needs_build() {
  local name="$1" bin f
  [[ $name == s3 ]] && return 1 # stack/python.sh installs it
  bin="$BIN_DIR/$(binary_of "$name")"
  if [[ $name == mongo-fast ]]; then
    [[ -f $bin ]] || return 0
  else
    [[ -x $bin ]] || return 0
  fi
  while IFS= read -r f; do
    [[ $bin -nt $f ]] || return 0
  done < <(sources_of "$name")
  return 1
}

# Builds stack/bin/mongo-fast.jar (one jar with its dependencies) with Maven.
# A cold Maven cache (~/.m2) downloads the plugins and dependencies from Maven
# Central first.
build_jar() {
  local bin="$1" mod="$2" t0
  command -v java >/dev/null || die "java is not on PATH (Java >= 17 is needed to build and run mongo-fast)"
  command -v mvn >/dev/null || die "mvn is not on PATH (Maven >= 3.6.3 is needed to build mongo-fast)"
  log "building mongo-fast.jar in ${mod#"$STACK_DIR/"}/ with Maven ..."
  t0="$(now)"
  # Maven -q still writes colour resets to stdout; strip them, keep errors.
  mvn -B -q -f "$mod/pom.xml" package 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >&2 ||
    die "mvn package of mongo-fast failed (see the output above)"
  cp -f "$mod/target/mongo-fast.jar" "$bin.tmp"
  mv -f "$bin.tmp" "$bin"
  log "built mongo-fast.jar in $(elapsed "$t0") s"
}

build_one() {
  local name="$1" bin mod pkg t0
  bin="$BIN_DIR/$(binary_of "$name")"
  mod="$(module_of "$name")"
  if [[ $name == mongo-fast ]]; then
    build_jar "$bin" "$mod"
    return 0
  fi
  command -v go >/dev/null || die "go is not on PATH (Go >= 1.25 is needed to build the stack)"
  pkg="$(package_of "$name")"
  log "building $(binary_of "$name") in ${mod#"$STACK_DIR/"}/ ..."
  t0="$(now)"
  (
    cd "$mod"
    if [[ $name == bigquery ]]; then
      # Pure Go; the first build takes minutes and up to ~6.5 GiB of RAM.
      export CGO_ENABLED=0
    fi
    go build -buildvcs=false -o "$bin.tmp" "$pkg"
  ) || { rm -f "$bin.tmp"; die "go build of $(binary_of "$name") failed"; }
  mv -f "$bin.tmp" "$bin"
  log "built $(binary_of "$name") in $(elapsed "$t0") s"
}

# Checks server names given on the command line; none means all.
pick_servers() {
  local name
  for name in "$@"; do
    case "$name" in
      mongo | gcs | bigquery | mongo-fast | s3) ;;
      *) die "unknown server '$name' (mongo, gcs, bigquery, mongo-fast, s3)" ;;
    esac
  done
}

cmd_install() {
  mkdir -p "$BIN_DIR"
  local name names=("$@")
  pick_servers "${names[@]}"
  if ((${#names[@]} == 0)); then names=("${SERVERS[@]}"); fi
  for name in "${names[@]}"; do
    if needs_build "$name"; then
      build_one "$name"
    else
      log "$(binary_of "$name") is up to date"
    fi
  done
}

# ------------------------------------------------------------------------- up

stop_pid() {
  local name="$1" pid="$2" i
  kill -TERM "$pid" 2>/dev/null || true
  kill -CONT "$pid" 2>/dev/null || true # a stopped (SIGSTOP) process handles TERM only once continued
  for ((i = 0; i < 100; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  log "$name (pid $pid) did not stop within 10 s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  die "$name (pid $pid) survived SIGKILL"
}

# Starts a server unless its pid file names a live, healthy process.
# Sets STARTED to 1 if it started one.
ensure_started() {
  local name="$1" pid port logf cmd
  STARTED=0
  port="$(port_of "$name")"
  if pid="$(live_pid "$name")"; then
    local was
    was="$(started_conf "$name")"
    if [[ -n $was && $was != "$(conf_of "$name")" ]]; then
      log "$name: running (pid $pid) with other settings (ports?) than asked for now; restarting it"
      stop_pid "$name" "$pid"
    elif healthy "$name" || { sleep 1 && healthy "$name"; }; then
      log "$name: already running (pid $pid, port $port)"
      return 0
    else
      log "$name: pid $pid is alive but not answering; restarting it"
      stop_pid "$name" "$pid"
    fi
  elif [[ -f $(pid_file "$name") ]]; then
    log "$name: stale pid file (process $(<"$(pid_file "$name")") is gone); restarting"
  fi
  rm -f "$(pid_file "$name")"

  if port_taken "$port"; then
    die "$name: port $port on $HOST is already taken by another process (not ours: no live pid file). Stop it or set the port variable (see stack/stack.sh header)."
  fi
  if [[ $name == bigquery ]] && port_taken "$BQ_GRPC_PORT"; then
    die "bigquery: gRPC port $BQ_GRPC_PORT on $HOST is already taken; set ETL_BQ_GRPC_PORT"
  fi

  if [[ $name != mongo-fast && $name != s3 ]]; then # these keep nothing on disk
    mkdir -p "$(data_dir "$name")"
  fi
  logf="$(log_file "$name")"
  mapfile -t cmd < <(command_of "$name")
  printf '=== %s starting: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${cmd[*]}" >>"$logf"
  (
    cd "$RUN_DIR"
    if [[ $name == bigquery ]]; then
      # Load jobs with gs:// sources read from gcs-front.
      export STORAGE_EMULATOR_HOST="$GCS_URL"
    fi
    exec setsid nohup "${cmd[@]}" >>"$logf" 2>&1 </dev/null
  ) &
  pid=$! # the subshell execs setsid, which execs nohup, which execs the server: one pid
  echo "$pid" >"$(pid_file "$name")"
  conf_of "$name" >"$(conf_file "$name")"
  STARTED=1
  log "$name: started (pid $pid, port $port, log ${logf#"$STACK_DIR/"})"
}

wait_healthy() {
  local name="$1" t0 pid logf
  t0="$(now)"
  logf="$(log_file "$name")"
  pid="$(<"$(pid_file "$name")")"
  while ! healthy "$name"; do
    if ! alive "$pid"; then
      rm -f "$(pid_file "$name")"
      log "---- last lines of $logf:"
      tail -n 20 "$logf" >&2 || true
      die "$name exited during start-up; see $logf"
    fi
    if awk -v a="$t0" -v b="$(now)" -v t="$HEALTH_TIMEOUT" 'BEGIN { exit !(b - a > t) }'; then
      log "---- last lines of $logf:"
      tail -n 20 "$logf" >&2 || true
      die "$name (pid $pid) did not become healthy within $HEALTH_TIMEOUT s; see $logf"
    fi
    sleep 0.2
  done
  log "$name: healthy after $(elapsed "$t0") s"
}

ensure_bucket() {
  local bucket="$1" code
  code="$(curl -sS -m 10 -o "$RUN_DIR/.bucket.out" -w '%{http_code}' -X POST \
    -H 'Content-Type: application/json' -d "{\"name\":\"$bucket\"}" \
    "$GCS_URL/storage/v1/b")" || die "could not reach gcs-front to create bucket $bucket"
  case "$code" in
    200) log "gcs: created bucket $bucket" ;;
    409) log "gcs: bucket $bucket exists" ;;
    *) die "creating bucket $bucket: HTTP $code: $(cat "$RUN_DIR/.bucket.out")" ;;
  esac
  rm -f "$RUN_DIR/.bucket.out"
}

ensure_s3_bucket() {
  local code
  code="$(curl -sS -m 10 -o "$RUN_DIR/.s3.out" -w '%{http_code}' -X PUT "$S3_URL/$S3_BUCKET")" ||
    die "could not reach moto_server to create bucket $S3_BUCKET"
  case "$code" in
    200) log "s3: bucket $S3_BUCKET ready" ;;
    *) die "creating S3 bucket $S3_BUCKET: HTTP $code: $(cat "$RUN_DIR/.s3.out")" ;;
  esac
  rm -f "$RUN_DIR/.s3.out"
}

ensure_dataset() {
  local code base="$BQ_URL/bigquery/v2/projects/$BQ_PROJECT/datasets"
  code="$(curl -sS -m 10 -o /dev/null -w '%{http_code}' "$base/$BQ_DATASET")" ||
    die "could not reach bigquery-emulator"
  if [[ $code == 200 ]]; then
    log "bigquery: dataset $BQ_PROJECT.$BQ_DATASET exists"
    return 0
  fi
  code="$(curl -sS -m 10 -o "$RUN_DIR/.dataset.out" -w '%{http_code}' -X POST \
    -H 'Content-Type: application/json' \
    -d "{\"datasetReference\":{\"projectId\":\"$BQ_PROJECT\",\"datasetId\":\"$BQ_DATASET\"}}" \
    "$base")" || die "could not reach bigquery-emulator"
  case "$code" in
    200 | 409) log "bigquery: created dataset $BQ_PROJECT.$BQ_DATASET" ;;
    *) die "creating dataset $BQ_DATASET: HTTP $code: $(cat "$RUN_DIR/.dataset.out")" ;;
  esac
  rm -f "$RUN_DIR/.dataset.out"
}

# True if server $1 is among the rest of the arguments (none means all).
wanted() {
  local name="$1"
  shift
  (($# == 0)) && return 0
  local w
  for w in "$@"; do [[ $w == "$name" ]] && return 0; done
  return 1
}

cmd_up() {
  local t0 name started=() only=("$@")
  t0="$(now)"
  pick_servers "${only[@]}"
  command -v curl >/dev/null || die "curl is not on PATH"
  if wanted mongo-fast "${only[@]}"; then
    command -v java >/dev/null || die "java is not on PATH (Java >= 17 runs mongo-fast)"
  fi
  local need=()
  for name in "${SERVERS[@]}"; do
    if wanted "$name" "${only[@]}" && needs_build "$name"; then need+=("$name"); fi
  done
  if ((${#need[@]})); then cmd_install "${need[@]}"; fi
  mkdir -p "$RUN_DIR"

  # gcs first: the emulator reads gs:// load sources from it.
  local servers=() s3_line="not asked for (stack/stack.sh up starts every server)"
  for name in gcs mongo bigquery mongo-fast; do
    if wanted "$name" "${only[@]}"; then servers+=("$name"); fi
  done
  if wanted s3 "${only[@]}"; then
    if [[ -x $MOTO ]]; then
      servers+=(s3)
      s3_line="$S3_URL   bucket: $S3_BUCKET   (moto, in memory)"
    else
      s3_line="not started: run stack/python.sh first (it installs moto into stack/venv/)"
      log "s3: not started (no $MOTO; stack/python.sh installs it)"
    fi
  fi
  for name in "${servers[@]}"; do
    ensure_started "$name"
    if ((STARTED)); then started+=("$name"); fi
  done
  for name in "${started[@]}"; do
    wait_healthy "$name"
  done
  if wanted gcs "${only[@]}"; then
    for bucket in "$GCS_BUCKET" "${LOCAL_BUCKETS[@]}"; do ensure_bucket "$bucket"; done
  fi
  if wanted bigquery "${only[@]}"; then ensure_dataset; fi
  if [[ " ${servers[*]} " == *" s3 "* ]]; then ensure_s3_bucket; fi

  local off="not asked for (stack/stack.sh up starts every server)"
  local mongo_line="$off" fast_line="$off" gcs_line="$off" bq_line="$off"
  wanted mongo "${only[@]}" && mongo_line="$MONGO_URI"
  wanted mongo-fast "${only[@]}" &&
    fast_line="$MONGO_FAST_URI   in memory, oplog $MONGO_FAST_OPLOG, heap $MONGO_FAST_HEAP"
  wanted gcs "${only[@]}" && gcs_line="$GCS_URL   buckets: $GCS_BUCKET (tests), ${LOCAL_BUCKETS[*]}"
  wanted bigquery "${only[@]}" && bq_line="$BQ_URL   gRPC: $HOST:$BQ_GRPC_PORT
                        project: $BQ_PROJECT   dataset: $BQ_DATASET"
  cat <<EOF
local stack is up:
  MongoDB (FerretDB)    $mongo_line
  MongoDB (mongo-fast)  $fast_line
  GCS (gcs-front)       $gcs_line
  BigQuery (emulator)   $bq_line
  S3 (moto)             $s3_line
  logs and data         ${RUN_DIR}/
  for tests             eval "\$($STACK_DIR/stack.sh env)"
up took $(elapsed "$t0") s
EOF
}

# ----------------------------------------------------------------------- down

stop_server() {
  local name="$1" f pid
  f="$(pid_file "$name")"
  if [[ ! -f $f ]]; then
    log "$name: not running"
    return 0
  fi
  if pid="$(live_pid "$name")"; then
    stop_pid "$name" "$pid"
    log "$name: stopped (pid $pid)"
  else
    log "$name: not running (removed stale pid file)"
  fi
  rm -f "$f" "$(conf_file "$name")"
}

cmd_down() {
  local name
  for name in bigquery mongo-fast mongo gcs s3; do
    stop_server "$name"
  done
}

# Stops the named servers (default: all) and deletes their data. The emulator
# keeps every job in its database and slows down as they pile up (about 5x
# after a few hundred queries), and a restart alone does not help since the
# database persists: reset it between test groups. mongo-fast keeps its data
# in memory, so stopping it is the reset.
cmd_reset() {
  local name names=("$@")
  if ((${#names[@]} == 0)); then names=(bigquery mongo-fast mongo gcs s3); fi
  for name in "${names[@]}"; do
    case "$name" in
      mongo | gcs | bigquery | mongo-fast | s3) ;;
      *) die "unknown server '$name' (mongo, gcs, bigquery, mongo-fast, s3)" ;;
    esac
  done
  for name in "${names[@]}"; do
    stop_server "$name"
    if [[ $name == mongo-fast || $name == s3 ]]; then
      log "$name: data gone (it was in memory)"
      continue
    fi
    rm -rf "${RUN_DIR:?}/$name/data"
    log "$name: data deleted"
  done
  log "run 'stack/stack.sh up' to start again with empty state"
}

# --------------------------------------------------------------------- status

cmd_status() {
  local name pid rc=0 port was
  for name in "${SERVERS[@]}"; do
    port="$(port_of "$name")"
    if [[ $name == s3 && ! -x $MOTO ]]; then
      printf '%-10s not installed (stack/python.sh installs it)\n' "$name"
      continue
    fi
    if pid="$(live_pid "$name")"; then
      was="$(started_conf "$name")"
      if [[ -n $was && $was != "$(conf_of "$name")" ]]; then
        printf '%-10s running  pid %-7s UNHEALTHY: started with other settings than asked for now: %s\n' "$name" "$pid" "$was"
        rc=3
      elif healthy "$name"; then
        printf '%-10s running  pid %-7s port %-5s healthy\n' "$name" "$pid" "$port"
      else
        printf '%-10s running  pid %-7s port %-5s UNHEALTHY (see %s)\n' "$name" "$pid" "$port" "$(log_file "$name")"
        rc=3
      fi
    else
      printf '%-10s stopped\n' "$name"
      rc=3
    fi
  done
  return "$rc"
}

# ------------------------------------------------------------------------ env

cmd_env() {
  cat <<EOF
export ETL_MONGO_PORT=$MONGO_PORT
export ETL_MONGO_URI='$MONGO_URI'
export ETL_MONGO_FAST_PORT=$MONGO_FAST_PORT
export ETL_MONGO_FAST_URI='$MONGO_FAST_URI'
export ETL_GCS_PORT=$GCS_PORT
export ETL_GCS_ENDPOINT=$GCS_URL
export ETL_GCS_BUCKET=$GCS_BUCKET
export STORAGE_EMULATOR_HOST=$GCS_URL
export ETL_BQ_PORT=$BQ_PORT
export ETL_BQ_GRPC_PORT=$BQ_GRPC_PORT
export ETL_BQ_ENDPOINT=$BQ_URL
export ETL_BQ_PROJECT=$BQ_PROJECT
export ETL_BQ_DATASET=$BQ_DATASET
export ETL_S3_PORT=$S3_PORT
export ETL_S3_ENDPOINT=$S3_URL
export ETL_S3_BUCKET=$S3_BUCKET
EOF
  # The stack's own age identity, once `key` has made it: the `local`
  # profile's GCS key is sealed with it.
  if [[ -f $AGE_IDENTITY ]]; then echo "export ETL_AGE_IDENTITY_FILE=$AGE_IDENTITY"; fi
}

# ------------------------------------------------------------------------ key

# The `local` profile reaches its buckets on gcs-front as a production
# profile reaches GCS: with a service-account key in an age secret
# (`gcs_local` in etl.yaml). The key is a service-account JSON whose
# `gcs_base_url` points at gcs-front and whose `disable_oauth` tells
# object_store to send no token (gcs-front checks none); it holds no private
# key. It is sealed to the stack's own age identity, made here once
# (stack/run/age/identity.txt, mode 600, outside git) and exported by `env`;
# the JSON goes to `etl secrets encrypt` on stdin and never touches the disk.
# Sealed again on every call, since the port may change (ETL_GCS_PORT).
cmd_key() {
  local project="${1:-$(dirname "$STACK_DIR")}"
  local etl="${ETL_BIN:-$(dirname "$STACK_DIR")/target/release/etl}"
  local out="$project/.etl/secrets/gcs_local.age" recipient
  [[ -x $etl ]] || die "no etl binary at $etl (cargo build --release, or set ETL_BIN)"
  if [[ ! -f $AGE_IDENTITY ]]; then
    mkdir -p "$(dirname "$AGE_IDENTITY")"
    chmod 700 "$(dirname "$AGE_IDENTITY")"
    (umask 077 && "$etl" secrets keygen >"$AGE_IDENTITY.tmp" 2>/dev/null)
    mv "$AGE_IDENTITY.tmp" "$AGE_IDENTITY"
    log "key: made the stack's age identity $AGE_IDENTITY"
  fi
  recipient="$(sed -n 's/^# public key: //p' "$AGE_IDENTITY")"
  [[ $recipient == age1* ]] || die "$AGE_IDENTITY has no '# public key: age1...' line"
  mkdir -p "$(dirname "$out")"
  printf '{"type":"service_account","project_id":"%s","client_email":"etl-local@%s.iam.gserviceaccount.com","private_key_id":"none","private_key":"none: gcs-front checks no token","gcs_base_url":"%s","disable_oauth":true}' \
    "$BQ_PROJECT" "$BQ_PROJECT" "$GCS_URL" |
    "$etl" secrets encrypt --recipient "$recipient" - >"$out.tmp"
  mv "$out.tmp" "$out"
  log "key: sealed the local profile's GCS key (gcs-front at $GCS_URL) into $out"
}

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;p}' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit "${1:-2}"
}

case "${1:-}" in
  install) shift; cmd_install "$@" ;;
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  reset) shift; cmd_reset "$@" ;;
  status) cmd_status ;;
  env) cmd_env ;;
  key) shift; cmd_key "$@" ;;
  -h | --help | help) usage 0 ;;
  "") usage ;;
  *) log "unknown command: $1"; usage ;;
esac
