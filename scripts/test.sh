#!/usr/bin/env bash
# The whole test suite: unit, CLI and end-to-end (real BPF, real sockets in
# network namespaces the tests create and delete). The end-to-end tests need
# root; SYNSIGHT_REQUIRE_ROOT=1 makes a skipped root-only test a failure, so
# this command cannot pass by skipping them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
source scripts/env.sh
# Module layering: every import points down the data path (docs/architecture.md).
python3 scripts/check-layers.py
# Each bpf/ header compiles on its own (no include-order dependencies).
bash scripts/check-bpf-headers.sh
if [[ $(id -u) -ne 0 ]]; then
    # Build as the user (keeps .build owned by them), run the tests as root.
    swift build --build-tests
    sudo env "PATH=$PATH" SYNSIGHT_REQUIRE_ROOT=1 swift test --skip-build "$@"
    if [[ $# -eq 0 && ${SYNSIGHT_FUZZ:-1} != 0 ]]; then
        bash scripts/fuzz.sh
    fi
    if [[ $# -eq 0 && ${SYNSIGHT_KERNEL_MATRIX:-1} != 0 ]]; then
        exec sudo env "PATH=$PATH" SYNSIGHT_BIN="$(swift build --show-bin-path)/synsight" bash scripts/kernel-matrix.sh
    fi
    exit 0
fi
export SYNSIGHT_REQUIRE_ROOT=1
swift build --build-tests
swift test --skip-build "$@"
# The tests delete their namespaces even on failure; check that they did.
if ip netns list | grep -q '^synsight-e2e-'; then
    echo "test.sh: network namespaces left behind:" >&2
    ip netns list | grep '^synsight-e2e-' >&2
    exit 1
fi
# ... and that the Docker tests removed what their daemons made (only
# meaningful when no other Docker engine runs on this host).
if ! pgrep -x dockerd >/dev/null; then
    left=$( { ip -o link show docker0 2>/dev/null | cut -d' ' -f2; iptables-nft-save 2>/dev/null | grep '^:DOCKER';
              ls -d /sys/fs/cgroup/*/docker /run/docker 2>/dev/null; } || true)
    if [[ -n $left ]]; then
        echo "test.sh: Docker's bridge, chains or directories left behind:" >&2
        echo "$left" >&2
        exit 1
    fi
fi
# Fuzzing: each parser of untrusted input under libFuzzer for
# SYNSIGHT_FUZZ_SECONDS (default 60) each, about 3 minutes plus the first
# build of .build-fuzz. Only with the whole suite; SYNSIGHT_FUZZ=0 skips it.
if [[ $# -eq 0 && ${SYNSIGHT_FUZZ:-1} != 0 ]]; then
    bash scripts/fuzz.sh
fi
# The kernel matrix: every reason on Debian's 6.1 and 6.12 kernels in qemu
# guests and on this kernel, written to docs/kernel-matrix.md (a few minutes).
# Only with the whole suite (no swift test arguments); SYNSIGHT_KERNEL_MATRIX=0 skips it.
if [[ $# -eq 0 && ${SYNSIGHT_KERNEL_MATRIX:-1} != 0 ]]; then
    SYNSIGHT_BIN="$(swift build --show-bin-path)/synsight" bash scripts/kernel-matrix.sh
fi
