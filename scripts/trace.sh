#!/usr/bin/env bash
# Builds synsight (release) after installing what is missing, then runs
# `synsight trace` as root with any arguments given, e.g.
#   bash scripts/trace.sh --port 8080 --json
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
source scripts/env.sh
swift build -c release --product synsight >&2
BIN="$(swift build -c release --show-bin-path)/synsight"
if [[ $(id -u) -ne 0 ]]; then
    exec sudo "$BIN" trace "$@"
fi
exec "$BIN" trace "$@"
