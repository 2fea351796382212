#!/usr/bin/env python3
"""sam-burn next to the official PyTorch SAM: same jobs, same sizes, same thread count, one run.

Each job runs in its own process for each side; peak memory is that of the warm-up and timed
runs (on Linux the peak is reset after the setup, whose resident memory still counts):

  encoder     image encoder on one preprocessed image
  decode:N    N single-point prompts against one embedding (prompt encoder + mask decoder,
              multimask), the reference's batched `predict_torch` path without post-processing
  amg:N       SamAutomaticMaskGenerator(points_per_side=N, pred_iou_thresh=0,
              stability_score_thresh=0) on --image, `generate` timed whole (embedding, decoding,
              post-processing of every mask, NMS); f32; both sides load the same weights (the
              PyTorch side saves its model with torch.save for sam-burn's --checkpoint), so
              the mask counts must agree
  train       one training step: encoder, N box prompts through the decoder, focal (x20) +
              dice + IoU-MSE loss on the 256x256 low-res logits, backward, AdamW (lr 1e-4,
              weight decay 0.05); bf16 = torch.autocast, sam-burn's --dtype bf16 (f32 masters)

Random weights on both sides (timing does not depend on them; amg's are shared). Prints a table
with the ratio sam-burn / PyTorch (below 1: sam-burn is faster) and writes every figure to --json.

  python3 tools/reference/compare.py --device cpu --model vit_b --threads 2 \\
      --jobs encoder,decode:1,decode:64 --bench target/release/examples/bench
  python3 tools/reference/compare.py --device cuda --model vit_l --dtype bf16 \\
      --jobs encoder,decode:64,train
  python3 tools/reference/compare.py --device cpu --model vit_b --threads 2 \\
      --jobs amg:16 --image big.png --warmup 0 --iters 1
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time


PRESETS = {
    # (embed dim, depth, heads, global attention blocks), as segment_anything/build_sam.py
    "vit_b": (768, 12, 12, [2, 5, 8, 11]),
    "vit_l": (1024, 24, 16, [5, 11, 17, 23]),
    "vit_h": (1280, 32, 16, [7, 15, 23, 31]),
}


def build(name, image_size):
    """`build_sam._build_sam` with the input side as a parameter (1024 there)."""
    from functools import partial

    import torch
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    dim, depth, heads, global_idx = PRESETS[name]
    e = image_size // 16
    return Sam(
        image_encoder=ImageEncoderViT(
            depth=depth, embed_dim=dim, img_size=image_size, mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=heads, patch_size=16,
            qkv_bias=True, use_rel_pos=True, global_attn_indexes=global_idx, window_size=14,
            out_chans=256),
        prompt_encoder=PromptEncoder(
            embed_dim=256, image_embedding_size=(e, e), input_image_size=(image_size, image_size),
            mask_in_chans=16),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
            transformer_dim=256, iou_head_depth=3, iou_head_hidden_dim=256),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )


def reset_peak_rss():
    """Lowers Linux's peak resident set (VmHWM) to the current one; a no-op elsewhere."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_rss():
    """Peak resident set since the last reset (Linux VmHWM), else the process's, bytes."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def torch_job(args):
    """Runs one job on the official model; prints one JSON line."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    dev = torch.device("cuda" if args.device == "cuda" else "cpu")
    cuda = dev.type == "cuda"
    s = args.image_size or 1024
    model = build(args.model, s).to(dev)
    bf16 = args.dtype == "bf16"
    half = {"bf16": torch.bfloat16, "f16": torch.float16}.get(args.dtype)
    job = args.job

    def sync():
        if cuda:
            torch.cuda.synchronize()

    if job.startswith("amg:"):
        import numpy as np
        from PIL import Image
        from segment_anything import SamAutomaticMaskGenerator

        if half is not None:
            raise SystemExit("amg runs in f32 only")
        model.eval()
        if args.checkpoint_out:
            torch.save(model.state_dict(), args.checkpoint_out)
        image = np.asarray(Image.open(args.image).convert("RGB"))
        amg = SamAutomaticMaskGenerator(model, points_per_side=int(job.split(":")[1]),
                                        pred_iou_thresh=0.0, stability_score_thresh=0.0)
        found = {}

        def run():
            found["masks"] = len(amg.generate(image))

    elif job == "train":
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
        n = args.objects
        x = torch.rand(1, 3, s, s, device=dev) * 255
        x = model.preprocess(x)
        gen = torch.Generator(device="cpu").manual_seed(1)
        xy = torch.rand(n, 2, generator=gen) * (s * 0.6)
        wh = torch.rand(n, 2, generator=gen) * (s * 0.3) + 8
        boxes = torch.cat([xy, xy + wh], 1).to(dev)
        gt = (torch.rand(n, 1, s // 4, s // 4, generator=gen) > 0.5).float().to(dev)

        def step():
            opt.zero_grad(set_to_none=True)
            with torch.autocast(dev.type, dtype=half, enabled=half is not None):
                emb = model.image_encoder(x)
                sparse, dense = model.prompt_encoder(points=None, boxes=boxes, masks=None)
                low, iou = model.mask_decoder(
                    image_embeddings=emb,
                    image_pe=model.prompt_encoder.get_dense_pe(),
                    sparse_prompt_embeddings=sparse,
                    dense_prompt_embeddings=dense,
                    multimask_output=False,
                )
            low, iou = low.float(), iou.float()
            p = torch.sigmoid(low)
            ce = F.binary_cross_entropy_with_logits(low, gt, reduction="none")
            pt = p * gt + (1 - p) * (1 - gt)
            focal = (ce * (1 - pt) ** 2 * (0.25 * gt + 0.75 * (1 - gt))).flatten(1).mean(1)
            inter = (p * gt).flatten(1).sum(1)
            dice = 1 - (2 * inter + 1) / (p.flatten(1).sum(1) + gt.flatten(1).sum(1) + 1)
            with torch.no_grad():
                hard = (low > 0).float()
                i = (hard * gt).flatten(1).sum(1)
                u = ((hard + gt) > 0).float().flatten(1).sum(1)
                true_iou = i / u.clamp(min=1)
            loss = (20 * focal + dice + (iou[:, 0] - true_iou) ** 2).mean()
            loss.backward()
            opt.step()

        run = step
    else:
        model.eval()
        if half is not None:
            model = model.to(half)
            # The official prompt encoder multiplies float coordinates by its Gaussian matrix,
            # which fails in a 16-bit model: it stays f32 (as sam-burn's coordinate encoding).
            model.prompt_encoder.float()
        x = torch.rand(1, 3, s, s, device=dev) * 255
        x = model.preprocess(x.to(half) if half is not None else x)
        if job == "encoder":

            @torch.inference_mode()
            def run():
                model.image_encoder(x)

        else:
            n = int(job.split(":")[1])
            with torch.inference_mode():
                emb = model.image_encoder(x)
            coords = torch.rand(n, 1, 2, device=dev) * s
            labels = torch.ones(n, 1, dtype=torch.int, device=dev)

            @torch.inference_mode()
            def run():
                sparse, dense = model.prompt_encoder(points=(coords, labels), boxes=None, masks=None)
                model.mask_decoder(
                    image_embeddings=emb,
                    image_pe=model.prompt_encoder.get_dense_pe().to(emb.dtype),
                    sparse_prompt_embeddings=sparse.to(emb.dtype),
                    dense_prompt_embeddings=dense.to(emb.dtype),
                    multimask_output=True,
                )

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    # The peak is the runs' own (with what the setup left resident), as sam-burn's bench.
    reset_peak_rss()
    t0 = time.perf_counter()
    for _ in range(args.warmup):
        run()
        sync()
    warmup_s = time.perf_counter() - t0
    ms = []
    for _ in range(args.iters):
        t = time.perf_counter()
        run()
        sync()
        ms.append((time.perf_counter() - t) * 1e3)
    out = dict(
        job=job,
        mean_ms=statistics.mean(ms),
        median_ms=statistics.median(ms),
        min_ms=min(ms),
        warmup_s=warmup_s,
        iters=args.iters,
        device_reserved_bytes=torch.cuda.max_memory_reserved() if cuda else None,
        device_allocated_bytes=torch.cuda.max_memory_allocated() if cuda else None,
        peak_rss_bytes=peak_rss(),
        torch=torch.__version__,
    )
    if job.startswith("amg:"):
        out["masks"] = found["masks"]
    print(json.dumps(out), flush=True)


def run_side(cmd, env, timeout):
    t0 = time.time()
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        # The bench traces its stages on stderr: the last line says where it was stopped.
        err = e.stderr or ""
        if isinstance(err, bytes):
            err = err.decode(errors="replace")
        last = err.strip().splitlines()[-1:] or ["no output"]
        return None, f"timed out after {timeout} s; last: {last[0]}"
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if p.returncode != 0 or not lines:
        return None, (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1]
    r = json.loads(lines[-1])
    r["process_s"] = time.time() - t0
    return r, None


def mib(b):
    return "-" if b is None else f"{b / 2**20:.0f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu, cuda (sam-burn: flex / cuda), or wgpu (sam-burn only)")
    ap.add_argument("--model", default="vit_b")
    ap.add_argument("--image-size", type=int, default=None)
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16", "f16"])
    ap.add_argument("--jobs", default="encoder,decode:1,decode:64")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--warmup", type=int, default=3, help="untimed runs first (PyTorch CPU decoding needs 3)")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--objects", type=int, default=16)
    ap.add_argument("--image", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../assets/scene.png"),
                    help="the amg job's image (default: the bundled assets/scene.png)")
    ap.add_argument("--bench", default=None, help="sam-burn's bench binary (default: $CARGO_TARGET_DIR or target, release/examples/bench)")
    ap.add_argument("--sam-device", default=None, help="sam-burn device name (default: flex for cpu, cuda for cuda)")
    ap.add_argument("--only", choices=["torch", "sam-burn"], default=None, help="run one side only")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per job and side")
    ap.add_argument("--json", default=None, help="write all figures here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--job", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--checkpoint-out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        torch_job(args)
        return

    bench = args.bench or os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release/examples/bench")
    sam_device = args.sam_device or {"cpu": "flex", "cuda": "cuda"}.get(args.device, args.device)
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS=str(args.threads),
        MKL_NUM_THREADS=str(args.threads),
        RAYON_NUM_THREADS=str(args.threads),
    )
    results = []
    print(f"# {args.model} {args.image_size or 'preset size'} {args.dtype}, device {args.device} / sam-burn {sam_device}, "
          f"{args.threads} threads, {args.warmup} warm-up + {args.iters} timed runs", flush=True)
    header = f"{'job':<12} {'sam-burn ms':>12} {'PyTorch ms':>11} {'ratio':>6}   {'mem MiB (burn/torch)':>22}"
    print(header, flush=True)
    tmp = tempfile.mkdtemp(prefix="sam-compare-")
    for job in args.jobs.split(","):
        row = dict(job=job)
        # The amg job's masks depend on the weights: the PyTorch side saves its model (at the
        # preset's size, which sam-burn's --checkpoint expects) for sam-burn to load.
        shared = os.path.join(tmp, "sam.pth") if job.startswith("amg:") and not args.image_size else None
        if args.only != "sam-burn" and args.device in ("cpu", "cuda"):
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--job", job, "--device", args.device,
                   "--model", args.model, "--dtype", args.dtype, "--threads", str(args.threads),
                   "--warmup", str(args.warmup), "--iters", str(args.iters), "--objects", str(args.objects),
                   "--image", args.image]
            if args.image_size:
                cmd += ["--image-size", str(args.image_size)]
            if shared:
                cmd += ["--checkpoint-out", shared]
            row["torch"], row["torch_error"] = run_side(cmd, env, args.timeout)
        if args.only != "torch":
            cmd = [bench, "--device", sam_device, "--model", args.model, "--dtype", args.dtype, "--jobs", job,
                   "--warmup", str(args.warmup), "--iters", str(args.iters), "--objects", str(args.objects),
                   "--image", args.image]
            if args.image_size:
                cmd += ["--image-size", str(args.image_size)]
            if shared and os.path.exists(shared):
                cmd += ["--checkpoint", shared]
            row["sam_burn"], row["sam_burn_error"] = run_side(cmd, env, args.timeout)
        if shared and os.path.exists(shared):
            os.remove(shared)
        b, t = row.get("sam_burn"), row.get("torch")
        ratio = f"{b['median_ms'] / t['median_ms']:.2f}" if b and t else "-"
        if args.device == "cpu":
            mem = f"{mib(b and b['peak_rss_bytes'])}/{mib(t and t['peak_rss_bytes'])}"
        else:
            mem = f"{mib(b and b['device_reserved_bytes'])}/{mib(t and t['device_reserved_bytes'])}"
        bt = f"{b['median_ms']:.2f}" if b else "err"
        tt = f"{t['median_ms']:.2f}" if t else ("err" if "torch" in row else "-")
        print(f"{job:<12} {bt:>12} {tt:>11} {ratio:>6}   {mem:>22}", flush=True)
        if b and t and "masks" in b:
            agree = "same" if b["masks"] == t.get("masks") else "DIFFERENT"
            print(f"  masks: sam-burn {b['masks']}, PyTorch {t.get('masks')} ({agree})", flush=True)
        for side in ("sam_burn_error", "torch_error"):
            if row.get(side):
                print(f"  {side}: {row[side]}", flush=True)
        results.append(row)
    os.rmdir(tmp)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(args=vars(args), results=results), f, indent=1)


if __name__ == "__main__":
    main()
