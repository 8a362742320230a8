#!/usr/bin/env bash
# Peer: Sling (its Go CLI, from the PyPI package sling-linux-amd64, which
# ships the binary; the `sling` package downloads one at run time instead),
# MongoDB -> a local Parquet file, full-refresh.
#
#   sling_parquet.sh URI DATABASE COLLECTION DAY OUT_DIR
#
# The day: Sling 1.4.11 turns a stream's `where` into the MongoDB find filter
# (its `sql` does not work for MongoDB there: the JSON is taken as the stream
# name, "database name cannot be empty"). It passes the values as plain JSON,
# so a date is a string, which never matches a BSON date; its backfill range
# is $gte/$lte on such strings too. So the day is an `$expr` with `$toDate`,
# which MongoDB and mongo-java-server both evaluate. `flatten: true` turns nested objects into
# columns, as etl does; arrays stay JSON text (Sling has no child tables).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
(($# == 5)) || { echo "usage: sling_parquet.sh URI DATABASE COLLECTION DAY OUT_DIR" >&2; exit 2; }
uri="$1" database="$2" collection="$3" day="$4" out="$5"
next="$(date -u -d "$day + 1 day" +%F)"
sling="${SLING_BIN:-$here/.venv/lib/python3.11/site-packages/sling_linux_amd64/bin/sling-linux-amd64}"
[[ -x $sling ]] || { echo "sling_parquet.sh: no Sling binary at $sling (run benches/peers/install.sh)" >&2; exit 1; }
mkdir -p "$out"
out="$(cd "$out" && pwd)"
home="$(mktemp -d)"
trap 'rm -rf "$home"' EXIT

cat >"$home/replication.yaml" <<YAML
source: BENCH_MONGO
target: LOCAL
defaults:
  mode: full-refresh
streams:
  $database.$collection:
    where: '{"\$expr": {"\$and": [{"\$gte": ["\$created_at", {"\$toDate": "${day}T00:00:00Z"}]}, {"\$lt": ["\$created_at", {"\$toDate": "${next}T00:00:00Z"}]}]}}'
    object: file://$out/$collection.parquet
    source_options:
      flatten: true
    target_options:
      format: parquet
YAML
# Its own home (env.yaml, logs) and no telemetry: nothing leaves the machine.
# SLING_DUCKDB_COMPUTE=false: by default Sling 1.4.11 writes Parquet through a
# DuckDB CLI it downloads on first use (which fails offline); this selects its
# built-in Go Parquet writer instead.
SLING_HOME_DIR="$home" SLING_DISABLE_TELEMETRY=true SLING_LOADED_AT_COLUMN=false SLING_DUCKDB_COMPUTE=false BENCH_MONGO="$uri" \
  "$sling" run -r "$home/replication.yaml" >"$home/sling.log" 2>&1 || { cat "$home/sling.log" >&2; exit 1; }
grep -oE '[0-9,]+ rows' "$home/sling.log" | tail -1 | tr -d ,
