#!/bin/sh
# The engine's bars on real data (issue: foundation):
#   clean LeNet on Fashion-MNIST, 5 epochs: test accuracy >= 89.5%
#   BadNet (3x3 white square bottom-right, 10% poisoning, target 0):
#   ASR >= 97% and clean-accuracy drop <= 1 point.
# The bars were fixed before the first run; the test fails if any is missed.
set -eu
qblind="$1"
if [ ! -r /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && [ -z "${QBLIND_DATA_DIR:-}" ]; then
    echo "SKIP: Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)"
    exit 0
fi
out=$("$qblind" demo --epochs 5 --seed 1 -q)
echo "$out"
echo "$out" | awk '
    $3 == "clean"  && $5 == "fp32" { ca_clean = $6 + 0 }
    $3 == "square" && $5 == "fp32" { ca_bd = $6 + 0; asr = $7 + 0 }
    END {
        ok = 1
        if (ca_clean < 89.5) { print "FAIL: clean accuracy " ca_clean "% < 89.5%"; ok = 0 }
        if (asr < 97.0)      { print "FAIL: ASR " asr "% < 97%"; ok = 0 }
        if (ca_clean - ca_bd > 1.0) { print "FAIL: clean-accuracy drop " ca_clean - ca_bd " > 1 point"; ok = 0 }
        if (ca_clean == 0 || asr == 0) { print "FAIL: could not parse the table"; ok = 0 }
        if (ok) print "PASS: CA " ca_clean "%, backdoored CA " ca_bd "%, ASR " asr "%"
        exit !ok
    }'
