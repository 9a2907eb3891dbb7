#!/bin/sh
# Integration tests of `qblind run` with real MPI (mpirun --oversubscribe)
# on a tiny synthetic-dataset spec:
#   1. 1 rank (no mpirun), 2 and 4 ranks: every task finishes and the
#      metrics in /tasks and the defenses' /details are bit-identical
#      (timings, rank, host excluded); each distinct model is trained once
#   2. kill -9 of the whole job mid-run, then the same command: completes,
#      no task that had finished runs again, metrics equal the clean run
#   3. SIGUSR1 to mpirun (forwarded to the ranks, as Slurm's pre-timeout
#      signal) and SIGTERM to a single-rank run drain: exit 75, no
#      half-written rows, rerun completes (SIGTERM to mpirun itself makes
#      Open MPI abort the job; under Slurm srun delivers it to the ranks)
#   4. a results file from another spec is refused (and --force keeps rows)
#   5. a corrupt model-store file is detected and the model retrained
# usage: tests/mpi_runner.sh QBLIND_BINARY
set -eu
# shellcheck source=tests/runner_common.sh
. "$(dirname "$0")/runner_common.sh"
runner_init "$1" mpi

cat > "$tmp/spec.yaml" <<'YAML'
name: mpi-test
dataset: synthetic
seed: [0, 1, 2]
trigger: [clean, square]
precision: [fp32, int8, int4]
defense: [none, forensics, strip]
train: {arch: lenet, epochs: 1}
# synthetic has 2000 test images: STRIP's splits scaled down to fit
defenses:
  strip: {n: 10, n_overlay: 100, n_calib: 200, n_frr: 200, n_trig: 200}
YAML
models=6

echo "== 1. rank counts"
"$qblind" run "$tmp/spec.yaml" -o "$tmp/r1.h5" -q 2> "$tmp/r1.err" > /dev/null || { cat "$tmp/r1.err"; fail "1 rank"; }
grep -q "$models models trained" "$tmp/r1.err" || fail "1 rank: expected $models trainings: $(cat "$tmp/r1.err")"
for n in 2 4; do
    mpirun -n $n "$qblind" run "$tmp/spec.yaml" -o "$tmp/r$n.h5" -q 2> "$tmp/r$n.err" > /dev/null \
        || { cat "$tmp/r$n.err"; fail "$n ranks"; }
    [ "$(trained "$tmp/r$n.err")" = "$models" ] || fail "$n ranks trained $(trained "$tmp/r$n.err") models, expected $models"
    /usr/bin/python3 "$compare" "$tmp/r1.h5" "$tmp/r$n.h5" || fail "metrics differ between 1 and $n ranks"
done
echo "ok: 1, 2, 4 ranks bit-identical; each model trained once"

echo "== 2. kill -9 and resume"
mpirun -n 3 "$qblind" run "$tmp/spec.yaml" -o "$tmp/k.h5" -q 2> "$tmp/k.err" > /dev/null &
job=$!
# wait until some but not all tasks are recorded
for _ in $(seq 1 600); do
    [ "$(finished "$tmp/k.h5")" -ge 3 ] && break
    sleep 0.1
done
pkill -9 -f "qblind run $tmp/spec.yaml -o $tmp/k.h5" || true
kill -9 "$job" 2>/dev/null || true
wait "$job" 2>/dev/null || true
before=$(finished "$tmp/k.h5")
[ "$before" -lt 54 ] || echo "note: the job finished before it was killed"
/usr/bin/python3 "$compare" --finished-ids "$tmp/k.h5" > "$tmp/ids_before"
mpirun -n 3 "$qblind" run "$tmp/spec.yaml" -o "$tmp/k.h5" -q 2> "$tmp/k2.err" > /dev/null || { cat "$tmp/k2.err"; fail "resume"; }
/usr/bin/python3 "$compare" "$tmp/r1.h5" "$tmp/k.h5" || fail "resumed metrics differ"
/usr/bin/python3 "$compare" --unchanged "$tmp/k.h5" "$tmp/ids_before" || fail "a finished task ran again"
echo "ok: killed at $before/54 finished, resumed to identical metrics, nothing ran twice"

echo "== 3. drain on SIGUSR1 (mpirun) and SIGTERM (single rank)"
drain_test() { # name signal launcher...
    name=$1 sig=$2
    shift 2
    rm -rf "$tmp/$name.h5" "$tmp/$name.h5.models"
    set +e
    "$@" "$qblind" run "$tmp/spec.yaml" -o "$tmp/$name.h5" -q 2> "$tmp/$name.err" > /dev/null &
    job=$!
    for _ in $(seq 1 600); do
        [ -f "$tmp/$name.h5" ] && "$qblind" status "$tmp/$name.h5" 2>/dev/null | grep -q "ok *[1-9]" && break
        sleep 0.1
    done
    kill "-$sig" "$job"
    wait "$job"
    rc=$?
    set -e
    [ "$rc" -eq 75 ] || [ "$rc" -eq 0 ] || { cat "$tmp/$name.err"; fail "$sig: exit $rc, expected 75 (or 0 if it had finished)"; }
    "$@" "$qblind" run "$tmp/spec.yaml" -o "$tmp/$name.h5" -q 2> "$tmp/$name.2.err" > /dev/null || fail "rerun after $sig"
    /usr/bin/python3 "$compare" "$tmp/r1.h5" "$tmp/$name.h5" || fail "drained ($sig) + resumed metrics differ"
    echo "ok: $sig drained with exit $rc, resumed to identical metrics"
}
drain_test usr1 USR1 mpirun -n 2
drain_test term TERM env

echo "== 4. another spec"
sed 's/epochs: 1/epochs: 2/' "$tmp/spec.yaml" > "$tmp/other.yaml"
if "$qblind" run "$tmp/other.yaml" -o "$tmp/r1.h5" -q 2> "$tmp/o.err" > /dev/null; then fail "a results file from another spec was accepted"; fi
grep -q "different spec" "$tmp/o.err" || fail "unexpected message: $(cat "$tmp/o.err")"
echo "ok: refused: $(head -1 "$tmp/o.err")"

echo "== 5. corrupt model-store file"
cp "$tmp/r1.h5" "$tmp/c.h5"
cp -r "$tmp/r1.h5.models" "$tmp/c.h5.models"
f=$(ls "$tmp/c.h5.models"/*.qbm | head -1)
printf 'garbage' | dd of="$f" bs=1 seek=100 conv=notrunc 2>/dev/null
rm -rf "$tmp/c2.h5"
"$qblind" run "$tmp/spec.yaml" -o "$tmp/c2.h5" --models "$tmp/c.h5.models" -q 2> "$tmp/c.err" > /dev/null || { cat "$tmp/c.err"; fail "run with a corrupt store"; }
grep -q "checksum mismatch" "$tmp/c.err" || fail "corruption not reported: $(cat "$tmp/c.err")"
grep -q " 1 models trained" "$tmp/c.err" || fail "expected exactly the corrupt model retrained: $(cat "$tmp/c.err")"
[ -f "$f.corrupt" ] || fail "corrupt file not moved aside"
/usr/bin/python3 "$compare" "$tmp/r1.h5" "$tmp/c2.h5" || fail "retrained model gives other metrics"
echo "ok: corrupt model detected, moved aside, retrained once, same metrics"
echo "PASS"
