#!/usr/bin/env python3
"""Tiny random CLIP folders and transformers' outputs on them, for sam-clip's parity tests.

Requires `transformers` 5.x, `tokenizers`, `torch`, `Pillow`, `safetensors`, `numpy` (PyPI).

    python tools/reference/make_clip_fixtures.py --out crates/sam-clip/tests/fixtures

Writes (seeded, a few hundred KB in all):
  clip_tiny/        save_pretrained of a random CLIPModel (text quick_gelu, vision gelu, eos_token_id
                    the real end-of-text id: first-EOT pooling), its tokenizer (tokenizer.json …)
                    and a preprocessor_config.json in today's dict form (resize 40, crop 32)
  clip_tiny_legacy/ another random CLIPModel written as the OpenAI uploads are: the towers in
                    config.json's `text_config_dict` / `vision_config_dict` (decoy `text_config` /
                    `vision_config` beside them), eos_token_id 2 (argmax pooling), weights in
                    float16 with the `position_ids` buffers, a preprocessor_config.json in the old
                    bare-int form with a resize (28) smaller than the crop (30): padded crop
  images/           PNG inputs: RGB noise, RGB gradient, grayscale, RGBA
  clip_outputs.safetensors + clip_cases.json   token ids of a hard text set; each folder's
                    get_text_features (tokenized texts and raw id rows that tell the two pooling
                    rules apart), get_image_features and logits_per_image; each folder's
                    CLIPImageProcessorPil pixel values (what sam-clip reproduces: transformers
                    4's CLIPImageProcessor and OpenAI's preprocessing) and, for the record, how
                    far transformers 5's default CLIPImageProcessor (torchvision's bicubic, not
                    Pillow's) is from them

The tokenizer is a real CLIP-format byte-level BPE (there is no network here for OpenAI's
vocabulary): CLIP's normalizer and pre-tokenizer split a small English/accented corpus into
words, a BPE with `</w>` word ends is trained on them the way CLIP's merges were, and the vocabulary
is laid out as CLIP's: the 256 byte symbols, the same with `</w>`, the merges, then
`<|startoftext|>`, `<|endoftext|>`. transformers' own CLIPTokenizer is built on it and saved, so
the tokenizer.json has exactly the pipeline transformers writes; the script checks that
CLIPTokenizerFast.from_pretrained reads it back with the same ids.
"""
import argparse
import collections
import contextlib
import io
import json
import os
import shutil

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import (CLIPConfig, CLIPImageProcessor, CLIPImageProcessorPil, CLIPModel,
                          CLIPTokenizer, CLIPTokenizerFast)

SEED = 20240
NUM_MERGES = 500
EXTRA_IDS = 8  # model vocabulary past <|endoftext|>: raw rows with larger ids split the pooling rules

CORPUS = """
A photo of a cat. A photo of a dog. Segment anything: a promptable segmentation model, trained
on eleven million images and one billion masks. The quick brown fox jumps over the lazy dog.
Café, naïve, résumé, façade, jalapeño, über, straße, crème brûlée, déjà vu, smörgåsbord.
A wheel of a car, the left ear of a horse, a red apple on a wooden table, two people riding
bicycles in the rain, the sky at sunset over the mountains, a bowl of soup with a spoon.
It's what we've been saying: they'll see it, I'm sure, you'd agree, she's right, we're here.
Numbers like 2024, 336 and 77 are split into digits; punctuation!!! and symbols #@$% too.
"""


