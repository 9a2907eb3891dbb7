#!/bin/bash
# The batch scripts (slurm/) on a real Slurm: a private single-node cluster
# started here in a temporary directory (its own munged, key, slurm.conf
# and SLURM_CONF, slurmctld, slurmd; free ports), on a tiny synthetic spec:
#   0. shellcheck of the scripts; slurm/submit.sh --dry-run prints the
#      sbatch commands and submits and creates nothing
#   1. slurm/qblind.sbatch, 3 ranks on the node's CPUs (--overcommit):
#      srun --mpi=pmix detected, every task finished, each model trained
#      once, the results file has the spec's hash
#   2. slurm/submit.sh --array 2: two shards (array.sbatch) with srun
#      lacking PMIx (a wrapper hides it), so the scripts fall back to
#      mpirun, then the merge job (--dependency=afterok): the merged file
#      equals the single job's on every column but timings, rank, host and
#      finished_at, row order, spec and /details arrays bit for bit
#      (compare_results.py --strict); then the report job (afterok on the
#      merge) writes `qblind report` of the merged file to its log
#   3. a job with a 1-minute time limit and a 50-s lead on a spec sized
#      (from step 1's speed) to outlast its first signal: it gets SIGUSR1,
#      the ranks drain, the job requeues itself (Restarts >= 1) and
#      completes; every task ran exactly once (the attempts' "tasks ran"
#      add up to the spec), no model was trained twice, task ids are
#      unique, and the tasks it shares with step 1 are bit-identical
#      (compare_results.py --strict --subset)
#   4. scancel of a running job: it stays cancelled (its SIGTERM drains
#      the ranks but, unlike the pre-timeout SIGUSR1, never requeues)
# Jobs are waited for by polling squeue. Every daemon started here is
# stopped by its pid (and the jobs cancelled) on exit, failed or not.
#
# usage: tests/slurm_cluster.sh QBLIND_BINARY
# Exit 77 (skipped) only where no cluster can be started: Slurm or munge
# not installed, or not root (slurmd runs as root, munged as user munge).
set -eu

qblind=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
compare="$here/compare_results.py"
t_start=$(date +%s)

skip() { echo "SKIP: $*"; exit 77; }
for b in slurmctld slurmd sbatch squeue scontrol scancel sinfo srun munged mungekey runuser ss; do
    command -v "$b" > /dev/null 2>&1 ||
        skip "$b not found: Slurm is not installed (Debian packages slurm-wlm munge; scripts/install-deps.sh installs them)"
done
[ "$(id -u)" = 0 ] || skip "a private Slurm cluster needs root (slurmd runs as root, munged as user munge)"
id munge > /dev/null 2>&1 || skip "no user munge (Debian package munge)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/qblind-slurm-XXXXXX")
chmod 755 "$tmp" # munged (user munge) must reach its directory inside
ctld_pid="" slurmd_pid="" munged_pid=""
failed=1

fail() {
    echo "FAIL: $*"
    exit 1
}
elapsed() { echo "$(($(date +%s) - t_start)) s"; }

# shellcheck source=slurm_common.sh
. "$here/slurm_common.sh"

