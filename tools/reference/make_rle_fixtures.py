#!/usr/bin/env python3
"""pycocotools results for sam-data's RLE code: encode, string form, area, toBbox, merge, iou.

    python tools/reference/make_rle_fixtures.py --out crates/sam-data/tests/fixtures
"""
import argparse
import json
import os

import numpy as np
from pycocotools import mask as mu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="crates/sam-data/tests/fixtures")
    args = ap.parse_args()
    rng = np.random.default_rng(11)
    cases = []
    sizes = [(1, 1), (1, 7), (9, 1), (13, 17), (32, 24), (50, 41)]
    for h, w in sizes:
        masks = [np.zeros((h, w), bool), np.ones((h, w), bool)]
        for _ in range(4):
            m = np.zeros((h, w), bool)
            for _ in range(rng.integers(1, 4)):  # a few rectangles and discs
                y0, x0 = rng.integers(0, h), rng.integers(0, w)
                y1, x1 = rng.integers(y0, h) + 1, rng.integers(x0, w) + 1
                if rng.random() < 0.5:
                    m[y0:y1, x0:x1] = True
                else:
                    yy, xx = np.mgrid[0:h, 0:w]
                    m |= (yy - y0) ** 2 + (xx - x0) ** 2 <= rng.integers(1, max(h, w) + 1) ** 2
            m ^= rng.random((h, w)) < 0.05  # ragged edges, holes and specks
            masks.append(m)
        rles = [mu.encode(np.asfortranarray(m.astype(np.uint8))) for m in masks]
        for i, (m, r) in enumerate(zip(masks, rles)):
            j = (i + 1) % len(masks)
            cases.append(dict(
                size=[h, w], mask="".join("1" if v else "0" for v in m.ravel()),
                counts=r["counts"].decode(), area=int(mu.area(r)),
                bbox=mu.toBbox(r).tolist(),
                other=j,
                union=mu.merge([r, rles[j]], intersect=False)["counts"].decode(),
                intersection=mu.merge([r, rles[j]], intersect=True)["counts"].decode(),
                iou=float(mu.iou([r], [rles[j]], [0])[0][0]),
                iou_crowd=float(mu.iou([r], [rles[j]], [1])[0][0]),
            ))
        # `other` indexes within this size's group of cases.
        base = len(cases) - len(masks)
        for c in cases[base:]:
            c["other"] += base
    with open(os.path.join(args.out, "rle.json"), "w") as f:
        json.dump(cases, f)
    print(len(cases), "cases")


if __name__ == "__main__":
    main()
