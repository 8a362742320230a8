# Sourced by benches/scale.sh and benches/peers/run.sh: a PRIVATE mongo-fast
# server (mongo-java-server, in memory) on a port of the script's own, started
# and stopped by pid. Never the shared stack's server: benchmarks reseed and
# hammer it, and its numbers must not mix with anyone else's load.
#
#   mongo_fast_jar ROOT            -> prints the jar path (or dies)
#   mongo_fast_start JAR PORT HEAP LOG   sets MONGO_FAST_PID, waits for {ping: 1}
#   mongo_fast_cpu                 -> CPU seconds (user+sys) the server used so far
#   mongo_fast_stop                TERM, then KILL after 10 s; by pid only
# The caller defines die().

# stack/stack.sh install builds stack/bin/mongo-fast.jar; the Maven module's
# own output is the same jar, so accept it too while stack/bin/ is cold.
mongo_fast_jar() {
  local root="$1" j
  if [[ -n ${ETL_MONGO_FAST_JAR:-} ]]; then
    [[ -f $ETL_MONGO_FAST_JAR ]] || die "ETL_MONGO_FAST_JAR=$ETL_MONGO_FAST_JAR does not exist"
    echo "$ETL_MONGO_FAST_JAR"
    return
  fi
  for j in stack/bin/mongo-fast.jar stack/mongo-fast/target/mongo-fast.jar; do
    if [[ -f $root/$j ]]; then echo "$root/$j"; return; fi
  done
  die "no mongo-fast.jar: run stack/stack.sh install (it builds stack/bin/mongo-fast.jar), or set ETL_MONGO_FAST_JAR"
}

MONGO_FAST_PID=""

mongo_fast_start() {
  local jar="$1" port="$2" heap="$3" log="$4" i
  command -v java >/dev/null || die "java is not on PATH (mongo-fast needs Java >= 17)"
  # The port must be free: reusing whatever answers there would benchmark
  # (and reseed) someone else's server.
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "127.0.0.1:$port is already in use; pick another port with ETL_BENCH_MONGO_PORT"
  fi
  # --oplog off and a big heap: with the oplog on, ~1M documents keep the
  # heap full and the server stalls in GC (/work/shared/LOCAL-STACK.md).
  java "-Xmx$heap" -jar "$jar" --host 127.0.0.1 --port "$port" --oplog off >"$log" 2>&1 &
  MONGO_FAST_PID=$!
  for i in $(seq 150); do
    kill -0 "$MONGO_FAST_PID" 2>/dev/null || { cat "$log" >&2; MONGO_FAST_PID=""; die "mongo-fast exited at start"; }
    if java -jar "$jar" --ping "127.0.0.1:$port" --timeout 1 >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  cat "$log" >&2
  die "mongo-fast did not answer on 127.0.0.1:$port within 30 s"
}

# Creates collections so that `etl demo` can drop them. mongo-java-server
# 1.47.0 answers a drop of a missing collection with {ok: 0, errmsg: "ns not
# found"} and no `code`; the Rust driver (which treats code 26 as success)
# fails on that reply, so `etl demo` built before 65f2b63 (which drops only
# existing collections) fails on a fresh server. One OP_MSG `create` each,
# in python3's standard library (no driver needed in CI); an existing
# collection is fine.
mongo_fast_create() {
  local port="$1" db="$2"
  shift 2
  python3 - "$port" "$db" "$@" <<'PY' || die "could not create collections on 127.0.0.1:$port"
import socket, struct, sys

def bson(doc):
    body = b""
    for k, v in doc.items():
        b = v.encode() + b"\0"
        body += b"\x02" + k.encode() + b"\0" + struct.pack("<i", len(b)) + b
    return struct.pack("<i", len(body) + 5) + body + b"\0"

port, db, names = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
    for i, name in enumerate(names, 1):
        msg = struct.pack("<iB", 0, 0) + bson({"create": name, "$db": db})
        s.sendall(struct.pack("<iiii", 16 + len(msg), i, 0, 2013) + msg)
        head = s.recv(16, socket.MSG_WAITALL)
        length = struct.unpack("<i", head[:4])[0]
        s.recv(length - 16, socket.MSG_WAITALL)  # ok, or "already exists": both do
PY
}

# The server is another process, so /usr/bin/time on a client cannot see its
# CPU: read utime + stime (fields 14 and 15 of /proc/PID/stat; counted after
# the ")" that ends the command name, which may hold spaces).
mongo_fast_cpu() {
  sed 's/^.*) //' "/proc/$MONGO_FAST_PID/stat" | awk -v t="$(getconf CLK_TCK)" '{ printf "%.2f", ($12 + $13) / t }'
}

mongo_fast_stop() {
  local i
  [[ -n $MONGO_FAST_PID ]] || return 0
  if kill -0 "$MONGO_FAST_PID" 2>/dev/null; then
    kill -TERM "$MONGO_FAST_PID" 2>/dev/null || true
    for i in $(seq 50); do kill -0 "$MONGO_FAST_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$MONGO_FAST_PID" 2>/dev/null || true
  fi
  wait "$MONGO_FAST_PID" 2>/dev/null || true
  MONGO_FAST_PID=""
}

# mongo_fast_work NAME: the script's temp folder, in $work; at exit the
# private server is stopped and the folder removed, and INT or TERM exit 130.
mongo_fast_work() {
  work="$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")"
  trap mongo_fast_cleanup EXIT
  trap 'exit 130' INT TERM
}

mongo_fast_cleanup() {
  local rc=$?
  mongo_fast_stop
  rm -rf "$work"
  exit "$rc"
}

# Wall seconds, CPU seconds (user+sys) and peak RSS (MB) of a `/usr/bin/time -v` report.
time_wall() {
  awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$1" |
    awk -F: '{ if (NF == 3) print $1 * 3600 + $2 * 60 + $3; else print $1 * 60 + $2 }'
}
time_cpu() { awk -F': ' '/User time/ {u = $2} /System time/ {s = $2} END {printf "%.2f\n", u + s}' "$1"; }
time_rss() { awk -F': ' '/Maximum resident set size/ {printf "%.1f\n", $2 / 1024}' "$1"; }
# The median of numbers, one a line on stdin.
median() { sort -g | awk '{v[NR] = $1} END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
