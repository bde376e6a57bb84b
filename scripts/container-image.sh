#!/usr/bin/env bash
# Builds the synsight container image from deploy/kubernetes/Dockerfile on a
# machine with no image registry, idempotently:
#
#   1. the Debian 12 base image (synsight-local/debian:bookworm) is made with
#      debootstrap from Debian's archive, once: its root filesystem is cached
#      as a tarball in $SYNSIGHT_IMAGE_CACHE (default .build/container-image)
#      and imported into the daemon when the daemon lacks it;
#   2. the synsight binary is the one built on this host (the same
#      `swift build` the tests run; --release builds the release binary with
#      the Swift runtime linked statically, as the Dockerfile's build stage
#      does), given to the Dockerfile as its `prebuilt` binary stage, with the
#      Swift runtime libraries it links when it is a debug build;
#   3. `docker build` (BuildKit) with RUNTIME_IMAGE set to that base. A
#      rebuild with the same binary reuses every cached layer.
#
# With a registry, build from source instead (the Dockerfile's `build` stage):
#   docker build -f deploy/kubernetes/Dockerfile -t <registry>/synsight:<version> .
#
# Usage: scripts/container-image.sh [--host unix:///path/docker.sock] [--tag synsight:local]
#                                   [--binary PATH | --release]
# Needs root (debootstrap), debootstrap and a Docker engine (scripts/install-deps.sh).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
source "$REPO/scripts/env.sh"
TAG="synsight:local"
BASE="synsight-local/debian:bookworm"
HOST="${DOCKER_HOST:-}"
BINARY=""
RELEASE=""
CACHE="${SYNSIGHT_IMAGE_CACHE:-$REPO/.build/container-image}"
MIRROR="${SYNSIGHT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

while (($#)); do
    case "$1" in
        --host) HOST="$2"; shift 2 ;;
        --tag) TAG="$2"; shift 2 ;;
        --binary) BINARY="$2"; shift 2 ;;
        --release) RELEASE=1; shift ;;
        *) echo "container-image: unknown option $1 (see the usage at the top of $0)" >&2; exit 2 ;;
    esac
done

DOCKER=(/usr/bin/docker)
[[ -x /usr/bin/docker ]] || DOCKER=(docker)
[[ -n "$HOST" ]] && DOCKER+=(-H "$HOST")
"${DOCKER[@]}" version >/dev/null 2>&1 \
    || { echo "container-image: no Docker engine answers at ${HOST:-the default socket}: start dockerd or pass --host" >&2; exit 1; }

# 1. The base image.
ROOTFS_TAR="$CACHE/debian-bookworm-minbase.tar"
# The linked libraries are in the base already: the Dockerfile's apt-get install then only checks them.
BASE_PACKAGES="libbpf1,libelf1,zlib1g,libnftables1"
if [[ ! -s "$ROOTFS_TAR" ]]; then
    command -v debootstrap >/dev/null || { echo "container-image: debootstrap is missing: run scripts/install-deps.sh" >&2; exit 1; }
    mkdir -p "$CACHE"
    work="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
    trap 'rm -rf "$work"' EXIT
    echo "container-image: debootstrap Debian 12 (minbase) into $work (once; cached in $ROOTFS_TAR)" >&2
    debootstrap --variant=minbase --include="$BASE_PACKAGES" bookworm "$work" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
        || { echo "container-image: debootstrap failed, see $CACHE/debootstrap.log" >&2; exit 1; }
    rm -rf "$work"/var/cache/apt/archives/*.deb "$work"/var/lib/apt/lists/*
    tar -C "$work" --numeric-owner -cf "$ROOTFS_TAR.tmp" .
    mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
    rm -rf "$work"
    trap - EXIT
fi
if ! "${DOCKER[@]}" image inspect "$BASE" >/dev/null 2>&1; then
    echo "container-image: importing $BASE from $ROOTFS_TAR" >&2
    "${DOCKER[@]}" import "$ROOTFS_TAR" "$BASE" >/dev/null
fi

# 2. The binary.
if [[ -n "$RELEASE" ]]; then
    (cd "$REPO" && swift build -c release --product synsight --static-swift-stdlib)
    BINARY="$(cd "$REPO" && swift build -c release --show-bin-path)/synsight"
fi
[[ -n "$BINARY" ]] || BINARY="$REPO/.build/debug/synsight"
[[ -x "$BINARY" ]] || { echo "container-image: no synsight binary at $BINARY: run swift build (or pass --release)" >&2; exit 1; }
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/prebuilt/bin" "$context/prebuilt/lib"
cp "$BINARY" "$context/prebuilt/bin/synsight"
# The Swift runtime libraries a dynamically linked (debug) build needs; none for --static-swift-stdlib.
ldd "$BINARY" | awk '$3 ~ /\/lib\/swift\/linux\// { print $3 }' | while read -r lib; do
    cp "$lib" "$context/prebuilt/lib/"
done

# 3. The image.
echo "container-image: building $TAG from deploy/kubernetes/Dockerfile (base $BASE, binary $BINARY)" >&2
DOCKER_BUILDKIT=1 "${DOCKER[@]}" build --network host -q \
    --build-arg RUNTIME_IMAGE="$BASE" --build-arg BINARY=prebuilt \
    -f "$REPO/deploy/kubernetes/Dockerfile" -t "$TAG" "$context" >/dev/null
echo "$TAG"
