#!/usr/bin/env python3
"""Times pycocotools' COCOeval (iouType='segm') on a synthetic set shaped like sam-data's
`cocoeval` bench: 5,000 images of 256×256, 3 categories, 7 objects and 20 detections per image
(14 near copies of objects, 6 stray ellipses), compressed RLEs.

    python tools/reference/time_cocoeval.py --out /tmp/cocoeval_bench
    SAM_COCOEVAL_GT=/tmp/cocoeval_bench/gt.json SAM_COCOEVAL_DT=/tmp/cocoeval_bench/dt.json \
        cargo bench -p sam-data --bench cocoeval

writes `gt.json` and `dt.json` there, then prints the time of `COCO(gt)` + `loadRes(dt)` and of
`evaluate()` + `accumulate()` + `summarize()` (wall and CPU time), and the twelve stats (with repr, to compare with
the Rust run on the same files, which the bench prints).
"""
import argparse
import contextlib
import io
import json
import os
import time

import numpy as np
from pycocotools import mask as mu
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

H = W = 256


def ellipse(cy, cx, ry, rx):
    yy, xx = np.ogrid[0:H, 0:W]
    m = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    r = mu.encode(np.asfortranarray(m.astype(np.uint8)))
    return {"size": [H, W], "counts": r["counts"].decode()}, int(m.sum())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--images", type=int, default=5000)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    gt_path, dt_path = os.path.join(args.out, "gt.json"), os.path.join(args.out, "dt.json")
    rng = np.random.default_rng(3)
    if not (os.path.exists(gt_path) and os.path.exists(dt_path)):
        images, anns, dets = [], [], []
        for img in range(1, args.images + 1):
            images.append({"id": img, "file_name": f"{img}.jpg", "height": H, "width": W})
            objs = []
            for _ in range(7):
                cat = int(rng.integers(1, 4))
                p = (rng.uniform(0, H), rng.uniform(0, W), rng.uniform(5, 80), rng.uniform(5, 80))
                seg, area = ellipse(*p)
                anns.append({"id": len(anns) + 1, "image_id": img, "category_id": cat,
                             "segmentation": seg, "area": float(area), "bbox": [0, 0, 1, 1],
                             "iscrowd": 0})
                objs.append((cat, p))
            for j in range(20):
                if j < 14:
                    cat, (cy, cx, ry, rx) = objs[j % 7]
                    p = (cy + rng.uniform(-6, 6), cx + rng.uniform(-6, 6),
                         ry * rng.uniform(0.85, 1.15), rx * rng.uniform(0.85, 1.15))
                else:
                    cat = int(rng.integers(1, 4))
                    p = (rng.uniform(0, H), rng.uniform(0, W), rng.uniform(3, 60), rng.uniform(3, 60))
                seg, _ = ellipse(*p)
                dets.append({"image_id": img, "category_id": cat, "segmentation": seg,
                             "score": round(float(rng.random()), 3)})
        cats = [{"id": c, "name": f"c{c}"} for c in (1, 2, 3)]
        with open(gt_path, "w") as f:
            json.dump({"images": images, "annotations": anns, "categories": cats}, f)
        with open(dt_path, "w") as f:
            json.dump(dets, f)
    with contextlib.redirect_stdout(io.StringIO()):
        t0 = time.perf_counter()
        gt = COCO(gt_path)
        dt = gt.loadRes(dt_path)
        t1, c1 = time.perf_counter(), time.process_time()
        e = COCOeval(gt, dt, "segm")
        e.evaluate()
        e.accumulate()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        e.summarize()
    t2, c2 = time.perf_counter(), time.process_time()
    print(printed.getvalue(), end="")
    print(f"load: {t1 - t0:.2f} s, evaluate+accumulate+summarize: {t2 - t1:.2f} s "
          f"(CPU {c2 - c1:.2f} s)")
    print("stats", [repr(float(s)) for s in e.stats])


if __name__ == "__main__":
    main()
