#!/usr/bin/env bash
# Builds the guest's initramfs (an uncompressed cpio: nothing to inflate under
# TCG): busybox for /init, and the host's own binaries the scenarios run --
# synsight, python3, ip, nft, iptables, setpriv, modprobe ... -- each copied
# to its host path with every shared library `ldd` lists, so the guest runs
# exactly what the host runs. The kernel's networking modules go to
# /lib/modules/<release> so the guest kernel autoloads what nft/iptables ask
# for (its modprobe is the host's kmod, copied in).
#
# Debian's cloud kernels have no 9p (CONFIG_NET_9P is not set) and bookworm
# has no virtiofsd, so the host's root cannot be shared into the guest: the
# closure of the few programs needed is copied instead.
#
#   initramfs.sh KERNEL_DIR SYNSIGHT_BIN OUT.cpio [EXTRA_DIR]
#       EXTRA_DIR (optional) is copied to / of the guest as is (SELinux policy).
#
# Two archives concatenated (the kernel unpacks both): a base with
# everything but synsight and the scenarios, cached per kernel next to
# OUT (rebuilt when this script or the host's programs change), and a small
# one with synsight, the scenarios and /init, rebuilt every time.
set -euo pipefail
kdir=$1
synsight=$(realpath "$2")
out=$(realpath -m "$3")
extra=${4:-}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
rel=$(cat "$kdir/version")

