#!/bin/bash
# A real multi-node test (issue 14): a Slurm cluster of 3 nodes on this
# machine, each node a network namespace with its own address on a bridge,
# its own hostname and its own slurmd (tests/cluster_net.sh builds it);
# slurmctld and munged beside the bridge; a small tmpfs as the cluster file
# system (the shared directory: spec, results, model stores, job logs).
# Open MPI is limited to TCP over the bridge (btl tcp,self; the bridge's
# subnet), so ranks on different nodes talk over TCP between namespaces.
# On a tiny synthetic spec (24 tasks of 6 untrained LeNets):
#   0. the same spec with `mpirun -n 4` on this host alone: the reference
#   1. slurm/qblind.sbatch on 3 nodes (4 ranks, srun --mpi=pmix): the
#      workers' rows name 3 different hosts, their TCP connections join
#      different nodes' addresses; n3's link goes down for 3 s mid-run;
#      the file equals the reference on every deterministic column
#      (compare_results.py --strict)
#   2. slurm/submit.sh --array 3 (2 ranks each): the shards run on
#      different nodes, the merge job combines them: equal to the reference
#   3. faults in one job (-N 2-3 -n 4, --requeue):
#      a. a worker rank on n2 is killed (SIGKILL): srun --kill-on-bad-exit
#         ends the step (without it the coordinator would wait for that
#         rank's result for ever: Open MPI under srun does not end the job
#         when a rank dies), the job requeues itself (exit 137)
#      b. node n3 fails: SIGKILL to every process in its namespace
#         (slurmd, slurmstepd, ranks). Slurm finds it not responding
#         (SlurmdTimeout 6 s), ends the job and requeues it
#      each attempt ends with the rows finished so far and the rest
#      pending; the third attempt completes on n1 and n2: every task once
#      (unique task ids, none pending), equal to the reference
#   4. the shared directory fills up mid-run (a filler file): the run
#      stops with a clear error naming the space, the results file stays
#      readable with the rows recorded before; the filler removed, the
#      same job submitted again (--worker-timeout 15) resumes, and one of
#      its worker ranks stops (SIGSTOP: alive but silent, like a node cut
#      off, which neither Open MPI nor Slurm reports): the coordinator
#      gives it up after 15 s, the others finish their tasks, the job ends
#      (MPI_Abort, exit 75) with that task pending and requeues itself;
#      the next attempt completes, equal to the reference
# Everything started here is stopped by its pid on exit; the namespaces,
# the bridge and the mounts go with the private namespaces the test runs
# in (unshare), and are removed explicitly as well.
#
# usage: tests/cluster_slurm.sh QBLIND_BINARY
# Exit 77 (skipped) only where network namespaces cannot be made (not root,
# no unshare/ip), or Slurm/munge/Open MPI are not installed.
set -eu

skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "network namespaces and slurmd need root"
for b in ip nsenter unshare runuser slurmctld slurmd sbatch squeue scontrol scancel sinfo srun \
    munged mungekey mpirun; do
    command -v "$b" > /dev/null 2>&1 ||
        skip "$b not found (Debian packages iproute2 util-linux slurm-wlm munge openmpi-bin; scripts/install-deps.sh)"
done
id munge > /dev/null 2>&1 || skip "no user munge (Debian package munge)"

# A private network and mount namespace: the bridge, the node namespaces
# and the tmpfs vanish with it, whatever happens to this script.
if [ -z "${QBLIND_CLUSTER_NS:-}" ]; then
    unshare --net --mount --propagation private true 2> /dev/null ||
        skip "cannot create a network namespace here (unshare --net)"
    export QBLIND_CLUSTER_NS=1
    exec unshare --net --mount --propagation private bash "$0" "$@"
fi
ip netns add "qbcprobe$$" 2> /dev/null || skip "cannot create a named network namespace (ip netns add)"
ip netns del "qbcprobe$$"

qblind=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
compare="$here/compare_results.py"
t_start=$(date +%s)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/qblind-cluster-XXXXXX")
chmod 755 "$tmp" # munged (user munge) must reach its directory inside
shared=$tmp/shared
failed=1 host_pid=""

fail() {
    echo "FAIL: $*"
    exit 1
}
elapsed() { echo "$(($(date +%s) - t_start)) s"; }

# shellcheck source=tests/cluster_net.sh
. "$here/cluster_net.sh"

