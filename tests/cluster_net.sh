# shellcheck shell=bash
# The network and the daemons of tests/cluster_slurm.sh: a Slurm cluster of
# N nodes on one machine. Sourced by that script, which runs it in a private
# network and mount namespace (unshare), so that the bridge, the node
# namespaces' mounts and every address vanish with it even if it is killed.
#
#   control    this shell's network namespace: bridge qbbr0 (10.77.0.1/24),
#              munged, slurmctld; the shared directory (a small tmpfs, the
#              cluster file system) and the clients (sbatch, squeue).
#   node i     network namespace qbc<pid>-n<i> (ip netns), veth pair
#              qbv<i> <-> eth0 at 10.77.0.<10+i>, its own hostname (a UTS
#              namespace) n<i>, and its own slurmd in there; its private
#              directory $tmp/nodes/n<i> is bind-mounted onto $tmp/node
#              inside it (spool, TmpFS = PMIx's step directories, pid, log),
#              so the nodes' slurm.conf can be one file.
#
# Functions: cluster_up N, node_kill I (a node failure: every process in its
# namespace, SIGKILL), node_start I (its slurmd again), link_down I /
# link_up I, cluster_down (by pid; the namespaces and the bridge removed).
# Needs: tmp (a fresh directory), fail (prints, exits 1).
# shellcheck disable=SC2154 # tmp: set by the sourcing script

net_prefix=10.77.0
ns_prefix=qbc$$
cl_nodes=0
ctld_pid="" munged_pid=""
declare -A slurmd_pid=()

node_ns() { echo "$ns_prefix-n$1"; }
node_addr() { echo "$net_prefix.$((10 + $1))"; }

# shellcheck source=slurm_common.sh
. "$here/slurm_common.sh"

net_up() { # N: bridge, N namespaces with a veth each
    local i ns
    ip link set lo up
    ip link add qbbr0 type bridge
    ip addr add "$net_prefix.1/24" dev qbbr0
    ip link set qbbr0 up
    for i in $(seq 1 "$1"); do
        ns=$(node_ns "$i")
        ip netns add "$ns"
        ip link add "qbv$i" type veth peer name eth0 netns "$ns"
        ip link set "qbv$i" master qbbr0 up
        ip -n "$ns" link set lo up
        ip -n "$ns" addr add "$(node_addr "$i")/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" route add default via "$net_prefix.1"
    done
    cl_nodes=$1
}

write_slurm_conf() { # N
    local i names=""
    for i in $(seq 1 "$1"); do names="$names${names:+,}n$i"; done
    # cred_expire: a requeued job may start again 6 s later (default 121);
    # sched_interval: pending jobs are looked at every 2 s (default 60);
    # SlurmdTimeout: a node that stops answering is DOWN after 6 s and its
    # jobs are requeued (default 300).
    cat > "$tmp/slurm.conf" << CONF
ClusterName=qblindnet
SlurmctldHost=ctl($net_prefix.1)
SlurmctldPort=6817
SlurmdPort=6818
$(slurm_conf_common "$tmp")
AuthInfo=socket=$tmp/munge/munge.socket,cred_expire=5
SlurmdSpoolDir=$tmp/node/spool
TmpFS=$tmp/node/tmpfs
SlurmdPidFile=$tmp/node/slurmd.pid
SlurmdLogFile=$tmp/node/slurmd.log
SlurmdTimeout=6
MessageTimeout=5
KillWait=2
NodeName=DEFAULT CPUs=2 State=UNKNOWN
CONF
    for i in $(seq 1 "$1"); do
        echo "NodeName=n$i NodeAddr=$(node_addr "$i")" >> "$tmp/slurm.conf"
    done
    echo "PartitionName=net Nodes=$names Default=YES MaxTime=INFINITE State=UP" >> "$tmp/slurm.conf"
}

munge_up() {
    mkdir -p "$tmp/munge"
    chown munge:munge "$tmp/munge"
    chmod 755 "$tmp/munge" # munged's socket directory must be 0755
    runuser -u munge -- mungekey --create --keyfile="$tmp/munge/munge.key"
    runuser -u munge -- munged --socket="$tmp/munge/munge.socket" --key-file="$tmp/munge/munge.key" \
        --log-file="$tmp/munge/munged.log" --pid-file="$tmp/munge/munged.pid" \
        --seed-file="$tmp/munge/munged.seed" || fail "munged did not start: $(tail -3 "$tmp/munge/munged.log")"
    for _ in $(seq 1 50); do [ -s "$tmp/munge/munged.pid" ] && break; sleep 0.1; done
    munged_pid=$(cat "$tmp/munge/munged.pid")
}

