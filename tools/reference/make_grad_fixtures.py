#!/usr/bin/env python3
"""Training parity: the official model's parameter gradients for sam-burn's tests.

The official code has no training loop, but every module is differentiable: this script runs a
tiny random model (the reference's own modules, `make_fixtures.build`) forward on a batch of two
images, decodes a prompt batch for each, takes a fixed random linear function of every mask
logit and IoU prediction as the loss, and records PyTorch autograd's gradient of every
`state_dict` tensor. `crates/sam-model/tests/gradients.rs` runs the same on flex's autodiff
device and compares them, key by key.

The config is sized so that the CPU training path's own kernels take part (they need 2^14
values or more): 12 x 12 tokens of 8 x 8 pixels, 4 heads, windows of 7 (padded 12 -> 14), one global block.

    python tools/reference/make_grad_fixtures.py --out crates/sam-model/tests/fixtures

Writes NAME.pth (the state_dict, torch.save), NAME.json (the SamConfig) and
NAME_grads.safetensors: the inputs, the forward outputs, the loss weights, the loss and
`grad/<state_dict key>` for every tensor (zeros where autograd gives none).
"""
import argparse
import json
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import build, perturb  # noqa: E402

NAME = "sam_tiny_grad"
CONFIG = dict(
    image_size=96, patch_size=8, encoder_embed_dim=64, encoder_depth=2,
    encoder_num_heads=4, encoder_mlp_ratio=4.0, window_size=7,
    encoder_global_attn_indexes=[1], prompt_embed_dim=32, mask_in_chans=8,
    decoder_depth=2, decoder_mlp_dim=64, decoder_num_heads=2,
    num_multimask_outputs=3, iou_head_depth=3, iou_head_hidden_dim=32,
)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="crates/sam-model/tests/fixtures")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(4321)
    model = build(CONFIG)
    perturb(model, gen)
    state = model.state_dict()
    torch.save(state, os.path.join(args.out, f"{NAME}.pth"))
    with open(os.path.join(args.out, f"{NAME}.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)

    s = CONFIG["image_size"]
    low = 4 * (s // CONFIG["patch_size"])

    def randn(*shape, std=1.0):
        return torch.randn(shape, generator=gen) * std

    def coords(n, k):
        return torch.rand((n, k, 2), generator=gen) * (s - 1)

    def boxes(n):
        corners = torch.rand((n, 2, 2), generator=gen) * (s - 1)
        lo, hi = corners.min(dim=1).values, corners.max(dim=1).values
        return torch.cat([lo, hi], dim=1)

    out = {"input/image": randn(2, 3, s, s)}
    # Image 0: one prompt of a positive and a negative point (padded with a not-a-point) and a
    # mask, multimask. Image 1: two prompts of a box and a point each, no mask, one mask out.
    prompts = [
        dict(points=(coords(1, 2), torch.tensor([[1, 0]])), boxes=None,
             masks=randn(1, 1, low, low, std=3.0), multimask=True),
        dict(points=(coords(2, 1), torch.tensor([[1], [0]])), boxes=boxes(2), masks=None,
             multimask=False),
    ]

    model.train()
    emb = model.image_encoder(out["input/image"])
    loss = torch.zeros(())
    for i, p in enumerate(prompts):
        key = f"image{i}"
        out[f"{key}/point_coords"], out[f"{key}/point_labels"] = p["points"]
        if p["boxes"] is not None:
            out[f"{key}/boxes"] = p["boxes"]
        if p["masks"] is not None:
            out[f"{key}/mask_input"] = p["masks"]
        sparse, dense = model.prompt_encoder(points=p["points"], boxes=p["boxes"], masks=p["masks"])
        masks, iou = model.mask_decoder(
            image_embeddings=emb[i:i + 1], image_pe=model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
            multimask_output=p["multimask"])
        w_masks, w_iou = randn(*masks.shape), randn(*iou.shape)
        out[f"{key}/low_res_masks"] = masks.detach().contiguous()
        out[f"{key}/iou_predictions"] = iou.detach().contiguous()
        out[f"{key}/mask_weights"] = w_masks
        out[f"{key}/iou_weights"] = w_iou
        loss = loss + (masks * w_masks).sum() + (iou * w_iou).sum()
    out["embedding"] = emb.detach().contiguous()
    out["loss"] = loss.detach().reshape(1)
    loss.backward()

    params = dict(model.named_parameters())
    for key, value in state.items():
        grad = params[key].grad if key in params else None
        out[f"grad/{key}"] = (torch.zeros_like(value) if grad is None else grad).contiguous()
    missing = [k for k in state if k in params and params[k].grad is None]
    print(f"{len(state)} tensors; without a gradient: {missing}")
    save_file({k: v.contiguous() for k, v in out.items()},
              os.path.join(args.out, f"{NAME}_grads.safetensors"))
    print(f"loss {loss.item():.6f}; wrote {NAME}.pth, {NAME}.json, {NAME}_grads.safetensors")


if __name__ == "__main__":
    main()
