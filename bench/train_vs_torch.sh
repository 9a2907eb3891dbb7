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
. "$here/common.sh"
bench="$build/bench/bench_train"
torch_peer "$bench"

run_case() { # mode batch
    q="" t=""
    i=0
    while [ "$i" -lt "$rounds" ]; do
        q="$q $("$bench" --mode "$1" --batch "$2" | awk '{ print $5 }')"
        t="$t $(/usr/bin/python3 "$here/peer_torch_lenet.py" --mode "$1" --batch "$2" | awk '{ print $5 }')"
        i=$((i + 1))
    done
    qm=$(med "$q")
    tm=$(med "$t")
    printf '%-6s batch %-4s qblind %7s img/s   torch %7s img/s   ratio %.2fx   (qblind:%s | torch:%s)\n' \
        "$1" "$2" "$qm" "$tm" "$(echo "$qm $tm" | awk '{ print $1 / $2 }')" "$q" "$t"
}

echo "lenet, Fashion-MNIST, one thread each, median of $rounds alternating rounds"
run_case train 64
run_case infer 256
