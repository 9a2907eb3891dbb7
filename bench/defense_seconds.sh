#!/bin/sh
# Seconds per defense run at each precision, one process on one core
# (OpenBLAS single-threaded, as in a sweep), on a BadNet LeNet trained here.
# usage: bench/defense_seconds.sh BUILD_DIR [SEED]
# Prints `qblind defend`'s table: precision, defense, detected, seconds.
set -eu
build="$1"
seed="${2:-0}"
. "$(dirname "$0")/common.sh"
qblind="$build/qblind"
bench_tmpdir defbench
"$qblind" train -q -t badnet -s "$seed" -o "$tmp/badnet.qbm" > "$tmp/train.txt"
cat "$tmp/train.txt"
taskset -c 0 "$qblind" defend "$tmp/badnet.qbm" -q -t badnet -s "$seed" \
    -D nc,ac,ss,strip,fp,forensics -p fp32,int8,int8-linear,int4
