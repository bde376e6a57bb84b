#!/usr/bin/env bash
# Builds Debian's reference policy (selinux-policy-default, every module its
# postinst enables) plus the kernel matrix's test module (selinux/km_test.cil)
# into a private root, idempotently, for the SELinux guest. Prints the
# directory to copy into the guest (it holds etc/selinux/...).
#
#   selinux-policy.sh CACHE
#
# The host's /etc/selinux and policy store are never touched: semodule runs
# with -p (an alternate root); the package is unpacked with dpkg-deb, not
# installed.
set -euo pipefail
cache=$1
here=$(cd "$(dirname "$0")" && pwd)
dir=$cache/selinux
apt_dir=$cache/apt   # the private apt configuration of fetch-kernel.sh
mkdir -p "$dir"
apt_opts=(-o "Dir::Etc::sourcelist=$apt_dir/etc/sources.list" -o "Dir::Etc::sourceparts=$apt_dir/etc/sourceparts"
          -o "Dir::Etc::preferencesparts=$apt_dir/etc/preferences.d" -o "Dir::State::lists=$apt_dir/lists"
          -o "Dir::Cache=$apt_dir/cache" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
deb=$(ls "$dir"/selinux-policy-default_*.deb 2>/dev/null | head -n1 || true)
if [[ -z $deb ]]; then
    (cd "$dir" && apt-get "${apt_opts[@]}" -qq download selinux-policy-default >&2)
    deb=$(ls "$dir"/selinux-policy-default_*.deb | head -n1)
fi
root=$dir/root
policy=$root/etc/selinux/default/policy/policy.33
cil=$here/selinux/km_test.cil
base_stamp=$root/.base-built
if [[ ! -f $base_stamp || $deb -nt $base_stamp || $0 -nt $base_stamp ]]; then
    rm -rf "$root" "$dir/pkg"
    dpkg-deb -x "$deb" "$dir/pkg"
    cp -a "$dir/pkg" "$root"
    cp /etc/selinux/semanage.conf "$root/etc/selinux/"
    printf 'SELINUX=enforcing\nSELINUXTYPE=default\n' >"$root/etc/selinux/config"
    # As the package's postinst: every module of .modules, the notdefault ones disabled.
    args=()
    for m in $(cat "$root/usr/share/selinux/default/.modules"); do
        args+=(-i "$root/usr/share/selinux/default/$m.pp.bz2")
    done
    for m in amtu bugzilla cobbler condor cyphesis git ksmtuned likewise livecd nessus numad oddjob openca \
             soundserver thunderbird updfstab usernetctl; do
        args+=("-d$m")
    done
    echo "selinux-policy: building Debian's reference policy (a few minutes, once)" >&2
    semodule -p "$root" -X 100 -n -s default "${args[@]}" >&2 2> >(grep -v "not in password file" >&2)
    touch "$base_stamp"
fi
if [[ ! -f $policy || $cil -nt $policy || $base_stamp -nt $policy ]]; then
    semodule -p "$root" -X 400 -n -s default -i "$cil" 2> >(grep -v "not in password file" >&2)
    touch "$policy"
fi
# Only etc/selinux goes into the guest.
out=$dir/guest
rm -rf "$out"
mkdir -p "$out/etc"
cp -a "$root/etc/selinux" "$out/etc/"
echo "$out"
