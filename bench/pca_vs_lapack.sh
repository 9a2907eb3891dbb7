#!/bin/sh
# PCA as AC and SS run it, ours (core/pca.c) against the LAPACK version it
# replaced, under each OpenBLAS kernel set this CPU can run, and with our
# kernels' baseline build forced (QBLIND_SCALAR=1). One core (taskset -c 1),
# CPU time of the thread. Results: bench/RESULTS.md.
# usage: bench/pca_vs_lapack.sh BUILD_DIR [REPS]
set -eu
bin="$1/bench/bench_pca"
reps="${2:-3}"
flags="$(grep -m1 '^flags' /proc/cpuinfo || true)"
has() { for f in "$@"; do case " $flags " in *" $f "*) ;; *) return 1 ;; esac; done; }
types="Prescott"
has avx2 fma && types="$types Haswell"
has avx512f avx512bw avx512vl avx512dq avx512cd && types="$types SkylakeX"
for t in $types; do
    OPENBLAS_CORETYPE=$t taskset -c 1 "$bin" "$reps"
done
QBLIND_SCALAR=1 OPENBLAS_CORETYPE=Prescott taskset -c 1 "$bin" "$reps"
