#!/usr/bin/env bash
# synsight benchmarks (issue 6): refusal storm, cost per event against
# bpftrace, healthy-traffic overhead (nginx + wrk), start-up, memory and
# report throughput. Writes docs/benchmarks.md. Not part of the test suite.
#
#   sudo bash scripts/bench.sh            # full run (waits for a quiet machine)
#   sudo bash scripts/bench.sh --quick    # short runs, to check the harness
#   sudo bash scripts/bench.sh --head     # benchmark the committed HEAD (built
#                                         # from `git archive`, not the work tree)
#   options: --no-wait  --only storms,healthy,...  --workers N  --no-doc
#
# Needs root (BPF, network namespaces). All traffic stays on loopback inside
# namespaces the benchmark creates (sb<pid>-*) and deletes on exit, even on
# failure; no host sysctl, firewall rule or service is changed.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
source scripts/env.sh

if [[ $(id -u) -ne 0 ]]; then
    echo "bench: needs root (BPF programs, network namespaces): run with sudo" >&2
    exit 1
fi

write_doc=1
head_only=0
args=()
for a in "$@"; do
    case $a in
        --no-doc) write_doc=0 ;;
        --head) head_only=1 ;;
        *) args+=("$a") ;;
    esac
done

bash scripts/install-deps.sh
bash scripts/bench/install-bench-deps.sh

work=$(mktemp -d /tmp/synsight-bench-sh.XXXXXX)
trap 'rm -rf "$work"' EXIT
scratch=${SYNSIGHT_BENCH_SCRATCH:-.build-bench}
src=$root
commit=$(git rev-parse --short=12 HEAD)
dirty=$(git status --porcelain --untracked-files=no | head -1)
if ((head_only)); then
    # The committed revision only: other work in progress in the tree is
    # neither built nor measured. Kept in one place so rebuilds are incremental.
    # Only files whose content changed are replaced, so unchanged sources
    # keep their times and the build stays incremental.
    src=/var/tmp/synsight-bench-head
    fresh="$work/head"
    mkdir -p "$src" "$fresh"
    git archive HEAD | tar -x -C "$fresh"
    (cd "$fresh" && find . -type f) | while IFS= read -r f; do
        if ! cmp -s "$fresh/$f" "$src/$f"; then
            mkdir -p "$(dirname "$src/$f")"
            cp "$fresh/$f" "$src/$f"
        fi
    done
    (cd "$src" && find . -path "./$scratch" -prune -o -type f -print) | while IFS= read -r f; do
        [[ -e $fresh/$f ]] || rm -f "$src/$f"
    done
    dirty=""
fi
echo "bench: building synsight $commit${dirty:+ (with uncommitted changes)} (release, --scratch-path $scratch)" >&2
(cd "$src" && swift build -c release --scratch-path "$scratch" >&2)
bin="$src/$scratch/release/synsight"

cleanup() {
    # bench.py deletes what it created; this catches a bench.py killed hard.
    local ns
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^sb[0-9]*-" || true); do
        pid=${ns#sb}; pid=${pid%%-*}
        if ! kill -0 "$pid" 2>/dev/null; then ip netns del "$ns" 2>/dev/null || true; fi
    done
    rm -rf "$work"
}
trap cleanup EXIT

gcc -O2 -Wall -o "$work/refuse" scripts/bench/refuse.c
gcc -O2 -Wall -o "$work/floor-loader" scripts/bench/floor-loader.c -lbpf
# The BPF object this build embedded (the newest, should the plugin outputs
# hold an older one from a package directory of another name).
bpf_object=$(find "$src/$scratch/plugins/outputs" -path '*/SynsightKernel/*/refusals.bpf.o' \
    -printf '%T@ %p\n' | sort -rn | head -1 | cut -d' ' -f2-)
if [[ -z $bpf_object ]]; then
    echo "bench: synsight's BPF object (refusals.bpf.o) not found under $src/$scratch/plugins/outputs" >&2
    exit 1
fi

python3 scripts/bench/bench.py --synsight "$bin" --refuse "$work/refuse" --floor-loader "$work/floor-loader" \
    --bpf-object "$bpf_object" --out "$work/results.json" ${args[@]+"${args[@]}"}

if ((write_doc)); then
    python3 scripts/bench/report.py "$work/results.json" --commit "$commit" ${dirty:+--dirty} > docs/benchmarks.md.new
    mv docs/benchmarks.md.new docs/benchmarks.md
    echo "bench: wrote docs/benchmarks.md" >&2
fi
cp "$work/results.json" "${SYNSIGHT_BENCH_RESULTS:-/tmp/synsight-bench-results.json}"
