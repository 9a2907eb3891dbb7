#!/bin/sh
# Every path argument of every qblind command pointed at what it should
# not be: a FIFO (which must never hang the command), a directory, a
# missing file, a file the user cannot read (run as user nobody), and the
# command's own input as its output. Each case must end within 30 s with a
# non-zero exit status, a message that names the path, and no input lost.
# usage: tests/cli_paths.sh QBLIND_BINARY
set -eu
qblind="$1"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/qblind-paths-XXXXXX")"
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
fails=0 cases=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# Fixtures: a good spec, a results file, a model; the bad paths.
cat > "$tmp/spec.yaml" <<'YAML'
name: paths
dataset: synthetic
seed: 0
trigger: clean
precision: fp32
train: {arch: lenet, epochs: 1}
YAML
"$qblind" run "$tmp/spec.yaml" -o "$tmp/r.h5" -q > /dev/null 2>&1 || { echo "FAIL: fixture run"; exit 1; }
"$qblind" train -d synthetic --epochs 1 -q -o "$tmp/m.qbm" > /dev/null 2>&1 || { echo "FAIL: fixture model"; exit 1; }
mkfifo "$tmp/fifo"
mkdir "$tmp/dir"
printf 'secret' > "$tmp/unreadable"
chmod 600 "$tmp/unreadable"
r_sum=$(cksum < "$tmp/r.h5")

# expect WHAT CMD...: non-zero exit within 30 s, the message names $path.
expect() {
    what="$1"
    shift
    cases=$((cases + 1))
    set +e
    timeout 30 "$@" > "$tmp/out" 2> "$tmp/err" < /dev/null
    rc=$?
    set -e
    if [ "$rc" -eq 124 ]; then
        fail "$what: hung (killed after 30 s): $*"
    elif [ "$rc" -eq 0 ]; then
        fail "$what: exit 0: $*"
    elif ! grep -qF "$path" "$tmp/err"; then
        fail "$what: the message does not name $path: $(head -3 "$tmp/err")"
    fi
}

for kind in fifo dir missing unreadable; do
    path="$tmp/$kind"
    [ "$kind" = missing ] && path="$tmp/no-such-file"
    run=""
    [ "$kind" = unreadable ] && run="setpriv --reuid=65534 --regid=65534 --clear-groups"
    [ "$kind" = unreadable ] && [ "$(id -u)" -ne 0 ] && continue
    # shellcheck disable=SC2086
    expect "run spec=$kind" $run "$qblind" run "$path" -o "$tmp/out-$kind.h5" -q
    # shellcheck disable=SC2086
    expect "plan spec=$kind" $run "$qblind" plan "$path"
    # shellcheck disable=SC2086
    expect "status results=$kind" $run "$qblind" status "$path"
    # shellcheck disable=SC2086
    expect "report results=$kind" $run "$qblind" report "$path"
    # shellcheck disable=SC2086
    expect "eval model=$kind" $run "$qblind" eval "$path" -d synthetic -q
    # shellcheck disable=SC2086
    expect "defend model=$kind" $run "$qblind" defend "$path" -d synthetic -D strip -q
    # shellcheck disable=SC2086
    expect "arch --file=$kind" $run "$qblind" arch --file "$path"
    # shellcheck disable=SC2086
    expect "merge shard=$kind" $run "$qblind" merge "$tmp/merged-$kind.h5" "$path" "$tmp/r.h5"
    if [ "$kind" != missing ] && [ "$kind" != unreadable ]; then
        expect "run results=$kind" "$qblind" run "$tmp/spec.yaml" -o "$path" -q
    fi
done

# The model store must be a directory: a FIFO or a file is refused.
for path in "$tmp/fifo" "$tmp/unreadable"; do
    expect "run --models=$path" "$qblind" run "$tmp/spec.yaml" -o "$tmp/out-m.h5" --models "$path" -q
done

# The command's own input as its output.
path="$tmp/r.h5"
expect "report -o input" "$qblind" report "$tmp/r.h5" -o "$tmp/r.h5"
expect "report --html input" "$qblind" report "$tmp/r.h5" --html "$tmp/r.h5"
expect "report --plots input" "$qblind" report "$tmp/r.h5" --plots "$tmp/r.h5"
expect "merge out=input" "$qblind" merge "$tmp/r.h5" "$tmp/r.h5" --force
ln -s "$tmp/r.h5" "$tmp/link.h5"
path="$tmp/link.h5"
expect "report -o input (symlink)" "$qblind" report "$tmp/r.h5" -o "$tmp/link.h5"
[ "$(cksum < "$tmp/r.h5")" = "$r_sum" ] || fail "the results file changed"
"$qblind" status "$tmp/r.h5" > /dev/null || fail "the results file is no longer readable"

echo "$((cases - fails)) passed, $fails failed"
[ "$fails" -eq 0 ]