node_start() { # I: slurmd in node I's namespace, with its hostname and directory
    local i=$1
    mkdir -p "$tmp/nodes/n$i/spool" "$tmp/nodes/n$i/tmpfs"
    # nsenter and unshare exec (no fork), so $! is slurmd's pid. Not `ip
    # netns exec`: it mounts a fresh /sys, without the cgroup hierarchies
    # slurmd needs.
    # shellcheck disable=SC2016 # $1..$3 are the inner shell's
    nsenter --net="/run/netns/$(node_ns "$i")" unshare --uts --mount --propagation slave -- /bin/sh -c \
        'hostname "$1" && mount --bind "$2" "$3" && exec slurmd -D' sh "n$i" "$tmp/nodes/n$i" "$tmp/node" \
        > "$tmp/nodes/n$i/slurmd.out" 2>&1 &
    slurmd_pid[$i]=$!
}

# Wait until `sinfo` shows $1 nodes idle (at most $2 s).
wait_idle() {
    local _
    for _ in $(seq 1 $(($2 * 5))); do
        [ "$(sinfo -h -N -t idle -o %N 2> /dev/null | sort -u | wc -l)" -ge "$1" ] && return 0
        sleep 0.2
    done
    return 1
}

cluster_up() { # N
    mkdir -p "$tmp/state" "$tmp/node"
    net_up "$1"
    write_slurm_conf "$1"
    export SLURM_CONF="$tmp/slurm.conf"
    munge_up
    # slurmctld must run on the host named by SlurmctldHost: its own hostname
    unshare --uts -- /bin/sh -c 'hostname ctl && exec slurmctld -D' > "$tmp/slurmctld.out" 2>&1 &
    ctld_pid=$!
    local i
    for i in $(seq 1 "$1"); do node_start "$i"; done
    wait_idle "$1" 30 || fail "the $1 nodes did not become idle: $(sinfo -N 2>&1)"
}

# A node failure: SIGKILL to every process in node I's namespace (its
# slurmd, slurmstepd, the job's ranks), as if the machine lost power.
node_kill() { # I
    local p
    p=$(ip netns pids "$(node_ns "$1")")
    # shellcheck disable=SC2086 # one pid per word
    [ -z "$p" ] || kill -9 $p 2> /dev/null || true
    # reap slurmd quietly (bash would report it "Killed")
    [ -z "${slurmd_pid[$1]}" ] || { wait "${slurmd_pid[$1]}"; } 2> /dev/null || true
    slurmd_pid[$1]=""
}

link_down() { ip link set "qbv$1" down; }
link_up() { ip link set "qbv$1" up; }

cluster_down() {
    set +e
    if [ -n "$ctld_pid" ] && kill -0 "$ctld_pid" 2> /dev/null; then
        # the jobs first, so no step outlives the daemons
        ids=$(squeue -h -o %A 2> /dev/null | sort -u)
        if [ -n "$ids" ]; then
            # shellcheck disable=SC2086 # one id per word
            scancel $ids 2> /dev/null
            for _ in $(seq 1 100); do
                [ -z "$(squeue -h -o %A 2> /dev/null)" ] && break
                sleep 0.2
            done
        fi
    fi
    local i p
    for i in "${!slurmd_pid[@]}"; do stop_pid "${slurmd_pid[$i]}" "slurmd of n$i"; done
    stop_pid "$ctld_pid" slurmctld
    [ -f "$tmp/munge/munged.pid" ] && munged_pid=$(cat "$tmp/munge/munged.pid")
    stop_pid "$munged_pid" munged
    # whatever a node still runs (a job's stray rank), then its namespace
    for i in $(seq 1 "$cl_nodes"); do
        p=$(ip netns pids "$(node_ns "$i")" 2> /dev/null)
        if [ -n "$p" ]; then
            echo "note: node n$i still ran pids $p: killing them"
            # shellcheck disable=SC2086 # one pid per word
            kill -9 $p 2> /dev/null
        fi
        ip netns del "$(node_ns "$i")" 2> /dev/null
    done
    ip link del qbbr0 2> /dev/null
    return 0
}
