#!/usr/bin/env bash
# The Python tools some tests need, in a venv of their own: stack/venv/.
#   apache-airflow       tests/stack_engine.rs imports and runs a generated DAG
#   kubernetes-validate  tests/cli_k8s.rs checks generated manifests offline
#   moto[server]         an S3 server with conditional puts, for leases
#   aiosmtpd             an SMTP server, for tests/stack_report.rs notifications
# The pins are in stack/python-requirements.txt. A venv built from the same
# pins is kept; otherwise it is built again. Prints the venv's path.
#
#   stack/python.sh          install if needed, print the venv folder
#   stack/python.sh --check  exit 0 if installed and up to date, 1 if not
set -euo pipefail

STACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$STACK_DIR/venv"
REQS="$STACK_DIR/python-requirements.txt"
STAMP="$VENV/.requirements"
PYTHON="${ETL_PYTHON:-python3}"

up_to_date() { [[ -x $VENV/bin/python && -f $STAMP ]] && cmp -s "$REQS" "$STAMP"; }

if [[ ${1:-} == --check ]]; then
  up_to_date
  exit
fi

if ! up_to_date; then
  start=$(date +%s)
  echo "python.sh: installing $(grep -cv '^#' "$REQS") pinned packages into $VENV" >&2
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQS"
  cp "$REQS" "$STAMP"
  echo "python.sh: installed in $(( $(date +%s) - start ))s" >&2
fi
echo "$VENV"
