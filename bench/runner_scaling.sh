#!/bin/sh
# Strong scaling of a real small sweep from 1 to 2 worker ranks: synthetic
# dataset, LeNet 1 epoch, 4 seeds x {clean, square} x {fp32, int8} = 8 tasks
# on 8 models. mpirun -n 2 (1 worker) and -n 3 (2 workers; rank 0 shares a
# core with a worker, it sleeps while idle) alternate ROUNDS times, each on a
# fresh results file and model store; the median wall times and the
# efficiency T1 / (2 x T2) are printed. As the machine's own ceiling, the
# same 16 tasks also run as two independent single-rank `qblind run`s of
# 2 seeds each, side by side (no MPI, no coordinator): T1 / (2 x Tpair) is
# what 2 cores of this machine give at best.
# usage: bench/runner_scaling.sh [BUILD_DIR] [ROUNDS]
set -eu
build="${1:-build}"
rounds="${2:-3}"
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/common.sh"
qblind="$build/qblind"
need_exe "$qblind"
mpi_env
bench_tmpdir scaling
cp "$here/../configs/scaling.yaml" "$tmp/spec.yaml"
run() { # ranks -> wall seconds of the whole mpirun
    rm -rf "$tmp/r.h5" "$tmp/r.h5.models"
    t0=$(date +%s.%N)
    mpirun -n "$1" "$qblind" run "$tmp/spec.yaml" -o "$tmp/r.h5" -q > /dev/null 2> "$tmp/err" \
        || { cat "$tmp/err" >&2; exit 1; }
    t1=$(date +%s.%N)
    grep -q " 8 models trained" "$tmp/err" || { cat "$tmp/err" >&2; echo "expected 8 models trained" >&2; exit 1; }
    echo "$t0 $t1" | awk '{ printf "%.2f\n", $2 - $1 }'
}
pair() { # two single-rank runs of half the seeds, concurrently
    rm -rf "$tmp"/h?.h5 "$tmp"/h?.h5.models
    sed 's/range: \[0, 4\]/range: [0, 2]/' "$tmp/spec.yaml" > "$tmp/h0.yaml"
    sed 's/range: \[0, 4\]/range: [2, 4]/' "$tmp/spec.yaml" > "$tmp/h1.yaml"
    t0=$(date +%s.%N)
    "$qblind" run "$tmp/h0.yaml" -o "$tmp/h0.h5" -q > /dev/null 2>&1 &
    p0=$!
    "$qblind" run "$tmp/h1.yaml" -o "$tmp/h1.h5" -q > /dev/null 2>&1 || exit 1
    wait $p0 || exit 1
    t1=$(date +%s.%N)
    echo "$t0 $t1" | awk '{ printf "%.2f\n", $2 - $1 }'
}
t1s="" t2s="" tps=""
i=0
while [ "$i" -lt "$rounds" ]; do
    a=$(run 2); b=$(run 3); c=$(pair)
    echo "round $((i + 1)): 1 worker (-n 2) $a s, 2 workers (-n 3) $b s, two independent halves $c s"
    t1s="$t1s $a" t2s="$t2s $b" tps="$tps $c"
    i=$((i + 1))
done
t1=$(med "$t1s")
t2=$(med "$t2s")
tp=$(med "$tps")
echo "median: 1 worker $t1 s, 2 workers $t2 s, speedup $(ratio "$t1" "$t2"), efficiency $(echo "$t1 $t2" | awk '{ printf "%.1f%%", 100 * $1 / (2 * $2) }')"
echo "machine ceiling: two independent halves $tp s, efficiency $(echo "$t1 $tp" | awk '{ printf "%.1f%%", 100 * $1 / (2 * $2) }'); runner vs ceiling $(echo "$tp $t2" | awk '{ printf "%.1f%%", 100 * $1 / $2 }')"
