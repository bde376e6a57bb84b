#!/usr/bin/env bash
# The kernel matrix: every refusal reason proven on Debian's 6.1 and 6.12
# kernels (cloud-amd64 flavours) in qemu guests, and on this host's kernel,
# then docs/kernel-matrix.md written from the results.
#
#   bash scripts/kernel-matrix.sh [--kernels "6.1 6.12"] [--no-host] [--only sc_a,sc_b]
#                                 [--passes default,kprobe,kfree_skb] [--no-selinux] [--no-doc] [--jobs N]
#
# Each guest boots once (qemu TCG, 1 vCPU: KVM does not work here) with an
# initramfs holding the host's own synsight, python3, ip, nft, iptables ...
# (scripts/kernel-matrix/initramfs.sh) and runs scripts/kernel-matrix/scenarios.py;
# results come back on the guest's second serial port. Kernel packages are
# fetched once into .kernel-matrix/ (gitignored; KERNEL_MATRIX_CACHE moves it)
# with a private apt configuration: the host's apt sources are not touched.
#
# SYNSIGHT_BIN selects the binary under test (default: built here with
# `swift build`, scratch path KERNEL_MATRIX_SCRATCH or .build).
# KERNEL_MATRIX_COST_CONNECTIONS: healthy connections for the BPF program
# runs per connection (default 300; with --only measured only when set).
# Exit status: 0 when no scenario failed on any kernel, every guest finished,
# and every record synsight wrote matches docs/schema/synsight-record-v1.schema.json.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

kernels="6.1 6.12"
host=1
only=""
passes="default,kprobe,kfree_skb"
selinux=1
doc=1
# Guests at once: 1 on a shared machine; CI (CI=true, a machine of its own) runs 2.
jobs=${KERNEL_MATRIX_JOBS:-$([[ ${CI:-} == true ]] && echo 2 || echo 1)}
while (($#)); do
    case $1 in
        --kernels) kernels=$2; shift ;;
        --no-host) host=0 ;;
        --only) only=$2; shift ;;
        --passes) passes=$2; shift ;;
        --no-selinux) selinux=0 ;;
        --no-doc) doc=0 ;;
        --jobs) jobs=$2; shift ;;
        *) echo "kernel-matrix: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

declare -A META=([6.1]=linux-image-cloud-amd64 [6.12]=linux-image-6.12-cloud-amd64)
cache=${KERNEL_MATRIX_CACHE:-$repo/.kernel-matrix}
mkdir -p "$cache"

bash scripts/install-deps.sh
source scripts/env.sh
if [[ -z ${SYNSIGHT_BIN:-} ]]; then
    scratch=${KERNEL_MATRIX_SCRATCH:-.build}
    swift build --scratch-path "$scratch" --product synsight >&2
    SYNSIGHT_BIN=$(swift build --scratch-path "$scratch" --show-bin-path)/synsight
fi
[[ -x $SYNSIGHT_BIN ]] || { echo "kernel-matrix: no synsight binary at $SYNSIGHT_BIN" >&2; exit 1; }

