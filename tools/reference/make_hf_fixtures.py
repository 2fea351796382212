#!/usr/bin/env python3
"""Hugging Face `transformers` SamModel folders of the tiny parity models, and their outputs.

Requires `transformers` 5.x, `torch`, `segment-anything`, `safetensors` (PyPI), on CPU.

    python tools/reference/make_hf_fixtures.py --fixtures crates/sam-model/tests/fixtures

For each tiny model NAME of make_fixtures.py (its committed NAME.pth is the source of the weights),
the official state dict is renamed to the Hugging Face layout, loaded strictly into
`transformers.SamModel`, and written as the Hub publishes SAM:
  hf_sam_tiny/      config.json + model.safetensors (save_pretrained)
  hf_sam_tiny_b/    config.json + pytorch_model.bin (torch.save of the state dict)
  hf_NAME_outputs.safetensors   SamModel's image embeddings, low-res masks and IoU scores for
                                the prompt cases of NAME_cases.json (same inputs)
"""
import argparse
import json
import os
import re

import torch
from safetensors.torch import load_file, save_file
from transformers import SamConfig, SamModel

from make_fixtures import CONFIGS, build

# Official name → Hugging Face name, applied in order.
RENAMES = [
    (r"^image_encoder\.patch_embed\.proj\.", "vision_encoder.patch_embed.projection."),
    (r"^image_encoder\.blocks\.(\d+)\.norm(\d)\.", r"vision_encoder.layers.\1.layer_norm\2."),
    (r"^image_encoder\.blocks\.", "vision_encoder.layers."),
    (r"^image_encoder\.neck\.0\.", "vision_encoder.neck.conv1."),
    (r"^image_encoder\.neck\.1\.", "vision_encoder.neck.layer_norm1."),
    (r"^image_encoder\.neck\.2\.", "vision_encoder.neck.conv2."),
    (r"^image_encoder\.neck\.3\.", "vision_encoder.neck.layer_norm2."),
    (r"^image_encoder\.", "vision_encoder."),
    (r"^prompt_encoder\.pe_layer\.positional_encoding_gaussian_matrix$",
     "shared_image_embedding.positional_embedding"),
    (r"^prompt_encoder\.point_embeddings\.", "prompt_encoder.point_embed."),
    (r"^prompt_encoder\.mask_downscaling\.0\.", "prompt_encoder.mask_embed.conv1."),
    (r"^prompt_encoder\.mask_downscaling\.1\.", "prompt_encoder.mask_embed.layer_norm1."),
    (r"^prompt_encoder\.mask_downscaling\.3\.", "prompt_encoder.mask_embed.conv2."),
    (r"^prompt_encoder\.mask_downscaling\.4\.", "prompt_encoder.mask_embed.layer_norm2."),
    (r"^prompt_encoder\.mask_downscaling\.6\.", "prompt_encoder.mask_embed.conv3."),
    (r"^mask_decoder\.transformer\.layers\.(\d+)\.norm(\d)\.",
     r"mask_decoder.transformer.layers.\1.layer_norm\2."),
    (r"^mask_decoder\.transformer\.norm_final_attn\.",
     "mask_decoder.transformer.layer_norm_final_attn."),
    (r"^mask_decoder\.output_upscaling\.0\.", "mask_decoder.upscale_conv1."),
    (r"^mask_decoder\.output_upscaling\.1\.", "mask_decoder.upscale_layer_norm."),
    (r"^mask_decoder\.output_upscaling\.3\.", "mask_decoder.upscale_conv2."),
]


def mlp_rename(key, prefix, depth):
    m = re.match(rf"^({prefix})\.layers\.(\d+)\.(.*)$", key)
    if not m:
        return key
    i = int(m.group(2))
    if i == 0:
        part = "proj_in"
    elif i == depth - 1:
        part = "proj_out"
    else:
        part = f"layers.{i - 1}"
    return f"{m.group(1)}.{part}.{m.group(3)}"


