#!/usr/bin/env bash
# Fuzzes the parsers of untrusted input with libFuzzer, from the Swift
# toolchain (no download): recordings through `report`'s reader (jsonl),
# compressed recordings (gzip) and the metrics endpoint's request head
# (http). Each target runs for SYNSIGHT_FUZZ_SECONDS (default 60) from the
# seed and regression corpus in Tests/Fixtures/fuzz/<target>; a crash, a
# failed check, a hang (> 10 s on one input) or a leak past 2 GB fails the
# script, and the input is saved in .build-fuzz/artifacts/<target>/. Keep it
# as a regression: copy it to Tests/Fixtures/fuzz/<target>/ (the test suite
# replays that directory) and fix the bug.
#
#   bash scripts/fuzz.sh                 every target, 60 s each
#   SYNSIGHT_FUZZ_SECONDS=600 bash scripts/fuzz.sh gzip
#
# The fuzz build has its own build directory (.build-fuzz): the normal
# `swift build` is untouched. It instruments every Swift module for coverage
# (`-sanitize=fuzzer` given to the compiler only) and links libFuzzer's
# driver without its main(): SwiftPM gives an executable its own entry point,
# and SynsightFuzz's main calls LLVMFuzzerRunDriver itself.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

seconds=${SYNSIGHT_FUZZ_SECONDS:-60}
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(jsonl gzip http)
build=.build-fuzz

toolchain=$(dirname "$(dirname "$(readlink -f "$(command -v swift)")")")
runtime=$(ls "$toolchain"/lib/clang/*/lib/linux/libclang_rt.fuzzer_no_main-x86_64.a 2>/dev/null | head -1 || true)
if [[ -z $runtime ]]; then
    echo "fuzz.sh: libFuzzer (libclang_rt.fuzzer_no_main-x86_64.a) not found under $toolchain/lib/clang; is this the Swift toolchain for Linux?" >&2
    exit 1
fi

echo "fuzz.sh: building the fuzz targets in $build"
mkdir -p "$build"
# Release (-O) for speed, with -assert-config Debug so the standard library's
# debug checks (unsafe-buffer bounds among them) still trap.
if ! swift build -c release --build-path "$build" --product SynsightFuzz -Xswiftc -assert-config -Xswiftc Debug \
    -Xswiftc -Xfrontend -Xswiftc -sanitize=fuzzer -Xswiftc -DSYNSIGHT_FUZZ \
    -Xlinker "$runtime" -Xlinker -lstdc++ >"$build/build.log" 2>&1; then
    grep -E 'error|warning: unre' "$build/build.log" | head -20 >&2
    echo "fuzz.sh: the fuzz build failed (full log: $build/build.log)" >&2
    exit 1
fi
bin="$build/release/SynsightFuzz"
[[ -x $bin ]] || { echo "fuzz.sh: the fuzz build did not produce $bin" >&2; exit 1; }

failed=()
for t in "${targets[@]}"; do
    seeds="Tests/Fixtures/fuzz/$t"
    [[ -d $seeds ]] || { echo "fuzz.sh: unknown target '$t' (no $seeds)" >&2; exit 64; }
    corpus="$build/corpus/$t"
    artifacts="$build/artifacts/$t"
    mkdir -p "$corpus" "$artifacts"
    dict=()
    [[ -f Tests/Fixtures/fuzz/$t.dict ]] && dict=(-dict="Tests/Fixtures/fuzz/$t.dict")
    echo "fuzz.sh: $t for ${seconds}s (corpus $corpus, seeds $seeds)"
    # Swift's own backtracer would take the crash signal from libFuzzer,
    # which then could not save the input.
    if SWIFT_BACKTRACE=enable=no "$bin" "$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 "${dict[@]}" -artifact_prefix="$artifacts/" "$corpus" "$seeds" \
        >"$build/$t.log" 2>&1; then
        grep -E '^(stat::number_of_executed_units|stat::new_units_added|Done )' "$build/$t.log" | tr '\n' ' '
        echo
    else
        tail -40 "$build/$t.log" >&2
        echo "fuzz.sh: $t FAILED; the input is in $artifacts/ (full log: $build/$t.log)." >&2
        echo "fuzz.sh: see the message and a symbolized backtrace with the normal build: swift build && .build/debug/SynsightFuzz $t $artifacts/<file>" >&2
        echo "fuzz.sh: keep it as a regression: cp $artifacts/<file> $seeds/ and fix the bug." >&2
        failed+=("$t")
    fi
done
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz.sh: failed: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz.sh: no crash in ${targets[*]}"
