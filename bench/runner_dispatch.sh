#!/bin/sh
# Dispatch throughput of the `qblind run` coordinator with empty tasks
# (--empty-tasks: workers skip the pipeline; spec expansion, scheduling, MPI
# messages and recording + flushing every row in the HDF5 file are real),
# on mpirun -n 2 (1 coordinator + 1 worker), against mpi4py.futures
# (Debian's python3-mpi4py, mpirun -n 2: 1 master + 1 worker) doing the same
# number of empty tasks. qblind runs twice: results file on DIR (default:
# the current directory's file system, fsync real) and on /dev/shm (tmpfs:
# fsync free), which shows how much the per-flush fsync bounds the rate.
# usage: bench/runner_dispatch.sh [BUILD_DIR] [N_TASKS] [DIR]
# needs: python3-mpi4py (apt-get install python3-mpi4py) for the peer.
set -eu
build="${1:-build}"
n="${2:-100000}"
dir="${3:-.}"
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/common.sh"
qblind="$build/qblind"
need_exe "$qblind"
need_python mpi4py.futures python3-mpi4py
mpi_env
tmp="$(mktemp -d "$dir/qblind-dispatch-XXXXXX")"
shm="$(mktemp -d /dev/shm/qblind-dispatch-XXXXXX)"
trap 'rm -rf "$tmp" "$shm"' EXIT
cat > "$tmp/spec.yaml" <<YAML
name: bench-dispatch
dataset: synthetic
seed: {range: [0, $n]}
trigger: clean
precision: fp32
YAML
qrun() { # results dir -> tasks/s over the coordinator loop (qblind's own timer)
    mpirun -n 2 "$qblind" run "$tmp/spec.yaml" -o "$1/r.h5" --empty-tasks -q > /dev/null 2> "$1/err" \
        || { cat "$1/err" >&2; exit 1; }
    s=$(sed -n 's/.* \([0-9][0-9]*\) tasks ran in \([0-9.]*\) s.*/\1 \2/p' "$1/err")
    [ "${s%% *}" = "$n" ] || { cat "$1/err" >&2; echo "expected $n tasks" >&2; exit 1; }
    "$qblind" status "$1/r.h5" | grep -q "ok       $n\$" || { echo "not all $n rows ok" >&2; exit 1; }
    echo "$s" | awk '{ printf "%.0f", $1 / $2 }'
}
q=$(qrun "$tmp")
echo "qblind run --empty-tasks, mpirun -n 2, results on $(df --output=fstype "$tmp" | tail -1): $n tasks, $q tasks/s"
qs=$(qrun "$shm")
echo "qblind run --empty-tasks, mpirun -n 2, results on tmpfs (/dev/shm): $n tasks, $qs tasks/s"
p=$(mpirun -n 2 /usr/bin/python3 -m mpi4py.futures "$here/peer_mpi4py_dispatch.py" "$n")
echo "$p"
pr=$(echo "$p" | sed -n 's/.* = \([0-9]*\) tasks\/s.*/\1/p')
echo "ratio qblind / mpi4py.futures: $(ratio "$q" "$pr") (fsync'd file), $(ratio "$qs" "$pr") (tmpfs)"
