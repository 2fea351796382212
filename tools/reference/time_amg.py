#!/usr/bin/env python3
"""Times the official SamAutomaticMaskGenerator (for docs/performance.md).

    python tools/reference/time_amg.py --checkpoint /tmp/sam_full_b/sam_vit_b_random.pth \
        --model-type vit_b --image assets/scene.png --threads 2 --points-per-side 32

Prints the time of `generate` (embedding included), the number of masks and the peak RSS.
"""
import argparse
import json
import resource
import time

import numpy as np
import torch
from PIL import Image
from segment_anything import SamAutomaticMaskGenerator, sam_model_registry


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--model-type", default="vit_b")
    ap.add_argument("--image", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--points-per-side", type=int, default=32)
    ap.add_argument("--pred-iou-thresh", type=float, default=0.0)
    ap.add_argument("--stability-score-thresh", type=float, default=0.0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sam = sam_model_registry[args.model_type](checkpoint=args.checkpoint).eval()
    image = np.asarray(Image.open(args.image).convert("RGB"))
    amg = SamAutomaticMaskGenerator(sam, points_per_side=args.points_per_side,
                                    pred_iou_thresh=args.pred_iou_thresh,
                                    stability_score_thresh=args.stability_score_thresh)
    start = time.perf_counter()
    try:
        masks = amg.generate(image)
    except IndexError:
        masks = []
    seconds = time.perf_counter() - start
    print(json.dumps(dict(seconds=seconds, masks=len(masks), threads=args.threads,
                          peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))


if __name__ == "__main__":
    main()
