#!/usr/bin/env python3
"""pycocotools results for sam-data's COCO reader and polygon rasteriser (bit-exact comparison).

    pip install pycocotools numpy pillow
    python tools/reference/make_coco_fixtures.py --out crates/sam-data/tests/fixtures/coco

Writes a tiny COCO-format set (`images/*.png`, `instances.json`), pycocotools' `annToRLE` of each
of its annotations with `area` and `toBbox` (`expected.json`), and a random sweep of polygons
with their `frPyObjects` (+ `merge`) results (`polygon_sweep.json`).

Coordinates are written with at most 15 significant digits: serde_json without its
`float_roundtrip` feature parses those exactly (one correctly rounded operation), while longer
ones can come out one ulp off, which can move a vertex across a rounding boundary of the 5×
upsampling. The one- and two-decimal grids used here are the hard cases for that rounding
(5·x + .5 lands next to an integer), and COCO's own files use two decimals.
"""
import argparse
import json
import os

import numpy as np
from PIL import Image
from pycocotools import mask as mu
from pycocotools.coco import COCO

# (id, file_name, height, width, grayscale)
IMAGES = [
    (7, "a.png", 40, 50, False),
    (3, "b.png", 27, 33, False),
    (12, "c.png", 16, 20, True),  # no annotations
]


def circle(cx, cy, r, n, phase=0.0):
    t = phase + 2 * np.pi * np.arange(n) / n
    return [round(float(v), 2) for p in zip(cx + r * np.cos(t), cy + r * np.sin(t)) for v in p]


def uncompressed(mask):
    """COCO's uncompressed RLE (iscrowd) of a row-major bool mask: runs down columns."""
    r = mu.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"counts": [int(c) for c in mu_counts(r)], "size": [int(s) for s in r["size"]]}


def mu_counts(r):
    """Decodes a compressed string to its run list (pycocotools has no public call for it)."""
    s, out, p = r["counts"], [], 0
    if isinstance(s, bytes):
        s = s.decode()
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def annotations(rng):
    """(image_id, segmentation, iscrowd, category_id, note); interleaved across images so that
    the reader has to group them."""
    yy, xx = np.mgrid[0:40, 0:50]
    crowd_a = ((yy - 20) ** 2 / 90 + (xx - 30) ** 2 / 200 <= 1) ^ (rng.random((40, 50)) < 0.1)
    crowd_b = np.zeros((27, 33), bool)
    crowd_b[0:5, 0:4] = True  # pixel 0 set: the counts start with an empty run of zeros
    crowd_b[20:27, 25:33] = True  # ends on the last pixel
    string_mask = np.zeros((27, 33), bool)
    string_mask[3:12, 14:30] = True
    string_mask[8:10, 18:22] = False
    string_rle = mu.encode(np.asfortranarray(string_mask.astype(np.uint8)))
    string_seg = {"size": [27, 33], "counts": string_rle["counts"].decode()}
    return [
        (7, [[5.3, 4.7, 30.15, 8.9, 12.55, 33.25]], 0, 1, "convex triangle, fractional"),
        (3, [[-4.2, -3.1, 20.6, 2.3, 38.9, 30.7, 5.5, 25.2]], 0, 1, "crosses the border"),
        (7, [[4, 4, 24, 4, 24, 10, 10, 10, 10, 30, 4, 30]], 0, 18, "concave L"),
        (7, [star(30, 24, 11, 4.5, 7)], 0, 18, "concave star"),
        (7, [[2.5, 30.5, 14.5, 31.5, 9.5, 38.5],
             [8.1, 33.3, 19.7, 35.2, 12.9, 39.9],
             [40.2, 2.2, 47.7, 2.9, 45.1, 9.8, 41.3, 8.6]], 0, 1, "three parts, two overlapping"),
        (7, [[0, 0, 50, 0, 50, 12.5, 0, 12.5]], 0, 1, "touches three borders exactly"),
        (7, [[44, 15, 50, 15, 50, 40, 44, 40]], 0, 1, "on the right and bottom borders"),
        (7, [[20.1, 20.1, 20.4, 20.2, 20.2, 20.45]], 0, 1, "tiny, inside one pixel"),
        (7, [[21.3, 21.4, 23.9, 21.6, 22.2, 23.8]], 0, 1, "tiny, a pixel or two"),
        (7, [[3, 3, 20, 20, 40, 40]], 0, 1, "collinear"),
        (7, [[10, 30, 45, 31, 10, 30.6]], 0, 1, "thin sliver"),
        (7, [[3, 3, 20, 20, 40, 38]], 0, 1, "nearly collinear"),
        (7, [[5, 5, 25, 25, 25, 5, 5, 25]], 0, 1, "self-intersecting bow tie"),
        (7, [[10, 10, 10, 10, 25, 12, 25, 12, 18, 28, 10, 10]], 0, 1, "repeated vertices"),
        (7, [[30.3, 30.7, 39.9, 31.1, 35.5, 38.3, 31.7],  # odd: the 7th value is ignored
             [1, 2, 3, 4, 5], [7, 8], []], 0, 1, "odd length, short later parts"),
        (7, [[1.1, 14.3, 7.9, 14.5, 8.7, 19.1, 1.5, 19.9, 0.3, 17.7]], 0, 1, "odd tenths"),
        (7, uncompressed(crowd_a), 1, 18, "crowd, uncompressed RLE"),
        (3, string_seg, 0, 18, "compressed RLE string"),
        (3, [[-0.1, -0.5, 10.1, -0.6, 10.3, 8.7, -0.9, 9.5]], 0, 1, "negative fractions"),
        (3, [[-10, -10, 50, -10, 50, 40, -10, 40]], 0, 1, "covers the image and beyond"),
        (3, uncompressed(crowd_b), 1, 1, "crowd starting with a foreground pixel"),
        (3, [circle(16.4, 13.2, 9.7, 40, 0.1)], 0, 1, "40-gon"),
        (7, [[-3, 20, 53, 20.5, 53, 21.5, -3, 22]], 0, 1, "wider than the image"),
    ]


