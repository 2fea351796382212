#!/usr/bin/env python3
"""Builds tiny random SAM models with the official code and records every stage's output.

Requires only the reference (PyPI `segment-anything==1.0`, `torch`, `torchvision`, `numpy`,
`safetensors`), on CPU. The fixtures it writes are committed; Rust never needs Python.

    python tools/reference/make_fixtures.py --out crates/sam-model/tests/fixtures

For each tiny config NAME it writes:
  NAME.pth           the state_dict, saved with torch.save exactly as the official checkpoints
  NAME.safetensors   the same tensors under the same keys
  NAME.json          the SamConfig in sam-burn's flat JSON form
  NAME_outputs.safetensors  inputs and outputs of every stage (see `cases` below)
  NAME_cases.json    the prompt cases: which inputs each has, and multimask on/off
"""
import argparse
import json
import os
from functools import partial

import numpy as np
import torch
from safetensors.torch import save_file
from segment_anything import SamPredictor
from segment_anything.modeling import (
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    Sam,
    TwoWayTransformer,
)
from segment_anything.utils.transforms import ResizeLongestSide

CONFIGS = {
    # Odd 9x9 token grid, window 4 (padded to 12: 9 windows), global blocks 1 and 3.
    "sam_tiny": dict(
        image_size=144, patch_size=16, encoder_embed_dim=32, encoder_depth=4,
        encoder_num_heads=2, encoder_mlp_ratio=4.0, window_size=4,
        encoder_global_attn_indexes=[1, 3], prompt_embed_dim=32, mask_in_chans=8,
        decoder_depth=2, decoder_mlp_dim=64, decoder_num_heads=2,
        num_multimask_outputs=3, iou_head_depth=3, iou_head_hidden_dim=32,
        original_size=(75, 107),
    ),
    # 8x8 grid with window 3 (padded to 9), global block first, 3 heads, 2 multimask outputs,
    # a one-layer decoder and a two-layer IoU head: a config no preset has.
    "sam_tiny_b": dict(
        image_size=128, patch_size=16, encoder_embed_dim=48, encoder_depth=3,
        encoder_num_heads=3, encoder_mlp_ratio=2.0, window_size=3,
        encoder_global_attn_indexes=[0, 2], prompt_embed_dim=32, mask_in_chans=4,
        decoder_depth=1, decoder_mlp_dim=48, decoder_num_heads=4,
        num_multimask_outputs=2, iou_head_depth=2, iou_head_hidden_dim=24,
        original_size=(181, 133),
    ),
}


