#!/bin/sh
# The same bits whatever the CPU (issue 14, README "Numerics"): one small
# sweep (train a LeNet with a backdoor, quantize to fp32/int8, defend with
# STRIP, AC, SS, forensics) is run once as the reference and again with
#   - QBLIND_SCALAR=1 (every reference kernel at once);
#   - each float GEMM path this CPU can run forced (QBLIND_GEMM_F32=
#     portable|avx2|avx512, core/gemm_f32.h) together with an int8 GEMM
#     path (QBLIND_GEMM_S8=ref|avx2|vnni) and 2, 3 or 4 threads per rank
#     (`run --threads`);
#   - 2 MPI ranks;
# and every run must give byte-identical model files and bit-identical
# /tasks metrics and /details arrays (tests/compare_results.py --strict).
# A path the CPU lacks is skipped with a message (the forced variable then
# falls back, which would test nothing). OpenBLAS, whose kernels (and so
# summation order) change with the CPU and OPENBLAS_CORETYPE, must not be
# loaded by qblind at all: checked with ldd (tests/linalg_bits.sh runs the
# linear algebra under each OPENBLAS_CORETYPE as well). A few minutes on 2
# cores.
# usage: tests/numerics_paths.sh QBLIND_BINARY
set -eu
# shellcheck source=tests/runner_common.sh
. "$(dirname "$0")/runner_common.sh"
runner_init "$1" numerics

cat > "$tmp/spec.yaml" <<'YAML'
name: numerics-test
dataset: synthetic
seed: [3]
trigger: [square]
precision: [fp32, int8]
defense: [none, strip, ac, ss, forensics]
train: {arch: lenet, epochs: 1}
defenses:
  strip: {n: 10, n_overlay: 100, n_calib: 200, n_frr: 200, n_trig: 200}
YAML

has() { grep -qw "$1" /proc/cpuinfo; }

# run NAME [ENV=VALUE ...] [-- EXTRA RUN ARGS]: one sweep into $tmp/NAME.h5
run() {
    name="$1"
    shift
    envs=""
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do envs="$envs $1"; shift; done
    [ $# -eq 0 ] || shift
    # shellcheck disable=SC2086 # envs is a list of words
    env $envs "$qblind" run "$tmp/spec.yaml" -o "$tmp/$name.h5" -q "$@" \
        > /dev/null 2> "$tmp/$name.err" || { cat "$tmp/$name.err"; fail "run $name"; }
}

# same NAME: NAME's results and models equal the reference's
same() {
    /usr/bin/python3 "$compare" --strict "$tmp/ref.h5" "$tmp/$1.h5" > "$tmp/$1.cmp" 2>&1 ||
        { cat "$tmp/$1.cmp"; fail "$1: results differ from the reference"; }
    for f in "$tmp/ref.h5.models"/*.qbm; do
        cmp "$f" "$tmp/$1.h5.models/$(basename "$f")" ||
            fail "$1: model $(basename "$f") differs from the reference"
    done
    echo "ok: $1 identical"
}

echo "== reference (default paths)"
run ref
[ "$(stored "$tmp/ref.h5.models")" -eq 1 ] || fail "reference: expected 1 model"

echo "== forced kernel paths and threads"
# Each run changes several factors at once (the suite's time): a
# difference names the run, and the factors are then tried one by one.
run scalar QBLIND_SCALAR=1
same scalar
if has avx2 && has fma; then
    run avx2-t2 QBLIND_GEMM_F32=avx2 QBLIND_GEMM_S8=avx2 -- --threads 2
    same avx2-t2
else
    echo "skip: AVX2 paths (this CPU lacks avx2 or fma)"
fi
s8=ref
has avx512_vnni && s8=vnni
run portable-t4 QBLIND_GEMM_F32=portable QBLIND_GEMM_S8=$s8 -- --threads 4
same portable-t4
if has avx512f; then
    run avx512-t3 QBLIND_GEMM_F32=avx512 QBLIND_GEMM_S8=ref -- --threads 3
    same avx512-t3
else
    echo "skip: AVX-512 path (this CPU lacks avx512f)"
fi

echo "== no BLAS or LAPACK library in qblind"
if ldd "$qblind" | grep -Ei 'openblas|lapack|libblas|mkl'; then
    fail "qblind loads a BLAS/LAPACK library (above): its kernels depend on the CPU"
fi
echo "ok: no BLAS/LAPACK library loaded"

echo "== ranks"
if command -v mpirun > /dev/null 2>&1; then
    mpirun -n 2 "$qblind" run "$tmp/spec.yaml" -o "$tmp/ranks2.h5" -q > /dev/null \
        2> "$tmp/ranks2.err" || { cat "$tmp/ranks2.err"; fail "2 ranks"; }
    same ranks2
fi
echo "PASS"
