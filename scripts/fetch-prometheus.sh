#!/usr/bin/env bash
# Fetches Debian's prometheus package (prometheus server + promtool) for the
# metrics tests WITHOUT installing it: `apt-get download` + `dpkg -x` into
# .tools/prometheus under the project. Installing the package would run its
# postinst, which creates a user and starts a prometheus daemon on the host.
# Idempotent: does nothing when the binaries are already there.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/.tools/prometheus"
if [[ -x "$dest/usr/bin/promtool" && -x "$dest/usr/bin/prometheus" ]]; then
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
if ! apt-get download prometheus >/dev/null 2>"$work/err"; then
    # The package lists may never have been fetched on a fresh machine.
    SUDO=""
    [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq
    apt-get download prometheus >/dev/null 2>"$work/err" || {
        echo "fetch-prometheus: apt-get download prometheus failed: $(cat "$work/err")" >&2
        exit 1
    }
fi
deb=$(ls prometheus_*.deb)
rm -rf "$dest.tmp"
mkdir -p "$dest.tmp"
dpkg -x "$deb" "$dest.tmp"
[[ -x "$dest.tmp/usr/bin/promtool" && -x "$dest.tmp/usr/bin/prometheus" ]] || {
    echo "fetch-prometheus: $deb has no usr/bin/promtool or usr/bin/prometheus" >&2
    exit 1
}
rm -rf "$dest"
mv "$dest.tmp" "$dest"
echo "fetch-prometheus: $(basename "$deb") unpacked into $dest" >&2