def star(cx, cy, r_out, r_in, n):
    pts = []
    for i in range(2 * n):
        r = r_out if i % 2 == 0 else r_in
        t = np.pi * i / n
        pts += [round(float(cx + r * np.cos(t)), 2), round(float(cy + r * np.sin(t)), 2)]
    return pts


def coord(rng, lo, hi, style):
    v = rng.uniform(lo, hi)
    if style == 0:
        return float(round(v))
    if style == 1:
        return round(v * 2) / 2
    if style == 2:
        return round(v, 1)
    return round(v, 2)


def random_polygon(rng, h, w):
    n = int(rng.integers(3, 13))
    style = int(rng.integers(0, 4))
    if rng.random() < 0.5:  # anywhere, crossing the borders
        xs = [coord(rng, -5, w + 5, style) for _ in range(n)]
        ys = [coord(rng, -5, h + 5, style) for _ in range(n)]
    else:  # small and local: sub-pixel detail
        cx, cy = rng.uniform(-2, w + 2), rng.uniform(-2, h + 2)
        r = rng.uniform(0.2, 4)
        xs = [coord(rng, cx - r, cx + r, style) for _ in range(n)]
        ys = [coord(rng, cy - r, cy + r, style) for _ in range(n)]
    return [v for p in zip(xs, ys) for v in p]


def sweep(rng):
    single, multi = [], []
    for i in range(200):
        h, w = int(rng.integers(1, 65)), int(rng.integers(1, 65))
        if i < 8:  # one-pixel-wide images
            h, w = (1, w) if i % 2 == 0 else (h, 1)
        poly = random_polygon(rng, h, w)
        r = mu.frPyObjects([poly], h, w)[0]
        single.append({"size": [h, w], "polygon": poly, "counts": r["counts"].decode()})
    for _ in range(60):
        h, w = int(rng.integers(1, 65)), int(rng.integers(1, 65))
        polys = [random_polygon(rng, h, w) for _ in range(int(rng.integers(1, 4)))]
        r = mu.merge(mu.frPyObjects(polys, h, w))
        multi.append({"size": [h, w], "polygons": polys, "counts": r["counts"].decode()})
    return {"single": single, "multi": multi}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="crates/sam-data/tests/fixtures/coco")
    args = ap.parse_args()
    rng = np.random.default_rng(2024)
    os.makedirs(os.path.join(args.out, "images"), exist_ok=True)

    images, pixel_sums = [], {}
    for img_id, name, h, w, gray in IMAGES:
        if gray:
            px = rng.integers(0, 256, (h, w), dtype=np.uint8)
            rgb = np.repeat(px[:, :, None], 3, axis=2)
        else:
            px = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            rgb = px
        Image.fromarray(px).save(os.path.join(args.out, "images", name))
        pixel_sums[str(img_id)] = int(rgb.astype(np.int64).sum())
        images.append({"id": img_id, "file_name": name, "height": h, "width": w,
                       "license": 1, "date_captured": "2024-01-01 00:00:00"})

    anns = []
    for k, (img_id, seg, crowd, cat, note) in enumerate(annotations(rng)):
        anns.append({"id": 1000 + k, "image_id": img_id, "category_id": cat,
                     "segmentation": seg, "iscrowd": crowd, "area": 0.0, "bbox": [0, 0, 0, 0],
                     "note": note})
    instances = {
        "info": {"description": "sam-burn COCO fixture", "version": "1.0"},
        "licenses": [{"id": 1, "name": "CC0", "url": ""}],
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "blob", "supercategory": "shape"},
                       {"id": 18, "name": "dog", "supercategory": "animal"}],
    }
    path = os.path.join(args.out, "instances.json")
    with open(path, "w") as f:
        json.dump(instances, f)
    coco = COCO(path)
    expected = {}
    for a in anns:
        rle = coco.annToRLE(coco.anns[a["id"]])
        counts = rle["counts"]
        counts = counts.decode() if isinstance(counts, bytes) else counts
        area = int(mu.area(rle))
        bbox = [float(v) for v in mu.toBbox(rle)]
        # The file's own area/bbox, as COCO writes them (the reader passes them through).
        a["area"], a["bbox"] = float(area), bbox
        expected[str(a["id"])] = {"size": [int(s) for s in rle["size"]], "counts": counts,
                                  "area": area, "bbox": bbox, "note": a["note"]}
    with open(path, "w") as f:
        json.dump(instances, f)
    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump({"pixel_sums": pixel_sums, "annotations": expected}, f, indent=1)
    with open(os.path.join(args.out, "polygon_sweep.json"), "w") as f:
        json.dump(sweep(rng), f)
    print(f"{len(anns)} annotations, {len(images)} images")


if __name__ == "__main__":
    main()