def to_hf(state, cfg):
    out = {}
    for k, v in state.items():
        for a, b in RENAMES:
            k = re.sub(a, b, k)
        k = mlp_rename(k, r"mask_decoder\.output_hypernetworks_mlps\.\d+", 3)
        k = mlp_rename(k, r"mask_decoder\.iou_prediction_head", cfg["iou_head_depth"])
        out[k] = v
    return out


def hf_config(cfg):
    s, p, c = cfg["image_size"], cfg["patch_size"], cfg["prompt_embed_dim"]
    return SamConfig(
        vision_config=dict(
            hidden_size=cfg["encoder_embed_dim"], output_channels=c,
            num_hidden_layers=cfg["encoder_depth"], num_attention_heads=cfg["encoder_num_heads"],
            image_size=s, patch_size=p, mlp_ratio=cfg["encoder_mlp_ratio"],
            mlp_dim=int(cfg["encoder_embed_dim"] * cfg["encoder_mlp_ratio"]),
            window_size=cfg["window_size"], global_attn_indexes=cfg["encoder_global_attn_indexes"],
            num_pos_feats=c // 2,
        ),
        prompt_encoder_config=dict(
            hidden_size=c, image_size=s, patch_size=p, mask_input_channels=cfg["mask_in_chans"],
        ),
        mask_decoder_config=dict(
            hidden_size=c, mlp_dim=cfg["decoder_mlp_dim"], num_hidden_layers=cfg["decoder_depth"],
            num_attention_heads=cfg["decoder_num_heads"],
            num_multimask_outputs=cfg["num_multimask_outputs"],
            iou_head_depth=cfg["iou_head_depth"], iou_head_hidden_dim=cfg["iou_head_hidden_dim"],
        ),
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", default="crates/sam-model/tests/fixtures")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    layouts = {"sam_tiny": "safetensors", "sam_tiny_b": "bin"}
    for name, layout in layouts.items():
        cfg = CONFIGS[name]
        state = torch.load(os.path.join(args.fixtures, f"{name}.pth"), weights_only=True)
        official = build(cfg)
        official.load_state_dict(state, strict=True)

        hf = SamModel(hf_config(cfg)).eval()
        missing, unexpected = hf.load_state_dict(to_hf(state, cfg), strict=False)
        # The prompt encoder's tied copy of the shared embedding is the only key not renamed.
        assert unexpected == [], unexpected
        assert all("shared_embedding" in k for k in missing), missing
        hf.prompt_encoder.shared_embedding = hf.shared_image_embedding

        folder = os.path.join(args.fixtures, f"hf_{name}")
        os.makedirs(folder, exist_ok=True)
        if layout == "safetensors":
            hf.save_pretrained(folder)
        else:
            hf.config.save_pretrained(folder)
            torch.save(hf.state_dict(), os.path.join(folder, "pytorch_model.bin"))

        ref = load_file(os.path.join(args.fixtures, f"{name}_outputs.safetensors"))
        meta = json.load(open(os.path.join(args.fixtures, f"{name}_cases.json")))
        out = {}
        emb = hf.get_image_embeddings(ref["image/preprocessed"])
        out["image_embeddings"] = emb.contiguous()
        worst = (emb - ref["encoder/embedding"]).abs().max().item()
        for case in meta["cases"]:
            key = f"case/{case['name']}"
            kw = dict(image_embeddings=emb, multimask_output=case["multimask"])
            if case["points"]:
                kw["input_points"] = ref[f"{key}/point_coords"][None]
                kw["input_labels"] = ref[f"{key}/point_labels"][None]
            if case["boxes"]:
                kw["input_boxes"] = ref[f"{key}/boxes"][None]
            if case["masks"]:
                kw["input_masks"] = ref[f"{key}/mask_input"]
            res = hf(**kw)
            low = res.pred_masks[0].contiguous()
            iou = res.iou_scores[0].contiguous()
            out[f"{key}/low_res_masks"] = low
            out[f"{key}/iou_predictions"] = iou
            worst = max(worst, (low - ref[f"{key}/low_res_masks"]).abs().max().item())
        save_file(out, os.path.join(args.fixtures, f"hf_{name}_outputs.safetensors"))
        print(f"{name}: HF folder ({layout}) written; max |HF - official| = {worst:.2e}")


if __name__ == "__main__":
    main()
