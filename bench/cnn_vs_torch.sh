#!/bin/sh
# The paper's models, qblind vs PyTorch 1.13 (Debian's python3-torch), one
# thread each, in the same run (issue 15): on random 3x32x32 images with 10
# classes,
#   - training, batch 128 (one epoch of SGD, momentum 0.9, weight decay 5e-4,
#     batch-norm in training mode): bench/bench_train vs peer_torch_lenet.py;
#   - FP32 inference, batch 256: bench/bench_qinfer --prec fp32 vs
#     peer_torch_int8.py --prec fp32;
#   - INT8 inference, batch 256: qblind's integer kernels (bench_qinfer
#     --prec int8: batch norm folded, w8a8) vs PyTorch's static INT8
#     (peer_torch_int8.py --prec int8: conv-bn-relu fused, calibrated, on the
#     'onednn' engine, the x86 engine Debian's torch has; no fbgemm);
# for cnn-small, resnet20 and preact-resnet18 (or ARCHS). The programs
# alternate ROUNDS times; the median images/s of each and the ratios
# against the issue's targets are printed (ratios, not absolute numbers:
# these machines are noisy), and the peak RSS of each training run (qblind
# must stay <= 1.5 GB on preact-resnet18 at batch 128).
#
# An architecture qblind's build does not know yet (bench_qinfer --arch
# fails to build it) is skipped with a message; so is INT8 inference where
# qblind cannot quantize that architecture yet.
#
# usage: bench/cnn_vs_torch.sh [BUILD_DIR] [ROUNDS] [ARCHS]
#   ARCHS defaults to "cnn-small resnet20 preact-resnet18"
#   QB_BENCH_SCALE=F scales every image count (default 1; 0.25 for a quick look)
# needs: python3-torch (apt-get install python3-torch) for the peers.
set -eu
build="${1:-build}"
rounds="${2:-3}"
archs="${3:-cnn-small resnet20 preact-resnet18}"
scale="${QB_BENCH_SCALE:-1}"
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/common.sh"
train="$build/bench/bench_train"
infer="$build/bench/bench_qinfer"
torch_peer "$train"
need_exe "$infer"
bench_tmpdir cnn

# images per measurement: about 5-20 s of the slower program each
images() { # arch train|infer
    case "$1:$2" in
    preact-resnet18:train) n=384 ;;
    preact-resnet18:infer) n=1024 ;;
    vgg11-bn:train) n=768 ;;
    vgg11-bn:infer) n=2048 ;;
    *:train) n=2560 ;;
    *) n=5120 ;;
    esac
    echo "$n $scale" | awk '{ n = int($1 * $2); print n < 1 ? 1 : n }'
}

# rate_rss OUT CMD...: runs CMD, appends its images/s (5th field of its
# line) to the variable named OUT, and its peak RSS (MB) to OUT_rss
rate_rss() {
    var="$1"
    shift
    /usr/bin/time -f "%M" -o "$tmp/rss" "$@" > "$tmp/out" 2> "$tmp/err" || {
        cat "$tmp/err" >&2
        echo "failed: $*" >&2
        exit 1
    }
    eval "$var=\"\$$var \$(awk '{ print \$5 }' \"\$tmp/out\")\""
    eval "${var}_rss=\"\$${var}_rss \$(awk '{ printf \"%d\", \$1 / 1024 }' \"\$tmp/rss\")\""
}

# max "LIST": the largest number of a space-separated list
max() { echo "$1" | tr ' ' '\n' | grep . | sort -n | tail -1; }

echo "one thread each, random 3x32x32 images, median images/s of $rounds alternating rounds"
for arch in $archs; do
    if ! "$infer" --arch "$arch" --prec fp32 --batch 1 --images 1 > /dev/null 2> "$tmp/probe"; then
        echo "$arch: skipped: this qblind build does not know it ($(head -1 "$tmp/probe"))"
        continue
    fi
    int8=1
    "$infer" --arch "$arch" --prec int8 --batch 1 --images 1 > /dev/null 2> "$tmp/probe" || int8=0
    nt=$(images "$arch" train)
    ni=$(images "$arch" infer)
    qt="" tt="" qf="" qi="" tf="" ti="" qt_rss="" tt_rss="" qf_rss="" qi_rss="" tf_rss="" ti_rss=""
    i=0
    while [ "$i" -lt "$rounds" ]; do
        rate_rss qt "$train" --arch "$arch" --mode train --batch 128 --images "$nt"
        rate_rss tt /usr/bin/python3 "$here/peer_torch_lenet.py" --arch "$arch" --mode train \
            --batch 128 --images "$nt"
        rate_rss qf "$infer" --arch "$arch" --prec fp32 --batch 256 --images "$ni"
        [ "$int8" = 0 ] || rate_rss qi "$infer" --arch "$arch" --prec int8 --batch 256 --images "$ni"
        rate_rss tf /usr/bin/python3 "$here/peer_torch_int8.py" --arch "$arch" --prec fp32 \
            --batch 256 --images "$ni"
        rate_rss ti /usr/bin/python3 "$here/peer_torch_int8.py" --arch "$arch" --prec int8 \
            --batch 256 --images "$ni"
        i=$((i + 1))
    done
    mqt=$(med "$qt") mtt=$(med "$tt") mqf=$(med "$qf") mtf=$(med "$tf") mti=$(med "$ti")
    echo "$arch (train $nt images, inference $ni images)"
    printf '  train  batch 128  qblind %7s  torch %7s  ratio %sx (target >= 1.2)  peak RSS qblind %s MB, torch %s MB\n' \
        "$mqt" "$mtt" "$(ratio "$mqt" "$mtt")" "$(max "$qt_rss")" "$(max "$tt_rss")"
    printf '  fp32   batch 256  qblind %7s  torch %7s  ratio %sx (target >= 1.5)\n' \
        "$mqf" "$mtf" "$(ratio "$mqf" "$mtf")"
    if [ "$int8" = 1 ]; then
        mqi=$(med "$qi")
        printf '  int8   batch 256  qblind %7s  torch %7s  ratio %sx (target >= 1.5)  qblind int8/fp32 %sx (target >= 2)\n' \
            "$mqi" "$mti" "$(ratio "$mqi" "$mti")" "$(ratio "$mqi" "$mqf")"
    else
        printf '  int8   batch 256  qblind: skipped (no integer path for %s in this build: %s)  torch %7s\n' \
            "$arch" "$(head -1 "$tmp/probe")" "$mti"
    fi
    echo "  rounds: train qblind:$qt | torch:$tt; fp32 qblind:$qf | torch:$tf; int8 qblind:${qi:- -} | torch:$ti"
done
