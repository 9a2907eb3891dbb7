#!/bin/sh
# Quantized inference: qblind FP32 (plain model) and INT8 (qb_qmodel, integer
# kernels) against PyTorch 1.13 (Debian's python3-torch) FP32 and static
# INT8 post-training quantization on the 'onednn' engine, one thread each,
# batch 256: lenet on Fashion-MNIST (60k training images) and cnn-small on
# random 3x32x32 images (10k). The four programs alternate ROUNDS times; the
# median images/s of each and the ratios are printed (ratios, not absolute
# numbers: these machines are noisy). Targets: qblind int8 >= 2x qblind
# fp32, and >= torch int8.
#
# usage: bench/qinfer_vs_torch.sh [BUILD_DIR] [ROUNDS] [ARCHS]
#   ARCHS defaults to "lenet cnn-small"
# needs: python3-torch (apt-get install python3-torch) for the peer.
set -eu
build="${1:-build}"
rounds="${2:-5}"
archs="${3:-lenet cnn-small}"
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/common.sh"
bench="$build/bench/bench_qinfer"
torch_peer "$bench"

for arch in $archs; do
    qf="" qi="" tf="" ti=""
    i=0
    while [ "$i" -lt "$rounds" ]; do
        qf="$qf $("$bench" --arch "$arch" --prec fp32 --batch 256 | awk '{ print $5 }')"
        qi="$qi $("$bench" --arch "$arch" --prec int8 --batch 256 | awk '{ print $5 }')"
        tf="$tf $(/usr/bin/python3 "$here/peer_torch_int8.py" --arch "$arch" --prec fp32 --batch 256 | awk '{ print $5 }')"
        ti="$ti $(/usr/bin/python3 "$here/peer_torch_int8.py" --arch "$arch" --prec int8 --batch 256 | awk '{ print $5 }')"
        i=$((i + 1))
    done
    mqf=$(med "$qf") mqi=$(med "$qi") mtf=$(med "$tf") mti=$(med "$ti")
    echo "$arch, batch 256, one thread, median images/s of $rounds alternating rounds"
    printf '  qblind fp32 %8s   (%s)\n' "$mqf" "$qf"
    printf '  qblind int8 %8s   (%s)\n' "$mqi" "$qi"
    printf '  torch  fp32 %8s   (%s)\n' "$mtf" "$tf"
    printf '  torch  int8 %8s   (%s)   onednn static PTQ\n' "$mti" "$ti"
    printf '  qblind int8 / qblind fp32 %sx (target >= 2)   qblind int8 / torch int8 %sx (target >= 1)   qblind fp32 / torch fp32 %sx\n' \
        "$(ratio "$mqi" "$mqf")" "$(ratio "$mqi" "$mti")" "$(ratio "$mqf" "$mtf")"
done
