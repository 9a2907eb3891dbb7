#!/bin/sh
# The layout's rules (docs/ARCHITECTURE.md), checked:
#   1. the include paths of the layers enforce the dependency direction:
#      a wrong-way include does not compile, a right-way one does, with the
#      same compiler and include path the build gives the folder's sources;
#   2. no product source file over 900 lines, no function over 150 lines.
# usage: tests/test_layering.sh SOURCE_DIR BUILD_DIR C_COMPILER
set -eu
src="$1"
build="$2"
cc="$3"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/qblind-layering-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
fail=0

# 1. Compile `#include "$2"` with the include path of layer $1; the
#    compiler's messages go to $tmp/err.
compiles() {
    printf '#include "%s"\nint qb_probe;\n' "$2" > "$tmp/probe.c"
    "$cc" -std=c11 -D_XOPEN_SOURCE=700 -fsyntax-only "-I$build/layers/$1" "$tmp/probe.c" 2>"$tmp/err"
}
# (layer, a header it may include, a header it may not): the first must
# compile, the second must fail for want of the file, nothing else.
probe() {
    compiles "$1" "$2" || { echo "FAIL: $1/ cannot include $2:"; cat "$tmp/err"; fail=1; }
    if compiles "$1" "$3" || ! grep -q "No such file" "$tmp/err"; then
        echo "FAIL: $1/ including $3 (against the direction) did not fail for want of the file:"
        cat "$tmp/err"
        fail=1
    fi
}
probe core core/error.h quant/quantizer.h
probe quant core/model.h attacks/trigger.h
probe attacks quant/qmodel.h defenses/defense.h
probe defenses attacks/poison.h store/results.h
probe defenses attacks/poison.h jobs/spec.h
probe mitigations defenses/defense.h jobs/spec.h
probe jobs mitigations/mitigation.h store/results.h
probe store jobs/spec.h pipeline/pipeline.h
probe pipeline store/results.h mpi/runner.h
probe mpi pipeline/pipeline.h report/report.h
probe report store/results.h pipeline/pipeline.h
probe report store/results.h mpi/runner.h
probe cli report/report.h tests/testutil.h
[ "$fail" -eq 0 ] && echo "layering: 13 layer probes hold"

# 2. sizes of product sources (tests, bench and generated files excluded)
for dir in core quant attacks defenses mitigations jobs store pipeline mpi report cli; do
    for f in "$src/$dir"/*.c "$src/$dir"/*.h; do
        [ -e "$f" ] || continue
        n=$(wc -l < "$f")
        if [ "$n" -gt 900 ]; then echo "FAIL: ${f#"$src"/} has $n lines (limit 900)"; fail=1; fi
        # a function: a line "{" at column 0 to the next line starting with "}"
        awk -v file="${f#"$src"/}" '
            /^\{$/ { start = NR; name = prev; next }
            /^\}/ && start { n = NR - start + 1; if (n > 150) { printf "FAIL: %s: %s: %d lines (limit 150)\n", file, name, n; bad = 1 } start = 0 }
            /^[A-Za-z_]/ { prev = $0 }
            END { exit bad }' "$f" || fail=1
    done
done
[ "$fail" -eq 0 ] && echo "layering: every product file <= 900 lines, every function <= 150 lines"
exit "$fail"
