#!/usr/bin/env python3
"""Official SamAutomaticMaskGenerator outputs for sam-amg's parity tests.

    python tools/reference/make_amg_fixtures.py --out crates/sam-amg/tests/fixtures

The model is `sam_tiny` from make_fixtures.py with its hypernetwork outputs scaled by 30, so that
random weights give decisive logits (stability scores spread over (0, 1) instead of all 0); it is
saved as `sam_tiny_amg.pth`. The image is a smooth synthetic 75×107 PNG. Each setting's records
are stored in the generator's output order, masks as pycocotools' compressed RLE strings.

The random model's masks touch every sub-crop's edge, so none of its crops' masks survive. The
`demo_*` settings therefore run the bundled demo model (`assets/demo_model`, a small SAM trained
on synthetic shapes) on `assets/scene.png`, whose objects' masks do survive in sub-crops: that
is what checks un-cropping boxes, points and masks and the crop NMS. Its weights are read in the
official layout from `demo_model.safetensors`, which sam-amg's tests check against the bundled
`.bpk` (written once by `Sam::save_official_safetensors`).
"""
import argparse
import json
import os
import sys

import cv2
import numpy as np
import torch
import torchvision
from PIL import Image
from pycocotools import mask as mask_utils
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(__file__))
from make_fixtures import CONFIGS, build  # noqa: E402
from segment_anything import SamAutomaticMaskGenerator  # noqa: E402

SETTINGS = {
    # No duplicate removal: every mask that passes the filters, in batch order.
    "all": dict(points_per_side=4, points_per_batch=5, pred_iou_thresh=0.0,
                stability_score_thresh=0.1, box_nms_thresh=1.0),
    "nms": dict(points_per_side=8, pred_iou_thresh=0.0, stability_score_thresh=0.1,
                box_nms_thresh=0.7),
    "iou_filter": dict(points_per_side=4, pred_iou_thresh=0.3, stability_score_thresh=0.0,
                       stability_score_offset=0.5, box_nms_thresh=1.0),
    "crops": dict(points_per_side=4, points_per_batch=8, pred_iou_thresh=0.0,
                  stability_score_thresh=0.05, box_nms_thresh=1.0, crop_nms_thresh=0.95,
                  crop_n_layers=1, crop_n_points_downscale_factor=2, crop_overlap_ratio=0.3),
    "small_regions": dict(points_per_side=3, pred_iou_thresh=0.0, stability_score_thresh=0.1,
                          box_nms_thresh=1.0, min_mask_region_area=30),
    # Explicit grids (the reference ignores the ones past the last layer).
    "grids": dict(points_per_side=None, point_grids=[
        [[0.1, 0.2], [0.5, 0.5], [0.9, 0.3], [0.3, 0.85], [0.7, 0.7]],
        [[0.5, 0.5]]], pred_iou_thresh=0.0, stability_score_thresh=0.1, box_nms_thresh=1.0),
}

# Settings whose records also keep the reference's uncompressed RLE counts (output_mode
# "uncompressed_rle", which the test runs too).
UNCOMPRESSED = {"demo_crops", "grids"}

# The demo model on the bundled scene (320×240): masks of sub-crops survive.
DEMO_SETTINGS = {
    "demo_crops": dict(points_per_side=8, crop_n_layers=1, crop_n_points_downscale_factor=1,
                       pred_iou_thresh=0.0, stability_score_thresh=0.3, box_nms_thresh=0.7),
    "demo_crops_2": dict(points_per_side=6, crop_n_layers=2, crop_n_points_downscale_factor=2,
                         pred_iou_thresh=0.0, stability_score_thresh=0.3),
}


