#!/bin/sh
# Fault test of `qblind run` (issue 13) under `mpirun -n 3`, on a tiny
# synthetic-dataset spec: 16 tasks of 4 untrained LeNets (epochs 0 keeps
# each task well under a second), so that many faults fit in a few minutes.
#   1. kill -9 of one rank, the coordinator (rank 0) or a worker, at
#      FAULT_KILLS (20) random moments of the sweep, each followed by the
#      same command (a resume). Open MPI aborts the job when a rank dies: the
#      job must end and leave no rank behind. The resume exits 0 with every
#      task exactly once, rows and details identical to an uninterrupted run
#      (compare_results.py --strict, which includes the plain comparison),
#      and no row recorded before the kill ran again (--unchanged). Some
#      kills start with an empty model store (training and store writes get
#      killed), the others with the uninterrupted run's models.
#   2. the disk filling up mid-run, on tmpfs file systems the test mounts:
#      a. the model store alone, on one with room for 2 of the 4 models
#      b. results file and model store on one that a filler file (dd) fills
#         once a random number of rows is recorded
#      each time the run stops with a clear error (exit non-zero, a message
#      naming the space) and records no row for the tasks the full disk
#      stopped; the results file stays readable (qblind status, h5py) with
#      every row recorded before; once space is back (a bigger file system,
#      the filler removed) the same command completes, identical to the
#      uninterrupted run, without running the rows recorded before again.
# The ranks, moments and fill points come from FAULT_SEED, printed at the
# start (FAULT_SEED=N replays the schedule; the moments are times, so what
# they hit still varies with the machine's load).
#
# Defect 5 of issue 13 (fixed): a store that cannot write a freshly
# trained model used to record the model's tasks `failed`, for good. Now
# the model is used from memory (a warning names the disk) and every task
# is measured. FAULT_KNOWN_DEFECT_5=1 still tolerates the old behaviour
# (reported as an EXPECTED FAILURE), for bisecting; the default is 0.
#
# usage: tests/fault_runner.sh QBLIND_BINARY
# exit 77: skipped (no mpirun; or the disk part cannot mount tmpfs, after
# the kill part passed)
set -eu
# In a private mount namespace where possible, so that the tmpfs mounts go
# away with the test even if it is killed
if [ -z "${FAULT_IN_NAMESPACE:-}" ] && unshare --mount --propagation private true 2> /dev/null; then
    export FAULT_IN_NAMESPACE=1
    exec unshare --mount --propagation private sh "$0" "$@"
fi
# shellcheck source=tests/runner_common.sh
. "$(dirname "$0")/runner_common.sh"
runner_init "$1" fault
command -v mpirun > /dev/null || { echo "SKIP: no mpirun"; exit 77; }
kills="${FAULT_KILLS:-20}"
seed="${FAULT_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}"
known5="${FAULT_KNOWN_DEFECT_5:-0}"
rows="/usr/bin/python3 $here/fault_rows.py"
job="" mounts=""
runner_cleanup_hook() {
    [ -z "$job" ] || kill -9 "$job" 2> /dev/null || true
    for m in $mounts; do umount "$m" 2> /dev/null || true; done
}
echo "fault_runner: seed $seed (replay with FAULT_SEED=$seed), $kills kills"

cat > "$tmp/spec.yaml" <<'YAML'
name: fault-test
dataset: synthetic
seed: [0, 1]
trigger: [clean, square]
precision: [fp32, int8]
defense: [none, forensics]
train: {arch: lenet, epochs: 0}
YAML
n_tasks=16 n_models=4

# kill RANK FRACTION STORE per kill, then the rows to fill at: the moment of
# a kill is FRACTION (< 0.9) of the uninterrupted run's time with an empty
# (cold) or a full (warm) model store
/usr/bin/python3 - "$seed" "$kills" "$n_tasks" > "$tmp/schedule" <<'PY'
import random, sys
r = random.Random(int(sys.argv[1]))
for _ in range(int(sys.argv[2])):
    print("kill", r.randrange(3), "%.3f" % (0.9 * r.random()), "cold" if r.random() < 0.3 else "warm")
