#!/usr/bin/env python3
"""A synthetic SA-1B-format domain unlike the Rust generator's (textured backgrounds, ellipses, stars,
bars, 160-320 px), for the LoRA domain-shift measurement in docs/training.md.

    python tools/experiments/make_shifted_shapes.py   # writes /tmp/shift/{train,val}

Needs numpy, Pillow and pycocotools (PyPI)."""
import json, os, sys, numpy as np
from PIL import Image, ImageDraw
from pycocotools import mask as mu
def make(out, n, seed, first):
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        iid = first + i
        w, h = int(rng.integers(160, 321)), int(rng.integers(160, 321))
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([128 + 60*np.sin(xx/rng.uniform(5,20)), 128 + 60*np.cos(yy/rng.uniform(5,20)), 128 + 40*np.sin((xx+yy)/rng.uniform(5,20))], -1)
        base += rng.normal(0, 25, base.shape)
        img = np.clip(base, 0, 255).astype(np.uint8)
        masks = []
        for k in range(int(rng.integers(3, 9))):
            m = Image.new('L', (w, h), 0); d = ImageDraw.Draw(m)
            cx, cy = rng.uniform(0, w), rng.uniform(0, h); r = rng.uniform(12, min(w, h)/3)
            kind = rng.integers(0, 3)
            if kind == 0:
                d.ellipse([cx-r, cy-r*rng.uniform(0.4,1), cx+r, cy+r*rng.uniform(0.4,1)], fill=1)
            elif kind == 1:
                a = rng.uniform(0, 2*np.pi); nv = int(rng.integers(5, 8))
                pts = [(cx + r*(0.5+0.5*(j%2))*np.cos(a+2*np.pi*j/nv), cy + r*(0.5+0.5*(j%2))*np.sin(a+2*np.pi*j/nv)) for j in range(nv)]
                d.polygon(pts, fill=1)
            else:
                d.rectangle([cx-r, cy-r/2, cx+r, cy+r/2], fill=1)
            mk = np.array(m, bool)
            col = rng.integers(0, 256, 3)
            tex = rng.normal(0, 12, (h, w, 3))
            img[mk] = np.clip(col + tex[mk], 0, 255).astype(np.uint8)
            masks = [mm & ~mk for mm in masks] + [mk]
        anns = []
        for k, mk in enumerate(masks):
            if mk.sum() < 40: continue
            rle = mu.encode(np.asfortranarray(mk.astype(np.uint8)))
            bb = mu.toBbox(rle).tolist()
            anns.append(dict(id=iid*100+k, segmentation=dict(size=[h, w], counts=rle['counts'].decode()), bbox=bb, area=float(mk.sum()), predicted_iou=1.0, stability_score=1.0, point_coords=[[bb[0]+bb[2]/2, bb[1]+bb[3]/2]], crop_box=[0,0,w,h]))
        Image.fromarray(img).save(f'{out}/sa_{iid}.jpg', quality=92)
        json.dump(dict(image=dict(image_id=iid, width=w, height=h, file_name=f'sa_{iid}.jpg'), annotations=anns), open(f'{out}/sa_{iid}.json', 'w'))
make('/tmp/shift/train', 240, 1, 1); make('/tmp/shift/val', 40, 2, 100000)