def components():
    """Reference outputs of the building blocks on synthetic inputs."""
    from segment_anything.utils.amg import (build_point_grid, generate_crop_boxes,
                                            remove_small_regions)
    from torchvision.ops import batched_nms
    rng = np.random.default_rng(3)
    comp = {}
    comp["crop_boxes"] = [dict(size=list(sz), n_layers=n, ratio=r,
                               result=generate_crop_boxes(sz, n, r))
                          for sz, n, r in [((75, 107), 2, 512 / 1500), ((1000, 1500), 3, 0.25),
                                           ((33, 31), 1, 0.5)]]
    comp["point_grids"] = {str(n): build_point_grid(n).tolist() for n in (1, 5, 7, 32)}
    boxes = rng.integers(0, 60, (40, 2)).astype(np.float32)
    boxes = np.concatenate([boxes, boxes + rng.integers(0, 40, (40, 2))], 1).astype(np.float32)
    boxes[5] = boxes[3]  # identical boxes
    boxes[7, 2:] = boxes[7, :2]  # zero area
    scores = rng.random(40).astype(np.float32)
    scores[10] = scores[11] = scores[12]  # ties
    comp["nms"] = dict(boxes=boxes.tolist(), scores=scores.tolist(), results={
        str(t): batched_nms(torch.as_tensor(boxes), torch.as_tensor(scores),
                            torch.zeros(40), t).tolist() for t in (0.0, 0.3, 0.7, 1.0)})
    cases = []
    for i in range(6):
        noise = rng.random((40, 50))
        mask = noise > (0.35 + 0.05 * i)
        for mode in ("holes", "islands"):
            for thresh in (3, 10, 40):
                out, changed = remove_small_regions(mask, thresh, mode)
                bits = lambda a: "".join("1" if v else "0" for v in np.asarray(a).ravel())
                cases.append(dict(h=40, w=50, mask=bits(mask), mode=mode, thresh=thresh,
                                  out=bits(out), changed=bool(changed)))
    comp["small_regions"] = cases
    return comp


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="crates/sam-amg/tests/fixtures")
    ap.add_argument("--models", default="crates/sam-model/tests/fixtures")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_grad_enabled(False)

    cfg = CONFIGS["sam_tiny"]
    model = build(cfg)
    model.load_state_dict(torch.load(os.path.join(args.models, "sam_tiny.pth")))
    for mlp in model.mask_decoder.output_hypernetworks_mlps:
        mlp.layers[-1].weight.mul_(30)
        mlp.layers[-1].bias.mul_(30)
    torch.save(model.state_dict(), os.path.join(args.out, "sam_tiny_amg.pth"))

    yy, xx = np.mgrid[0:75, 0:107].astype(np.float32)
    image = np.clip(np.stack([128 + 100 * np.sin(xx / 9.0) * np.cos(yy / 13.0),
                              128 + 90 * np.cos((xx + yy) / 17.0),
                              128 + 110 * np.sin(yy / 7.0)], -1), 0, 255).astype(np.uint8)
    Image.fromarray(image).save(os.path.join(args.out, "amg_image.png"))

    demo_cfg_path = os.path.join(os.path.dirname(__file__), "../../assets/demo_model/config.json")
    with open(demo_cfg_path) as f:
        demo = build(json.load(f))
    demo.load_state_dict(load_file(os.path.join(args.out, "demo_model.safetensors")), strict=True)
    demo.eval()
    scene = np.asarray(Image.open(os.path.join(
        os.path.dirname(__file__), "../../assets/scene.png")).convert("RGB"))

    result = {}
    runs = [(n, s, model, image, "amg_image") for n, s in SETTINGS.items()]
    runs += [(n, s, demo, scene, "scene") for n, s in DEMO_SETTINGS.items()]
    for name, settings, m, img, img_name in runs:
        kwargs = dict(settings)
        if kwargs.get("point_grids") is not None:
            kwargs["point_grids"] = [np.array(g) for g in kwargs["point_grids"]]
        amg = SamAutomaticMaskGenerator(m, output_mode="uncompressed_rle", **kwargs)
        # The official code raises an IndexError when nothing survives with crops; no setting
        # here may do that (the Rust side's empty result is tested on its own).
        records = amg.generate(img)
        out = []
        for r in records:
            seg = r["segmentation"]
            coco = mask_utils.frPyObjects(seg, *seg["size"])
            r = dict(r, segmentation=dict(size=seg["size"], counts=coco["counts"].decode()))
            if name in UNCOMPRESSED:
                r["uncompressed_counts"] = [int(c) for c in seg["counts"]]
            out.append(r)
        if name.startswith("demo"):
            full = [0, 0, img.shape[1], img.shape[0]]
            assert any(list(r["crop_box"]) != full for r in out), f"{name}: no sub-crop masks"
        result[name] = dict(settings=settings, records=out, image=img_name)
        print(name, len(out))
    result["versions"] = dict(torch=torch.__version__, torchvision=torchvision.__version__,
                              numpy=np.__version__, cv2=cv2.__version__)
    result["components"] = components()
    with open(os.path.join(args.out, "amg.json"), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
