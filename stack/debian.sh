#!/usr/bin/env bash
# The Debian packages some tests need, installed when missing:
#   tmux               tests/stack_engine.rs runs `etl run` in a real
#                      terminal and reads its screen (capture-pane)
#   chromium           tests/stack_report.rs renders `etl report`'s page
#                      headless: its DOM (--dump-dom) and a screenshot
#   fonts-dejavu-core  the fonts that page is drawn with
#   openssl            the same test makes a CA and a certificate for its
#                      SMTP server's STARTTLS
# Needs root (as CI and the developers' machines run) only when a package
# is missing; otherwise it changes nothing.
set -euo pipefail

PACKAGES=(tmux chromium fonts-dejavu-core openssl)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
for p in "${PACKAGES[@]}"; do
  installed "$p" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "debian.sh: ${PACKAGES[*]} already installed" >&2
  exit 0
fi
if [[ $(id -u) != 0 ]]; then
  echo "debian.sh: error: ${missing[*]} missing; install with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "debian.sh: installing ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