cleanup() {
    set +e
    if [ -n "$ctld_pid" ] && kill -0 "$ctld_pid" 2> /dev/null; then
        # the jobs first, so no step outlives the daemons
        ids=$(squeue -h -o %A 2> /dev/null | sort -u)
        if [ -n "$ids" ]; then
            # shellcheck disable=SC2086 # one id per word
            scancel $ids 2> /dev/null
            for _ in $(seq 1 150); do
                [ -z "$(squeue -h -o %A 2> /dev/null)" ] && break
                sleep 0.2
            done
        fi
        scontrol shutdown > /dev/null 2>&1
    fi
    stop_pid "$slurmd_pid" slurmd
    stop_pid "$ctld_pid" slurmctld
    [ -f "$tmp/munge/munged.pid" ] && munged_pid=$(cat "$tmp/munge/munged.pid")
    stop_pid "$munged_pid" munged
    if [ "$failed" = 1 ]; then
        echo "---- logs ($tmp)"
        for f in "$tmp"/*.out "$tmp"/*.h5.logs/*.out "$tmp/slurmctld.log" "$tmp/slurmd.log"; do
            [ -f "$f" ] || continue
            echo "---- $f"
            grep -v '^synthetic ' "$f" | tail -40
        done
    fi
    if [ "${QBLIND_KEEP_TMP:-0}" = 1 ]; then
        echo "kept $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

echo "== 0. shellcheck"
command -v shellcheck > /dev/null 2>&1 ||
    fail "shellcheck not found (Debian package shellcheck; scripts/install-deps.sh installs it)"
shellcheck -x --source-path=SCRIPTDIR "$repo/slurm/submit.sh" "$repo/slurm/qblind.sbatch" "$repo/slurm/array.sbatch" "$0" ||
    fail "shellcheck reports the scripts above"
echo "ok: shellcheck clean"

echo "== cluster"
# munge: its own key and socket; the directory is munge's, reachable by all
mkdir -p "$tmp/munge" "$tmp/state" "$tmp/spool" "$tmp/fakebin" "$tmp/tmpfs"
chown munge:munge "$tmp/munge"
chmod 755 "$tmp/munge"
runuser -u munge -- mungekey --create --keyfile="$tmp/munge/munge.key"
runuser -u munge -- munged --socket="$tmp/munge/munge.socket" --key-file="$tmp/munge/munge.key" \
    --log-file="$tmp/munge/munged.log" --pid-file="$tmp/munge/munged.pid" \
    --seed-file="$tmp/munge/munged.seed" || fail "munged did not start: $(tail -3 "$tmp/munge/munged.log")"
for _ in $(seq 1 50); do [ -s "$tmp/munge/munged.pid" ] && break; sleep 0.1; done
munged_pid=$(cat "$tmp/munge/munged.pid")

free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 30000))
        ss -Htln "sport = :$p" | grep -q . || { echo "$p"; return; }
    done
}
ctld_port=$(free_port)
slurmd_port=$(free_port)
[ "$ctld_port" != "$slurmd_port" ] || slurmd_port=$((ctld_port + 1))
ncpu=$(nproc)
# cred_expire: a requeued job may start again 11 s later (default 121);
# sched_interval: pending jobs are looked at every 2 s (default 60).
# TmpFS (PMIx's per-step directories) and a random first job id keep this
# cluster clear of another one on the machine (another run of this test).
cat > "$tmp/slurm.conf" << CONF
ClusterName=qblindtest
FirstJobId=$((1000 + RANDOM % 100000))
TmpFS=$tmp/tmpfs
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
$(slurm_conf_common "$tmp")
AuthInfo=socket=$tmp/munge/munge.socket,cred_expire=10
SlurmdSpoolDir=$tmp/spool
SlurmdPidFile=$tmp/slurmd.pid
SlurmdLogFile=$tmp/slurmd.log
KillWait=5
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$ncpu State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:2
CONF
export SLURM_CONF="$tmp/slurm.conf"
slurmctld -D > "$tmp/slurmctld.out" 2>&1 &
ctld_pid=$!
slurmd -D -N localhost > "$tmp/slurmd.out" 2>&1 &
slurmd_pid=$!
for _ in $(seq 1 100); do
    sinfo -h -o %T 2> /dev/null | grep -q idle && break
    sleep 0.2
done
sinfo -h -o %T | grep -q idle || fail "the node did not become idle: $(sinfo 2>&1)"
echo "ok: slurmctld (port $ctld_port), slurmd (port $slurmd_port), munged; $ncpu CPUs; $(elapsed)"

# Open MPI as root (mpirun fallback); more ranks than CPUs
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export QBLIND="$qblind" QBLIND_MAX_RESTARTS=8
cd "$tmp"

spec_text() { # seeds: one tiny sweep, n seeds x 2 triggers x 3 precisions x 2 defenses
    cat << YAML
name: slurm-test
dataset: synthetic
seed: {range: [0, $1]}
trigger: [clean, square]
precision: [fp32, int8, int4]
defense: [none, forensics]
train: {arch: lenet, epochs: 1}
YAML
}
spec_text 3 > spec.yaml
n_tasks=36
models=6

status_of() { "$qblind" status "$1" | awk -v k="$2" '$1 == k { print $2 }'; }
total_of() { "$qblind" status "$1" | sed -n 's/.*: \([0-9][0-9]*\) tasks$/\1/p'; }
sum_of() { sed -n "s/$2/\1/p" "$1" | awk '{ s += $1 } END { print s + 0 }'; }

echo "== 0b. submit.sh --dry-run"
"$repo/slurm/submit.sh" --dry-run --array 2 --ranks 2 --time 10 spec.yaml dry.h5 -- --partition=test > dry.txt ||
    fail "dry run failed: $(cat dry.txt)"
grep -q '^sbatch --parsable --array=0-1 .*array.sbatch spec.yaml dry' dry.txt || fail "no array sbatch line: $(cat dry.txt)"
grep -q '^sbatch --parsable --job-name=qblind-merge .*--dependency=afterok:.*merge' dry.txt ||
    fail "no merge sbatch line: $(cat dry.txt)"
grep -q '^sbatch --parsable --job-name=qblind-report .*--dependency=afterok:.*report' dry.txt ||
    fail "no report sbatch line: $(cat dry.txt)"
[ -z "$(squeue -h -o %A)" ] || fail "the dry run submitted jobs"
[ ! -e dry.h5.logs ] || fail "the dry run created dry.h5.logs"
echo "ok: dry run printed $(grep -c '^sbatch' dry.txt) sbatch commands, submitted nothing"

echo "== 1. qblind.sbatch, 3 ranks"
single=$(sbatch --parsable -n 3 -O --time=10 --signal=B:USR1@60 --output="$tmp/single-%j.out" \
    "$repo/slurm/qblind.sbatch" spec.yaml single.h5)
wait_jobs 240 "$single"
expect_completed "$single" "single job"
log="single-$single.out"
grep -q "3 ranks via srun" "$log" || fail "single job: srun with PMIx not detected: $(head -3 "$log")"
[ "$(total_of single.h5)" = $n_tasks ] || fail "single.h5 has $(total_of single.h5) tasks, expected $n_tasks"
[ "$(status_of single.h5 pending)" = 0 ] || fail "single.h5 has pending tasks"
grep -q "$models models trained" "$log" || fail "single job: expected $models trainings: $(grep trained "$log")"
plan_hash=$("$qblind" plan spec.yaml | sed -n 's/.*hash \([0-9a-f]*\).*/\1/p')
"$qblind" status single.h5 | grep -q "spec $plan_hash" || fail "single.h5 is not from spec $plan_hash"
wall=$(sed -n 's/.* tasks ran in \([0-9.]*\) s.*/\1/p' "$log" | head -1)
echo "ok: $n_tasks tasks on 3 ranks in $wall s, each model trained once; $(elapsed)"

echo "== 2. array of 2 shards (mpirun fallback) + merge, and 3. time limit + requeue"
# srun without PMIx, as on a cluster whose Slurm lacks the plugin: the
# scripts must detect it and use mpirun (which starts its daemons with
# this srun)
cat > fakebin/srun << SH
#!/bin/sh
case "\$*" in *--mpi=list*) printf 'MPI plugin types are...\n\tnone\n\tpmi2\n'; exit 0 ;; esac
exec $(command -v srun) "\$@"
SH
chmod +x fakebin/srun
PATH="$tmp/fakebin:$PATH" "$repo/slurm/submit.sh" --array 2 --ranks 2 --overcommit --time 10 --lead 60 \
    spec.yaml merged.h5 > submit.txt || fail "submit.sh failed: $(cat submit.txt)"
