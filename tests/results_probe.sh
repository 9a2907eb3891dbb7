#!/bin/sh
# Damaged results files that crash libhdf5 1.10.8 itself (fuzz/known/results/)
# given to every command that reads a results file: `qblind status`,
# `report`, `merge` (as a shard) and `run` (resuming it, alone and under
# mpirun). Each must end with a clean exit status (never a signal, no core
# file), a message naming the file, and nothing written: the file unchanged,
# no merge output, no model store made. qblind reads such files in a
# separate process first (store/results_probe.h). A good file and good
# shards still work, with the output they always had.
# usage: tests/results_probe.sh QBLIND_BINARY FUZZ_DIR
set -eu
qblind="$1"
fuzz="$2"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/qblind-probe-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
ulimit -c unlimited 2>/dev/null || true # a crash of the command would leave a core here
fails=0 cases=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

cat > spec.yaml <<'YAML'
name: probe
dataset: synthetic
seed: [0, 1]
trigger: clean
precision: [fp32, int8]
train: {arch: lenet, epochs: 1}
YAML
"$qblind" run spec.yaml -o s0.h5 -q --empty-tasks --shard 0/2 > /dev/null 2>&1 &&
    "$qblind" run spec.yaml -o s1.h5 -q --empty-tasks --shard 1/2 > /dev/null 2>&1 ||
    { echo "FAIL: fixture shards"; exit 1; }
mpirun=""
if command -v mpirun > /dev/null 2>&1; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    mpirun="mpirun --oversubscribe -n 2"
fi

# check WHAT FILE ALLOW0 CMD...: exit status < 128 within 120 s; non-zero
# unless ALLOW0 (then 0 is accepted too); a non-zero one names FILE; FILE
# unchanged; no core file.
check() {
    what="$1" file="$2" allow0="$3"
    shift 3
    cases=$((cases + 1))
    sum=$(cksum < "$file")
    set +e
    timeout 120 "$@" > out 2> err < /dev/null
    rc=$?
    set -e
    if [ "$rc" -eq 124 ]; then
        fail "$what: hung: $*"
    elif [ "$rc" -ge 128 ]; then
        fail "$what: died on signal $((rc - 128)): $(tail -2 err)"
    elif [ "$rc" -eq 0 ] && [ "$allow0" = no ]; then
        fail "$what: exit 0"
    elif [ "$rc" -ne 0 ] && ! grep -qF "$file" err; then
        fail "$what: exit $rc, the message does not name $file: $(head -3 err)"
    fi
    [ "$sum" = "$(cksum < "$file")" ] || fail "$what: $file was changed"
    if ls core* > /dev/null 2>&1; then
        fail "$what: left a core file"
        rm -f core*
    fi
}

for f in "$fuzz"/known/results/*; do
    name=$(basename "$f")
    cp "$f" "$name.h5"
    # in a release build this one over-reads inside libhdf5 without a fault
    # and its /tasks reads (fuzz/known/README.md): status and report may
    # succeed; its /details are broken, so merge and run refuse it
    allow0=no
    [ "$name" = hdf5_attr_decode_overflow ] && allow0=yes
    check "status $name" "$name.h5" $allow0 "$qblind" status "$name.h5"
    check "report $name" "$name.h5" $allow0 "$qblind" report "$name.h5"
    check "report --html $name" "$name.h5" $allow0 "$qblind" report "$name.h5" --html "$name.html"
    check "merge $name" "$name.h5" no "$qblind" merge "m-$name.h5" s0.h5 "$name.h5"
    [ -e "m-$name.h5" ] && fail "merge $name: wrote m-$name.h5"
    check "run (resume) $name" "$name.h5" no "$qblind" run spec.yaml -o "$name.h5" -q --empty-tasks
    [ -e "$name.h5.models" ] && fail "run (resume) $name: made the model store $name.h5.models"
    if [ -n "$mpirun" ]; then
        # shellcheck disable=SC2086
        check "mpirun run (resume) $name" "$name.h5" no $mpirun "$qblind" run spec.yaml \
            -o "$name.h5" -q --empty-tasks
    fi
done

# A good file: status as always, the report, merge and a resume work.
cases=$((cases + 1))
"$qblind" merge m.h5 s0.h5 s1.h5 -q > /dev/null 2> err || fail "merge of good shards: $(cat err)"
"$qblind" status m.h5 > out 2> err || fail "status of a good file: $(cat err)"
hash=$(sed -n 's/.*(spec \([0-9a-f]*\)).*/\1/p' out)
printf '%s\n' "m.h5 (spec $hash): 4 tasks" "  ok       4" "  invalid  0" "  failed   0" \
    "  pending  0" > want
cmp -s out want || fail "status of a good file: $(cat out)"
[ -s err ] && fail "status of a good file wrote to stderr: $(cat err)"
"$qblind" report "$fuzz/corpus/results/tiny" > out 2> err || fail "report of a good file: $(cat err)"
[ -s err ] && fail "report of a good file wrote to stderr: $(cat err)"
grep -q "^Detection" out || fail "report of a good file: no tables: $(head -5 out)"
"$qblind" report "$fuzz/corpus/results/tiny" --html good.html > /dev/null 2> err ||
    fail "report --html of a good file: $(cat err)"
"$qblind" run spec.yaml -o m.h5 --empty-tasks > out 2> err || fail "resume of a good file: $(cat err)"
grep -q "4 tasks, 2 models, 4 already finished; 1 rank" err ||
    fail "resume of a good file: $(head -3 err)"
if [ -n "$mpirun" ]; then
    $mpirun "$qblind" run spec.yaml -o m.h5 --empty-tasks > out 2> err ||
        fail "mpirun resume of a good file: $(tail -3 err)"
    grep -q "4 already finished; 2 ranks" err || fail "mpirun resume of a good file: $(head -3 err)"
fi

# A good file whose every task failed (rows rewritten with h5py): the
# resume reads its rows once for the table and the all-failed check, says
# so and exits 1.
if /usr/bin/python3 -c 'import h5py' 2> /dev/null; then
    cases=$((cases + 1))
    cp m.h5 af.h5
    /usr/bin/python3 - af.h5 <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    t = f["tasks"][:]
    for i in range(len(t)):
        t[i]["status"] = 3
        t[i]["message"] = b"boom %d" % (i % 2)
    f["tasks"][:] = t
PY
    set +e
    "$qblind" run spec.yaml -o af.h5 --empty-tasks > out 2> err
    rc=$?
    set -e
    [ "$rc" -eq 1 ] || fail "resume of an all-failed file: exit $rc"
    grep -q "every task failed (4 of 4); nothing was measured" err &&
        [ "$(grep -c '^qblind:   boom [01]$' err)" -eq 2 ] ||
        fail "resume of an all-failed file: $(cat err)"
    grep -q "0 ok +other" out || fail "resume of an all-failed file: table: $(cat out)"
fi

echo "results_probe: $cases cases, $fails failed"
[ "$fails" -eq 0 ]
