#!/bin/sh
# qblind vs PyTorch 1.13 (Debian's python3-torch), one thread each, in the
# same run: LeNet on Fashion-MNIST, one epoch of training at batch 64 (SGD
# momentum 0.9) and inference over the 60k images at batch 256. The two
# programs alternate ROUNDS times; the median images/s of each and their
# ratio are printed (ratios, not absolute seconds: these machines are noisy).
#
# usage: bench/train_vs_torch.sh [BUILD_DIR] [ROUNDS]
# needs: python3-torch (apt-get install python3-torch) for the peer.
set -eu
build="${1:-build}"
rounds="${2:-5}"
here="$(cd "$(dirname "$0")" && pwd)"
bench="$build/bench/bench_train"
[ -x "$bench" ] || { echo "no $bench: build first (make build)" >&2; exit 1; }
/usr/bin/python3 -c 'import torch' 2>/dev/null || {
    echo "the peer needs PyTorch for /usr/bin/python3: apt-get install python3-torch" >&2; exit 1; }

# One thread everywhere: torch's intra-op pool and the OpenBLAS pool that
# Debian's torch calls for linear layers would otherwise compete for cores.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

run_case() { # mode batch
    q="" t=""
    i=0
    while [ "$i" -lt "$rounds" ]; do
        q="$q $("$bench" --mode "$1" --batch "$2" | awk '{ print $5 }')"
        t="$t $(/usr/bin/python3 "$here/peer_torch_lenet.py" --mode "$1" --batch "$2" | awk '{ print $5 }')"
        i=$((i + 1))
    done
    qm=$(echo "$q" | tr ' ' '\n' | grep . | median)
    tm=$(echo "$t" | tr ' ' '\n' | grep . | median)
    printf '%-6s batch %-4s qblind %7s img/s   torch %7s img/s   ratio %.2fx   (qblind:%s | torch:%s)\n' \
        "$1" "$2" "$qm" "$tm" "$(echo "$qm $tm" | awk '{ print $1 / $2 }')" "$q" "$t"
}

echo "lenet, Fashion-MNIST, one thread each, median of $rounds alternating rounds"
run_case train 64
run_case infer 256
