#!/usr/bin/env bash
# BPF program runs and run time per healthy loopback connection while
# `synsight record --bpf-stats` runs (issue 16); see per_connection.py.
#   sudo bash scripts/bench/per-connection-runs.sh [--connections 4000] [--json FILE]
set -euo pipefail
cd "$(dirname "$0")/../.."
exec python3 scripts/bench/per_connection.py "$@"
