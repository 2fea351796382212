#!/usr/bin/env python3
"""Median time Pillow (libjpeg-turbo) takes to decode each file to RGB, for comparison with
`cargo run --release -p sam-jpeg --example time_decode -- FILES`.

    python tools/reference/time_jpeg.py /tmp/sam-jpeg-bench/*.jpg
"""
import io
import sys
import time

import cv2
import numpy as np
from PIL import Image

for path in sys.argv[1:]:
    data = open(path, "rb").read()
    arr = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    pil, cv = [], []
    buf = np.frombuffer(data, np.uint8)
    for _ in range(15):
        t = time.perf_counter()
        im = Image.open(io.BytesIO(data))
        im.load()
        im.convert("RGB") if im.mode != "RGB" else im
        pil.append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        cv2.imdecode(buf, cv2.IMREAD_COLOR)
        cv.append((time.perf_counter() - t) * 1e3)
    pil.sort()
    cv.sort()
    print(f"{path}: {arr.shape[1]}x{arr.shape[0]} sum {int(arr.astype(np.uint64).sum())}: "
          f"Pillow median {pil[7]:.2f} ms (min {pil[0]:.2f}); cv2.imdecode median {cv[7]:.2f} ms")
