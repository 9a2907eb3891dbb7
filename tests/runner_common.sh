# shellcheck shell=sh
# Shell helpers shared by the integration tests of `qblind run`
# (tests/mpi_runner.sh, tests/fault_runner.sh). Sourced, after `set -eu`:
#   . "$(dirname "$0")/runner_common.sh"
#   runner_init QBLIND_BINARY NAME
# sets qblind, here (the tests/ folder), tmp (a fresh directory, removed on
# exit after runner_cleanup_hook, which a script may redefine) and compare
# (tests/compare_results.py), and lets Open MPI run as root and oversubscribe.

runner_init() { # QBLIND_BINARY NAME
    qblind="$1"
    here="$(cd "$(dirname "$0")" && pwd)"
    tmp="$(mktemp -d "${TMPDIR:-/tmp}/qblind-$2-XXXXXX")"
    # shellcheck disable=SC2034 # used by the scripts that source this
    compare="$here/compare_results.py"
    trap 'runner_cleanup' EXIT
    trap 'exit 1' INT TERM HUP
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
}

runner_cleanup_hook() { :; }

runner_cleanup() {
    runner_cleanup_hook || true
    rm -rf "$tmp"
}

fail() { echo "FAIL: $*"; exit 1; }

# The number of tasks a results file holds as finished (ok, invalid or
# failed); 0 while it does not exist or cannot be read.
finished() { "$qblind" status "$1" 2>/dev/null | awk '/ok|invalid|failed/ { s += $2 } END { print s + 0 }'; }

# The number of models (.qbm files) in store directory $1.
stored() { _n=0; for _f in "$1"/*.qbm; do [ ! -f "$_f" ] || _n=$((_n + 1)); done; echo "$_n"; }

# The number of models a run trained, from its summary line on stderr.
trained() { sed -n 's/.* \([0-9][0-9]*\) models trained.*/\1/p' "$1"; }
