#!/usr/bin/env python3
"""Loss values and gradients for sam-losses, from torchvision and SAM 2's loss functions.

    python tools/reference/make_loss_fixtures.py --out crates/sam-losses/tests/fixtures

`sigmoid_focal_loss` is torchvision's; `dice_loss`, `iou_loss` and the multimask selection are
written exactly as SAM 2's `training/loss_fns.py` (`MultiStepMultiMasksAndIous._update_losses`
with `supervise_all_iou=True`, weights mask 20 : dice 1 : iou 1), which is the recipe the paper
describes (focal : dice = 20 : 1, MSE IoU loss, backprop only the best of the multimask outputs).
"""
import argparse
import json
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torchvision.ops import sigmoid_focal_loss as tv_focal


def dice_loss(inputs, targets, num_objects, loss_on_multimask=False):
    inputs = inputs.sigmoid()
    if loss_on_multimask:
        inputs = inputs.flatten(2)
        targets = targets.flatten(2)
        numerator = 2 * (inputs * targets).sum(-1)
    else:
        inputs = inputs.flatten(1)
        numerator = 2 * (inputs * targets).sum(1)
    denominator = inputs.sum(-1) + targets.sum(-1)
    loss = 1 - (numerator + 1) / (denominator + 1)
    if loss_on_multimask:
        return loss / num_objects
    return loss.sum() / num_objects


def sigmoid_focal_loss(inputs, targets, num_objects, alpha=0.25, gamma=2, loss_on_multimask=False):
    prob = inputs.sigmoid()
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    if loss_on_multimask:
        return loss.flatten(2).mean(-1) / num_objects
    return loss.mean(1).sum() / num_objects


def iou_loss(inputs, targets, pred_ious, num_objects, loss_on_multimask=False):
    pred_mask = inputs.flatten(2) > 0
    gt_mask = targets.flatten(2) > 0
    area_i = torch.sum(pred_mask & gt_mask, dim=-1).float()
    area_u = torch.sum(pred_mask | gt_mask, dim=-1).float()
    actual_ious = area_i / torch.clamp(area_u, min=1.0)
    loss = F.mse_loss(pred_ious, actual_ious, reduction="none")
    if loss_on_multimask:
        return loss / num_objects
    return loss.sum() / num_objects


def sam_loss(src_masks, target_masks, ious, num_objects, w_mask=20.0, w_dice=1.0, w_iou=1.0):
    target_masks = target_masks.expand_as(src_masks)
    lm = sigmoid_focal_loss(src_masks, target_masks, num_objects, loss_on_multimask=True)
    ld = dice_loss(src_masks, target_masks, num_objects, loss_on_multimask=True)
    li = iou_loss(src_masks, target_masks, ious, num_objects, loss_on_multimask=True)
    best = None
    if lm.size(1) > 1:
        combo = lm * w_mask + ld * w_dice
        best = torch.argmin(combo, dim=-1)
        b = torch.arange(combo.size(0))
        lm = lm[b, best].unsqueeze(1)
        ld = ld[b, best].unsqueeze(1)
        li = li.mean(dim=-1).unsqueeze(1)
    focal, dice, iou = lm.sum(), ld.sum(), li.sum()
    return focal * w_mask + dice * w_dice + iou * w_iou, focal, dice, iou, best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="crates/sam-losses/tests/fixtures")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    out, meta = {}, {}

    # Multimask predictions: 4 objects, 3 masks, 12x10 (non-square). Object 2's target is empty,
    # object 3's is full; object 1 has extreme logits.
    n, m, h, w = 4, 3, 12, 10
    logits = torch.randn(n, m, h, w, generator=g) * 3
    logits[1] = logits[1].sign() * 1e4
    logits[0, 1] += 2.0  # make the selection non-trivial
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    targets = torch.zeros(n, 1, h, w)
    targets[0, 0] = ((yy - 5) ** 2 + (xx - 4) ** 2 < 12).float()
    targets[1, 0] = ((yy > 2) & (xx < 6)).float()
    targets[3, 0] = 1.0
    ious = torch.rand(n, m, generator=g)

    for red in ("none", "mean", "sum"):
        x = logits.clone().requires_grad_()
        loss = tv_focal(x, targets.expand_as(x), alpha=0.25, gamma=2, reduction=red)
        out[f"focal_{red}/loss"] = loss.detach()
        loss.sum().backward()
        out[f"focal_{red}/grad"] = x.grad
    x = logits.clone().requires_grad_()
    loss = tv_focal(x, targets.expand_as(x), alpha=0.5, gamma=1.5, reduction="mean")
    out["focal_a05_g15/loss"] = loss.detach()
    loss.backward()
    out["focal_a05_g15/grad"] = x.grad

    x = logits.clone().requires_grad_()
    per_mask = dice_loss(x, targets.expand_as(x), num_objects=n, loss_on_multimask=True)
    out["dice_multimask/loss"] = per_mask.detach()
    per_mask.sum().backward()
    out["dice_multimask/grad"] = x.grad

    x = logits.clone().requires_grad_()
    i = ious.clone().requires_grad_()
    per_mask = iou_loss(x, targets.expand_as(x), i, num_objects=n, loss_on_multimask=True)
    out["iou_multimask/loss"] = per_mask.detach()
    per_mask.sum().backward()
    out["iou_multimask/grad_iou"] = i.grad

    x = logits.clone().requires_grad_()
    i = ious.clone().requires_grad_()
    total, focal, dice, iou, best = sam_loss(x, targets, i, num_objects=n)
    total.backward()
    out["sam/total"] = total.detach().reshape(1)
    out["sam/terms"] = torch.stack([focal, dice, iou]).detach()
    out["sam/best"] = best
    out["sam/grad_logits"] = x.grad
    out["sam/grad_iou"] = i.grad

    # Single-mask outputs (M = 1): no selection, normalised by a given object count (e.g. the
    # global count across GPUs).
    x = logits[:, :1].clone().requires_grad_()
    i = ious[:, :1].clone().requires_grad_()
    total, focal, dice, iou, _ = sam_loss(x, targets, i, num_objects=7.0)
    total.backward()
    out["sam_single/total"] = total.detach().reshape(1)
    out["sam_single/terms"] = torch.stack([focal, dice, iou]).detach()
    out["sam_single/grad_logits"] = x.grad

    out["inputs/logits"] = logits
    out["inputs/targets"] = targets
    out["inputs/ious"] = ious
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(args.out, "losses.safetensors"))
    meta.update(torch=torch.__version__, shape=[n, m, h, w])
    with open(os.path.join(args.out, "losses.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print({k: tuple(v.shape) for k, v in out.items() if k.startswith("sam")})


if __name__ == "__main__":
    main()
