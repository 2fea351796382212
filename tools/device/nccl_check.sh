#!/usr/bin/env bash
# The NCCL engine on a GPU machine without a Rust toolchain: a world-size-1 NCCL run of the tiny
# training config must give the single-process trainer's losses and parameter digest, and (with
# 2+ GPUs) a 2-rank run must keep its ranks identical.
#
# Prepare (developer machine, repo root):
#   tools/setup-cuda-llvm.sh
#   cargo build --release --features cuda,nccl --example train
#   strip a copy of $T/release/examples/train; xz -T2 -c it > .devcarry/train.xz
# Run there (repo root, carry [".devcarry"]): tools/device/nccl_check.sh
set -u
OUT=${OUT:-/tmp/nccl_check_out}
mkdir -p "$OUT"
bin=/tmp/sam-bin
mkdir -p $bin
xz -dc .devcarry/train.xz > $bin/train && chmod +x $bin/train

# NCCL and NVRTC from PyTorch's wheels when the system has none.
for lib in libnccl.so libnvrtc.so; do
    found=$(find /usr/lib/x86_64-linux-gnu /usr/local/cuda*/lib64 /usr/local/cuda*/targets/*/lib \
        /opt/torch/.venv/lib/python3*/site-packages/nvidia / -maxdepth 6 -name "$lib*" 2>/dev/null | head -1)
    echo "$lib: ${found:-none}"
    [ -n "$found" ] && export LD_LIBRARY_PATH="$(dirname "$found")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
gpus=$(nvidia-smi -L | wc -l)

# The tiny model of the training tests, 4 steps of 2 micro-batches of 2 images.
cfg=tools/device/nccl_check_config.json
data=$OUT/data
# A rerun in the same folder starts afresh (train refuses a folder that holds a run).
rm -rf "$OUT"/prep "$OUT"/single "$OUT"/nccl1 "$OUT"/nccl2
if ! $bin/train --data $data --synthetic 12 --config $cfg --out $OUT/prep --steps 1 --device cuda \
    --no-progress > "$OUT/prep.log" 2>&1; then
    echo "prep run failed:"; tail -5 "$OUT/prep.log"; exit 1
fi

run() { # name, extra env and args
    local name=$1; shift
    env "$@" 2>&1 | tee "$OUT/$name.log" | tail -3
}
echo "== single process (cuda)"
run single $bin/train --data $data --config $cfg --out $OUT/single --device cuda --no-progress
echo "== NCCL, world size 1"
run nccl1 RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29511 \
    $bin/train --data $data --config $cfg --out $OUT/nccl1 --device cuda --dist nccl --no-progress
for d in single nccl1; do
    python3 -c "import json,sys; print('$d', [round(json.loads(l)['loss'], 7) for l in open('$OUT/$d/metrics.jsonl')])"
done
if [ "$gpus" -ge 2 ]; then
    echo "== NCCL, 2 ranks on 2 GPUs"
    sed 's/"num_devices": 1/"num_devices": 2/; s/"micro_batch_size": 2/"micro_batch_size": 1/' $cfg > $OUT/cfg2.json
    for r in 0 1; do
        RANK=$r LOCAL_RANK=$r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29512 \
            $bin/train --data $data --config $OUT/cfg2.json --out $OUT/nccl2 --device cuda \
            --dist nccl --dist-timeout 120 --no-progress > "$OUT/nccl2_rank$r.log" 2>&1 &
    done
    wait
    grep -h "digest\|error" $OUT/nccl2_rank*.log
fi
