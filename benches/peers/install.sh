#!/usr/bin/env bash
# The peers of benches/peers/run.sh in a virtualenv of their own,
# benches/peers/.venv (git-ignored), at pinned versions from PyPI:
#
#   benches/peers/install.sh        # ~1-2 min on a cold pip cache, ~650 MB
#
# requirements.txt pins the peers, constraints.txt everything they pull in.
# Nothing here downloads at run time: Sling comes from sling-linux-amd64, whose
# wheel carries the Go binary (the `sling` package fetches one from GitHub on
# first use instead).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
py="${PYTHON:-python3}"
"$py" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' 2>/dev/null ||
  { echo "install.sh: needs Python >= 3.11 (pandas 3), found: $("$py" --version 2>&1)" >&2; exit 1; }
[[ $(uname -sm) == "Linux x86_64" ]] || { echo "install.sh: Sling's binary here is linux-amd64 only" >&2; exit 1; }
if [[ ! -x .venv/bin/python ]]; then "$py" -m venv .venv; fi
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
.venv/bin/pip check
.venv/bin/python - <<'PY'
import importlib.metadata as m
for p in ["pandas", "pyarrow", "pymongo", "pymongoarrow", "dlt", "sling-linux-amd64"]:
    print(f"{p}=={m.version(p)}")
PY
