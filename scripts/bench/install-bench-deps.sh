#!/usr/bin/env bash
# Installs what the benchmarks need (not the test suite), idempotently:
# bpftrace (the comparison), wrk (HTTP load), nginx (the healthy-traffic
# server), gcc (the refusal generator), bpftool (BPF program run time),
# linux-perf and valgrind (profiling). Installing nginx must not start the
# system's nginx service: a policy-rc.d that refuses every service start is
# put in place for the install (only if none exists) and removed after it.
set -euo pipefail

PACKAGES=(bpftrace wrk nginx gcc libc6-dev bpftool linux-perf valgrind iproute2 python3)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]})) || exit 0

if [[ $(id -u) -ne 0 ]]; then
    echo "install-bench-deps: need root to install: ${missing[*]}" >&2
    exit 1
fi

policy=/usr/sbin/policy-rc.d
ours=0
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# synsight benchmarks: never start services during package installation\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    ours=1
fi
cleanup() { if ((ours)); then rm -f "$policy"; fi; }
trap cleanup EXIT

echo "install-bench-deps: installing ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

# The package enables its unit for boot; the benchmarks never use the system
# service (they run nginx with their own configuration in a namespace).
if [[ " ${missing[*]} " == *" nginx "* ]] && command -v systemctl >/dev/null; then
    systemctl disable nginx >/dev/null 2>&1 || true
fi