cat submit.txt
array=$(sed -n 's/^run: \([0-9][0-9]*\).*/\1/p' submit.txt)
merge=$(sed -n 's/^merge: \([0-9][0-9]*\).*/\1/p' submit.txt)
if [ -z "$array" ] || [ -z "$merge" ]; then fail "no job ids printed"; fi
report=$(sed -n 's/^report: \([0-9][0-9]*\) (after '"$merge"')$/\1/p' submit.txt)
[ -n "$report" ] || fail "no report job chained after the merge: $(cat submit.txt)"

# The requeue job: one worker on a spec that keeps it busy well past its
# first pre-timeout signal (sent 10-40 s in: Slurm checks time limits
# every 30 s), sized from step 1: its 36 tasks took $wall s on 2 workers.
seeds=$(awk -v w="$wall" 'BEGIN { per = w * 2 / 3; k = int(55 / (per > 0.5 ? per : 0.5)) + 1;
    if (k < 4) k = 4; if (k > 40) k = 40; print k }')
spec_text "$seeds" > big.yaml
big_tasks=$((seeds * 12))
requeue=$(sbatch --parsable -n 2 -O --time=1 --signal=B:USR1@50 --output="$tmp/requeue-%j.out" \
    "$repo/slurm/qblind.sbatch" big.yaml requeue.h5)
