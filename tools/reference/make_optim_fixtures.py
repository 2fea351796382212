#!/usr/bin/env python3
"""PyTorch reference numbers for sam-optim (AdamW, schedules, global-norm clipping, the recipe).

    /work/pyenv/ref/bin/python tools/reference/make_optim_fixtures.py \
        --out crates/sam-optim/tests/fixtures

Writes
- `schedule.json`: learning rates of `SequentialLR(LinearLR, CosineAnnealingLR)` (the seed
  recipe, at chosen steps), of a small run with every step (ending in a `ConstantLR` at the
  minimum, which is what sam-optim does after the end), and of the paper's warmup + step decay
  (`SequentialLR(LinearLR, MultiStepLR)`);
- `optim.safetensors`: `torch.optim.AdamW` (single-tensor path, `foreach=False`) for 10 steps on
  small tensors with and without weight decay; `clip_grad_norm_` on a few tensors; and a
  "recipe" run: a toy model named like SAM with parameter groups (no weight decay for biases,
  norms, position embeddings and learned tokens; layer-wise lr decay; a frozen group), the
  warmup -> cosine -> constant schedule and global-norm clipping, for 12 steps;
- `optim.json`: the settings and per-parameter expectations those tensors belong to;
- `sam_vit_l_params.tsv`: the official ViT-L checkpoint's key list with shapes (from the
  reference model built on the meta device), for the grouping tests.

Everything runs on CPU in float32 (the scalars in float64, as PyTorch's Python side does).
"""
import argparse
import json
import math
import os
import re
import warnings

import torch
from safetensors.torch import save_file

warnings.filterwarnings("ignore")  # SequentialLR's `step(0)` deprecation notice
torch.manual_seed(0)


def f32(t):
    return t.detach().to(torch.float32).contiguous().clone()