def bytes_to_unicode():
    """GPT-2 / CLIP's reversible byte → printable character table, in CLIP's order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def corpus():
    with contextlib.redirect_stdout(io.StringIO()):
        import this  # the Zen of Python, rot13 in the module; importing prints it
    zen = "".join(this.d.get(c, c) for c in this.s)
    import argparse as a, json as j, collections as c, unittest as u
    return CORPUS + zen + "".join(m.__doc__ or "" for m in (a, j, c, u))


def train_bpe(texts, pipeline):
    """CLIP-style BPE: words end in `</w>`; each step merges the most frequent adjacent pair
    (ties: the smaller pair), NUM_MERGES times."""
    words = collections.Counter()
    for text in texts:
        norm = pipeline.normalizer.normalize_str(text)
        for piece, _ in pipeline.pre_tokenizer.pre_tokenize_str(norm):
            if piece in ("<|startoftext|>", "<|endoftext|>"):
                continue
            symbols = list(piece)
            symbols[-1] += "</w>"
            words[tuple(symbols)] += 1
    merges = []
    for _ in range(NUM_MERGES):
        pairs = collections.Counter()
        for w, f in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += f
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        merged = collections.Counter()
        for w, f in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            merged[tuple(out)] += f
        words = merged
    return merges


def build_tokenizer():
    byte_symbols = bytes_to_unicode()
    pipeline = CLIPTokenizer().backend_tokenizer  # CLIP's normalizer and pre-tokenizer
    merges = train_bpe([corpus()], pipeline)
    tokens = byte_symbols + [s + "</w>" for s in byte_symbols]
    for a, b in merges:
        tokens.append(a + b)
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {}
    for t in tokens:
        vocab.setdefault(t, len(vocab))  # a merge result met twice keeps its first id
    return CLIPTokenizer(vocab=vocab, merges=[tuple(m) for m in merges])


TEXTS = [
    "a photo of a cat",
    "A Photo Of A DOG!!!",
    "",
    "   leading and trailing spaces   ",
    "tabs\tand\nnewlines\r\n and  runs   of    spaces",
    "Café naïve résumé façade jalapeño über straße",
    "e\u0301 composed vs decomposed: caf\u0065\u0301",  # NFC folds e + combining acute into é
    "emoji 😀🐈‍⬛👍🏽 and flags 🇫🇷",
    "CJK 猫の写真 한국어 текст на русском ελληνικά עברית العربية",
    "numbers 2024, 3.14159 and 1,000,000",
    "punctuation: !?.,;:'\"()[]{}<>/\\|@#$%^&*-_=+~`",
    "it's we've they'll I'm you'd she's we're DON'T",
    "special tokens <|startoftext|> inside <|endoftext|> the text",
    "zero\u200bwidth and non\u00a0breaking\u3000spaces",
    "Ⅻ ½ ² ﬁ ligature and ｆｕｌｌｗｉｄｔｈ",
    " ".join(["the quick brown fox jumps over the lazy dog"] * 12),  # far past 77 tokens
    "x" * 300,
]


def perturb(model, gen):
    """Random weights of unit scale (the default init is nearly constant), so every layer
    matters in the comparison: weights ~ N(0, 1/√fan_in), norms 1 ± 0.2, biases ± 0.1."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "logit_scale":
                p.fill_(2.3)
            elif "layer_norm" in name or "layrnorm" in name or "layernorm" in name:
                base = 1.0 if name.endswith("weight") else 0.0
                p.copy_(base + 0.2 * torch.randn(p.shape, generator=gen))
            elif p.dim() == 1:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) / fan_in ** 0.5)


def tiny_config(vocab_size, eos, text_act, vision_act, image_size, patch_size):
    text = dict(vocab_size=vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=77, hidden_act=text_act,
                layer_norm_eps=1e-5, projection_dim=16, bos_token_id=vocab_size - EXTRA_IDS - 2,
                eos_token_id=eos, pad_token_id=1)
    vision = dict(hidden_size=24, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                  image_size=image_size, patch_size=patch_size, hidden_act=vision_act,
                  layer_norm_eps=1e-5, projection_dim=16)
    return text, vision


