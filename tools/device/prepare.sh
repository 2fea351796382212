#!/usr/bin/env bash
# Prepares .devcarry/ on the developer machine for tools/device/gpu_bench.sh: the device machine
# has no Rust toolchain and no network, so the bench binary (cuda + wgpu) and the reference's
# wheel travel in .devcarry/ (git-ignored, so never committed: name it in `run`'s carry).
#
#   tools/device/prepare.sh
#   then the device tool: run(command="tools/device/gpu_bench.sh check parity bf16", carry=[".devcarry"])
#
# The release build with `cuda` took 13.6 min on 2 cores with the CPU release build's
# dependencies already built (2026-12-03), minutes when only the workspace's crates changed:
# start it before asking for the device (device time counts from the first run).
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${CARGO_TARGET_DIR:-target}
export CARGO_INCREMENTAL=0 XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}

tools/setup-cuda-llvm.sh
cargo build --release --features cuda,wgpu --example bench
mkdir -p .devcarry
stripped=$(mktemp)
trap 'rm -f "$stripped"' EXIT
strip -o "$stripped" "$target/release/examples/bench"
xz -T2 -c "$stripped" > .devcarry/bench.xz
if ! ls .devcarry/segment_anything-1.0-*.whl > /dev/null 2>&1; then
    python3 -m pip download --quiet --no-deps segment-anything==1.0 -d .devcarry
fi
# The device image has no Vulkan loader (2026-12-01); gpu_bench.sh's wgpu part unpacks this one.
if ! ls .devcarry/libvulkan1_*.deb > /dev/null 2>&1; then
    (cd .devcarry && apt-get download libvulkan1)
fi
echo "built at $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with uncommitted changes)')" \
    > .devcarry/VERSION
ls -la .devcarry
