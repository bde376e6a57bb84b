#!/usr/bin/env bash
# Runs one shell command in a kernel-matrix guest and prints its output: for
# debugging synsight on a Debian kernel (e.g. the verifier log).
#
#   guest-run.sh 6.1|6.12 'synsight trace --verbose --duration 5' [SYNSIGHT_BIN]
set -euo pipefail
cd "$(dirname "$0")/../.."
declare -A META=([6.1]=linux-image-cloud-amd64 [6.12]=linux-image-6.12-cloud-amd64)
cache=${KERNEL_MATRIX_CACHE:-$(pwd)/.kernel-matrix}
bin=${3:-${SYNSIGHT_BIN:-.build/debug/synsight}}
kdir=$(bash scripts/kernel-matrix/fetch-kernel.sh "$cache" "${META[$1]}")
rel=$(cat "$kdir/version")
initrd=$cache/initramfs-run-$rel.cpio
bash scripts/kernel-matrix/initramfs.sh "$kdir" "$bin" "$initrd" "${KM_EXTRA:-}"
out=$(mktemp)
# The command travels base64-encoded: the kernel command line has no quoting for it.
cmd=$(printf '%s' "$2" | base64 -w0)
timeout "${KM_TIMEOUT:-600}" qemu-system-x86_64 -accel tcg -cpu max -m 2048 -smp 1 -nographic -no-reboot -nic none \
    -monitor none -kernel "$kdir/vmlinuz" -initrd "$initrd" \
    -append "console=ttyS0 panic=-1 quiet ${KM_APPEND:-} km_cmd64=$cmd" \
    -serial "file:$out.console" -serial "file:$out" >/dev/null 2>&1 || true
cat "$out"
[[ -n ${KM_CONSOLE:-} ]] && cat "$out.console"
rm -f "$out" "$out.console"