run=$cache/results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$run"
# Keep the ten latest runs' results.
ls -1dt "$cache"/results/*/ 2>/dev/null | tail -n +11 | xargs -r rm -rf
cols=()
scenario_args="--passes $passes"
# Full runs also count the BPF program runs per healthy connection (issue 16).
# The runs per healthy connection are measured on a full run, and on a
# narrow one (--only) when KERNEL_MATRIX_COST_CONNECTIONS is set.
if [[ -n $only ]]; then
    scenario_args+=" --only $only"
    [[ -n ${KERNEL_MATRIX_COST_CONNECTIONS:-} ]] && scenario_args+=" --cost $KERNEL_MATRIX_COST_CONNECTIONS"
else
    scenario_args+=" --cost ${KERNEL_MATRIX_COST_CONNECTIONS:-300}"
fi

# boot LABEL KERNEL_DIR INITRD APPEND: one guest, results in $run/LABEL.jsonl.
boot() {
    local label=$1 kdir=$2 initrd=$3 append=$4 start out
    out=$run/$label.jsonl
    start=$(date +%s)
    echo "kernel-matrix: booting $label ($(cat "$kdir/package"))" >&2
    # -nic none: no PXE ROM to wait for; the scenarios use loopback and veth only.
    timeout 900 qemu-system-x86_64 -accel tcg -cpu max -m 2048 -smp 1 -nographic -no-reboot -nic none \
        -monitor none -kernel "$kdir/vmlinuz" -initrd "$initrd" \
        -append "console=ttyS0 panic=-1 quiet $append" \
        -serial "file:$run/$label.console" -serial "file:$out" >/dev/null 2>&1 || \
        echo "kernel-matrix: qemu for $label exited $? (see $run/$label.console)" >&2
    echo "kernel-matrix: $label done in $(( $(date +%s) - start )) s: $(grep -c '"status": "pass"' "$out" || true) passed," \
         "$(grep -c '"status": "fail"' "$out" || true) failed" >&2
}

# Guests run one at a time (each takes one core under TCG), or --jobs at once
# (CI, on a machine of its own, runs two).
guest() {
    if ((jobs > 1)); then
        while (($(jobs -rp | wc -l) >= jobs)); do wait -n || true; done
        boot "$@" &
    else
        boot "$@"
    fi
}

for k in $kernels; do
    meta=${META[$k]:-}
    [[ -n $meta ]] || { echo "kernel-matrix: unknown kernel $k (known: ${!META[*]})" >&2; exit 2; }
    kdir=$(bash scripts/kernel-matrix/fetch-kernel.sh "$cache" "$meta")
    rel=$(cat "$kdir/version")
    initrd=$cache/initramfs-$rel.cpio
    bash scripts/kernel-matrix/initramfs.sh "$kdir" "$SYNSIGHT_BIN" "$initrd"
    guest "$k" "$kdir" "$initrd" "km_args=\"--slow 4 $scenario_args\""
    cols+=("$k=$run/$k.jsonl")
done

if ((selinux)); then
    # One guest with SELinux enforcing and Debian's reference policy (plus the
    # test domain of scripts/kernel-matrix/selinux/km_test.cil).
    k=6.12
    kdir=$(bash scripts/kernel-matrix/fetch-kernel.sh "$cache" "${META[$k]}")
    rel=$(cat "$kdir/version")
    policy=$(bash scripts/kernel-matrix/selinux-policy.sh "$cache")
    initrd=$cache/initramfs-selinux-$rel.cpio
    bash scripts/kernel-matrix/initramfs.sh "$kdir" "$SYNSIGHT_BIN" "$initrd" "$policy"
    guest "$k-selinux" "$kdir" "$initrd" "security=selinux selinux=1 enforcing=1 km_args=\"--slow 4 --passes selinux\""
    cols+=("$k+SELinux=$run/$k-selinux.jsonl")
fi
wait

if ((host)); then
    out=$run/host.jsonl
    start=$(date +%s)
    # shellcheck disable=SC2086
    python3 scripts/kernel-matrix/scenarios.py --synsight "$SYNSIGHT_BIN" \
        --peer Tests/SynsightEndToEndTests/Support/peer.py --out "$out" $scenario_args || true
    echo "kernel-matrix: host $(uname -r) done in $(( $(date +%s) - start )) s" >&2
    cols+=("host=$out")
fi

doc_path=docs/kernel-matrix.md
((doc)) || doc_path=$run/kernel-matrix.md
status=0
python3 scripts/kernel-matrix/render.py "$doc_path" "${cols[@]}" || status=1
# Every record synsight wrote in each guest and on the host (scenarios.py
# passes them back as {"type": "record"} lines) must match the published
# contract: validated here, with check-jsonschema, after the guests return.
mkdir -p "$run/records"
for f in "$run"/*.jsonl; do
    python3 -c 'import json, sys
for line in open(sys.argv[1], errors="replace"):
    try:
        o = json.loads(line)
    except ValueError:
        continue
    if isinstance(o, dict) and o.get("type") == "record":
        print(json.dumps(o["record"]))' "$f" > "$run/records/$(basename "$f")"
done
if ! .venv-tests/bin/python scripts/check-records.py "$run"/records/*.jsonl; then
    echo "kernel-matrix: records above do not match docs/schema/synsight-record-v1.schema.json" >&2
    status=1
fi
echo "kernel-matrix: wrote $doc_path (results in $run)" >&2
grep -h '"status": "fail"' "$run"/*.jsonl 2>/dev/null | python3 -c '
import json, sys
for l in sys.stdin:
    o = json.loads(l)
    print("FAIL %s / %s: %s" % (o["pass"], o["name"], o.get("detail", "")), file=sys.stderr)
' || true
exit $status
