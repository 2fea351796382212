#!/usr/bin/env python3
"""pycocotools' COCOeval (iouType='segm') results for sam-data's port (`coco_eval`).

    pip install pycocotools numpy
    python tools/reference/make_cocoeval_fixtures.py --out crates/sam-data/tests/fixtures/cocoeval

Writes small synthetic ground-truth files (`*_gt.json`, COCO instances format) and results files
(`*_dt.json`, as `loadRes` takes them), runs `COCOeval(gt, gt.loadRes(dt), 'segm')` with each
case's parameters, and writes `cases.json`: per case the files, the parameters, `stats` and the
whole `eval['precision']` and `eval['recall']` arrays, and `eval['scores']` where the case
has `scores_runs` (left out of the larger cases to keep the fixtures small).

`precision` and `scores` (shape [T, R, K, A, M]) are stored transposed to [T, K, A, M, R] and
run-length encoded as `[[value, repeat], ...]`: along the recall axis they are step functions,
so this keeps the file small without rounding anything. Floats are written by `json` (repr,
shortest round-trip), which serde_json with `float_roundtrip` reads back exactly.

Cases: `basic` (polygon, compressed and uncompressed RLE ground truth, crowd regions, an image
without objects, one without detections, detections on an image without objects, empty masks,
tied scores, a category without objects, detections of a category not in the file, object id 0,
an `ignore` field, areas on the range boundaries), `basic_nocats` (the same with useCats=0),
`maxdets` (an image with 150 detections, scores with many ties), `random` (50 images, 5
categories, overlapping masks, jittered and duplicated detections, seeded), `random_nocats`,
`random_params` (a subset of images and categories, maxDets [2, 5, 20]), `random_bbox` (results
with a `bbox` field: `loadRes` then takes box areas) and `good` (24 images, 3 categories, most
detections close to their object: high AP). Also an uncompressed RLE with empty interior runs.
"""
import argparse
import contextlib
import io
import json
import os

import numpy as np
from pycocotools import mask as mu
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def compressed(mask):
    r = mu.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in r["size"]], "counts": r["counts"].decode()}


def uncompressed(mask):
    """COCO's uncompressed RLE: runs down columns, zeros first."""
    flat = mask.astype(np.uint8).flatten(order="F")
    counts, current, run = [], 0, 0
    for v in flat:
        if v != current:
            counts.append(run)
            run, current = 0, v
        run += 1
    counts.append(run)
    return {"size": list(mask.shape), "counts": counts}


def ellipse(h, w, cy, cx, ry, rx):
    yy, xx = np.mgrid[0:h, 0:w]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1


def rect(h, w, y0, x0, rh, rw):
    m = np.zeros((h, w), bool)
    m[y0:y0 + rh, x0:x0 + rw] = True
    return m


def polygon(cx, cy, rx, ry, n, phase=0.0):
    t = phase + 2 * np.pi * np.arange(n) / n
    return [round(float(v), 2) for p in zip(cx + rx * np.cos(t), cy + ry * np.sin(t)) for v in p]


def poly_mask(poly, h, w):
    return mu.decode(mu.merge(mu.frPyObjects([poly], h, w))).astype(bool)


def shift(mask, dy, dx):
    out = np.zeros_like(mask)
    h, w = mask.shape
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = mask[ys, xs]
    return out


def jitter(mask, rng):
    """A plausible prediction of `mask`: shifted, with pixels flipped near its border."""
    m = shift(mask, int(rng.integers(-4, 5)), int(rng.integers(-4, 5)))
    edge = m ^ shift(m, 1, 0) | m ^ shift(m, 0, 1)
    flip = edge & (rng.random(m.shape) < 0.3)
    return m ^ flip


def area(mask):
    return float(mask.sum())


