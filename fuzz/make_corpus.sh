#!/bin/sh
# Regenerate the seed corpus fuzz/corpus/<harness>/ from real examples:
# the repository's specs, tiny IDX / CIFAR-10 / GTSRB files written here,
# a model written by `qblind train`, small models and their quantized
# forms (fuzz/seed_models.c)
# and a results file written by `qblind run` on a tiny synthetic spec.
# Usage: fuzz/make_corpus.sh <build dir holding qblind> <build-fuzz dir>
# The committed corpus was made with it; rerun only to refresh it.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
bin=$(cd "$1" && pwd)
fbin=$(cd "$2" && pwd)
out=$src/fuzz/corpus
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out/spec" "$out/idx_cifar10" "$out/gtsrb" "$out/qbm" "$out/qbq" "$out/results"

cp "$src"/configs/*.yaml "$src"/tests/fixtures/specs/*.yaml "$out/spec/"

python3 - "$out" <<'PY'
import gzip, struct, sys
out = sys.argv[1]
def idx_images(n, r, c):
    return struct.pack('>IIII', 2051, n, r, c) + bytes((i * 37) % 256 for i in range(n * r * c))
def idx_labels(n):
    return struct.pack('>II', 2049, n) + bytes(i % 10 for i in range(n))
open(out + '/idx_cifar10/idx_plain_2x4x4', 'wb').write(b'I' + idx_images(2, 4, 4) + b'#LABELS#' + idx_labels(2))
open(out + '/idx_cifar10/idx_gzip_3x2x5', 'wb').write(b'I' + gzip.compress(idx_images(3, 2, 5), mtime=0)
                                          + b'#LABELS#' + gzip.compress(idx_labels(3), mtime=0))
open(out + '/idx_cifar10/idx_bad_label', 'wb').write(b'I' + idx_images(1, 1, 1) + b'#LABELS#'
                                         + struct.pack('>II', 2049, 1) + b'\x0a')
rec = lambda lab: bytes([lab]) + bytes((i * 7) % 256 for i in range(3072))
open(out + '/idx_cifar10/cifar_one_record', 'wb').write(b'C' + rec(3))
open(out + '/idx_cifar10/cifar_six_files', 'wb').write(b'C' + b'#CIFAR#'.join(
    [rec(i) for i in range(5)] + [rec(9) + rec(0)]))
hdr = b'Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\r\n'
ppm = lambda w, h: b'P6\n# c\n%d %d\n255\n' % (w, h) + bytes((i * 5) % 256 for i in range(w * h * 3))
open(out + '/gtsrb/one_image', 'wb').write(hdr + b'0.ppm;4;3;0;0;3;2;0\r\n\0' + ppm(4, 3))
open(out + '/gtsrb/two_images', 'wb').write(
    hdr + b'0.ppm;5;5;1;1;3;4;0\n1.ppm;40;33;5;6;34;27;0\n\0' + ppm(5, 5) + b'\0' + ppm(40, 33))
PY

cd "$tmp"
# A real model as `qblind train` writes it (lenet: the smaller of the two
# on 32x32 inputs; untrained, as the bytes are what matters), and small
# ones of both architectures with their quantized forms.
"$bin/qblind" train -d synthetic --arch lenet --epochs 0 -o m.qbm >/dev/null
cp m.qbm "$out/qbm/synthetic_lenet_3x32x32"
"$fbin/fuzz/seed_models" "$out"
cat > tiny.yaml <<'YAML'
name: tiny
dataset: synthetic
seed: 1
trigger: [clean, square]
precision: [fp32, int8]
defense: [none, strip]
train: {arch: lenet, epochs: 0}
defenses:
  strip: {n: 10, n_overlay: 100, n_calib: 200, n_frr: 200, n_trig: 200}
YAML
"$bin/qblind" run tiny.yaml -o r.h5 >/dev/null
cp r.h5 "$out/results/tiny"
ls -la "$out"/*