def build(cfg):
    s, p = cfg["image_size"], cfg["patch_size"]
    e = s // p
    c = cfg["prompt_embed_dim"]
    return Sam(
        image_encoder=ImageEncoderViT(
            depth=cfg["encoder_depth"], embed_dim=cfg["encoder_embed_dim"], img_size=s,
            mlp_ratio=cfg["encoder_mlp_ratio"], norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=cfg["encoder_num_heads"], patch_size=p, qkv_bias=True, use_rel_pos=True,
            global_attn_indexes=cfg["encoder_global_attn_indexes"],
            window_size=cfg["window_size"], out_chans=c,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=c, image_embedding_size=(e, e), input_image_size=(s, s),
            mask_in_chans=cfg["mask_in_chans"],
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=cfg["num_multimask_outputs"],
            transformer=TwoWayTransformer(
                depth=cfg["decoder_depth"], embedding_dim=c, mlp_dim=cfg["decoder_mlp_dim"],
                num_heads=cfg["decoder_num_heads"],
            ),
            transformer_dim=c, iou_head_depth=cfg["iou_head_depth"],
            iou_head_hidden_dim=cfg["iou_head_hidden_dim"],
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    ).eval()


def perturb(model, gen):
    # Zero-initialised tensors (rel-pos tables, pos_embed, biases) must matter in the test.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.1)


def test_image(h, w, gen):
    # Smooth gradients plus noise: resizing and thresholds see realistic structure.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([
        128 + 100 * np.sin(xx / 9.0) * np.cos(yy / 13.0),
        128 + 90 * np.cos((xx + yy) / 17.0),
        128 + 110 * np.sin(yy / 7.0),
    ], axis=-1)
    noise = torch.randint(-20, 21, (h, w, 3), generator=gen).numpy()
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="crates/sam-model/tests/fixtures")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_grad_enabled(False)

    for name, cfg in CONFIGS.items():
        torch.manual_seed(0)
        gen = torch.Generator().manual_seed(1234)
        model = build(cfg)
        perturb(model, gen)

        state = model.state_dict()
        torch.save(state, os.path.join(args.out, f"{name}.pth"))
        save_file({k: v.contiguous() for k, v in state.items()},
                  os.path.join(args.out, f"{name}.safetensors"))
        flat = {k: v for k, v in cfg.items() if k != "original_size"}
        with open(os.path.join(args.out, f"{name}.json"), "w") as f:
            json.dump(flat, f, indent=2)

        s = cfg["image_size"]
        e = s // cfg["patch_size"]
        oh, ow = cfg["original_size"]
        image = test_image(oh, ow, gen)
        transform = ResizeLongestSide(s)
        resized = transform.apply_image(image)  # HWC uint8, as SamPredictor.set_image
        x = torch.as_tensor(resized).permute(2, 0, 1).contiguous()[None].float()
        input_size = tuple(x.shape[-2:])

        out = {"image/original": torch.as_tensor(image).permute(2, 0, 1).float().contiguous(),
               "image/input": x}
        pre = model.preprocess(x)
        out["image/preprocessed"] = pre
        enc = model.image_encoder
        t = enc.patch_embed(pre) + enc.pos_embed
        out["encoder/patch_embed"] = t
        for i, blk in enumerate(enc.blocks):
            t = blk(t)
            out[f"encoder/block{i}"] = t
        emb = enc.neck(t.permute(0, 3, 1, 2))
        out["encoder/embedding"] = emb
        dense_pe = model.prompt_encoder.get_dense_pe()
        out["prompt/dense_pe"] = dense_pe

        def pts(coords_xy, labels):
            c = transform.apply_coords(np.array(coords_xy, dtype=np.float64), (oh, ow))
            return torch.as_tensor(c, dtype=torch.float), torch.as_tensor(labels, dtype=torch.int64)

        def bxs(b):
            bb = transform.apply_boxes(np.array(b, dtype=np.float64), (oh, ow))
            return torch.as_tensor(bb, dtype=torch.float)

        w0, h0 = ow, oh
        cases = []
        p1 = pts([[w0 * 0.3, h0 * 0.4], [w0 * 0.7, h0 * 0.6]], [1, 0])
        p_single = pts([[w0 * 0.5, h0 * 0.5]], [1])
        p_pad = pts([[w0 * 0.2, h0 * 0.8], [w0 * 0.6, h0 * 0.1], [w0 * 0.9, h0 * 0.9]], [1, -1, 0])
        box = bxs([[w0 * 0.1, h0 * 0.2, w0 * 0.8, h0 * 0.9]])
        boxes3 = bxs([[w0 * 0.1, h0 * 0.2, w0 * 0.8, h0 * 0.9],
                      [0, 0, w0 * 0.5, h0 * 0.5],
                      [w0 * 0.4, h0 * 0.3, w0 - 1, h0 - 1]])
        pb = pts([[[w0 * 0.3, h0 * 0.3], [w0 * 0.6, h0 * 0.2], [w0 * 0.5, h0 * 0.7]],
                  [[w0 * 0.8, h0 * 0.8], [w0 * 0.1, h0 * 0.9], [w0 * 0.4, h0 * 0.4]]],
                 [[1, 1, 0], [1, 0, -1]])

        def run(case_name, points=None, boxes=None, masks=None, multimask=True, full=False):
            sparse, dense = model.prompt_encoder(points=points, boxes=boxes, masks=masks)
            low, iou = model.mask_decoder(
                image_embeddings=emb, image_pe=dense_pe, sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense, multimask_output=multimask)
            masks_full = model.postprocess_masks(low, input_size, (oh, ow))
            key = f"case/{case_name}"
            if points is not None:
                out[f"{key}/point_coords"] = points[0]
                out[f"{key}/point_labels"] = points[1]
            if boxes is not None:
                out[f"{key}/boxes"] = boxes
            if masks is not None:
                out[f"{key}/mask_input"] = masks
            if sparse.shape[1] > 0:
                out[f"{key}/sparse"] = sparse
            out[f"{key}/dense"] = dense.contiguous()
            out[f"{key}/low_res_masks"] = low.contiguous()
            out[f"{key}/iou_predictions"] = iou.contiguous()
            if full:  # full-size logits only where they add coverage: they dominate the size
                out[f"{key}/masks"] = masks_full.contiguous()
            cases.append(dict(name=case_name, points=points is not None, boxes=boxes is not None,
                              masks=masks is not None, multimask=multimask, full=full))
            return low, iou

        low, iou = run("points_pos_neg", points=(p1[0][None], p1[1][None]), full=True)
        run("point_single", points=(p_single[0][None], p_single[1][None]), multimask=False)
        run("point_single_multi", points=(p_single[0][None], p_single[1][None]))
        run("points_pad_label", points=(p_pad[0][None], p_pad[1][None]))
        run("box", boxes=box, multimask=False, full=True)
        run("box_point", points=(p_single[0][None], p_single[1][None]), boxes=box, multimask=False)
        best = low[0, int(iou[0].argmax())][None, None].contiguous()
        run("mask_point", points=(p_single[0][None], p_single[1][None]), masks=best)
        run("mask_only", masks=best, multimask=False)
        run("boxes_batch", boxes=boxes3, multimask=False, full=True)
        run("points_batch", points=pb)
        run("boxes_points_batch", points=(pb[0][:, :1], pb[1][:, :1]), boxes=boxes3[:2])
        # No prompt at all (the decoder sees its output tokens and `no_mask_embed` alone), and
        # point labels past 0/1, which get the positional encoding alone.
        run("no_prompt", multimask=False)
        run("points_labels_2_3", points=(pb[0][:1], torch.as_tensor([[2, 3, 1]])))

        # The official SamPredictor, prompts in original-image pixels (float64 as numpy gives).
        predictor = SamPredictor(model)
        predictor.set_image(image)
        out["predictor/features"] = predictor.features
        pcases = []

        def prun(case_name, coords=None, labels=None, box=None, mask_input=None,
                 multimask=True, return_logits=False):
            masks, iou, low = predictor.predict(
                point_coords=coords, point_labels=labels, box=box, mask_input=mask_input,
                multimask_output=multimask, return_logits=return_logits)
            key = f"predictor/{case_name}"
            if coords is not None:
                out[f"{key}/point_coords"] = torch.as_tensor(coords, dtype=torch.float64)
                out[f"{key}/point_labels"] = torch.as_tensor(labels, dtype=torch.int64)
            if box is not None:
                out[f"{key}/box"] = torch.as_tensor(box, dtype=torch.float64)
            if mask_input is not None:
                out[f"{key}/mask_input"] = torch.as_tensor(mask_input)
            m = torch.as_tensor(masks)
            out[f"{key}/masks"] = m if return_logits else m.to(torch.uint8)
            out[f"{key}/iou_predictions"] = torch.as_tensor(iou)
            out[f"{key}/low_res_logits"] = torch.as_tensor(low)
            pcases.append(dict(name=case_name, points=coords is not None, box=box is not None,
                               mask=mask_input is not None, multimask=multimask,
                               return_logits=return_logits))
            return masks, iou, low

        two = np.array([[w0 * 0.3, h0 * 0.4], [w0 * 0.7, h0 * 0.6]])
        _, piou, plow = prun("points", two, np.array([1, 0]))
        prun("box_point_logits", np.array([[w0 * 0.5, h0 * 0.5]]), np.array([1]),
             box=np.array([w0 * 0.1, h0 * 0.2, w0 * 0.8, h0 * 0.9]), multimask=False,
             return_logits=True)
        prun("mask_point", np.array([[w0 * 0.45, h0 * 0.35]]), np.array([1]),
             mask_input=plow[int(np.argmax(piou))][None], multimask=True)
        # Many boxes in one batch, through predict_torch as the reference's batched example.
        raw_boxes = np.array([[w0 * 0.1, h0 * 0.2, w0 * 0.8, h0 * 0.9], [0, 0, w0 * 0.5, h0 * 0.5],
                              [w0 * 0.4, h0 * 0.3, w0 - 1, h0 - 1]])
        tb = predictor.transform.apply_boxes_torch(torch.as_tensor(raw_boxes, dtype=torch.float),
                                                   (oh, ow))
        bm, biou, blow = predictor.predict_torch(None, None, boxes=tb, multimask_output=False)
        out["predictor/batch_boxes/boxes"] = torch.as_tensor(raw_boxes, dtype=torch.float64)
        out["predictor/batch_boxes/masks"] = bm.to(torch.uint8)
        out["predictor/batch_boxes/iou_predictions"] = biou
        out["predictor/batch_boxes/low_res_logits"] = blow

        keep = (torch.int64, torch.uint8, torch.float64)
        save_file({k: v.clone().contiguous() if v.dtype in keep else v.float().clone().contiguous()
                   for k, v in out.items()},
                  os.path.join(args.out, f"{name}_outputs.safetensors"))
        meta = dict(input_size=list(input_size), original_size=[oh, ow], cases=cases,
                    predictor_cases=pcases,
                    torch=torch.__version__)
        with open(os.path.join(args.out, f"{name}_cases.json"), "w") as f:
            json.dump(meta, f, indent=2)
        print(f"{name}: {sum(v.numel() for v in state.values())} params, "
              f"{len(cases)} cases, input {input_size}, original {(oh, ow)}")


if __name__ == "__main__":
    main()
