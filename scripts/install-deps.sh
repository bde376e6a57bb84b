#!/usr/bin/env bash
# Installs what synsight needs on Debian 12, idempotently: nothing is
# downloaded when everything is already there. Needs root for apt-get (uses
# sudo when not root). Swift itself is expected at /opt/swift or on PATH.
set -euo pipefail

# Build: libbpf (headers + pkg-config), its libelf/zlib link dependencies.
# Tests: iproute2 (ip netns, veth), python3 (the test peer), procps.
# Firewall rule naming: libnftables-dev (rulesets read in-process); its tests: nftables (nft), iptables (nft backend), util-linux (nsenter).
# BPF drop tests: bpftool (loads and attaches a cgroup skb program, shows its id independently of synsight).
# Kernel matrix (scripts/kernel-matrix.sh): qemu (TCG guests), busybox (their /init),
# kmod (depmod for the guest kernels' modules, modprobe inside), cpio (the initramfs),
# policycoreutils + semodule-utils (Debian's SELinux reference policy built for the SELinux guest).
# Report/deploy tests: python3-venv (the venv of test validators below), gzip (.gz fixtures),
# debootstrap (the Debian 12 base image scripts/container-image.sh builds locally: no registry).
# Podman workload tests: podman (rootful, its store in a test directory; no daemon, no service) run with runc (crun refuses hybrid hosts whose v2 hierarchy holds a controller).
# Compose workload tests: docker-compose (Debian's v1; it labels containers as docker compose v2 does; no service).
# Rootless Podman tests: uidmap (newuidmap, newgidmap) and slirp4netns (its network; rootlessport publishes its ports).
# Rootless Docker tests: rootlesskit (docker.io's dockerd-rootless.sh runs dockerd under it; it forwards published ports).
PACKAGES=(libbpf-dev libnftables-dev libelf-dev zlib1g-dev pkg-config iproute2 python3 procps nftables iptables util-linux bpftool
          qemu-system-x86 busybox-static kmod cpio policycoreutils semodule-utils
          python3-venv gzip debootstrap podman docker-compose uidmap slirp4netns rootlesskit runc)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
    SUDO=""
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
        SUDO="sudo"
    fi
    echo "install-deps: installing ${missing[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Workload identity tests with real containers: Debian's Docker engine
# (docker.io: dockerd, containerd, runc) and LXC (lxc: lxc-execute). The
# tests start their own dockerd (own data root, socket; a test bridge and
# iptables rules only where a test needs them, all removed) and their own
# LXC application containers, and stop them; the packages' own services
# (dockerd, LXC's lxc-net bridge) must not start, so invoke-rc.d is told no
# while they install.
SERVICE_PACKAGES=(docker.io lxc)
missing_services=()
for p in "${SERVICE_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing_services+=("$p")
done
if ((${#missing_services[@]})); then
    SUDO=""
    [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    echo "install-deps: installing ${missing_services[*]} (their services are not started)" >&2
    policy_added=""
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
        $SUDO chmod 755 /usr/sbin/policy-rc.d
        policy_added=1
    fi
    $SUDO apt-get update -qq
    status=0
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing_services[@]}" >/dev/null || status=$?
    [[ -n "$policy_added" ]] && $SUDO rm -f /usr/sbin/policy-rc.d
    ((status == 0)) || { echo "install-deps: installing ${missing_services[*]} failed (apt-get exit $status)" >&2; exit 1; }
fi

if ! command -v swift >/dev/null && [[ ! -x /opt/swift/usr/bin/swift ]]; then
    echo "install-deps: Swift 6 not found (looked on PATH and in /opt/swift/usr/bin); install a Swift 6 toolchain" >&2
    exit 1
fi

# promtool and prometheus for the metrics tests: Debian's package unpacked
# into .tools/prometheus, not installed (its postinst would start a daemon).
bash "$(dirname "$0")/fetch-prometheus.sh"

# Python tools the tests run, pinned, in a venv under the checkout
# (.venv-tests, gitignored): html5lib (strict HTML5 parse of the HTML report),
# kubernetes-validate (the DaemonSet against Kubernetes' schemas), PyYAML (reading
# the manifest in the tests), check-jsonschema (every JSON Lines record the tests and
# the kernel matrix produce, against docs/schema/synsight-record-v1.schema.json). Reinstalled
# only when the pins change.
VENV="$(cd "$(dirname "$0")/.." && pwd)/.venv-tests"
PY_PINS="html5lib==1.1 kubernetes-validate==1.37.0 PyYAML==6.0.3 check-jsonschema==0.39.0"
if [[ ! -x "$VENV/bin/python" || "$(cat "$VENV/.pins" 2>/dev/null)" != "$PY_PINS" ]]; then
    echo "install-deps: installing $PY_PINS into $VENV" >&2
    rm -rf "$VENV"
    /usr/bin/python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check $PY_PINS
    echo "$PY_PINS" > "$VENV/.pins"
fi
