# shellcheck shell=bash
# Helpers shared by the Slurm tests (tests/slurm_cluster.sh, the single-node
# cluster; tests/cluster_net.sh + tests/cluster_slurm.sh, the 3-node one).
# Sourced; the sourcing script defines fail.

# The slurm.conf lines both clusters share (DIR: the test's directory);
# each test adds its hosts, ports, timeouts and nodes. sched_interval:
# pending jobs are looked at every 2 s (default 60).
slurm_conf_common() { # DIR
    cat << CONF
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$1/state
SlurmctldPidFile=$1/slurmctld.pid
SlurmctldLogFile=$1/slurmctld.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$1/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=2
MpiDefault=pmix
MailProg=/bin/true
ReturnToService=2
MinJobAge=3600
InactiveLimit=0
CONF
}

stop_pid() { # pid name: TERM, wait up to 10 s, then KILL
    local pid=$1 i
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2> /dev/null || return 0
    kill "$pid" 2> /dev/null || true
    for i in $(seq 1 100); do
        kill -0 "$pid" 2> /dev/null || return 0
        [ "$i" = 100 ] || sleep 0.1
    done
    echo "note: $2 (pid $pid) ignored SIGTERM: killing it"
    kill -9 "$pid" 2> /dev/null || true
}

job_field() { scontrol show job "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1; }

# Wait until none of the jobs is pending or running (a job whose
# dependency failed counts as ended). $1: seconds at most; then job ids.
wait_jobs() {
    local limit=$1 t0 active
    shift
    t0=$(date +%s)
    while :; do
        active=$(squeue -h -j "$(IFS=,; echo "$*")" -o "%i %T %r" 2> /dev/null | grep -v DependencyNeverSatisfied || true)
        [ -z "$active" ] && return 0
        [ $(($(date +%s) - t0)) -lt "$limit" ] || fail "jobs still active after $limit s: $active"
        sleep 1
    done
}

expect_completed() { # id name
    local st ec
    st=$(job_field "$1" JobState)
    ec=$(job_field "$1" ExitCode)
    if [ "$st" != COMPLETED ] || [ "$ec" != 0:0 ]; then fail "$2 (job $1): state $st, exit $ec"; fi
}
