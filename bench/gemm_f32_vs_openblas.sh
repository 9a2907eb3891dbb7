#!/bin/sh
# The deterministic float GEMM (core/gemm_f32.c) against the OpenBLAS sgemm
# it replaced, under every OpenBLAS kernel set this CPU can run:
#   1. bench_gemm_f32: the GEMMs of LeNet / cnn-small training, ours and
#      cblas_sgemm alternating in one process (bench/bench_gemm_f32.c);
#   2. training and inference images/s of this build against OLD_BUILD (a
#      build of the last commit with OpenBLAS sgemm, e.g. `git worktree add
#      /tmp/before 6788caa` and build it), the two alternating ROUNDS times.
# Ratios > 1: ours is faster. One thread everywhere.
#
# usage: bench/gemm_f32_vs_openblas.sh BUILD_DIR OLD_BUILD_DIR [ROUNDS] [CORETYPES]
set -eu
build="$1"
old="$2"
rounds="${3:-5}"
cores="${4:-Prescott Haswell SkylakeX Zen}"
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/common.sh"
need_exe "$build/bench/bench_gemm_f32"
need_exe "$build/bench/bench_train"
need_exe "$old/bench/bench_train"
one_thread

for ct in $cores; do
    echo "== OPENBLAS_CORETYPE=$ct"
    OPENBLAS_CORETYPE=$ct "$build/bench/bench_gemm_f32" 0.03
    for arch in lenet cnn-small; do
        for mode in train infer; do
            images=6000
            [ "$arch" = cnn-small ] && [ "$mode" = train ] && images=2000
            n="" o=""
            i=0
            while [ "$i" -lt "$rounds" ]; do
                n="$n $(OPENBLAS_CORETYPE=$ct "$build/bench/bench_train" --arch $arch --mode $mode --images $images | awk '{ print $5 }')"
                o="$o $(OPENBLAS_CORETYPE=$ct "$old/bench/bench_train" --arch $arch --mode $mode --images $images | awk '{ print $5 }')"
                i=$((i + 1))
            done
            nm=$(med "$n")
            om=$(med "$o")
            printf '%-9s %-5s new %7s img/s  openblas %7s img/s  ratio %.2fx  (new:%s | old:%s)\n' \
                "$arch" "$mode" "$nm" "$om" "$(echo "$nm $om" | awk '{ print $1 / $2 }')" "$n" "$o"
        done
    done
done
