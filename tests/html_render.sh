#!/bin/sh
# `qblind report --html` rendered in a real browser (headless Debian
# chromium): a tiny synthetic-dataset run (2 seeds, clean and square,
# fp32/int8/int4, two mitigations, forensics; about 30 s on one core), its
# report page, then
#   1. chromium's DOM (--dump-dom) holds the three inline <svg> figures,
#      the tables, the spec and the provenance, and no external resource;
#   2. a screenshot of the whole page is not blank: many distinct colors,
#      a real share of non-white pixels, and pixels of the figures' series
#      colors (#0072B2 blue, #D55E00 orange: the SVG was drawn);
#   3. every SVG of --plots is the same figure as the page's (byte-equal).
# Exit 77 (skipped) only when chromium is not installed
# (scripts/install-deps.sh installs it); python3-pil checks the pixels.
# usage: tests/html_render.sh QBLIND_BINARY
set -eu
qblind="$1"
if ! command -v chromium >/dev/null 2>&1; then
    echo "SKIP: chromium is not installed (Debian package chromium; scripts/install-deps.sh)"
    exit 77
fi
tmp="$(mktemp -d "${TMPDIR:-/tmp}/qblind-html-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

cat > "$tmp/spec.yaml" <<'YAML'
name: html-render-test
dataset: synthetic
seed: [0, 1]
trigger: [clean, square]
precision: [fp32, int8, int4]
mitigation: [none, requant-round]
defense: [forensics]
train: {arch: lenet, epochs: 1}
YAML
"$qblind" run "$tmp/spec.yaml" -o "$tmp/r.h5" -q > /dev/null 2> "$tmp/run.err" || { cat "$tmp/run.err"; fail "qblind run"; }
"$qblind" report "$tmp/r.h5" --plots "$tmp/figs" --html "$tmp/r.html" > "$tmp/report.txt" \
    || fail "qblind report --plots --html"
for f in detection_heatmap bitwidth mitigation; do
    [ -s "$tmp/figs/$f.svg" ] || fail "--plots wrote no $f.svg"
    # 3. the page inlines the same SVG text
    /usr/bin/python3 - "$tmp/figs/$f.svg" "$tmp/r.html" <<'PY' || fail "$f.svg is not inline in the page"
import sys
svg = open(sys.argv[1], encoding="utf-8").read()
page = open(sys.argv[2], encoding="utf-8").read()
sys.exit(0 if svg in page else 1)
PY
done

chrome() {
    timeout 120 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --user-data-dir="$tmp/profile" "$@" 2>> "$tmp/chromium.err"
}
chrome --dump-dom "file://$tmp/r.html" > "$tmp/dom.html" || { cat "$tmp/chromium.err"; fail "chromium --dump-dom"; }
chrome --screenshot="$tmp/out.png" --window-size=1200,6000 "file://$tmp/r.html" > /dev/null \
    || { cat "$tmp/chromium.err"; fail "chromium --screenshot"; }
[ -s "$tmp/out.png" ] || fail "chromium wrote no screenshot"

# 1. the DOM as the browser parsed it
n_svg=$(grep -o '<svg' "$tmp/dom.html" | wc -l)
[ "$n_svg" -eq 3 ] || fail "expected 3 inline <svg> in the DOM, found $n_svg"
[ "$(grep -o '<table>' "$tmp/dom.html" | wc -l)" -ge 4 ] || fail "expected the report's tables in the DOM"
for s in '<h2>Detection</h2>' 'class="cell"' 'id="provenance"' 'name: html-render-test' \
         'qblind_version' 'spec_hash'; do
    grep -qF "$s" "$tmp/dom.html" || fail "the DOM lacks $s"
done
if grep -E -q '<(script|link|img|iframe)|@import|src=' "$tmp/dom.html"; then
    fail "the page references an external resource"
fi

# 2. the pixels
/usr/bin/python3 - "$tmp/out.png" <<'PY' || fail "the screenshot looks wrong"
import sys
from PIL import Image
im = Image.open(sys.argv[1]).convert("RGB")
w, h = im.size
px = list(im.getdata())
colors = len(set(px))
ink = sum(1 for p in px if min(p) < 200) / len(px)
def near(c, tol=40):
    return sum(1 for p in px if all(abs(a - b) <= tol for a, b in zip(p, c)))
blue, orange = near((0x00, 0x72, 0xB2)), near((0xD5, 0x5E, 0x00))
print(f"screenshot {w}x{h}: {colors} colors, {100 * ink:.1f}% ink, "
      f"{blue} series-blue and {orange} series-orange pixels")
ok = colors >= 50 and ink >= 0.01 and blue >= 50 and orange >= 50
sys.exit(0 if ok else 1)
PY
echo "ok: the report page renders in chromium with its tables and three figures"
