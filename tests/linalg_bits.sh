#!/bin/sh
# The defenses' linear algebra (PCA, the eigensolver, least squares, SS,
# AC, forensics) gives the same bits under every OpenBLAS kernel set this
# CPU can run and with each build of our kernels forced (QBLIND_SCALAR=1,
# QBLIND_DKERNEL=avx2; the default is the widest the CPU runs):
# tests/test_linalg_bits.c --print, compared line for line (issue 14).
# With the LAPACK-based PCA of before, Prescott, Haswell and SkylakeX gave
# three different PCA, SS and AC digests here.
# usage: tests/linalg_bits.sh PATH/test_linalg_bits
set -eu
bin="$1"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/qblind-linalg-bits-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
flags="$(grep -m1 '^flags' /proc/cpuinfo || true)"
has() { for f in "$@"; do case " $flags " in *" $f "*) ;; *) return 1 ;; esac; done; }

unset OPENBLAS_CORETYPE QBLIND_SCALAR || true
"$bin" --print > "$tmp/ref.txt" 2> "$tmp/ref.err"
echo "reference (no OPENBLAS_CORETYPE, $(cat "$tmp/ref.err")):"
cat "$tmp/ref.txt"
runs=0
check() { # name, then env assignments
    name="$1"
    shift
    env "$@" OPENBLAS_VERBOSE=2 "$bin" --print > "$tmp/$name.txt" 2> "$tmp/$name.err"
    case "$name" in
    scalar | avx2) # our kernels say which build ran
        if ! grep -q "^kernels: $name\$" "$tmp/$name.err"; then
            echo "FAIL: $name asked for, $(grep '^kernels' "$tmp/$name.err") ran"
            exit 1
        fi ;;
    *) # OpenBLAS says which core it took; a name it does not know is skipped
        if ! grep -q "^Core: $name\$" "$tmp/$name.err"; then
            echo "$name: OpenBLAS did not take this core type, skipped"
            return 0
        fi ;;
    esac
    if ! cmp -s "$tmp/ref.txt" "$tmp/$name.txt"; then
        echo "FAIL: $name gives other bits:"
        diff "$tmp/ref.txt" "$tmp/$name.txt" || true
        exit 1
    fi
    echo "$name: identical"
    runs=$((runs + 1))
}
check Prescott OPENBLAS_CORETYPE=Prescott
if has avx2 fma; then
    check Haswell OPENBLAS_CORETYPE=Haswell
    check Zen OPENBLAS_CORETYPE=Zen
fi
if has avx512f avx512bw avx512vl avx512dq avx512cd; then
    check SkylakeX OPENBLAS_CORETYPE=SkylakeX
fi
if has avx512f avx512bw avx512vl avx512dq avx512cd avx512_bf16; then
    check Cooperlake OPENBLAS_CORETYPE=Cooperlake
fi
check scalar QBLIND_SCALAR=1
has avx2 && check avx2 QBLIND_DKERNEL=avx2
echo "linalg bits: $runs configurations identical to the reference"
