# Shared by the bench/*.sh scripts (POSIX sh, sourced): checks that what a
# script runs exists, the environment every measurement runs in, and the
# median / ratio of the timings it prints.

# bench_tmpdir NAME: sets tmp to a fresh directory under $TMPDIR (or /tmp),
# removed when the script exits.
bench_tmpdir() {
    tmp="$(mktemp -d "${TMPDIR:-/tmp}/qblind-$1-XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
}

# need_exe PATH: stop unless PATH is an executable (a build output).
need_exe() {
    [ -x "$1" ] || { echo "no $1: build first (make build)" >&2; exit 1; }
}

# need_python MODULE PACKAGE: stop unless Debian's python3 imports MODULE
# (the peers run on /usr/bin/python3, never on qblind's path).
need_python() {
    /usr/bin/python3 -c "import $1" 2>/dev/null || {
        echo "the peer needs $1 for /usr/bin/python3: apt-get install $2" >&2; exit 1; }
}

# One thread everywhere: torch's intra-op pool and the OpenBLAS pool (which
# Debian's torch also calls for linear layers) would otherwise compete for
# cores.
one_thread() {
    export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
}

# torch_peer BENCH: a bench against its PyTorch peer: BENCH built, torch
# importable, one thread.
torch_peer() {
    need_exe "$1"
    need_python torch python3-torch
    one_thread
}

# Open MPI as root in a container, more ranks than cores allowed.
mpi_env() {
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
        OMPI_MCA_rmaps_base_oversubscribe=1
}

# median: the median of the numbers on stdin, one a line.
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
# med "LIST": the median of a space-separated list.
med() { echo "$1" | tr ' ' '\n' | grep . | median; }
# ratio A B: A / B with two decimals.
ratio() { echo "$1 $2" | awk '{ printf "%.2f", $1 / $2 }'; }
