#!/usr/bin/env python3
"""A tiny official model resampled to other input sizes, and the official model's outputs there.

Requires `torch`, `timm`, `segment-anything`, `safetensors` (PyPI), on CPU.

    python tools/reference/make_input_size_fixtures.py --fixtures crates/sam-model/tests/fixtures

The committed `sam_tiny.pth` (input 144, a 9x9 token grid) is resampled to each size in SIZES:
the absolute position embedding with timm's `resample_abs_pos_embed_nhwc` (bicubic, antialiased),
the global blocks' relative-position tables with `F.interpolate(mode="linear")`, as the
reference's `get_rel_pos` resizes them at run time. The official model is then built at that
size, loads the resampled state dict strictly, and its outputs are recorded in
`sam_tiny_at_SIZE_outputs.safetensors`: the resampled tensors, the input, the image embedding, and the
low-res masks, IoU predictions and full-size logits of a few prompts.
"""
import argparse
import os

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from segment_anything.utils.transforms import ResizeLongestSide
from timm.layers import resample_abs_pos_embed_nhwc

from make_fixtures import CONFIGS, build, test_image

SIZES = [96, 224]


def resample_state(state, cfg, size):
    grid = size // cfg["patch_size"]
    out = dict(state)
    out["image_encoder.pos_embed"] = resample_abs_pos_embed_nhwc(
        state["image_encoder.pos_embed"], [grid, grid])
    for i in cfg["encoder_global_attn_indexes"]:
        for axis in "hw":
            key = f"image_encoder.blocks.{i}.attn.rel_pos_{axis}"
            t = state[key]
            r = F.interpolate(t.reshape(1, t.shape[0], -1).permute(0, 2, 1),
                              size=2 * grid - 1, mode="linear")
            out[key] = r.reshape(-1, 2 * grid - 1).permute(1, 0).contiguous()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", default="crates/sam-model/tests/fixtures")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    name = "sam_tiny"
    state = torch.load(os.path.join(args.fixtures, f"{name}.pth"), weights_only=True)
    for size in SIZES:
        cfg = dict(CONFIGS[name], image_size=size)
        resampled = resample_state(state, cfg, size)
        model = build(cfg)
        model.load_state_dict(resampled, strict=True)

        gen = torch.Generator().manual_seed(size)
        oh, ow = 83, 121
        image = test_image(oh, ow, gen)
        transform = ResizeLongestSide(size)
        x = torch.as_tensor(transform.apply_image(image)).permute(2, 0, 1).contiguous()[None]
        x = x.float()
        input_size = tuple(x.shape[-2:])
        emb = model.image_encoder(model.preprocess(x))
        out = {"image/input": x, "image/input_size": torch.tensor(input_size),
               "image/original_size": torch.tensor([oh, ow]), "encoder/embedding": emb}
        for key in ["image_encoder.pos_embed"] + [
                f"image_encoder.blocks.{i}.attn.rel_pos_{a}"
                for i in cfg["encoder_global_attn_indexes"] for a in "hw"]:
            out[f"resampled/{key}"] = resampled[key]

        def coords(pts):
            return torch.as_tensor(transform.apply_coords(np.array(pts, dtype=np.float64),
                                                          (oh, ow)), dtype=torch.float)

        cases = {
            "points": dict(points=(coords([[ow * 0.3, oh * 0.4], [ow * 0.7, oh * 0.6]])[None],
                                   torch.tensor([[1, 0]]))),
            "box": dict(boxes=torch.as_tensor(transform.apply_boxes(
                np.array([[ow * 0.1, oh * 0.2, ow * 0.8, oh * 0.9]]), (oh, ow)),
                dtype=torch.float)),
        }
        for case, prompt in cases.items():
            sparse, dense = model.prompt_encoder(points=prompt.get("points"),
                                                 boxes=prompt.get("boxes"), masks=None)
            low, iou = model.mask_decoder(
                image_embeddings=emb, image_pe=model.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                multimask_output=True)
            if "points" in prompt:
                out[f"case/{case}/point_coords"] = prompt["points"][0]
                out[f"case/{case}/point_labels"] = prompt["points"][1]
            if "boxes" in prompt:
                out[f"case/{case}/boxes"] = prompt["boxes"]
            out[f"case/{case}/low_res_masks"] = low
            out[f"case/{case}/iou_predictions"] = iou
            out[f"case/{case}/masks"] = model.postprocess_masks(low, input_size, (oh, ow))
        save_file({k: v.contiguous() for k, v in out.items()},
                  os.path.join(args.fixtures, f"{name}_at_{size}_outputs.safetensors"))
        print(f"{name} at {size}: grid {size // cfg['patch_size']}, input {input_size}")


if __name__ == "__main__":
    main()