echo "submitted: requeue job $requeue ($seeds seeds, $big_tasks tasks, 1 worker, 1-minute limit)"

# 4. scancel ends a job for good: its SIGTERM drains, but never requeues
cancel=$(sbatch --parsable -n 2 -O --time=10 --signal=B:USR1@60 --output="$tmp/cancel-%j.out" \
    "$repo/slurm/qblind.sbatch" spec.yaml cancel.h5)
for _ in $(seq 1 240); do
    grep -q "already finished" "cancel-$cancel.out" 2> /dev/null && break
    sleep 0.5
done
grep -q "already finished" "cancel-$cancel.out" || fail "the job to cancel never started its run"
scancel "$cancel"

wait_jobs 400 "$array" "$merge" "$report" "$requeue" "$cancel"

# 2. the array and the merge
for i in 0 1; do
    expect_completed "${array}_$i" "array element $i"
    f=$(ls merged.h5.logs/qblind-shard-"${array}_$i".out)
    grep -q "launching with mpirun" "$f" || fail "shard $i: the mpirun fallback was not taken: $(head -3 "$f")"
    echo "shard $i: $(sed -n 's/.*shard \([0-9]*\/[0-9]*.*tasks\)$/\1/p' "$f" | head -1)"
done
expect_completed "$merge" "merge job"
[ "$(status_of merged.h5 pending)" = 0 ] || fail "merged.h5 has pending tasks"
/usr/bin/python3 "$compare" --strict single.h5 merged.h5 || fail "the merged file differs from the single job's"
echo "ok: 2 shards via mpirun, merged after both: equal to the single job's file (strict); $(elapsed)"
expect_completed "$report" "report job"
f=$(ls merged.h5.logs/qblind-report-"$report".out)
grep -q "^qblind report: .*merged.h5" "$f" || fail "report job: no report in its log: $(head -5 "$f")"
grep -q "^$n_tasks tasks: ok " "$f" || fail "report job: not the $n_tasks tasks of merged.h5: $(sed -n 3p "$f")"
echo "ok: the report job ran after the merge: $(sed -n 3p "$f")"

# 3. the requeued job
expect_completed "$requeue" "requeue job"
log="requeue-$requeue.out"
restarts=$(job_field "$requeue" Restarts)
[ "$restarts" -ge 1 ] || fail "requeue job: not requeued (Restarts=$restarts): it finished before its signal?"
grep -q "SIGUSR1 received" "$log" || fail "requeue job: no pre-timeout signal in its log"
grep -q "requeueing" "$log" || fail "requeue job: did not requeue itself"
ran=$(sum_of "$log" '.* \([0-9][0-9]*\) tasks ran in .*')
trained=$(sum_of "$log" '.*; \([0-9][0-9]*\) models trained.*')
[ "$ran" = "$big_tasks" ] || fail "requeue job: the attempts ran $ran tasks, the spec has $big_tasks (lost or duplicated)"
[ "$trained" = $((seeds * 2)) ] || fail "requeue job: $trained trainings for $((seeds * 2)) models"
[ "$(total_of requeue.h5)" = "$big_tasks" ] || fail "requeue.h5 has $(total_of requeue.h5) rows"
[ "$(status_of requeue.h5 pending)" = 0 ] || fail "requeue.h5 has pending tasks"
/usr/bin/python3 -c '
import sys, h5py
ids = h5py.File(sys.argv[1], "r")["tasks"]["task_id"]
sys.exit(0 if len(set(ids.tolist())) == len(ids) else 1)' requeue.h5 || fail "requeue.h5 has duplicate task ids"
/usr/bin/python3 "$compare" --strict --subset single.h5 requeue.h5 ||
    fail "the requeued job's results differ from the single job's"
echo "ok: signalled, drained and requeued $restarts time(s); $ran tasks ran once each, $trained models trained once; identical to step 1; $(elapsed)"

# 4. the cancelled job
st=$(job_field "$cancel" JobState)
[ "$st" = CANCELLED ] || fail "scancel'd job $cancel ended $st"
[ "$(job_field "$cancel" Restarts)" = 0 ] || fail "scancel'd job $cancel was requeued"
if grep -q requeueing "cancel-$cancel.out"; then fail "scancel'd job $cancel tried to requeue"; fi
echo "ok: a job cancelled while running stays cancelled (not requeued); $(elapsed)"

failed=0
echo "PASS ($(elapsed))"