print("fill", r.randrange(int(sys.argv[3]) // 2 + 1))
PY

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
# The sweep under mpirun, in the foreground (run) or in the background
# (start: the job's pid, mpirun's own, in $job); stderr to file $1. Stdin is
# /dev/null: mpirun forwards its stdin to rank 0.
run() {
    _e=$1
    shift
    mpirun -n 3 "$qblind" run "$tmp/spec.yaml" "$@" -q < /dev/null > /dev/null 2> "$_e"
}
start() {
    _e=$1
    shift
    mpirun -n 3 "$qblind" run "$tmp/spec.yaml" "$@" -q < /dev/null > /dev/null 2> "$_e" &
    job=$!
}

# Is the background job $1 still running (not ended, not a zombie)?
running() { [ -d "/proc/$1" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" 2> /dev/null | cut -c1)" != Z ]; }

# Wait up to $2 seconds for the background job $1; its exit status in rc.
wait_job() {
    _w=0
    while running "$1"; do
        _w=$((_w + 1))
        [ "$_w" -le $(($2 * 10)) ] || return 1
        sleep 0.1
    done
    rc=0
    wait "$1" || rc=$?
    job=""
}

# The pid of rank $2 of the mpirun job $1 (ranks are mpirun's children).
rank_pid() {
    # shellcheck disable=SC2013 # pids are words
    for p in $(cat /proc/[0-9]*/stat 2> /dev/null | awk -v pp="$1" '$4 == pp { print $1 }'); do
        if { tr '\0' '\n' < "/proc/$p/environ"; } 2> /dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then
            echo "$p"
            return
        fi
    done
}

# Processes still running for results file $1 (the [.] keeps grep from
# finding its own command line).
survivors() { grep -l "$(dirname "$1")/[.]*$(basename "$1")" /proc/[0-9]*/cmdline 2> /dev/null | grep -v "^/proc/self/" || true; }

echo "== 0. uninterrupted runs"
t0=$(now)
run "$tmp/clean.err" -o "$tmp/clean.h5" || { cat "$tmp/clean.err"; fail "uninterrupted run"; }
t_cold=$(since "$t0")
[ "$(trained "$tmp/clean.err")" = "$n_models" ] || fail "expected $n_models trainings: $(cat "$tmp/clean.err")"
[ -z "$($rows failed "$tmp/clean.h5")" ] || fail "the uninterrupted run has failed rows"
t0=$(now)
run "$tmp/warm.err" -o "$tmp/warm.h5" --models "$tmp/clean.h5.models" || { cat "$tmp/warm.err"; fail "second run"; }
t_warm=$(since "$t0")
/usr/bin/python3 "$compare" --strict "$tmp/clean.h5" "$tmp/warm.h5" || fail "two uninterrupted runs differ"
echo "ok: $n_tasks tasks, ${t_cold} s with training, ${t_warm} s from a stored model; both identical"

echo "== 1. kill -9 of one rank, then resume"
k="$tmp/k.h5"
n_coord=0 n_worker=0 n_late=0 n_nofile=0 i=0
sed -n 's/^kill //p' "$tmp/schedule" > "$tmp/kills"
while read -r rank frac store; do
    i=$((i + 1))
    rm -rf "$k" "$k.models" "$tmp/ids"
    t_run=$t_warm
    if [ "$store" = cold ]; then t_run=$t_cold; else cp -r "$tmp/clean.h5.models" "$k.models"; fi
    moment=$(awk -v f="$frac" -v t="$t_run" 'BEGIN { printf "%.2f", f * t }')
    t0=$(now)
    start "$tmp/k.err" -o "$k"
    sleep "$moment"
    pid=""
    while running "$job"; do
        pid=$(rank_pid "$job" "$rank")
        [ -z "$pid" ] || break
        sleep 0.02
    done
    at="-" end=""
    if [ -n "$pid" ] && kill -9 "$pid" 2> /dev/null; then
        t_kill=$(now)
        at="$(since "$t0") s"
        if [ "$rank" = 0 ]; then n_coord=$((n_coord + 1)); else n_worker=$((n_worker + 1)); fi
    else
        n_late=$((n_late + 1))
    fi
    wait_job "$job" 60 || fail "kill $i: the job did not end within 60 s of rank $rank's death"
    [ "$at" = - ] || end=" in $(since "$t_kill") s"
    sleep 0.2
    left=$(survivors "$k")
    [ -z "$left" ] || fail "kill $i: processes left after the job ended: $left"
    if [ -f "$k" ]; then
        /usr/bin/python3 "$compare" --finished-ids "$k" > "$tmp/ids" 2> "$tmp/ids.err" \
            || fail "kill $i: the results file is unreadable after the kill: $(tail -1 "$tmp/ids.err")"
    else
        n_nofile=$((n_nofile + 1))
        : > "$tmp/ids"
    fi
    before=$(wc -l < "$tmp/ids")
    rc2=0
    run "$tmp/k2.err" -o "$k" || rc2=$?
    [ "$rc2" = 0 ] || { cat "$tmp/k2.err"; fail "kill $i: the resume exited $rc2"; }
    /usr/bin/python3 "$compare" --strict "$tmp/clean.h5" "$k" || fail "kill $i: the resumed results differ"
    /usr/bin/python3 "$compare" --unchanged "$k" "$tmp/ids" || fail "kill $i: a task finished before the kill ran again"
    note=$(grep -h "model store" "$tmp/k.err" "$tmp/k2.err" | head -1 || true)
    printf 'ok: kill %2d: rank %s, %s store, at %-7s (planned %5.2f s), %2d/%d rows recorded, job exit %s%s; resumed%s\n' \
        "$i" "$rank" "$store" "$at" "$moment" "$before" "$n_tasks" "$rc" "$end" "${note:+ ($note)}"
done < "$tmp/kills"
echo "ok: $n_coord coordinator and $n_worker worker kills ($n_nofile before the results file existed, $n_late after the job had ended); every resume identical"

echo "== 2. the disk fills mid-run"
if [ "$(id -u)" != 0 ] || ! { mkdir -p "$tmp/probe" && mount -t tmpfs -o size=1m tmpfs "$tmp/probe" 2> "$tmp/mount.err"; }; then
    echo "SKIP: the disk part: cannot mount tmpfs (not root, or no permission): $(cat "$tmp/mount.err" 2> /dev/null)"
    exit 77
fi
umount "$tmp/probe"

# After a run ($1: results file) that met a full disk, with exit status rc
# and stderr $2: every check up to the resume. $3: ids of rows recorded
# before the disk filled. Problems that may be known defect 5 go to
# $tmp/problems; anything else fails at once.
after_full() {
    : > "$tmp/problems"
    # A full model store is a warning (the model is used from memory: every
    # task is still measured, exit 0); a full results disk stops the run.
    # Either way a message names the disk or its space.
    if ! grep -Eiq 'space|disk' "$2"; then
        cat "$2"
        fail "exit $rc without a message naming the disk or its space"
    fi
    "$qblind" status "$1" > "$tmp/status.out" 2>&1 || { cat "$tmp/status.out"; fail "qblind status cannot read the file"; }
    /usr/bin/python3 "$compare" --finished-ids "$1" > "$tmp/ids_after" || fail "h5py cannot read the file"
    /usr/bin/python3 "$compare" --unchanged "$1" "$3" || fail "rows recorded before the disk filled changed"
    $rows failed "$1" > "$tmp/failed"
    if [ -s "$tmp/failed" ]; then
        echo "$(wc -l < "$tmp/failed") tasks recorded failed:" >> "$tmp/problems"
        sed 's/^/    /' "$tmp/failed" >> "$tmp/problems"
    fi
    # rows recorded ok/invalid must not run again; failed ones may
    awk 'FILENAME == ARGV[1] { f[$1] = 1; next } !($1 in f)' "$tmp/failed" "$tmp/ids_after" > "$tmp/ids_kept"
}

# The resume of $1 (exit status rc2, stderr $2) once space is back.
after_resume() {
    [ "$rc2" = 0 ] || { cat "$2"; fail "the resume after freeing space exited $rc2"; }
    /usr/bin/python3 "$compare" --unchanged "$1" "$tmp/ids_kept" || fail "a row recorded before the disk filled ran again"
    if ! /usr/bin/python3 "$compare" --strict "$tmp/clean.h5" "$1" > "$tmp/cmp.out"; then
        echo "after the resume, not identical to the uninterrupted run: $(head -1 "$tmp/cmp.out")" >> "$tmp/problems"
        $rows failed "$1" > "$tmp/failed_end"
        echo "  still failed after the resume: $(wc -l < "$tmp/failed_end") tasks" >> "$tmp/problems"
    fi
    [ -s "$tmp/problems" ] || return 0
    rm -f "$tmp/cmp2.out"
    # known defect 5: every difference is a task failed on writing its model
    if [ "$known5" = 1 ] && [ -s "$tmp/failed" ] \
        && ! grep -v "model: model store: .*No space left on device" "$tmp/failed" | grep -q . \
        && $rows same-except "$tmp/clean.h5" "$1" "$tmp/failed" > "$tmp/cmp2.out"; then
        echo "!!!!!!!! EXPECTED FAILURE: KNOWN DEFECT 5 of issue 13 (FAULT_KNOWN_DEFECT_5=1) !!!!!!!!"
        sed 's/^/!! /' "$tmp/problems"
        echo "!! every other task is identical to the uninterrupted run"
        echo "!!!!!!!! not failing the test for this; FAULT_KNOWN_DEFECT_5=0 does !!!!!!!!"
        return 0
    fi
    cat "$tmp/problems"
    [ ! -s "$tmp/cmp2.out" ] || cat "$tmp/cmp2.out"
    fail "the disk filling up lost or falsified results (see above)"
}

echo "-- a. the model store's file system has room for 2 of the $n_models models"
model_kb=$(du -k "$tmp"/clean.h5.models/*.qbm | awk '$1 > m { m = $1 } END { print m }')
fs="$tmp/store_fs"
mkdir -p "$fs"
mount -t tmpfs -o "size=$((2 * model_kb + 64))k" tmpfs "$fs"
mounts="$fs"
start "$tmp/a.err" -o "$tmp/a.h5" --models "$fs"
wait_job "$job" 300 || fail "the run hangs on a full model store"
: > "$tmp/none"
after_full "$tmp/a.h5" "$tmp/a.err" "$tmp/none"
echo "run: exit $rc, $(stored "$fs") models stored, $(finished "$tmp/a.h5")/$n_tasks rows recorded: $(grep -Ei 'space|disk' "$tmp/a.err" | head -1)"
mount -o remount,size=64m "$fs"
rc2=0
run "$tmp/a2.err" -o "$tmp/a.h5" --models "$fs" || rc2=$?
after_resume "$tmp/a.h5" "$tmp/a2.err"
echo "ok: a full model store"

echo "-- b. results file and store on one file system, filled once $(sed -n 's/^fill //p' "$tmp/schedule") rows are recorded"
fill_at=$(sed -n 's/^fill //p' "$tmp/schedule")
fs="$tmp/disk_fs"
mkdir -p "$fs"
mount -t tmpfs -o size=16m tmpfs "$fs"
mounts="$mounts $fs"
b="$fs/b.h5"
start "$tmp/b.err" -o "$b"
while running "$job"; do
    [ -f "$b" ] && [ "$(finished "$b")" -ge "$fill_at" ] && "$qblind" status "$b" > /dev/null 2>&1 && break
    sleep 0.05
done
: > "$tmp/ids_fill"
[ ! -f "$b" ] || /usr/bin/python3 "$compare" --finished-ids "$b" > "$tmp/ids_fill" || true
n_stored=$(stored "$b.models")
dd if=/dev/zero of="$fs/filler" bs=64k 2> /dev/null || true
wait_job "$job" 300 || fail "the run hangs on a full disk"
if [ "$rc" = 0 ] && /usr/bin/python3 "$compare" --strict "$tmp/clean.h5" "$b" > /dev/null; then
    echo "note: the run needed no new space after the fill: exit 0, complete and identical"
    : > "$tmp/problems"
    : > "$tmp/failed"
    cp "$tmp/ids_fill" "$tmp/ids_kept"
else
    after_full "$b" "$tmp/b.err" "$tmp/ids_fill"
fi
echo "run: filled at $(wc -l < "$tmp/ids_fill") rows and $n_stored models stored; exit $rc, $(finished "$b")/$n_tasks rows recorded: $(grep -Ei 'space|disk' "$tmp/b.err" | head -1)"
rm -f "$fs/filler"
rc2=0
run "$tmp/b2.err" -o "$b" || rc2=$?
after_resume "$b" "$tmp/b2.err"
echo "ok: a full disk"
echo "PASS"
