#!/bin/sh
# Install the Debian/Ubuntu packages qblind needs, only those missing.
# Usage: scripts/install-deps.sh
# Uses sudo when not root. Never touches the network for anything else.
set -eu

pkgs="build-essential cmake pkg-config openmpi-bin libopenmpi-dev libhdf5-openmpi-dev
hdf5-tools libyaml-dev libopenblas-dev liblapacke-dev libgsl-dev libcmocka-dev zlib1g-dev
dataset-fashion-mnist python3-h5py slurm-wlm slurm-wlm-basic-plugins munge shellcheck chromium
python3-pil python3-torch librsvg2-bin clang libclang-rt-14-dev iproute2 util-linux"

missing=""
for p in $pkgs; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install-deps: missing packages:$missing" >&2
    echo "install-deps: run as root or install sudo" >&2
    exit 1
fi
echo "install-deps: installing$missing" >&2
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