class Builder:
    def __init__(self, categories):
        self.images, self.anns, self.dets = [], [], []
        self.categories = [{"id": c, "name": f"c{c}"} for c in categories]
        self.next_id = 1

    def image(self, img_id, h, w):
        self.images.append({"id": img_id, "file_name": f"{img_id}.png", "height": h, "width": w})

    def gt(self, img_id, cat, seg, area, iscrowd=0, ann_id=None, **extra):
        if ann_id is None:
            ann_id = self.next_id
            self.next_id += 1
        a = {"id": ann_id, "image_id": img_id, "category_id": cat, "segmentation": seg,
             "area": area, "bbox": [0, 0, 1, 1], "iscrowd": iscrowd}
        a.update(extra)
        self.anns.append(a)

    def dt(self, img_id, cat, mask, score, bbox=False):
        d = {"image_id": img_id, "category_id": cat, "segmentation": compressed(mask),
             "score": score}
        if bbox:
            d["bbox"] = [float(v) for v in mu.toBbox(mu.encode(np.asfortranarray(mask.astype(np.uint8))))]
        self.dets.append(d)

    def gt_json(self):
        return {"images": self.images, "annotations": self.anns, "categories": self.categories}


def basic():
    b = Builder([1, 2, 3, 4])
    rng = np.random.default_rng(11)
    # Image 1: every ground-truth format, a crowd region, all area ranges.
    h, w = 120, 140
    b.image(1, h, w)
    p_large = polygon(70.3, 60.55, 60.2, 52.1, 24)  # ~9,800 px: large
    m_large = poly_mask(p_large, h, w)
    b.gt(1, 1, [p_large], area(m_large))
    p_two = [polygon(20, 20, 8.5, 6.25, 10), polygon(40.5, 22, 5, 5, 6, 0.3)]  # two parts
    m_two = mu.decode(mu.merge(mu.frPyObjects(p_two, h, w))).astype(bool)
    b.gt(1, 2, p_two, area(m_two))
    m_med = ellipse(h, w, 90, 110, 18, 22)
    b.gt(1, 2, compressed(m_med), area(m_med))
    m_unc = rect(h, w, 5, 100, 20, 30)
    b.gt(1, 3, uncompressed(m_unc), area(m_unc), ignore=1)  # `ignore` is overridden by iscrowd
    m_crowd = rect(h, w, 60, 0, 60, 50)
    b.gt(1, 1, uncompressed(m_crowd), area(m_crowd), iscrowd=1)
    m_small = rect(h, w, 100, 60, 10, 12)
    b.gt(1, 3, compressed(m_small), 1024.0)  # the `area` field decides: on the boundary
    b.dt(1, 1, jitter(m_large, rng), 0.9)
    b.dt(1, 1, jitter(m_large, rng), 0.9)  # duplicate: a false positive, same score
    b.dt(1, 1, rect(h, w, 62, 2, 30, 30), 0.8)  # inside the crowd region: ignored
    b.dt(1, 1, rect(h, w, 90, 10, 25, 30), 0.85)  # crowd again
    b.dt(1, 2, jitter(m_two, rng), 0.7)
    b.dt(1, 2, jitter(m_med, rng), 0.7)
    b.dt(1, 2, m_med, 0.3)
    b.dt(1, 3, jitter(m_unc, rng), 0.6)
    b.dt(1, 3, m_small, 0.95)
    b.dt(1, 3, rect(h, w, 0, 0, 32, 32), 0.5)  # mask area 1024 exactly, unmatched
    b.dt(1, 4, rect(h, w, 0, 0, 96, 96), 0.5)  # category without objects; area 9216
    b.dt(1, 99, m_large, 0.99)  # category not in the file: not evaluated
    # Image 2: no objects, some detections.
    b.image(2, 64, 80)
    b.dt(2, 1, ellipse(64, 80, 30, 40, 10, 15), 0.95)
    b.dt(2, 2, rect(64, 80, 3, 3, 40, 40), 0.4)
    # Image 3: objects, no detections.
    b.image(3, 100, 100)
    m3 = ellipse(100, 100, 50, 50, 30, 40)
    b.gt(3, 1, compressed(m3), area(m3))
    p3 = polygon(20, 80, 10, 8, 8)
    b.gt(3, 3, [p3], area(poly_mask(p3, 100, 100)))
    # Image 4: tied scores, empty masks, object id 0, an empty ground-truth mask.
    h, w = 90, 90
    b.image(4, h, w)
    objs = [ellipse(h, w, 20 + 25 * (i // 3), 20 + 25 * (i % 3), 9, 11) for i in range(9)]
    for i, m in enumerate(objs):
        b.gt(4, 1 + i % 2, compressed(m), area(m), ann_id=0 if i == 4 else None)
    b.gt(4, 1, compressed(np.zeros((h, w), bool)), 0.0)
    for i, m in enumerate(objs):
        b.dt(4, 1 + i % 2, jitter(m, rng), 0.5)
        b.dt(4, 1 + i % 2, jitter(m, rng), 0.5)
    b.dt(4, 1, np.zeros((h, w), bool), 0.5)
    b.dt(4, 2, np.zeros((h, w), bool), 0.99)
    # Image 5: not in any detection, no objects either.
    b.image(5, 10, 10)
    # Image 6: a crowd region of category 2 overlapping a normal object.
    h, w = 80, 80
    b.image(6, h, w)
    m_c = rect(h, w, 0, 0, 80, 40)
    b.gt(6, 2, uncompressed(m_c), area(m_c), iscrowd=1)
    m_n = ellipse(h, w, 40, 35, 15, 15)
    b.gt(6, 2, compressed(m_n), area(m_n))
    b.dt(6, 2, jitter(m_n, rng), 0.8)
    b.dt(6, 2, jitter(m_n, rng), 0.8)
    b.dt(6, 2, rect(h, w, 10, 5, 20, 20), 0.6)
    # Image 7: an uncompressed RLE with empty runs inside (pycocotools keeps them; its IoU loop
    # stops early where two empty runs meet).
    h, w = 12, 10
    b.image(7, h, w)
    m7 = rect(h, w, 2, 2, 6, 6)
    runs = uncompressed(m7)["counts"]
    odd = runs[:2] + [0, 0] + runs[2:3] + [0, 0] + runs[3:]
    b.gt(7, 1, {"size": [h, w], "counts": odd}, area(m7))
    b.dt(7, 1, m7, 0.9)
    b.dt(7, 1, rect(h, w, 3, 2, 6, 6), 0.8)
    b.dt(7, 1, rect(h, w, 1, 3, 6, 5), 0.7)
    return b


def maxdets():
    b = Builder([1, 2])
    rng = np.random.default_rng(12)
    h, w = 96, 128
    b.image(10, h, w)
    objs = []
    for i in range(20):
        cy, cx = rng.integers(8, h - 8), rng.integers(8, w - 8)
        m = ellipse(h, w, cy, cx, rng.integers(3, 12), rng.integers(3, 12))
        objs.append(m)
        b.gt(10, 1, compressed(m), area(m))
    for i in range(150):
        m = jitter(objs[int(rng.integers(0, 20))], rng)
        b.dt(10, 1, m, round(float(rng.random()), 1))  # 11 distinct scores: many ties
    b.image(11, 50, 50)
    m = ellipse(50, 50, 25, 25, 10, 10)
    b.gt(11, 1, compressed(m), area(m))
    b.gt(11, 2, compressed(m), area(m))
    for i in range(12):
        b.dt(11, 1 + i % 2, jitter(m, rng), 0.5)
    return b


def random_set(seed=2024, n_images=50, n_cats=5, bbox=False, good=False):
    b = Builder(list(range(1, n_cats + 1)))
    rng = np.random.default_rng(seed)
    for img in range(1, n_images + 1):
        h, w = int(rng.integers(40, 140)), int(rng.integers(40, 140))
        img_id = 1000 + 7 * img  # not contiguous, not sorted by position
        b.image(img_id, h, w)
        objs = []
        for _ in range(int(rng.integers(0, 12))):
            cat = int(rng.integers(1, n_cats + 1))
            cy, cx = rng.integers(0, h), rng.integers(0, w)
            ry, rx = rng.integers(2, max(3, h // 2)), rng.integers(2, max(3, w // 2))
            kind = rng.random()
            if kind < 0.4:
                poly = polygon(float(cx), float(cy), float(rx), float(ry), int(rng.integers(3, 12)),
                               float(rng.random()))
                m = poly_mask(poly, h, w)
                seg = [poly]
            else:
                m = ellipse(h, w, cy, cx, ry, rx) if kind < 0.8 else rect(h, w, cy, cx, ry, rx)
                seg = compressed(m) if kind < 0.7 else uncompressed(m)
            crowd = int(rng.random() < 0.08)
            if crowd:
                seg = uncompressed(m)
            a = area(m) if rng.random() < 0.9 else float(round(rng.random() * 12000, 2))
            b.gt(img_id, cat, seg, a, iscrowd=crowd)
            objs.append((cat, m))
        for _ in range(int(rng.integers(0, 20))):
            r = rng.random()
            if objs and r < 0.7:
                cat, m = objs[int(rng.integers(0, len(objs)))]
                if rng.random() < 0.15:
                    cat = int(rng.integers(1, n_cats + 1))  # wrong category
                m = jitter(m, rng) if not good or rng.random() < 0.3 else m ^ (
                    (rng.random(m.shape) < 0.02) & (m ^ shift(m, 1, 1)))
            else:
                cat = int(rng.integers(1, n_cats + 1))
                cy, cx = rng.integers(0, h), rng.integers(0, w)
                m = ellipse(h, w, cy, cx, rng.integers(1, h // 2), rng.integers(1, w // 2))
            score = round(float(rng.random()), 2) if rng.random() < 0.5 else float(rng.random())
            b.dt(img_id, cat, m, score, bbox=bbox)
    return b


def run_case(out, name, gt_file, dt_file, params, with_scores=True):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(os.path.join(out, gt_file))
        dt = gt.loadRes(os.path.join(out, dt_file))
        e = COCOeval(gt, dt, "segm")
        if params.get("imgIds") is not None:
            e.params.imgIds = params["imgIds"]
        if params.get("catIds") is not None:
            e.params.catIds = params["catIds"]
        e.params.useCats = params["useCats"]
        e.params.maxDets = params["maxDets"]
        e.evaluate()
        e.accumulate()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        e.summarize()
    prec = e.eval["precision"]
    scores = e.eval["scores"]

    def runs(a):
        flat = np.transpose(a, (0, 2, 3, 4, 1)).reshape(-1)
        out_runs = []
        for v in flat.tolist():
            if out_runs and out_runs[-1][0] == v:
                out_runs[-1][1] += 1
            else:
                out_runs.append([v, 1])
        return out_runs

    return {
        "name": name,
        "gt": gt_file,
        "dt": dt_file,
        "params": params,
        "counts": [int(c) for c in prec.shape],
        "stats": [float(s) for s in e.stats],
        "summary": printed.getvalue(),
        "precision_runs": runs(prec),
        "scores_runs": runs(scores) if with_scores else None,
        "recall": [float(v) for v in e.eval["recall"].reshape(-1)],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    def write(name, obj):
        with open(os.path.join(args.out, name), "w") as f:
            json.dump(obj, f, separators=(",", ":"))

    default = {"useCats": 1, "imgIds": None, "catIds": None, "maxDets": [1, 10, 100]}
    nocats = dict(default, useCats=0)
    sets = {"basic": basic(), "maxdets": maxdets(), "random": random_set(),
            "random_bbox": random_set(bbox=True),
            "good": random_set(seed=7, n_images=24, n_cats=3, good=True)}
    for name, b in sets.items():
        if name != "random_bbox":  # the same objects as `random`
            write(f"{name}_gt.json", b.gt_json())
        write(f"{name}_dt.json", b.dets)
    rnd_imgs = sorted(img["id"] for img in sets["random"].images)
    cases = [
        run_case(args.out, "basic", "basic_gt.json", "basic_dt.json", default),
        run_case(args.out, "basic_nocats", "basic_gt.json", "basic_dt.json", nocats),
        run_case(args.out, "maxdets", "maxdets_gt.json", "maxdets_dt.json", default),
        run_case(args.out, "random", "random_gt.json", "random_dt.json", default),
        run_case(args.out, "random_nocats", "random_gt.json", "random_dt.json", nocats),
        run_case(args.out, "random_params", "random_gt.json", "random_dt.json",
                 {"useCats": 1, "imgIds": rnd_imgs[::3] + [rnd_imgs[0]], "catIds": [4, 2, 5],
                  "maxDets": [20, 2, 5]}, with_scores=False),
        run_case(args.out, "random_bbox", "random_gt.json", "random_bbox_dt.json", default,
                 with_scores=False),
        run_case(args.out, "good", "good_gt.json", "good_dt.json", default, with_scores=False),
    ]
    write("cases.json", cases)
    for c in cases:
        print(c["name"], " ".join(f"{s:.4f}" for s in c["stats"]))


if __name__ == "__main__":
    main()
