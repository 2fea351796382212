#!/usr/bin/env python3
"""Times the official image encoder and mask decoder (1 and 64 single-point prompts on one
embedding), the counterpart of `cargo bench --bench model` with SAM_BENCH_FULL.

    python tools/reference/time_decoder.py --model-type vit_b --threads 2
"""
import argparse
import json
import time

import torch
from segment_anything import sam_model_registry


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-type", default="vit_b")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    sam = sam_model_registry[args.model_type]().eval()
    x = sam.preprocess(torch.rand(1, 3, 1024, 1024) * 255)
    start = time.perf_counter()
    emb = sam.image_encoder(x)
    out = dict(model=args.model_type, threads=args.threads,
               image_encoder_s=time.perf_counter() - start)
    pe = sam.prompt_encoder.get_dense_pe()
    for n in (1, 64):
        coords = torch.rand(n, 1, 2) * 1024
        labels = torch.ones(n, 1, dtype=torch.int64)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            sparse, dense = sam.prompt_encoder(points=(coords, labels), boxes=None, masks=None)
            sam.mask_decoder(image_embeddings=emb, image_pe=pe, sparse_prompt_embeddings=sparse,
                             dense_prompt_embeddings=dense, multimask_output=True)
            times.append(time.perf_counter() - start)
        out[f"decode_{n}_s_median"] = sorted(times)[len(times) // 2]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
