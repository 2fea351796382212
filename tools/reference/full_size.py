#!/usr/bin/env python3
"""Full-size parity check (not in CI): a random-weights official SAM at 1024².

    python tools/reference/full_size.py --model-type vit_l --out /tmp/sam_full
    cargo run --release --example full_size_check -- \
        --checkpoint /tmp/sam_full/sam_vit_l_random.pth \
        --reference /tmp/sam_full/sam_vit_l_random_outputs.safetensors --model-type vit_l

Builds the model with the official `sam_model_registry`, perturbs every parameter (so the
zero-initialised rel-pos tables and position embedding matter), saves the state_dict with
torch.save (the official checkpoint format, 1.2 GB for ViT-L), and records the reference's
image embedding and one point prediction, with its time and peak memory on this machine.
"""
import argparse
import json
import os
import resource
import time

import numpy as np
import torch
from safetensors.torch import save_file
from segment_anything import sam_model_registry
from segment_anything.utils.transforms import ResizeLongestSide


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-type", default="vit_l", choices=["vit_b", "vit_l", "vit_h"])
    ap.add_argument("--out", default="/tmp/sam_full")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    torch.manual_seed(0)

    sam = sam_model_registry[args.model_type]().eval()
    gen = torch.Generator().manual_seed(1)
    for p in sam.parameters():
        p.add_(torch.randn(p.shape, generator=gen) * 0.02)
    name = f"sam_{args.model_type}_random"
    torch.save(sam.state_dict(), os.path.join(args.out, f"{name}.pth"))

    h, w = 768, 1024
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([128 + 100 * np.sin(xx / 37) * np.cos(yy / 53),
                    128 + 90 * np.cos((xx + yy) / 71), 128 + 110 * np.sin(yy / 29)], -1)
    img = np.clip(img + rng.integers(-20, 21, img.shape), 0, 255).astype(np.uint8)
    t = ResizeLongestSide(1024)
    x = torch.as_tensor(t.apply_image(img)).permute(2, 0, 1)[None].float().contiguous()

    start = time.perf_counter()
    emb = sam.image_encoder(sam.preprocess(x))
    t_embed = time.perf_counter() - start

    coords = torch.tensor([[[w * 0.4, h * 0.55]]], dtype=torch.float)
    labels = torch.tensor([[1]], dtype=torch.int64)
    start = time.perf_counter()
    sparse, dense = sam.prompt_encoder(points=(coords, labels), boxes=None, masks=None)
    low, iou = sam.mask_decoder(image_embeddings=emb, image_pe=sam.prompt_encoder.get_dense_pe(),
                                sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                multimask_output=True)
    t_predict = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    save_file({"image/input": x, "encoder/embedding": emb.contiguous(),
               "point/coords": coords, "point/labels": labels,
               "point/low_res_masks": low.contiguous(), "point/iou_predictions": iou.contiguous()},
              os.path.join(args.out, f"{name}_outputs.safetensors"))
    report = dict(model_type=args.model_type, threads=args.threads, torch=torch.__version__,
                  embed_seconds=t_embed, predict_seconds=t_predict, peak_rss_mib=peak_mib)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