base=$(dirname "$out")/base-$rel.cpio
stage=$(mktemp -d "${out}.stage.XXXXXX")
chmod 755 "$stage"  # mktemp made it 0700: the guest's / must be searchable by uid 65534
trap 'rm -rf "$stage"' EXIT
newest=$(stat -c %Y "$0" /usr/bin/python3.11 /usr/sbin/nft /usr/bin/ip /usr/sbin/xtables-nft-multi /bin/busybox | sort -n | tail -1)
if [[ -f $base && -f $base.list ]] && (( $(stat -c %Y "$base") >= newest )); then
    mkdir -p "$stage/usr/local/bin" "$stage/km"
    cp "$synsight" "$stage/usr/local/bin/synsight"
    for lib in $(ldd "$synsight" | awk '/=> \// {print $3}'); do
        # Libraries the base does not have (synsight linked against something
        # new), under their /usr path: a real /lib directory in this archive
        # would shadow the base's /lib -> usr/lib symlink.
        case $lib in /lib/* | /lib64/*) lib=/usr$lib ;; esac
        grep -qxF ".$lib" "$base.list" || { mkdir -p "$stage$(dirname "$lib")"; cp -L "$lib" "$stage$lib"; }
    done
    cp "$here/scenarios.py" "$repo/Tests/SynsightEndToEndTests/Support/peer.py" "$repo/scripts/bench/per_connection.py" "$stage/km/"
    cp "$here/guest-init.sh" "$stage/init"
    chmod +x "$stage/init"
    [[ -n $extra && -d $extra ]] && cp -a "$extra"/. "$stage/"
    (cd "$stage" && find . -mindepth 1 -print0 | cpio --null -o -H newc --quiet) >"$out.top"
    cat "$base" "$out.top" >"$out.tmp"
    rm -f "$out.top"
    mv "$out.tmp" "$out"
    exit 0
fi
# Debian 12 is usr-merged: keep the same layout so host paths resolve.
mkdir -p "$stage"/{usr/bin,usr/sbin,usr/lib,usr/lib64,proc,sys,dev,tmp,run,etc,km,root}
ln -s usr/bin "$stage/bin"; ln -s usr/sbin "$stage/sbin"
ln -s usr/lib "$stage/lib"; ln -s usr/lib64 "$stage/lib64"
mkdir -p "$stage/var/tmp" "$stage/var/lib"; ln -s ../run "$stage/var/run"

# copy PATH...: each file (symlinks followed) to the same path in the stage.
copy() {
    local f
    for f in "$@"; do
        [[ -e $stage$f ]] && continue
        mkdir -p "$(dirname "$stage$f")"
        cp -L "$f" "$stage$f"
    done
}

# copy_bin PATH...: the program and the shared libraries it loads.
copy_bin() {
    local f lib
    for f in "$@"; do
        copy "$f"
        while read -r lib; do
            copy "$lib"
        done < <(ldd "$f" 2>/dev/null | awk '/=> \// {print $3} /^\t\/[^ ]+ \(/ {print $1}')
    done
}

copy /bin/busybox
for applet in sh ash mount umount mkdir cat echo sleep poweroff reboot ls ln rm cp mv grep sed tr \
              head tail wc cut sort uname dmesg kill ps env true false chmod chown stat date tee \
              printf test seq base64 find xargs awk dd tr readlink id sync hostname; do
    [[ -e $stage/usr/bin/$applet ]] || ln -s busybox "$stage/usr/bin/$applet"
done

copy_bin "$synsight" /usr/bin/python3.11 /usr/bin/ip /usr/sbin/nft /usr/sbin/xtables-nft-multi \
         /usr/bin/setpriv /usr/bin/nsenter /usr/bin/unshare /usr/sbin/sysctl /usr/bin/kmod /usr/sbin/tc
rm -f "$stage$synsight"  # its libraries stay; the binary goes on top
# SELinux guest: load_policy (policycoreutils), where the host has it.
[[ -x /usr/sbin/load_policy ]] && copy_bin /usr/sbin/load_policy
ln -sf python3.11 "$stage/usr/bin/python3"
for t in iptables ip6tables iptables-save ip6tables-save iptables-restore; do
    ln -sf xtables-nft-multi "$stage/usr/sbin/$t"
done
for t in modprobe insmod lsmod rmmod depmod modinfo; do ln -sf ../bin/kmod "$stage/usr/sbin/$t"; done

# Python's standard library (bytecode included) and its extension modules.
py=/usr/lib/python3.11
mkdir -p "$stage$py"
tar -C "$py" --exclude=./idlelib --exclude=./tkinter --exclude=./ensurepip --exclude=./lib2to3 \
    --exclude=./turtledemo --exclude=./pydoc_data --exclude='./config-*' -cf - . | tar -C "$stage$py" -xf -
for so in "$py"/lib-dynload/*.so; do copy_bin "$so"; done
# iptables' extensions, nft's and ip's data files.
copy_bin /usr/lib/x86_64-linux-gnu/xtables/*.so
cp -a /etc/iproute2 "$stage/etc/" 2>/dev/null || true
copy /etc/protocols /etc/services /etc/ethertypes 2>/dev/null || true
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$stage/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$stage/etc/group"

# The guest kernel's modules: networking (veth, dummy, ifb, nf_tables, reject, xtables),
# and what they depend on.
mdir=$kdir/lib/modules/$rel
mkdir -p "$stage/lib/modules/$rel/kernel/drivers/net"
cp -a "$mdir"/modules.order "$mdir"/modules.builtin* "$stage/lib/modules/$rel/"
for d in net lib crypto; do
    [[ -d $mdir/kernel/$d ]] && cp -a "$mdir/kernel/$d" "$stage/lib/modules/$rel/kernel/"
done
cp -a "$mdir"/kernel/drivers/net/veth.ko* "$stage/lib/modules/$rel/kernel/drivers/net/"
# dummy and ifb: devices that consume what they are sent (connect timeouts past this host);
# tun: a user-space peer past this host (injected resets); vrf: listeners in another VRF.
for m in dummy ifb tun vrf; do
    if compgen -G "$mdir/kernel/drivers/net/$m.ko*" >/dev/null; then
        cp -a "$mdir"/kernel/drivers/net/$m.ko* "$stage/lib/modules/$rel/kernel/drivers/net/"
    fi
done
depmod -b "$stage" "$rel"


(cd "$stage" && find . -print0 | tee >(tr '\0' '\n' >"$base.list") | cpio --null -o -H newc --quiet) >"$base.tmp"
mv "$base.tmp" "$base"
rm -rf "$stage"
exec bash "$0" "$@"
