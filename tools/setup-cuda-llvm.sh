#!/usr/bin/env bash
# Provides, offline, the static LLVM 23.1 that `--features cuda` needs.
#
# Burn's `cuda` backend depends on `tracel-llvm-bundler`, whose build script downloads a static
# LLVM from GitHub. The same build is published on PyPI as `mlc-llvm-static` (+ extra targets);
# this script lays those wheels out where the build script looks and writes its sentinel, so the
# build script returns at once. Needs python3 (pip, and `bin/llvm-config` is a Python script).
#
#   tools/setup-cuda-llvm.sh            # idempotent; then: cargo build --release --features cuda
set -euo pipefail

version=23.1.1.post0
bundle="tracel-llvm-23.1.0-4"
dest="${XDG_DATA_HOME:-$HOME/.local/share}/tracel/$bundle"
sentinel="$dest/.tracel-llvm-installed"

if [[ -f "$sentinel" ]]; then
    echo "LLVM for the cuda build already in $dest"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --platform manylinux_2_28_x86_64 --python-version 3.12 \
    "mlc-llvm-static==$version" "mlc-llvm-static-extra-targets==$version" -d "$work"

mkdir -p "$dest"
for wheel in "$work"/*.whl; do
    # `unzip` keeps no exec bits either way; they are restored below.
    python3 -m zipfile -e "$wheel" "$work/unpacked"
done
static="$work/unpacked/mlc_llvm_static/static"
for part in bin include lib share; do
    if [[ -d "$static/$part" ]]; then
        mkdir -p "$dest/$part"
        cp -a "$static/$part/." "$dest/$part/"
    fi
done
chmod +x "$dest"/bin/*
touch "$sentinel"
echo "LLVM for the cuda build installed in $dest"