def make_images(dir):
    rng = np.random.default_rng(SEED)
    os.makedirs(dir, exist_ok=True)
    yy, xx = np.mgrid[0:37, 0:64].astype(np.float64)
    grad = np.stack([xx * 4, yy * 7, 128 + 127 * np.sin(xx / 3 + yy / 5)], -1)
    images = {
        "noise.png": Image.fromarray(rng.integers(0, 256, (60, 45, 3), dtype=np.uint8)),
        "gradient.png": Image.fromarray(np.clip(grad, 0, 255).astype(np.uint8)),
        "gray.png": Image.fromarray(rng.integers(0, 256, (20, 26), dtype=np.uint8), mode="L"),
        "rgba.png": Image.fromarray(rng.integers(0, 256, (29, 33, 4), dtype=np.uint8), mode="RGBA"),
    }
    for name, im in images.items():
        im.save(os.path.join(dir, name))
    return sorted(images)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="crates/sam-clip/tests/fixtures")
    args = ap.parse_args()
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    os.makedirs(args.out, exist_ok=True)

    tokenizer = build_tokenizer()
    vocab = tokenizer.get_vocab()
    sot, eot = vocab["<|startoftext|>"], vocab["<|endoftext|>"]
    assert eot == len(vocab) - 1, "end-of-text is the last token, as in CLIP"
    model_vocab = len(vocab) + EXTRA_IDS

    outputs, cases = {}, {"texts": TEXTS, "sot": sot, "eot": eot, "folders": {}}
    image_names = make_images(os.path.join(args.out, "images"))
    cases["images"] = image_names

    # Token ids: CLIPTokenizerFast(text, truncation=True, max_length=77), from the saved file.
    folders = {
        "clip_tiny": dict(eos=eot, text_act="quick_gelu", vision_act="gelu", image_size=32,
                          patch_size=8, legacy=False,
                          processor={"size": {"shortest_edge": 40},
                                     "crop_size": {"height": 32, "width": 32}}),
        "clip_tiny_legacy": dict(eos=2, text_act="gelu", vision_act="quick_gelu", image_size=30,
                                 patch_size=6, legacy=True,
                                 processor={"size": 28, "crop_size": 30}),
    }
    # Raw id rows (length 12) with ids past <|endoftext|> before an end-of-text: argmax pooling
    # picks the larger id, first-EOT pooling the end-of-text.
    raw = torch.tensor([[sot, 5, 9, model_vocab - 1, 40, eot, eot, 7, 7, 7, 7, 7],
                        [sot, model_vocab - 3, 11, eot, 12, model_vocab - 2, 3, 3, 3, 3, 3, 3],
                        [sot, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, eot]])
    outputs["raw_ids"] = raw

    for name, spec in folders.items():
        d = os.path.join(args.out, name)
        shutil.rmtree(d, ignore_errors=True)
        text, vision = tiny_config(model_vocab, spec["eos"], spec["text_act"], spec["vision_act"],
                                   spec["image_size"], spec["patch_size"])
        config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
        model = CLIPModel(config).eval()
        perturb(model, gen)
        model.save_pretrained(d, safe_serialization=True)
        tokenizer.save_pretrained(d)
        with open(os.path.join(d, "preprocessor_config.json"), "w") as f:
            json.dump(dict(spec["processor"], image_processor_type="CLIPImageProcessor",
                           do_resize=True, do_center_crop=True, do_rescale=True,
                           do_normalize=True, do_convert_rgb=True, resample=3,
                           rescale_factor=1 / 255,
                           image_mean=[0.48145466, 0.4578275, 0.40821073],
                           image_std=[0.26862954, 0.26130258, 0.27577711]), f, indent=2)
        if spec["legacy"]:
            # As the OpenAI uploads: towers in *_dict, decoys beside them, f16 weights with the
            # position_ids buffers.
            path = os.path.join(d, "config.json")
            with open(path) as f:
                cfg = json.load(f)
            cfg["text_config_dict"], cfg["vision_config_dict"] = text, vision
            cfg["text_config"] = {"hidden_size": 999, "eos_token_id": 49407, "vocab_size": 5}
            cfg["vision_config"] = {"hidden_size": 999, "image_size": 1}
            with open(path, "w") as f:
                json.dump(cfg, f, indent=2)
            st = os.path.join(d, "model.safetensors")
            state = {k: v.half() for k, v in load_file(st).items()}
            state["text_model.embeddings.position_ids"] = torch.arange(77)[None]
            state["vision_model.embeddings.position_ids"] = torch.arange(
                (spec["image_size"] // spec["patch_size"]) ** 2 + 1)[None]
            save_file(state, st, metadata={"format": "pt"})
        for extra in ("generation_config.json",):
            if os.path.exists(os.path.join(d, extra)):
                os.remove(os.path.join(d, extra))

        # Everything below reads the folder back, as a user of transformers would.
        model, info = CLIPModel.from_pretrained(d, dtype=torch.float32, output_loading_info=True)
        model.eval()
        assert not info["missing_keys"] and not info["mismatched_keys"], info
        assert model.config.text_config.eos_token_id == spec["eos"]
        assert model.config.text_config.hidden_size == 16
        assert model.config.text_config.hidden_act == spec["text_act"]
        fast = CLIPTokenizerFast.from_pretrained(d)
        ids = [fast(t, truncation=True, max_length=77)["input_ids"] for t in TEXTS]
        assert ids == [tokenizer(t, truncation=True, max_length=77)["input_ids"] for t in TEXTS]
        assert all(i[0] == sot and i[-1] == eot and len(i) <= 77 for i in ids)
        assert max(len(i) for i in ids) == 77, "a text is truncated"
        cases["input_ids"] = ids

        pil = CLIPImageProcessorPil.from_pretrained(d)
        tv = CLIPImageProcessor.from_pretrained(d)
        pixels, deltas = [], {}
        for img_name in image_names:
            im = Image.open(os.path.join(args.out, "images", img_name))
            p = pil(im, return_tensors="pt")["pixel_values"][0]
            t = tv(im, return_tensors="pt")["pixel_values"][0]
            outputs[f"{name}/pixels/{img_name}"] = p.contiguous()
            # The torchvision backend resizes with its own bicubic: recorded, not compared.
            deltas[img_name] = dict(max_abs=float((p - t).abs().max()),
                                    levels_differing=int(((p - t).abs() > 1e-3).sum()),
                                    values=p.numel())
            pixels.append(p)
        pixel_values = torch.stack(pixels)
        with torch.no_grad():
            padded = fast(TEXTS, truncation=True, max_length=77, padding=True, return_tensors="pt")
            text_features = model.get_text_features(**padded).pooler_output
            raw_features = model.get_text_features(input_ids=raw).pooler_output
            image_features = model.get_image_features(pixel_values=pixel_values).pooler_output
            logits = model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"],
                           pixel_values=pixel_values).logits_per_image
        outputs[f"{name}/text_embeds"] = text_features.contiguous()
        outputs[f"{name}/raw_text_embeds"] = raw_features.contiguous()
        outputs[f"{name}/image_embeds"] = image_features.contiguous()
        outputs[f"{name}/logits_per_image"] = logits.contiguous()
        cases["folders"][name] = dict(eos_token_id=spec["eos"], torchvision_vs_pil=deltas)
        print(f"{name}: CLIPImageProcessor (torchvision) vs CLIPImageProcessorPil: {deltas}")

    save_file({k: v.contiguous() for k, v in outputs.items()},
              os.path.join(args.out, "clip_outputs.safetensors"))
    with open(os.path.join(args.out, "clip_cases.json"), "w") as f:
        json.dump(cases, f, indent=1, ensure_ascii=False)
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(args.out) for f in fs)
    print(f"vocabulary {len(vocab)} (+{EXTRA_IDS} model-only ids), {len(TEXTS)} texts, "
          f"{len(image_names)} images, {total / 1024:.0f} KiB of fixtures")


if __name__ == "__main__":
    main()
