#!/usr/bin/env python3
"""Key and shape lists of the official ViT-B, ViT-L and ViT-H checkpoints, from the reference
model built on the meta device (nothing allocated), for sam-model's preset tests.

    python tools/reference/make_preset_shapes.py --out crates/sam-model/tests/fixtures
"""
import argparse
import os

import torch
from segment_anything import sam_model_registry


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="crates/sam-model/tests/fixtures")
    args = ap.parse_args()
    for name in ("vit_b", "vit_l", "vit_h"):
        with torch.device("meta"):
            model = sam_model_registry[name]()
        path = os.path.join(args.out, f"official_{name}_shapes.tsv")
        with open(path, "w") as f:
            f.write(f"# torch {torch.__version__}, segment_anything 1.0\n")
            for key, value in model.state_dict().items():
                f.write(f"{key}\t{list(value.shape)}\n")
        print(path, len(model.state_dict()))


if __name__ == "__main__":
    main()
