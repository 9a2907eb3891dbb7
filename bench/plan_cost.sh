#!/bin/sh
# The plan's cost model (jobs/cost.h) against real training: for each
# architecture, `qblind plan` predicts the core-seconds of one epoch on
# $DATASET (default synthetic: 10,000 images of 3x32x32) at batch $BATCH
# (default 128); `qblind train` runs
# that epoch, and the same command with --epochs 0 (data, model, the
# evaluation) is subtracted. CPU seconds (user + system, /usr/bin/time), not
# wall time: the cost model predicts core-seconds, and the CPU seconds of a
# process are what a shared machine disturbs least.
# Usage: [ARCHS="resnet20 preact-resnet18"] [ROUNDS=2] [DATASET=synthetic] [BATCH=128]
#        bench/plan_cost.sh [QBLIND]
# One line per run: arch, predicted s, measured s, measured / predicted.
set -u
. "$(dirname "$0")/common.sh"
QB=${1:-build/qblind}
need_exe "$QB"
bench_tmpdir plan-cost
one_thread

cpu_seconds() { # command...: its user + system CPU seconds
    /usr/bin/time -f "%U %S" -o "$tmp/time" "$@" > /dev/null 2>&1 || {
        echo "failed: $*" >&2; exit 1; }
    awk '{ printf "%.2f", $1 + $2 }' "$tmp/time"
}

ds=${DATASET:-synthetic}
batch=${BATCH:-128}
for arch in ${ARCHS:-resnet20 preact-resnet18}; do
    printf 'dataset: %s\ntrain: {arch: %s, epochs: 1, batch: %s}\n' "$ds" "$arch" "$batch" > "$tmp/s.yaml"
    pred=$("$QB" plan "$tmp/s.yaml" | sed -n 's/.*training [0-9.e+-]* ms per image, \([0-9.]*\) s per epoch.*/\1/p')
    [ -n "$pred" ] || { echo "no estimate from qblind plan for $arch" >&2; exit 1; }
    r=0
    while [ $r -lt "${ROUNDS:-2}" ]; do
        run="$QB train -d $ds --arch $arch --batch $batch -t clean --precision fp32 -q"
        # shellcheck disable=SC2086
        one=$(cpu_seconds $run --epochs 1)
        # shellcheck disable=SC2086
        zero=$(cpu_seconds $run --epochs 0)
        awk -v a="$arch on $ds, batch $batch" -v p="$pred" -v o="$one" -v z="$zero" -v l="$(cut -d' ' -f1 /proc/loadavg)" \
            'BEGIN { m = o - z; printf "%s\tpredicted %.1f s\tmeasured %.1f s (%.1f - %.1f)\tratio %.2f\tload %s\n", a, p, m, o, z, m / p, l }'
        r=$((r + 1))
    done
done