cleanup() {
    set +e
    [ -z "$host_pid" ] || stop_pid "$host_pid" "reference mpirun"
    cluster_down
    if [ "$failed" = 1 ]; then
        echo "---- logs ($tmp)"
        for f in "$shared"/*.out "$shared"/*.logs/*.out "$tmp"/full-*.out "$tmp/slurmctld.log" "$tmp"/nodes/*/slurmd.log; do
            [ -f "$f" ] || continue
            echo "---- $f"
            grep -v '^synthetic ' "$f" | tail -25
        done
    fi
    if [ "${QBLIND_KEEP_TMP:-0}" = 1 ]; then
        cp -a "$shared" "$tmp/shared.kept" 2> /dev/null
        echo "kept $tmp (the shared directory's files in shared.kept)"
    fi
    cd "$tmp" && umount "$shared" 2> /dev/null
    [ "${QBLIND_KEEP_TMP:-0}" = 1 ] || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

echo "== cluster"
mkdir -p "$shared"
mount -t tmpfs -o size=48m,mode=755 qblind-shared "$shared"
cluster_up 3
echo "ok: 3 nodes idle ($(sinfo -h -N -o '%N=%o' | sort -u | tr '\n' ' ')), slurmctld, munged; $(elapsed)"

# Open MPI: TCP only, over the bridge; as root, more ranks than CPUs
export OMPI_MCA_btl=tcp,self OMPI_MCA_btl_tcp_if_include=$net_prefix.0/24 \
    OMPI_MCA_oob_tcp_if_include=$net_prefix.0/24
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export QBLIND="$qblind" QBLIND_MAX_RESTARTS=4
cd "$shared"
cat > spec.yaml << 'YAML'
name: cluster-test
dataset: synthetic
seed: {range: [0, 3]}
trigger: [clean, square]
precision: [fp32, int8]
defense: [none, forensics]
train: {arch: lenet, epochs: 0}
YAML
n_tasks=24

status_of() { "$qblind" status "$1" 2> /dev/null | awk -v k="$2" '$1 == k { print $2 }'; }
finished() { "$qblind" status "$1" 2> /dev/null | awk '/ok|invalid|failed/ { s += $2 } END { print s + 0 }'; }
wait_rows() { # file n seconds: until n rows are finished
    local _
    for _ in $(seq 1 $(($3 * 5))); do
        [ "$(finished "$1")" -ge "$2" ] && return 0
        sleep 0.2
    done
    fail "$1: fewer than $2 rows finished after $3 s"
}
hosts_of() { # the distinct hosts of a results file's finished rows
    /usr/bin/python3 -c '
import sys, h5py
t = h5py.File(sys.argv[1], "r")["tasks"]
print(" ".join(sorted({h.decode() for h, s in zip(t["host"], t["status"]) if h})))' "$1"
}
unique_ids() {
    /usr/bin/python3 -c '
import sys, h5py
ids = h5py.File(sys.argv[1], "r")["tasks"]["task_id"]
sys.exit(0 if len(set(ids.tolist())) == len(ids) else 1)' "$1"
}
# The pid of a worker rank (PMIX_RANK >= 1 in its environment) running in
# node $1, or in any node without $1.
rank_pid_on() {
    local p i
    for i in ${1:-$(seq 1 "$cl_nodes")}; do
        for p in $(ip netns pids "$(node_ns "$i")" 2> /dev/null); do
            if tr '\0' '\n' < "/proc/$p/environ" 2> /dev/null | grep -q '^PMIX_RANK=[1-9]' &&
                grep -q qblind "/proc/$p/cmdline" 2> /dev/null; then
                echo "$p"
                return
            fi
        done
    done
}

# A worker rank on node $1 (any node without $1); waits up to 10 s for one.
victim_on() {
    local v=""
    for _ in $(seq 1 50); do
        v=$(rank_pid_on "${1:-}")
        [ -z "$v" ] || break
        sleep 0.2
    done
    [ -n "$v" ] || fail "no worker rank found on ${1:+n}${1:-any node}"
    echo "$v"
}

echo "== 0. the reference: mpirun -n 4 on this host (in the background)"
mkdir -p "$tmp/host"
(cd "$tmp/host" && exec mpirun --mca btl self,vader -n 4 "$qblind" run "$shared/spec.yaml" -o host.h5 -q \
    < /dev/null > host.out 2>&1) &
host_pid=$!

echo "== 1. qblind.sbatch on 3 nodes, n3's link down for 3 s"
study=$(sbatch --parsable -N 3 -n 4 --time=10 --output="$shared/study-%j.out" \
    "$repo/slurm/qblind.sbatch" spec.yaml study.h5)
wait_rows study.h5 3 120
# every worker node's ranks hold TCP connections to another node's address
for i in 2 3; do
    peers=$(ip netns exec "$(node_ns "$i")" ss -Htnp state established 2> /dev/null |
        awk '/qblind/ { sub(/:[0-9]+$/, "", $4); print $4 }' | sort -u | tr '\n' ' ')
    echo "n$i ($(node_addr "$i")): qblind's TCP peers: $peers"
    echo "$peers" | tr ' ' '\n' | grep "^$net_prefix\." | grep -qvx "$(node_addr "$i")" ||
        fail "n$i: no TCP connection of qblind to another node"
done
link_down 3
sleep 3
link_up 3
echo "n3's link was down for 3 s"
wait_jobs 180 "$study"
expect_completed "$study" "3-node job"
log=study-$study.out
grep -q "4 ranks via srun" "$log" || fail "3-node job: srun --mpi=pmix not used: $(head -3 "$log")"
hosts=$(hosts_of study.h5)
[ "$hosts" = "n1 n2 n3" ] || fail "3-node job: the workers' rows name hosts '$hosts', expected n1 n2 n3"
[ "$(status_of study.h5 pending)" = 0 ] || fail "study.h5 has pending tasks"
wait "$host_pid" || fail "the reference run failed: $(tail -5 "$tmp/host/host.out")"
host_pid=""
/usr/bin/python3 "$compare" --strict "$tmp/host/host.h5" study.h5 ||
    fail "the 3-node results differ from the single host's"
echo "ok: $n_tasks tasks on 3 nodes (rows from $hosts), a link outage survived; equal to the single host's (strict); $(elapsed)"

echo "== 2. a job array of 3 shards over the nodes, then the merge"
"$repo/slurm/submit.sh" --array 3 --ranks 2 --time 10 --no-report spec.yaml merged.h5 > submit.txt ||
    fail "submit.sh failed: $(cat submit.txt)"
array=$(sed -n 's/^run: \([0-9][0-9]*\).*/\1/p' submit.txt)
merge=$(sed -n 's/^merge: \([0-9][0-9]*\).*/\1/p' submit.txt)
if [ -z "$array" ] || [ -z "$merge" ]; then fail "no job ids printed: $(cat submit.txt)"; fi
wait_jobs 240 "$array" "$merge"
shard_hosts=""
for i in 0 1 2; do
    expect_completed "${array}_$i" "array element $i"
    h=$(job_field "${array}_$i" NodeList)
    shard_hosts="$shard_hosts $h"
done
[ "$(echo "$shard_hosts" | tr ' ' '\n' | sort -u | grep -c .)" -ge 2 ] ||
    fail "the 3 shards all ran on one node:$shard_hosts"
expect_completed "$merge" "merge job"
[ "$(status_of merged.h5 pending)" = 0 ] || fail "merged.h5 has pending tasks"
/usr/bin/python3 "$compare" --strict "$tmp/host/host.h5" merged.h5 ||
    fail "the merged shards differ from the single host's"
echo "ok: 3 shards on nodes$shard_hosts, merged: equal to the single host's (strict); $(elapsed)"

echo "== 3. a lost rank, then a lost node"
faults=$(sbatch --parsable -N 2-3 -n 4 --time=10 --output="$shared/faults-%j.out" \
    "$repo/slurm/qblind.sbatch" spec.yaml faults.h5)
# Wait until attempt $1 of the fault job runs on nodes $2 and has added a row.
attempt_running() {
    local before
    before=$(finished faults.h5)
    for _ in $(seq 1 600); do
        [ "$(job_field "$faults" Restarts)" = $(($1 - 1)) ] && [ "$(job_field "$faults" JobState)" = RUNNING ] &&
            [ "$(finished faults.h5)" -ge $((before + 1)) ] && break
        sleep 0.2
    done
    [ "$(job_field "$faults" JobState)" = RUNNING ] || fail "attempt $1 of the fault job did not run"
    [ "$(job_field "$faults" NodeList)" = "$2" ] ||
        fail "attempt $1 is not on $2: $(job_field "$faults" NodeList)"
}
# The attempt ends and the job is requeued (Restarts reaches $1): the file
# holds the finished rows and the rest pending.
requeued() { # restarts what
    local p f t0
    t0=$(date +%s)
    for _ in $(seq 1 400); do
        [ "$(job_field "$faults" Restarts)" -ge "$1" ] && break
        sleep 0.2
    done
    [ "$(job_field "$faults" Restarts)" -ge "$1" ] || fail "the job did not end and requeue after $2"
    p=$(status_of faults.h5 pending)
    f=$(finished faults.h5)
    { [ "$p" -gt 0 ] && [ "$((p + f))" = "$n_tasks" ]; } || fail "after $2: $f rows finished, $p pending"
    echo "ok: after $2 the job ended and was requeued within $(($(date +%s) - t0)) s: $f rows finished, $p pending; $(elapsed)"
}
log=faults-$faults.out

# a. a worker rank dies
attempt_running 1 "n[1-3]"
victim=$(victim_on 2) || fail "no worker rank on n2"
kill -9 "$victim"
echo "killed rank pid $victim on n2 at $(finished faults.h5) rows"
requeued 1 "a killed rank"
grep -q "a rank was killed (exit 137" "$log" || fail "no lost rank reported in the job's log"

# b. node n3 fails (Slurm notices within SlurmdTimeout and a ping)
attempt_running 2 "n[1-3]"
node_kill 3
echo "node n3 failed (every process in its namespace killed) at $(finished faults.h5) rows"
requeued 2 "the node failure"
grep -q "CANCELLED AT .* DUE TO NODE FAILURE" "$log" || fail "Slurm did not end the job for the node failure"
echo "n3 is $(sinfo -h -n n3 -o %T)"

wait_jobs 240 "$faults"
expect_completed "$faults" "fault job"
[ "$(job_field "$faults" NodeList)" = "n[1-2]" ] || fail "the last attempt ran on $(job_field "$faults" NodeList), not n[1-2]"
[ "$(status_of faults.h5 pending)" = 0 ] || fail "faults.h5 has pending tasks"
[ "$(finished faults.h5)" = "$n_tasks" ] || fail "faults.h5 has $(finished faults.h5) rows, expected $n_tasks"
unique_ids faults.h5 || fail "faults.h5 has duplicate task ids"
/usr/bin/python3 "$compare" --strict "$tmp/host/host.h5" faults.h5 ||
    fail "the fault job's results differ from the single host's"
echo "ok: attempt 3 completed on n1-n2: every task once, equal to the single host's (strict); $(elapsed)"
node_start 3

echo "== 4. the shared directory fills up"
full=$(sbatch --parsable -N 2 -n 3 --time=10 --output="$tmp/full-%j.out" \
    "$repo/slurm/qblind.sbatch" spec.yaml full.h5)
wait_rows full.h5 4 120
dd if=/dev/zero of="$shared/filler" bs=1M 2> /dev/null || true
f_fill=$(finished full.h5)
echo "filled the shared directory at $f_fill rows: $(df -h --output=avail "$shared" | tail -1) left"
wait_jobs 120 "$full"
st=$(job_field "$full" JobState)
[ "$st" = FAILED ] || fail "the job on a full disk ended $st, expected FAILED"
log=$tmp/full-$full.out
grep -q "error: results file full.h5: .*(disk full?)" "$log" || fail "no clear error about the space in the job's log"
echo "the job failed: $(grep -m1 'error: results file' "$log")"
"$qblind" status full.h5 > /dev/null || fail "full.h5 is not readable after the disk filled"
f_fail=$(finished full.h5)
[ "$f_fail" -ge "$f_fill" ] || fail "full.h5 lost rows: $f_fail < $f_fill"
rm -f "$shared/filler"
# the resume, with a worker that goes silent (SIGSTOP: alive, not answering)
again=$(sbatch --parsable -N 2 -n 3 --time=10 --output="$tmp/full-%j.out" \
    "$repo/slurm/qblind.sbatch" spec.yaml full.h5 --worker-timeout 15)
# past MPI_Init (a rank stopped in there hangs every rank in PMIx's fence)
wait_rows full.h5 $((f_fail + 1)) 120
victim=$(victim_on) || fail "no worker rank on any node"
vrank=$(tr '\0' '\n' < "/proc/$victim/environ" | sed -n 's/^PMIX_RANK=//p')
kill -STOP "$victim"
echo "resumed after space was back; stopped rank $vrank (pid $victim) at $(finished full.h5) rows"
log=$tmp/full-$again.out
for _ in $(seq 1 400); do
    [ "$(job_field "$again" Restarts)" -ge 1 ] && break
    sleep 0.2
done
[ "$(job_field "$again" Restarts)" -ge 1 ] || fail "the job did not end and requeue after rank $vrank went silent"
grep -q "rank $vrank has sent nothing for .* given up" "$log" || fail "rank $vrank was not given up: $(grep -i 'given up' "$log")"
p=$(status_of full.h5 pending)
[ "$p" -gt 0 ] || fail "no task pending after the silent rank was given up"
echo "ok: the silent rank was given up, the job ended with $(finished full.h5) rows, $p pending, and requeued; $(elapsed)"
wait_jobs 180 "$again"
expect_completed "$again" "the resubmitted job"
[ "$(status_of full.h5 pending)" = 0 ] || fail "full.h5 has pending tasks after the resume"
unique_ids full.h5 || fail "full.h5 has duplicate task ids"
/usr/bin/python3 "$compare" --strict "$tmp/host/host.h5" full.h5 ||
    fail "the resumed results differ from the single host's"
echo "ok: clear error, file readable with its $f_fill+ rows; resumed after space was back: equal (strict); $(elapsed)"

failed=0
echo "PASS ($(elapsed))"
