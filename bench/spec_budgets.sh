#!/bin/sh
# The spec loader's budgets (issue 13, defect 2): times `qblind plan` on
# adversarial specs written here, with /usr/bin/time -v for the peak RSS.
# Usage: [SPECS="alias_exclude ..."] bench/spec_budgets.sh [QBLIND]   (default build/qblind)
# Each line: spec, bytes, exit code, wall seconds, max RSS (KB), message.
set -u
. "$(dirname "$0")/common.sh"
QB=${1:-build/qblind}
need_exe "$QB"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT INT TERM

# exclude_spec SEED N ENTRY: a two-trigger spec with `seed: SEED` and N
# exclude entries, the i-th (from 0) printed by the function `ENTRY i`.
exclude_spec() {
    echo "trigger: [clean, square]"
    echo "seed: $1"
    echo "exclude:"
    i=0
    while [ $i -lt "$2" ]; do "$3" $i; i=$((i + 1)); done
}
alias_entry() { echo "  - {seed: *s, trigger: square}"; }
range_entry() { echo "  - {seed: {range: [0, 1000000]}, trigger: square}"; }
slice_entry() { echo "  - {seed: {range: [$(($1 * 200)), $(($1 * 200 + 100))]}, trigger: square}"; }

# an alias of a 10^6-seed range reused in 5000 exclude entries (~160 KB)
exclude_spec "&s {range: [0, 1000000]}" 5000 alias_entry > "$dir/alias_exclude.yaml"
# the same seed range written out (no alias) in 2000 exclude entries
exclude_spec "{range: [0, 1000000]}" 2000 range_entry > "$dir/range_exclude.yaml"
# 5000 distinct exclude entries of 100 seeds each, within the budgets: the
# matching itself (2 * 10^6 tasks)
exclude_spec "{range: [0, 1000000]}" 5000 slice_entry > "$dir/many_exclude.yaml"
# 300 KB of nested flow lists, and 200 KB of nested block lists
{ printf 'dataset: '; head -c 300000 /dev/zero | tr '\0' '['; echo; } > "$dir/flow_nest.yaml"
{ printf 'dataset:\n'; head -c 100000 /dev/zero | tr '\0' '\1' | sed 's/\x01/- /g'; echo mnist; } \
    > "$dir/block_nest.yaml"

for f in ${SPECS:-alias_exclude range_exclude many_exclude flow_nest block_nest}; do
    /usr/bin/time -v -o "$dir/time" "$QB" plan "$dir/$f.yaml" > "$dir/out" 2>&1
    rc=$?
    wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$dir/time")
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$dir/time")
    msg=$(grep -m1 'error' "$dir/out" | cut -c1-160)
    printf '%s\t%s B\texit %s\t%s\t%s KB\t%s\n' "$f" "$(wc -c < "$dir/$f.yaml")" "$rc" "$wall" \
        "$rss" "$msg"
done