def sequential_lrs(peak, steps, build):
    """lr used by optimizer step k (after k scheduler steps), for every k in `steps`."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=peak)
    sched = build(opt)
    wanted = set(steps)
    out = {}
    for k in range(max(steps) + 1):
        if k in wanted:
            out[k] = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
    return [out[k] for k in steps]


def warmup_cosine(peak, start, warmup, total, min_lr, constant_after=False):
    def build(opt):
        scheds = [
            torch.optim.lr_scheduler.LinearLR(opt, start_factor=start, end_factor=1.0, total_iters=warmup),
            torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warmup, eta_min=min_lr),
        ]
        milestones = [warmup]
        if constant_after:
            scheds.append(torch.optim.lr_scheduler.ConstantLR(opt, factor=min_lr / peak, total_iters=10**9))
            milestones.append(total)
        return torch.optim.lr_scheduler.SequentialLR(opt, scheds, milestones=milestones)

    return build


def warmup_step(peak, start, warmup, milestones, gamma):
    def build(opt):
        return torch.optim.lr_scheduler.SequentialLR(
            opt,
            [
                torch.optim.lr_scheduler.LinearLR(opt, start_factor=start, end_factor=1.0, total_iters=warmup),
                # MultiStepLR counts from the switch, so shift the absolute milestones.
                torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[m - warmup for m in milestones], gamma=gamma),
            ],
            milestones=[warmup],
        )

    return build


def schedules():
    seed = dict(peak_lr=1e-4, warmup_start_factor=1e-3, warmup_steps=2500, total_steps=90_000, min_lr=1e-6)
    middle = seed["warmup_steps"] + (seed["total_steps"] - seed["warmup_steps"]) // 2
    seed_steps = [0, 1, 2, 1250, 2499, 2500, 2501, middle, 89_999, 90_000]
    seed_lrs = sequential_lrs(
        seed["peak_lr"],
        seed_steps + [90_000 + 5_000],
        warmup_cosine(seed["peak_lr"], seed["warmup_start_factor"], seed["warmup_steps"], seed["total_steps"], seed["min_lr"]),
    )
    small = dict(peak_lr=1e-3, warmup_start_factor=0.01, warmup_steps=10, total_steps=50, min_lr=1e-5)
    small_steps = list(range(0, 61))
    small_lrs = sequential_lrs(
        small["peak_lr"],
        small_steps,
        warmup_cosine(small["peak_lr"], small["warmup_start_factor"], small["warmup_steps"], small["total_steps"], small["min_lr"], constant_after=True),
    )
    paper = dict(peak_lr=8e-4, warmup_start_factor=1e-3, warmup_steps=250, total_steps=90_000, milestones=[60_000, 86_666], gamma=0.1)
    paper_steps = [0, 1, 249, 250, 251, 59_999, 60_000, 60_001, 86_665, 86_666, 89_999, 90_000, 95_000]
    paper_lrs = sequential_lrs(
        paper["peak_lr"], paper_steps, warmup_step(paper["peak_lr"], paper["warmup_start_factor"], paper["warmup_steps"], paper["milestones"], paper["gamma"])
    )
    return {
        "seed": {**seed, "steps": seed_steps, "lrs": seed_lrs[:-1], "torch_lr_5000_after_end": seed_lrs[-1]},
        "small": {**small, "steps": small_steps, "lrs": small_lrs},
        "paper": {**paper, "steps": paper_steps, "lrs": paper_lrs},
    }


def adamw_runs(tensors):
    """10 AdamW steps on three small tensors, with and without weight decay, varying lr."""
    shapes = {"a": (4, 3), "b": (3,), "c": (2, 2, 3)}
    init = {k: torch.randn(s) for k, s in shapes.items()}
    grads = [{k: torch.randn(s) * (0.5 + 0.3 * i) for k, s in shapes.items()} for i in range(10)]
    for g in grads:
        g["b"][1] = 0.0  # an element whose second moment stays 0: the update is 0 / eps
    lrs = [1e-2 * (1.0 + 0.1 * i) for i in range(10)]
    meta = {"names": list(shapes), "lrs": lrs, "betas": [0.9, 0.999], "eps": 1e-8, "steps": 10, "runs": {}}
    for k, v in init.items():
        tensors[f"adamw/init/{k}"] = f32(v)
    for i, g in enumerate(grads):
        for k, v in g.items():
            tensors[f"adamw/grad/{i}/{k}"] = f32(v)
    for run, wd in [("wd", 0.1), ("nowd", 0.0)]:
        params = {k: torch.nn.Parameter(v.clone()) for k, v in init.items()}
        opt = torch.optim.AdamW(list(params.values()), lr=lrs[0], betas=(0.9, 0.999), eps=1e-8, weight_decay=wd, foreach=False)
        for i in range(10):
            for k, p in params.items():
                p.grad = grads[i][k].clone()
            opt.param_groups[0]["lr"] = lrs[i]
            opt.step()
            for k, p in params.items():
                tensors[f"adamw/{run}/param/{i}/{k}"] = f32(p)
        for k, p in params.items():
            st = opt.state[p]
            tensors[f"adamw/{run}/exp_avg/{k}"] = f32(st["exp_avg"])
            tensors[f"adamw/{run}/exp_avg_sq/{k}"] = f32(st["exp_avg_sq"])
        meta["runs"][run] = {"weight_decay": wd}
    return meta


def clip_cases(tensors):
    shapes = [(5, 4), (7,), (2, 3, 3), (1,)]
    grads = [torch.randn(s) * (i + 1) for i, s in enumerate(shapes)]
    for i, g in enumerate(grads):
        tensors[f"clip/grad/{i}"] = f32(g)
    cases = []
    for j, max_norm in enumerate([0.5, 3.0, 1e3]):
        ps = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
        for p, g in zip(ps, grads):
            p.grad = g.clone()
        total = torch.nn.utils.clip_grad_norm_(ps, max_norm, norm_type=2.0, foreach=False)
        for i, p in enumerate(ps):
            tensors[f"clip/{j}/clipped/{i}"] = f32(p.grad)
        cases.append({"max_norm": max_norm, "total_norm": float(total)})
    return {"shapes": [list(s) for s in shapes], "cases": cases}


# Toy model named like sam-burn's `Sam` (Burn parameter paths; Linear weights are [in, out]).
RECIPE_PARAMS = [
    ("image_encoder.patch_embed.proj.weight", (4, 3, 2, 2)),
    ("image_encoder.patch_embed.proj.bias", (4,)),
    ("image_encoder.pos_embed", (1, 2, 2, 4)),
    *[
        item
        for i in range(2)
        for item in [
            (f"image_encoder.blocks.{i}.norm1.gamma", (4,)),
            (f"image_encoder.blocks.{i}.norm1.beta", (4,)),
            (f"image_encoder.blocks.{i}.attn.qkv.weight", (4, 12)),
            (f"image_encoder.blocks.{i}.attn.qkv.bias", (12,)),
            (f"image_encoder.blocks.{i}.attn.rel_pos_h", (3, 2)),
            (f"image_encoder.blocks.{i}.attn.rel_pos_w", (3, 2)),
        ]
    ],
    ("image_encoder.neck.conv1.weight", (3, 4, 1, 1)),
    ("image_encoder.neck.norm1.weight", (3,)),
    ("image_encoder.neck.norm1.bias", (3,)),
    ("prompt_encoder.pe_layer.positional_encoding_gaussian_matrix", (2, 2)),
    ("prompt_encoder.point_embeddings.0.weight", (1, 3)),
    ("prompt_encoder.point_embeddings.1.weight", (1, 3)),
    ("prompt_encoder.not_a_point_embed.weight", (1, 3)),
    ("prompt_encoder.no_mask_embed.weight", (1, 3)),
    ("mask_decoder.iou_token.weight", (1, 3)),
    ("mask_decoder.mask_tokens.weight", (4, 3)),
    ("mask_decoder.transformer.layers.0.norm1.gamma", (3,)),
    ("mask_decoder.transformer.layers.0.norm1.beta", (3,)),
    ("mask_decoder.transformer.layers.0.mlp.lin1.weight", (3, 5)),
    ("mask_decoder.transformer.layers.0.mlp.lin1.bias", (5,)),
    *[
        item
        for j in range(3)
        for item in [
            (f"mask_decoder.output_hypernetworks_mlps.0.layers.{j}.weight", (3, 3)),
            (f"mask_decoder.output_hypernetworks_mlps.0.layers.{j}.bias", (3,)),
        ]
    ],
]

NO_DECAY_LAST = {"bias", "gamma", "beta", "pos_embed", "rel_pos_h", "rel_pos_w", "positional_encoding_gaussian_matrix"}
TOKEN_MODULES = {"point_embeddings", "not_a_point_embed", "no_mask_embed", "iou_token", "mask_tokens"}


def no_decay(name):
    parts = name.split(".")
    if parts[-1] in NO_DECAY_LAST:
        return True
    if any(p.startswith("norm") for p in parts[:-1]) and parts[-1] == "weight":
        return True
    return any(p in TOKEN_MODULES for p in parts)


def layer_id(name, depth):
    if name.startswith("image_encoder."):
        rest = name[len("image_encoder."):]
        if rest.startswith("patch_embed.") or rest == "pos_embed":
            return 0
        if rest.startswith("blocks."):
            return int(rest.split(".")[1]) + 1
    return depth + 1


def recipe(tensors):
    cfg = dict(
        peak_lr=1e-2, warmup_start_factor=0.1, warmup_steps=3, total_steps=10, min_lr=1e-4,
        weight_decay=0.05, betas=[0.9, 0.999], eps=1e-8, layer_decay=0.8, encoder_depth=2,
        max_grad_norm=1.0, frozen=[r"^image_encoder\.neck\."], steps=12,
    )
    depth = cfg["encoder_depth"]
    frozen_re = [re.compile(p) for p in cfg["frozen"]]
    expect = {}
    for name, _ in RECIPE_PARAMS:
        lid = layer_id(name, depth)
        frozen = name.endswith("positional_encoding_gaussian_matrix") or any(r.search(name) for r in frozen_re)
        expect[name] = {
            "layer_id": lid,
            "lr_scale": cfg["layer_decay"] ** (depth + 1 - lid),
            "weight_decay": 0.0 if no_decay(name) else cfg["weight_decay"],
            "frozen": frozen,
        }
    params = {n: torch.nn.Parameter(torch.randn(s) * 0.5) for n, s in RECIPE_PARAMS}
    for n, p in params.items():
        tensors[f"recipe/init/{n}"] = f32(p)
        if expect[n]["frozen"]:
            p.requires_grad_(False)
    # One torch param group per (lr_scale, weight_decay), as BEiT/MAE's `param_groups_lrd` does.
    groups = {}
    for n, p in params.items():
        e = expect[n]
        if e["frozen"]:
            continue
        groups.setdefault((e["lr_scale"], e["weight_decay"]), []).append(p)
    opt = torch.optim.AdamW(
        [{"params": ps, "lr_scale": s, "weight_decay": wd} for (s, wd), ps in groups.items()],
        lr=cfg["peak_lr"], betas=tuple(cfg["betas"]), eps=cfg["eps"], foreach=False,
    )
    base_lrs = sequential_lrs(
        cfg["peak_lr"], list(range(cfg["steps"])),
        warmup_cosine(cfg["peak_lr"], cfg["warmup_start_factor"], cfg["warmup_steps"], cfg["total_steps"], cfg["min_lr"], constant_after=True),
    )
    norms = []
    for k in range(cfg["steps"]):
        scale = [0.05, 0.3, 2.0, 0.1][k % 4]  # some steps clip, some do not
        for n, p in params.items():
            g = torch.randn(p.shape) * scale
            tensors[f"recipe/grad/{k}/{n}"] = f32(g)
            p.grad = None if expect[n]["frozen"] else g.clone()
        trainable = [p for n, p in params.items() if not expect[n]["frozen"]]
        norms.append(float(torch.nn.utils.clip_grad_norm_(trainable, cfg["max_grad_norm"], foreach=False)))
        for g in opt.param_groups:
            g["lr"] = base_lrs[k] * g["lr_scale"]
        opt.step()
        for n, p in params.items():
            tensors[f"recipe/param/{k}/{n}"] = f32(p)
    return {
        "config": cfg,
        "params": [[n, list(s)] for n, s in RECIPE_PARAMS],
        "expect": expect,
        "base_lrs": base_lrs,
        "grad_norms": norms,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="crates/sam-optim/tests/fixtures")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    tensors = {}
    meta = {
        "torch": torch.__version__,
        "schedule": schedules(),
        "adamw": adamw_runs(tensors),
        "clip": clip_cases(tensors),
        "recipe": recipe(tensors),
    }
    save_file(tensors, os.path.join(args.out, "optim.safetensors"))
    with open(os.path.join(args.out, "optim.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    # The official ViT-L's keys and shapes, from the reference model built on the meta device
    # (no weights allocated).
    from segment_anything import sam_model_registry
    with torch.device("meta"):
        vit_l = sam_model_registry["vit_l"]()
    rows = [(k, str(list(v.shape))) for k, v in vit_l.state_dict().items()]
    with open(os.path.join(args.out, "sam_vit_l_params.tsv"), "w") as f:
        for name, shape in rows:
            f.write(f"{name}\t{shape}\n")
    n = sum(t.numel() for t in tensors.values())
    print(f"{len(tensors)} tensors ({n} values) -> {args.out}")


if __name__ == "__main__":
    main()
