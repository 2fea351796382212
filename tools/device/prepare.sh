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
#
# `prepare.sh --store FILE`: also carry CubeCL's autotune and kernel store that an earlier call
# returned (its $OUT/cubecl-env.tar.xz), so that the device machine starts with it.
set -euo pipefail
store=
if [ "${1:-}" = --store ]; then
    store=$(realpath "${2:?--store needs the cubecl-env.tar.xz a device call returned}")
fi
cd "$(dirname "$0")/../.."
target=${CARGO_TARGET_DIR:-target}
export CARGO_INCREMENTAL=0 XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}

tools/setup-cuda-llvm.sh
cargo build --release --features cuda,wgpu,persistence --example bench
mkdir -p .devcarry
stripped=$(mktemp)
trap 'rm -f "$stripped"' EXIT
strip -o "$stripped" "$target/release/examples/bench"
# The x86 filter and a dictionary the size of the binary (~180 MB, most of it the static LLVM
# of `cuda`) pack it to 36.8 MB against 39.7 MB with xz's defaults (2.4 min on one core): the
# repo and .devcarry together must stay under the device call's 64 MiB.
xz --x86 --lzma2=preset=9e,dict=192MiB -c "$stripped" > .devcarry/bench.xz
if ! ls .devcarry/segment_anything-1.0-*.whl > /dev/null 2>&1; then
    python3 -m pip download --quiet --no-deps segment-anything==1.0 -d .devcarry
fi
# The device image has no Vulkan loader (2026-12-01); gpu_bench.sh's wgpu part unpacks this one.
if ! ls .devcarry/libvulkan1_*.deb > /dev/null 2>&1; then
    (cd .devcarry && apt-get download libvulkan1)
fi
if [ -n "$store" ]; then
    install -m 644 "$store" .devcarry/cubecl-env.tar.xz
fi
echo "built at $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with uncommitted changes)')" \
    > .devcarry/VERSION
ls -la .devcarry
# A device call carries the working tree (tracked and untracked-not-ignored files) and
# .devcarry/, 64 MiB in all; on 2026-12-04 that was 65.1 MB of 67.1.
# (A tracked file deleted in the worktree does not travel and du skips it: that is not an error.)
tree=$( (git ls-files -z --cached --others --exclude-standard \
    | du -cb --files0-from=- 2>/dev/null || true) | tail -1 | cut -f1)
carry=$(du -cb .devcarry/* | tail -1 | cut -f1)
limit=$((64 * 1024 * 1024))
echo "a device call carries $(( (tree + carry) / 1000000 )) MB (tree $((tree / 1000000)) + .devcarry $((carry / 1000000))) of $((limit / 1000000)) MB"
if [ $((tree + carry)) -gt $limit ]; then
    echo "over the device call's limit: drop .devcarry/cubecl-env.tar.xz or the libvulkan1 package" >&2
    exit 1
fi
