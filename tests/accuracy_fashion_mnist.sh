#!/bin/sh
# The quick start, as `make run` runs it (configs/quickstart.yaml on 2 MPI
# ranks, or 1 without mpirun: the same bits), on real Fashion-MNIST:
#   1. the engine's bars (issue: foundation), fixed before the first run:
#      clean LeNet, 5 epochs: test accuracy >= 89.5%; BadNet (3x3 white
#      square bottom-right, 10% poisoning, target 0): ASR >= 97% and
#      clean-accuracy drop <= 1 point (fp32 rows);
#   2. the table it prints is, line for line, the table in README.md's
#      quick start: the numbers every user sees on any x86-64 CPU (README
#      "Numerics").
# usage: tests/accuracy_fashion_mnist.sh QBLIND_BINARY
set -eu
qblind="$1"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
if [ ! -r /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && [ -z "${QBLIND_DATA_DIR:-}" ]; then
    echo "SKIP: Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)"
    exit 0
fi
tmp="$(mktemp -d "${TMPDIR:-/tmp}/qblind-accuracy-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
if command -v mpirun > /dev/null 2>&1; then
    mpirun -n 2 "$qblind" run "$root/configs/quickstart.yaml" -o "$tmp/qs.h5" -q > "$tmp/out" 2> "$tmp/err" ||
        { cat "$tmp/err"; echo "FAIL: the quick start did not run"; exit 1; }
else
    "$qblind" run "$root/configs/quickstart.yaml" -o "$tmp/qs.h5" -q > "$tmp/out" 2> "$tmp/err" ||
        { cat "$tmp/err"; echo "FAIL: the quick start did not run"; exit 1; }
fi
cat "$tmp/out"
awk '
    $2 == "clean"  && $3 == "fp32" { ca_clean = $7 + 0 }
    $2 == "square" && $3 == "fp32" { ca_bd = $7 + 0; asr = $8 + 0 }
    END {
        ok = 1
        if (ca_clean < 89.5) { print "FAIL: clean accuracy " ca_clean "% < 89.5%"; ok = 0 }
        if (asr < 97.0)      { print "FAIL: ASR " asr "% < 97%"; ok = 0 }
        if (ca_clean - ca_bd > 1.0) { print "FAIL: clean-accuracy drop " ca_clean - ca_bd " > 1 point"; ok = 0 }
        if (ca_clean == 0 || asr == 0) { print "FAIL: could not parse the table"; ok = 0 }
        if (ok) print "PASS: CA " ca_clean "%, backdoored CA " ca_bd "%, ASR " asr "%"
        exit !ok
    }' "$tmp/out"
# README's table: the first fenced block after "## Quick start" that
# starts with the table header.
awk '/^## Quick start/ { q = 1 } q && /^```$/ { if (inb) exit; getline h; if (h ~ /^dataset /) { inb = 1; print h }; next } inb { print }' \
    "$root/README.md" > "$tmp/readme"
grep -E '^(dataset |fashion-mnist )' "$tmp/out" > "$tmp/table"
[ -s "$tmp/readme" ] || { echo "FAIL: no quick-start table found in README.md"; exit 1; }
if ! diff -u "$tmp/readme" "$tmp/table"; then
    echo "FAIL: the quick start's table differs from README.md's (above: - README, + this run)"
    exit 1
fi
echo "PASS: the table equals README.md's quick-start table"
