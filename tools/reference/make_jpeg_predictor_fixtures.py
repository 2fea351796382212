#!/usr/bin/env python3
"""The official SamPredictor on JPEG files decoded as its users decode them (`cv2.imread`).

Requires `torch`, `segment-anything`, `opencv-python-headless`, `Pillow`, `safetensors` (PyPI).

    python tools/reference/make_jpeg_predictor_fixtures.py \
        --model crates/sam-model/tests/fixtures --out crates/sam-predictor/tests/fixtures

Writes JPEGs of a smooth, noisy scene (4:2:0 baseline, progressive 4:4:4, and a 4:2:2 file with
EXIF orientation 6, which cv2.imread rotates) and, for each, the official predictor's outputs
with the committed `sam_tiny` model on `cv2.imread(path)[..., ::-1]`: points (multimask), a box
with full-size logits, recorded in `jpeg_outputs.safetensors` / `jpeg_cases.json`.
"""
import argparse
import io
import json
import os

import cv2
import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from segment_anything import SamPredictor

from make_fixtures import CONFIGS, build, test_image

FILES = {
    "scene_420.jpg": dict(quality=80, subsampling=2),
    "scene_444_progressive.jpg": dict(quality=92, subsampling=0, progressive=True),
    "scene_422_exif6.jpg": dict(quality=85, subsampling=1, orientation=6),
}


def write_jpeg(path, image, quality, subsampling, progressive=False, orientation=None):
    img = Image.fromarray(image)
    kw = dict(quality=quality, subsampling=subsampling, progressive=progressive)
    if orientation:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kw["exif"] = exif.tobytes()
    img.save(path, "JPEG", **kw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="crates/sam-model/tests/fixtures")
    ap.add_argument("--out", default="crates/sam-predictor/tests/fixtures")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_grad_enabled(False)
    model = build(CONFIGS["sam_tiny"])
    model.load_state_dict(torch.load(os.path.join(args.model, "sam_tiny.pth"), weights_only=True))
    predictor = SamPredictor(model)
    gen = torch.Generator().manual_seed(99)
    scene = test_image(97, 131, gen)
    out, cases = {}, []
    for name, opts in FILES.items():
        path = os.path.join(args.out, name)
        write_jpeg(path, scene, **opts)
        image = cv2.imread(path)[..., ::-1].copy()  # as the reference's scripts/amg.py
        pil = np.asarray(Image.open(path).convert("RGB"))
        if opts.get("orientation") is None:
            assert (pil == image).all(), f"{name}: Pillow and OpenCV differ"
        h, w = image.shape[:2]
        predictor.set_image(image)
        pts = np.array([[w * 0.35, h * 0.4], [w * 0.7, h * 0.65]])
        masks, iou, low = predictor.predict(point_coords=pts, point_labels=np.array([1, 0]),
                                            multimask_output=True)
        out[f"{name}/points/masks"] = torch.as_tensor(masks).to(torch.uint8)
        out[f"{name}/points/iou_predictions"] = torch.as_tensor(iou)
        out[f"{name}/points/low_res_logits"] = torch.as_tensor(low)
        box = np.array([w * 0.1, h * 0.15, w * 0.8, h * 0.9])
        logits, iou, low = predictor.predict(box=box, multimask_output=False, return_logits=True)
        out[f"{name}/box/masks"] = torch.as_tensor(logits)
        out[f"{name}/box/iou_predictions"] = torch.as_tensor(iou)
        out[f"{name}/box/low_res_logits"] = torch.as_tensor(low)
        out[f"{name}/image"] = torch.as_tensor(image).contiguous()
        cases.append(dict(file=name, height=h, width=w, points=pts.tolist(), labels=[1, 0],
                          box=box.tolist()))
        print(f"{name}: {w}x{h}")
    save_file({k: v.contiguous() for k, v in out.items()},
              os.path.join(args.out, "jpeg_outputs.safetensors"))
    with open(os.path.join(args.out, "jpeg_cases.json"), "w") as f:
        json.dump(dict(cases=cases, opencv=cv2.__version__), f, indent=2)


if __name__ == "__main__":
    main()
