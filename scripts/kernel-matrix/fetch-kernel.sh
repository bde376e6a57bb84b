#!/usr/bin/env bash
# Fetches one Debian kernel package into the kernel-matrix cache and unpacks
# it, idempotently: nothing is downloaded when the cache already holds the
# package the metapackage points at (or, offline, any unpacked kernel of the
# same series).
#
#   fetch-kernel.sh CACHE METAPACKAGE
#       prints the directory of the unpacked kernel:
#       CACHE/kernels/<version>/{vmlinuz,lib/modules/<version>/...,version}
#
# The host's apt sources are never changed: apt runs with a private source
# list, list directory and cache under CACHE/apt (Dir::Etc::sourcelist etc.).
set -euo pipefail
cache=$1
meta=$2
apt_dir=$cache/apt
mkdir -p "$apt_dir"/{lists/partial,cache/archives/partial,etc/preferences.d,etc/sourceparts} "$cache/debs" "$cache/kernels"

keyring=/usr/share/keyrings/debian-archive-keyring.gpg
cat >"$apt_dir/etc/sources.list" <<SRC
deb [signed-by=$keyring] http://deb.debian.org/debian bookworm main
deb [signed-by=$keyring] http://deb.debian.org/debian-security bookworm-security main
deb [signed-by=$keyring] http://deb.debian.org/debian bookworm-backports main
SRC
apt_opts=(-o "Dir::Etc::sourcelist=$apt_dir/etc/sources.list"
          -o "Dir::Etc::sourceparts=$apt_dir/etc/sourceparts"
          -o "Dir::Etc::preferencesparts=$apt_dir/etc/preferences.d"
          -o "Dir::State::lists=$apt_dir/lists"
          -o "Dir::Cache=$apt_dir/cache"
          -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")

# Refresh the private package lists at most once a day.
stamp=$apt_dir/updated
if [[ ! -f $stamp ]] || [[ -n $(find "$stamp" -mmin +1440) ]]; then
    if apt-get "${apt_opts[@]}" -qq update >&2; then
        touch "$stamp"
    else
        echo "fetch-kernel: apt-get update failed; using what the cache holds" >&2
    fi
fi

# The metapackage depends on exactly one versioned image package.
pkg=$(apt-cache "${apt_opts[@]}" depends "$meta" 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}') || true
if [[ -z $pkg ]]; then
    echo "fetch-kernel: cannot resolve $meta (no package lists in $apt_dir and no network?)" >&2
    exit 1
fi

deb=$(ls "$cache/debs/${pkg}_"*.deb 2>/dev/null | head -n1 || true)
if [[ -z $deb ]]; then
    (cd "$cache/debs" && apt-get "${apt_opts[@]}" -qq download "$pkg" >&2)
    deb=$(ls "$cache/debs/${pkg}_"*.deb | head -n1)
fi

# Unpack once per package file; the directory is named after the kernel release.
tmp=$cache/kernels/.unpack-$$
rel=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed -n 's#^\./boot/vmlinuz-##p' | head -n1)
[[ -n $rel ]] || { echo "fetch-kernel: no boot/vmlinuz-* in $deb" >&2; exit 1; }
dir=$cache/kernels/$rel
if [[ ! -f $dir/.done ]]; then
    rm -rf "$tmp" "$dir"
    mkdir -p "$tmp"
    dpkg-deb -x "$deb" "$tmp"
    # modules.dep and modules.alias for modprobe in the guest (the package's
    # postinst would run depmod).
    depmod -b "$tmp" "$rel"
    mkdir -p "$dir"
    mv "$tmp/boot/vmlinuz-$rel" "$dir/vmlinuz"
    mkdir -p "$dir/lib/modules"
    mv "$tmp/lib/modules/$rel" "$dir/lib/modules/$rel"
    [[ -f $tmp/boot/config-$rel ]] && mv "$tmp/boot/config-$rel" "$dir/config"
    echo "$rel" >"$dir/version"
    basename "$deb" >"$dir/package"
    rm -rf "$tmp"
    touch "$dir/.done"
fi
echo "$dir"
