#!/bin/sh
# Build the libFuzzer harnesses (build-fuzz/, CMake preset `fuzz`: clang,
# -DQBLIND_FUZZ=ON) and run them. fuzz/README.md explains the harnesses.
#
#   fuzz/run.sh SECONDS [HARNESS...]   fuzz each harness SECONDS on its seed
#                                      corpus (fuzz/corpus/<h>/, read only);
#                                      new inputs go to build-fuzz/corpus/<h>/,
#                                      crashes to build-fuzz/artifacts/<h>/
#   fuzz/run.sh --ci                   CI (CTest `fuzz_corpus`, label fuzz):
#                                      run every committed input once (seed
#                                      corpus and fuzz/regress/<h>/), then a
#                                      short fixed-seed mutation run
#
# Exit 77 (CTest: skipped) when clang or its libFuzzer runtime is missing
# (Debian: clang libclang-rt-14-dev, installed by scripts/install-deps.sh).
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
bld=$src/build-fuzz
all="spec idx_cifar10 gtsrb qbm qbq results"

ci=0
if [ "${1:-}" = "--ci" ]; then
    ci=1
    shift
    secs=0
else
    secs=${1:-60}
    [ $# -gt 0 ] && shift
fi
harnesses=${*:-$all}

if ! command -v clang >/dev/null 2>&1; then
    echo "fuzz: clang not found (Debian: clang libclang-rt-14-dev); skipped" >&2
    exit 77
fi
rt=$(clang -print-file-name=libclang_rt.fuzzer-x86_64.a 2>/dev/null || true)
if [ ! -f "$rt" ] && ! ls "$(clang -print-resource-dir)"/lib/linux/libclang_rt.fuzzer-*.a >/dev/null 2>&1; then
    echo "fuzz: clang has no libFuzzer runtime (Debian: libclang-rt-14-dev); skipped" >&2
    exit 77
fi

jobs=$(nproc 2>/dev/null || echo 2)
cd "$src"
[ -f "$bld/CMakeCache.txt" ] || cmake --preset fuzz >/dev/null
cmake --build "$bld" -j "$jobs" --target fuzz_all >/dev/null

# Leaks are errors (detect_leaks); HDF5 keeps caches until exit, which
# LeakSanitizer does not report (still reachable).
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# The harnesses write their inputs into files: on tmpfs when there is one.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
    export TMPDIR=/dev/shm
fi
opts="-timeout=20 -rss_limit_mb=2048"
fail=0
for h in $harnesses; do
    exe=$bld/fuzz/fuzz_$h
    [ -x "$exe" ] || { echo "fuzz: no harness $h" >&2; exit 2; }
    mkdir -p "$bld/corpus/$h" "$bld/artifacts/$h"
    log=$bld/artifacts/$h/last.log
    if [ $ci -eq 1 ]; then
        files=$(find "$src/fuzz/corpus/$h" "$src/fuzz/regress/$h" -type f 2>/dev/null | sort)
        new=$(mktemp -d "$bld/corpus/ci.XXXXXX")
        # The results harness gets no mutation run in CI: libhdf5 1.10.8
        # itself crashes on some damaged files (fuzz/known/), and what a
        # 5-second run reaches depends on the machine's speed, so CI would
        # fail at random on a bug that is not ours. Its committed inputs run.
        mutate=1
        [ "$h" = results ] && mutate=0
        # shellcheck disable=SC2086
        if ! "$exe" $opts -artifact_prefix="$bld/artifacts/$h/" $files >"$log" 2>&1 ||
           { [ $mutate -eq 1 ] &&
             ! "$exe" $opts -seed=1 -runs=3000 -max_total_time=5 -artifact_prefix="$bld/artifacts/$h/" \
                 "$new" "$src/fuzz/corpus/$h" >>"$log" 2>&1; }; then
            rm -rf "$new"
            echo "FAIL fuzz_$h:"; tail -40 "$log"; fail=1
            continue
        fi
        rm -rf "$new"
        echo "ok   fuzz_$h: $(echo "$files" | wc -l) committed inputs$([ $mutate -eq 1 ] && echo ", then mutations (seed 1, <= 3000 runs, <= 5 s)")"
    else
        echo "== fuzz_$h, $secs s"
        # shellcheck disable=SC2086
        "$exe" $opts -max_total_time="$secs" -print_final_stats=1 \
            -artifact_prefix="$bld/artifacts/$h/" "$bld/corpus/$h" "$src/fuzz/corpus/$h" 2>&1 |
            tee "$log" | grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::|ERROR|SUMMARY' || true
        grep -q 'Done [0-9]* runs' "$log" || { echo "FAIL fuzz_$h (see $log)"; fail=1; }
    fi
done
exit $fail
