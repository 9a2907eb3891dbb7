#!/bin/bash
# Submit a qblind sweep to Slurm: the run (one MPI job, or a job array of
# shards followed by a merge job), then the report, chained with
# --dependency=afterok so each step starts only when the one before
# succeeded. Prints the job ids.
#
#   slurm/submit.sh [options] SPEC.yaml OUT.h5 [-- sbatch options for every job]
#
#   slurm/submit.sh --ranks 64 --time 12:00:00 configs/paper.yaml paper.h5
#   slurm/submit.sh --array 16 --ranks 4 configs/paper.yaml paper.h5 -- --partition=short
#   slurm/submit.sh --dry-run configs/quickstart.yaml quick.h5
#
# Options:
#   --array N        N shards as a job array (slurm/array.sbatch), then
#                    `qblind merge` into OUT.h5 (shard files: OUT.shard-i-of-N.h5)
#   --ranks R        MPI ranks per job (per shard with --array); rank 0
#                    coordinates, so R-1 ranks work. Ranks beyond the
#                    allocation's CPUs need --overcommit
#   --time T         time limit of each run job (sbatch --time: 30, 4:00:00, 1-00:00:00)
#   --lead S         seconds before the time limit at which the ranks drain
#                    and the job requeues itself [300]
#   --shard-by WHAT  model (default) or task (qblind run --help)
#   --overcommit     more ranks than CPUs (sbatch --overcommit)
#   --force          with --array: let the merge replace an existing OUT.h5
#   --no-report      submit no report job
#   --dry-run        print the sbatch commands; submit nothing, create nothing
#   -h, --help
# Environment: QBLIND (the qblind binary; default: qblind on PATH, else
# build/qblind of this repository), QBLIND_MAX_RESTARTS (sbatch scripts).
# Logs go to OUT.h5.logs/. Resubmitting the same command resumes: run jobs
# skip finished tasks.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
me=submit.sh
die() { echo "$me: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -eu/{/^set -eu/d;s/^# \{0,1\}//;p}' "$0"; }

array=0 ranks="" time="" lead=300 shard_by="" overcommit=0 force=0 report=1 dry=0
while [ $# -gt 0 ]; do
    case $1 in
    --array) array=${2:?--array needs N}; shift 2 ;;
    --ranks) ranks=${2:?--ranks needs R}; shift 2 ;;
    --time) time=${2:?--time needs a limit}; shift 2 ;;
    --lead) lead=${2:?--lead needs seconds}; shift 2 ;;
    --shard-by) shard_by=${2:?--shard-by needs model or task}; shift 2 ;;
    --overcommit) overcommit=1; shift ;;
    --force) force=1; shift ;;
    --no-report) report=0; shift ;;
    --dry-run) dry=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) break ;;
    -*) die "unknown option $1 (--help lists them)" ;;
    *) break ;;
    esac
done
[ $# -ge 2 ] || die "usage: $me [options] SPEC.yaml OUT.h5 [-- sbatch options] (--help)"
spec=$1
out=$2
shift 2
if [ $# -gt 0 ]; then
    [ "$1" = -- ] || die "unexpected argument $1: sbatch options go after --"
    shift
fi
extra=("$@")
case $array in '' | *[!0-9]*) die "--array: expected a number of shards, got $array" ;; esac
case $lead in '' | *[!0-9]*) die "--lead: expected seconds, got $lead" ;; esac
[ -z "$ranks" ] || case $ranks in *[!0-9]* | 0) die "--ranks: expected a number >= 1, got $ranks" ;; esac

# the binary every job runs, resolved once here
if [ -z "${QBLIND:-}" ]; then
    if command -v qblind > /dev/null 2>&1; then
        QBLIND=$(command -v qblind)
    elif [ -x "$here/../build/qblind" ]; then
        QBLIND=$(cd "$here/../build" && pwd)/qblind
    else
        die "no qblind binary: put it on PATH, build it (make build), or set QBLIND"
    fi
fi
[ -x "$QBLIND" ] || die "QBLIND=$QBLIND is not an executable"
[ -f "$spec" ] || die "spec $spec: no such file"
if [ "$dry" = 0 ]; then
    "$QBLIND" plan "$spec" > /dev/null || die "spec $spec does not validate (qblind plan $spec)"
fi
if [ "$array" -gt 0 ] && [ -e "$out" ] && [ "$force" = 0 ]; then
    die "$out exists: the merge would not replace it; pass --force, or choose another name"
fi
logs="$out.logs"
prefix=${out%.h5}

# sbatch options common to every job
common=(--export="ALL,QBLIND=$QBLIND" "${extra[@]}")
run_opts=()
[ -z "$ranks" ] || run_opts+=(--ntasks="$ranks")
[ -z "$time" ] || run_opts+=(--time="$time")
run_opts+=(--signal="B:USR1@$lead")
[ "$overcommit" = 0 ] || run_opts+=(--overcommit)
qblind_opts=()
[ -z "$shard_by" ] || qblind_opts+=(--shard-by "$shard_by")

# A word quoted for /bin/sh (sbatch --wrap runs its command with sh).
shq() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

# Print (dry run) or run an sbatch command; echoes the job id. The
# printed commands go to fd 3, the caller's stdout.
exec 3>&1
submit() { # name sbatch-args...
    local name=$1 id
    shift
    if [ "$dry" = 1 ]; then
        { printf '%s' "sbatch --parsable"; printf ' %q' "$@"; printf '\n'; } >&3
        echo "<$name-job-id>"
        return
    fi
    id=$(sbatch --parsable "$@") || die "sbatch for the $name job failed"
    echo "${id%%;*}"
}

if [ "$dry" = 1 ]; then
    echo "# $me: dry run: the commands it would run; nothing is submitted or created"
    printf 'mkdir -p %q\n' "$logs"
else
    mkdir -p "$logs"
fi

if [ "$array" -gt 0 ]; then
    run=$(submit run --array="0-$((array - 1))" --output="$logs/%x-%A_%a.out" "${run_opts[@]}" \
        "${common[@]}" "$here/array.sbatch" "$spec" "$prefix" "${qblind_opts[@]}")
    echo "run: $run (array of $array shards: $prefix.shard-i-of-$array.h5)"
    shards=""
    for ((i = 0; i < array; i++)); do shards="$shards $(shq "$prefix.shard-$i-of-$array.h5")"; done
    fflag=""
    [ "$force" = 0 ] || fflag=" --force"
    merge=$(submit merge --job-name=qblind-merge --ntasks=1 --time=60 --dependency="afterok:$run" \
        --output="$logs/%x-%j.out" "${common[@]}" \
        --wrap="exec $(shq "$QBLIND") merge$fflag $(shq "$out")$shards")
    echo "merge: $merge (-> $out, after every shard succeeded)"
    last=$merge
else
    run=$(submit run --output="$logs/%x-%j.out" "${run_opts[@]}" "${common[@]}" \
        "$here/qblind.sbatch" "$spec" "$out" "${qblind_opts[@]}")
    echo "run: $run (-> $out)"
    last=$run
fi

if [ "$report" = 1 ]; then
    # `qblind report` comes with a later version: chain it only if this
    # binary has it
    if "$QBLIND" report --help > /dev/null 2>&1; then
        rep=$(submit report --job-name=qblind-report --ntasks=1 --time=60 \
            --dependency="afterok:$last" --output="$logs/%x-%j.out" "${common[@]}" \
            --wrap="exec $(shq "$QBLIND") report $(shq "$out")")
        echo "report: $rep (after $last)"
    else
        echo "report: skipped: $QBLIND has no 'report' command (qblind report --help failed)"
    fi
fi
