#!/usr/bin/env python3
"""JPEG fixtures for sam-jpeg (bit-exact decoding) and sam-data's `load_rgb` (cv2.imread parity).

    python tools/reference/make_jpeg_fixtures.py

Writes
  crates/sam-jpeg/tests/fixtures/      *.jpg, the expected pixels (*.rgb / *.gray, raw bytes) and
                                       manifest.json; corrupt files that must be errors;
  crates/sam-data/tests/fixtures/images/  JPEGs with each EXIF orientation and PNGs of every
                                       kind, with cv2.imread(path)'s output (BGR→RGB) as raw
                                       RGB and images.json;
  /tmp/sam-jpeg-bench/                 larger JPEGs for timing (not committed).

Scan layouts neither Pillow nor OpenCV write (sequential files with one scan per component,
custom progressions, arithmetic coding) come from libjpeg-turbo's `jpegtran`
(`apt-get install libjpeg-turbo-progs`); without it those cases are skipped.

Expected decoder output is Pillow's `Image.open(f).convert("RGB")` (or "L" for gray files),
without EXIF transposition; every file is also decoded with OpenCV (orientation ignored) and
must give the same pixels, so the fixtures pin libjpeg-turbo's output, whichever wrapper.
"""
import io
import json
import os
import random
import shutil
import sys
import subprocess
import tempfile

import cv2
import numpy as np
import PIL
from PIL import Image, ImageOps

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
JPEG_OUT = os.path.join(ROOT, "crates", "sam-jpeg", "tests", "fixtures")
DATA_OUT = os.path.join(ROOT, "crates", "sam-data", "tests", "fixtures", "images")
BENCH_OUT = "/tmp/sam-jpeg-bench"


def natural(w, h, seed, gray=False):
    """Gradients, shapes with hard edges, texture and noise: every coefficient matters."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    c = 1 if gray else 3
    img = np.zeros((h, w, c))
    for k in range(c):
        fx, fy = rng.uniform(0.02, 0.3, 2)
        img[..., k] = 128 + 90 * np.sin(x * fx + k) * np.cos(y * fy - k) + 40 * (x / max(w, 1) - 0.5)
    for _ in range(4):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(2, max(w, h) / 3 + 2)
        col = rng.uniform(0, 255, c)
        mask = (x - cx) ** 2 + (y - cy) ** 2 < r * r
        img[mask] = col
    x0, y0 = rng.integers(0, max(w, 1)), rng.integers(0, max(h, 1))
    img[y0 : y0 + h // 3 + 1, x0 : x0 + w // 4 + 1] = rng.uniform(0, 255, c)
    img += rng.normal(0, 12, img.shape)
    img = np.clip(img, 0, 255).astype(np.uint8)
    return img[..., 0] if gray else img


def pil_bytes(arr, **kw):
    im = Image.fromarray(arr)
    b = io.BytesIO()
    im.save(b, "JPEG", **kw)
    return b.getvalue()


def cv_bytes(arr, params):
    bgr = arr[..., ::-1] if arr.ndim == 3 else arr
    ok, enc = cv2.imencode(".jpg", np.ascontiguousarray(bgr), params)
    assert ok
    return enc.tobytes()


def expected_jpeg(path):
    """Pillow's decoding, checked against OpenCV's."""
    im = Image.open(path)
    gray = im.mode == "L"
    arr = np.asarray(im.convert("L" if gray else "RGB"))
    flags = (cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR) | cv2.IMREAD_IGNORE_ORIENTATION
    cv = cv2.imread(path, flags)
    if not gray:
        cv = cv[..., ::-1]
    assert cv.shape == arr.shape and np.array_equal(cv, arr), f"Pillow and OpenCV differ on {path}"
    return arr, gray


def opencv_cmyk_to_rgb(raw):
    """OpenCV's `icvCvt_CMYK2BGR_8u_C4C3R` (as RGB) on libjpeg's CMYK output."""
    c = raw.astype(np.int32)
    k = c[..., 3:4]
    return (k - (((255 - c[..., :3]) * k) >> 8)).astype(np.uint8)


def expected_cmyk(path):
    """libjpeg's CMYK output (from Pillow, undoing its inversion) and `cv2.imread`'s RGB,
    checked against each other through OpenCV's conversion."""
    im = Image.open(path)
    assert im.mode == "CMYK", path
    # Pillow reads every CMYK JPEG as inverted ink ("CMYK;I", Adobe's convention).
    raw = 255 - np.asarray(im)
    cv = cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)[..., ::-1]
    rgb = opencv_cmyk_to_rgb(raw)
    assert np.array_equal(cv, rgb), f"OpenCV's CMYK conversion differs on {path}"
    return np.ascontiguousarray(raw), np.ascontiguousarray(rgb)


def without_adobe(data):
    """The file with its Adobe APP14 segment removed: libjpeg then takes 4 components as CMYK."""
    for marker, start, length in segments(data):
        if marker == 0xEE:
            return data[:start] + data[start + 2 + length :]
    raise AssertionError("no Adobe segment")


def ink(w, h, seed):
    """CMYK samples with black too (Pillow's RGB→CMYK conversion leaves K at 0)."""
    return np.ascontiguousarray(np.dstack([natural(w, h, seed), natural(w, h, seed + 1, gray=True)]))


def cmyk_cases(have_jpegtran):
    import simplejpeg

    cases = []
    for i, ((w, h), q) in enumerate([((17, 13), 90), ((33, 47), 75), ((1, 1), 95), ((64, 48), 100)]):
        cmyk = ink(w, h, 8000 + i)
        b = io.BytesIO()
        Image.frombytes("CMYK", (cmyk.shape[1], cmyk.shape[0]), cmyk.tobytes()).save(b, "JPEG", quality=q)
        cases.append((f"cmyk_{w}x{h}_q{q}", b.getvalue()))
        if i == 0:
            cases.append((f"cmyk_noadobe_{w}x{h}_q{q}", without_adobe(b.getvalue())))
        for sub in ("444", "422", "420"):
            ycck = simplejpeg.encode_jpeg(np.ascontiguousarray(cmyk), quality=q, colorspace="CMYK", colorsubsampling=sub)
            cases.append((f"ycck_{sub}_{w}x{h}_q{q}", ycck))
    cmyk = ink(41, 29, 8100)
    b = io.BytesIO()
    Image.frombytes("CMYK", (cmyk.shape[1], cmyk.shape[0]), cmyk.tobytes()).save(b, "JPEG", quality=85, progressive=True)
    cases.append(("cmyk_prog_41x29", b.getvalue()))
    ycck = simplejpeg.encode_jpeg(np.ascontiguousarray(cmyk), quality=85, colorspace="CMYK", colorsubsampling="420")
    # An Adobe transform libjpeg does not know (1 here) is taken as YCCK, with a warning.
    i = ycck.index(b"Adobe") + 11
    cases.append(("ycck_transform1_41x29", ycck[:i] + b"\x01" + ycck[i + 1 :]))
    if have_jpegtran:
        cases.append(("ycck_prog_420_41x29", jpegtran(ycck, "-progressive")))
    return cases


def jpegtran(data, *args, scans=None):
    """`jpegtran ARGS` on `data`; `scans` is a scan script."""
    with tempfile.TemporaryDirectory() as d:
        src, dst = os.path.join(d, "in.jpg"), os.path.join(d, "out.jpg")
        with open(src, "wb") as f:
            f.write(data)
        extra = []
        if scans is not None:
            with open(os.path.join(d, "scans.txt"), "w") as f:
                f.write(scans)
            extra = ["-scans", os.path.join(d, "scans.txt")]
        subprocess.run(["jpegtran", *args, *extra, "-outfile", dst, src], check=True)
        with open(dst, "rb") as f:
            return f.read()


def with_quant(data, value):
    """`data` with every entry of its 8-bit quantisation tables set to `value`: the coefficients
    stay those of a quality-100 encoding, so dequantised values overflow 16 bits, which tells
    libjpeg-turbo's SIMD IDCT (what Pillow and OpenCV run) from its C code."""
    d = bytearray(data)
    i = d.find(b"\xff\xdb")
    while i >= 0:
        end = i + 2 + (d[i + 2] << 8 | d[i + 3])
        j = i + 4
        while j < end:
            assert d[j] >> 4 == 0
            d[j + 1 : j + 65] = bytes([value]) * 64
            j += 65
        i = d.find(b"\xff\xdb", end)
    return bytes(d)


def segments(data):
    """(marker, offset, length) of each segment up to the first scan."""
    p, out = 2, []
    while p < len(data):
        m, length = data[p + 1], data[p + 2] << 8 | data[p + 3]
        out.append((m, p, length))
        if m == 0xDA:
            break
        p += 2 + length
    return out


def with_component_ids(data, ids):
    b = bytearray(data)
    for m, p, _ in segments(b):
        if m == 0xC0:
            for i in range(b[p + 9]):
                b[p + 10 + 3 * i] = ids[i]
        if m == 0xDA:
            for i in range(b[p + 4]):
                b[p + 5 + 2 * i] = ids[i]
    return bytes(b)


def with_short_jfif(data):
    """The APP0 JFIF segment cut to 13 bytes of payload."""
    for m, p, length in segments(data):
        if m == 0xE0:
            return data[:p] + bytes([0xFF, 0xE0, 0, 15]) + data[p + 4 : p + 4 + 13] + data[p + 2 + length :]
    raise ValueError("no APP0")


def exif_bytes(orientation):
    ex = Image.Exif()
    ex[0x0112] = orientation
    return ex.tobytes()


def main():
    os.makedirs(JPEG_OUT, exist_ok=True)
    os.makedirs(DATA_OUT, exist_ok=True)
    os.makedirs(BENCH_OUT, exist_ok=True)
    for d in (JPEG_OUT, DATA_OUT):
        for f in os.listdir(d):
            os.remove(os.path.join(d, f))

    cases = []  # (name, bytes)
    sizes_q = [((1, 1), 75), ((8, 8), 100), ((17, 13), 50), ((33, 47), 95), ((97, 75), 75), ((64, 48), 100), ((2, 3), 90), ((5, 4), 85)]
    for ss, ssname in ((0, "444"), (1, "422"), (2, "420")):
        for i, ((w, h), q) in enumerate(sizes_q):
            arr = natural(w, h, 100 * ss + i)
            cases.append((f"base_{ssname}_{w}x{h}_q{q}", pil_bytes(arr, quality=q, subsampling=ss)))
        for i, ((w, h), q) in enumerate([((97, 75), 75), ((33, 47), 95), ((17, 13), 100)]):
            arr = natural(w, h, 1000 + 10 * ss + i)
            cases.append((f"prog_{ssname}_{w}x{h}_q{q}", pil_bytes(arr, quality=q, subsampling=ss, progressive=True)))
        arr = natural(61, 39, 2000 + ss)
        cases.append((f"opt_{ssname}_61x39", pil_bytes(arr, quality=90, subsampling=ss, optimize=True)))
        cases.append((f"rstblk_{ssname}_61x39", pil_bytes(arr, quality=80, subsampling=ss, restart_marker_blocks=3)))
        cases.append((f"rstrow_{ssname}_61x39_prog", pil_bytes(arr, quality=80, subsampling=ss, restart_marker_rows=1, progressive=True)))
    for i, ((w, h), q) in enumerate([((17, 13), 75), ((97, 75), 95), ((1, 1), 50), ((8, 8), 100)]):
        arr = natural(w, h, 3000 + i, gray=True)
        cases.append((f"gray_{w}x{h}_q{q}", pil_bytes(arr, quality=q)))
        cases.append((f"gray_prog_{w}x{h}_q{q}", pil_bytes(arr, quality=q, progressive=True)))
    arr = natural(45, 29, 3100, gray=True)
    cases.append(("gray_rst_45x29", pil_bytes(arr, quality=85, restart_marker_blocks=2)))
    # Chroma layouts Pillow cannot write: 4:4:0 and 4:1:1 through OpenCV's libjpeg.
    for name, factor in (("440", cv2.IMWRITE_JPEG_SAMPLING_FACTOR_440), ("411", cv2.IMWRITE_JPEG_SAMPLING_FACTOR_411)):
        for i, ((w, h), q) in enumerate([((97, 75), 90), ((33, 47), 75), ((2, 3), 95), ((9, 5), 100), ((1, 1), 80), ((4, 17), 90)]):
            arr = natural(w, h, 4000 + 10 * i + (name == "411"))
            cases.append((f"cv_{name}_{w}x{h}_q{q}", cv_bytes(arr, [cv2.IMWRITE_JPEG_QUALITY, q, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, factor])))
        arr = natural(50, 38, 4100 + (name == "411"))
        cases.append((f"cv_{name}_prog_50x38", cv_bytes(arr, [cv2.IMWRITE_JPEG_QUALITY, 88, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, factor, cv2.IMWRITE_JPEG_PROGRESSIVE, 1])))
        cases.append((f"cv_{name}_rst_50x38", cv_bytes(arr, [cv2.IMWRITE_JPEG_QUALITY, 70, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, factor, cv2.IMWRITE_JPEG_RST_INTERVAL, 2])))
    have_jpegtran = shutil.which("jpegtran") is not None
    if have_jpegtran:
        src420 = pil_bytes(natural(75, 53, 4300), quality=85, subsampling=2)
        src444 = pil_bytes(natural(41, 29, 4301), quality=92, subsampling=0)
        # Sequential, one scan per component (non-interleaved), and Y then Cb+Cr.
        cases.append(("multiscan_420_75x53", jpegtran(src420, scans="0: 0 63 0 0;\n1: 0 63 0 0;\n2: 0 63 0 0;\n")))
        cases.append(("multiscan_y_cbcr_420_75x53", jpegtran(src420, scans="0: 0 63 0 0;\n1 2: 0 63 0 0;\n")))
        cases.append(("multiscan_rst_444_41x29", jpegtran(src444, "-restart", "2B", scans="2: 0 63 0 0;\n0: 0 63 0 0;\n1: 0 63 0 0;\n")))
        # A progression with DC refinement, several AC bands per component and deep successive
        # approximation.
        script = (
            "0 1 2: 0 0 0 2;\n"
            "0: 1 2 0 3;\n0: 3 9 0 2;\n0: 10 63 0 1;\n"
            "1: 1 63 0 2;\n2: 1 20 0 0;\n2: 21 63 0 0;\n"
            "0 1 2: 0 0 2 1;\n0 1 2: 0 0 1 0;\n"
            "0: 1 2 3 2;\n0: 1 2 2 1;\n0: 1 2 1 0;\n0: 3 9 2 1;\n0: 3 9 1 0;\n0: 10 63 1 0;\n"
            "1: 1 63 2 1;\n1: 1 63 1 0;\n"
        )
        cases.append(("progscript_420_75x53", jpegtran(src420, scans=script)))
        cases.append(("progscript_444_41x29_rst", jpegtran(src444, "-restart", "1", scans=script)))
        cases.append(("jpegtran_prog_420_75x53", jpegtran(src420, "-progressive")))
    elif os.environ.get("ALLOW_MISSING_JPEGTRAN") == "1":
        print("jpegtran not found: skipping the multi-scan and custom-progression cases")
    else:
        # The committed set has them; sam-jpeg's test checks that the manifest lists every file.
        sys.exit("jpegtran not found (Debian: libjpeg-turbo-progs); set ALLOW_MISSING_JPEGTRAN=1 "
                 "to write a smaller set on purpose")
    # Extreme dequantised values (no encoder writes these).
    arr = natural(32, 24, 4400)
    cases.append(("extreme_q255_444_32x24", with_quant(pil_bytes(arr, quality=100, subsampling=0), 255)))
    cases.append(("extreme_q255_420_32x24_prog", with_quant(pil_bytes(arr, quality=100, subsampling=2, progressive=True), 255)))
    cases.append(("extreme_q40_422_32x24", with_quant(pil_bytes(arr, quality=100, subsampling=1), 40)))
    gray = natural(16, 16, 4401, gray=True)
    cases.append(("extreme_q200_gray_16x16", with_quant(pil_bytes(gray, quality=100), 200)))
    # RGB stored without colour transform (Adobe marker, transform 0).
    arr = natural(33, 47, 4200)
    cases.append(("rgb_keep_444_33x47", pil_bytes(arr, quality=90, keep_rgb=True, subsampling=0)))
    arr = natural(250, 181, 5000)
    cases.append(("large_420_250x181_q90", pil_bytes(arr, quality=90, subsampling=2)))
    cases.append(("large_420_250x181_q90_prog", pil_bytes(arr, quality=90, subsampling=2, progressive=True)))
    arr = natural(23, 15, 6000)
    for o in range(1, 9):
        cases.append((f"exif_o{o}_23x15", pil_bytes(arr, quality=90, exif=exif_bytes(o))))
    # Big-endian EXIF (Pillow writes little-endian): hand-made TIFF header.
    tiff = b"MM\x00\x2a\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00\x00\x00\x00\x00"
    cases.append(("exif_be_o6_23x15", pil_bytes(arr, quality=90, exif=b"Exif\x00\x00" + tiff)))

    # Component ids R, G, B: libjpeg takes the planes as RGB unless a JFIF marker says YCbCr,
    # and counts that marker only with its whole 14-byte header (a 13-byte one is ignored).
    flat = np.zeros((16, 16, 3), np.uint8)
    flat[...] = (200, 50, 30)
    rgb_ids = with_component_ids(pil_bytes(flat, quality=95, subsampling=0), b"RGB")
    cases.append(("rgb_ids_jfif", rgb_ids))
    cases.append(("rgb_ids_short_jfif", with_short_jfif(rgb_ids)))

    manifest = {"pillow": PIL.__version__, "opencv": cv2.__version__, "decode": [], "errors": []}
    for name, data in cases:
        path = os.path.join(JPEG_OUT, name + ".jpg")
        with open(path, "wb") as f:
            f.write(data)
        arr, gray = expected_jpeg(path)
        ext = ".gray" if gray else ".rgb"
        with open(os.path.join(JPEG_OUT, name + ext), "wb") as f:
            f.write(arr.tobytes())
        exif = Image.open(path).getexif().get(0x0112)
        manifest["decode"].append({
            "file": name + ".jpg", "expected": name + ext, "width": arr.shape[1], "height": arr.shape[0],
            "channels": 1 if gray else 3, "progressive": b"\xff\xc2" in data, "exif_orientation": exif,
            "opencv_equal": True,
        })

    # Files that must be errors (and must not panic).
    def err(name, data, kind):
        with open(os.path.join(JPEG_OUT, name), "wb") as f:
            f.write(data)
        manifest["errors"].append({"file": name, "kind": kind})

    base = dict(cases)["base_420_97x75_q75"]
    prog = dict(cases)["prog_420_97x75_q75"]
    rst = dict(cases)["rstblk_420_61x39"]
    for src, tag in ((base, "base"), (prog, "prog"), (rst, "rst")):
        for frac in (0.05, 0.2, 0.5, 0.8, 0.97):
            cut = int(len(src) * frac)
            err(f"bad_trunc_{tag}_{cut}.jpg", src[:cut], "truncated")
        err(f"bad_trunc_{tag}_noeoi.jpg", src[:-2], "truncated")
        err(f"bad_trunc_{tag}_halfeoi.jpg", src[:-1], "truncated")

    def seg(data, marker):
        return data.index(b"\xff" + bytes([marker]))

    sof = seg(base, 0xC0)
    b = bytearray(base)
    b[sof + 7 : sof + 9] = b"\x00\x00"  # width 0
    err("bad_sof_width0.jpg", bytes(b), "size")
    b = bytearray(base)
    b[sof + 4] = 12  # 12-bit precision
    err("bad_sof_12bit.jpg", bytes(b), "unsupported")
    b = bytearray(base)
    b[sof + 1] = 0xC9  # arithmetic coding
    err("bad_sof_arith.jpg", bytes(b), "unsupported")
    b = bytearray(base)
    b[sof + 1] = 0xC3  # lossless
    err("bad_sof_lossless.jpg", bytes(b), "unsupported")
    b = bytearray(base)
    b[sof + 5 : sof + 9] = b"\xff\xff\xff\xff"  # 65535 x 65535
    err("bad_sof_huge.jpg", bytes(b), "size")
    dht = seg(base, 0xC4)
    b = bytearray(base)
    b[dht + 5] = 3  # three 1-bit codes: not a prefix code
    err("bad_dht_oversubscribed.jpg", bytes(b), "corrupt")
    b = bytearray(base)
    b[dht + 2 : dht + 4] = b"\x00\x05"  # DHT shorter than its tables
    err("bad_dht_short.jpg", bytes(b), "corrupt")
    b = bytearray(base)
    sos = seg(base, 0xDA)
    b[sos + 5] = 0x77  # component selector that names no component
    err("bad_sos_component.jpg", bytes(b), "corrupt")
    b = bytearray(base)
    b[sof + 2 : sof + 4] = b"\xff\xff"  # SOF length past the end of the file
    err("bad_sof_length.jpg", bytes(b), "truncated")
    # Garbage over the middle of the headers.
    rng = random.Random(7)
    b = bytearray(base)
    for i in range(20, sos):
        if rng.random() < 0.5:
            b[i] = rng.randrange(256)
    err("bad_garbage_headers.jpg", bytes(b), "any")
    # A restart marker removed.
    i = rst.index(b"\xff\xd1")
    err("bad_rst_missing.jpg", rst[:i] + rst[i + 2 :], "corrupt")
    if have_jpegtran:
        err("bad_arithmetic.jpg", jpegtran(base, "-arithmetic"), "unsupported")
        err("bad_arithmetic_prog.jpg", jpegtran(base, "-arithmetic", "-progressive"), "unsupported")
    png = io.BytesIO()
    Image.fromarray(natural(4, 4, 9)).save(png, "PNG")
    err("bad_not_jpeg.jpg", png.getvalue(), "notjpeg")
    err("bad_empty.jpg", b"", "notjpeg")
    err("bad_soi_only.jpg", b"\xff\xd8", "truncated")
    err("bad_no_frame.jpg", b"\xff\xd8\xff\xd9", "corrupt")

    # Four components: CMYK (Pillow writes Adobe-inverted ink, transform 0) and YCCK
    # (TurboJPEG's encoder, through simplejpeg, transform 2).
    manifest["cmyk"] = []
    for name, data in cmyk_cases(have_jpegtran):
        path = os.path.join(JPEG_OUT, name + ".jpg")
        with open(path, "wb") as f:
            f.write(data)
        raw, rgb = expected_cmyk(path)
        for ext, arr in ((".cmyk", raw), (".rgb", rgb)):
            with open(os.path.join(JPEG_OUT, name + ext), "wb") as f:
                f.write(arr.tobytes())
        manifest["cmyk"].append({
            "file": name + ".jpg", "cmyk": name + ".cmyk", "rgb": name + ".rgb",
            "width": rgb.shape[1], "height": rgb.shape[0],
        })

    with open(os.path.join(JPEG_OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)

    # sam-data: load_rgb against cv2.imread(path) (orientation applied, BGR→RGB).
    images = []

    def data_case(name, data=None, write=None):
        path = os.path.join(DATA_OUT, name)
        if data is not None:
            with open(path, "wb") as f:
                f.write(data)
        else:
            write(path)
        cv = cv2.imread(path)
        assert cv is not None, path
        rgb = np.ascontiguousarray(cv[..., ::-1])
        exp = name.replace(".", "_") + ".rgb"
        with open(os.path.join(DATA_OUT, exp), "wb") as f:
            f.write(rgb.tobytes())
        images.append({"file": name, "expected": exp, "width": rgb.shape[1], "height": rgb.shape[0]})
        return rgb

    arr = natural(23, 15, 6000)
    for o in range(1, 9):
        rgb = data_case(f"exif_o{o}.jpg", pil_bytes(arr, quality=90, exif=exif_bytes(o)))
        # cv2.imread applies the orientation as Pillow's exif_transpose does.
        ref = np.asarray(ImageOps.exif_transpose(Image.open(os.path.join(DATA_OUT, f"exif_o{o}.jpg"))).convert("RGB"))
        assert np.array_equal(ref, rgb), o
    data_case("exif_be_o6.jpg", pil_bytes(arr, quality=90, exif=b"Exif\x00\x00" + tiff))
    data_case("gray.jpg", pil_bytes(natural(19, 11, 6100, gray=True), quality=85))
    data_case("prog_420.jpg", pil_bytes(natural(30, 22, 6200), quality=85, progressive=True))
    cmyk_files = dict(cmyk_cases(False))
    data_case("cmyk.jpg", cmyk_files["cmyk_17x13_q90"])
    data_case("ycck.jpg", cmyk_files["ycck_420_33x47_q75"])
    g = natural(19, 11, 6300, gray=True)
    data_case("gray.png", write=lambda p: Image.fromarray(g).save(p))
    rgba = np.dstack([natural(21, 13, 6400), natural(21, 13, 6401, gray=True)])
    data_case("rgba.png", write=lambda p: Image.fromarray(rgba, "RGBA").save(p))
    la = np.dstack([g, natural(19, 11, 6402, gray=True)])
    data_case("gray_alpha.png", write=lambda p: Image.fromarray(la, "LA").save(p))
    rng = np.random.default_rng(6500)
    c16 = rng.integers(0, 65536, (9, 14, 3), dtype=np.uint16)
    rgb16 = data_case("rgb16.png", write=lambda p: cv2.imwrite(p, c16[..., ::-1]))
    assert np.array_equal(rgb16, (c16 >> 8).astype(np.uint8)), "16-bit PNG is not >> 8 in OpenCV"
    g16 = rng.integers(0, 65536, (10, 7), dtype=np.uint16)
    gray16 = data_case("gray16.png", write=lambda p: cv2.imwrite(p, g16))
    assert np.array_equal(gray16[..., 0], (g16 >> 8).astype(np.uint8)), "16-bit gray PNG is not >> 8"
    c16a = rng.integers(0, 65536, (6, 5, 4), dtype=np.uint16)
    data_case("rgba16.png", write=lambda p: cv2.imwrite(p, c16a[..., [2, 1, 0, 3]]))
    pal = Image.fromarray(natural(17, 12, 6600)).convert("P", palette=Image.Palette.ADAPTIVE, colors=37)
    data_case("palette.png", write=lambda p: pal.save(p))
    pal_t = pal.copy()
    pal_t.info["transparency"] = 3
    data_case("palette_trns.png", write=lambda p: pal_t.save(p, transparency=3))
    bits = Image.fromarray(natural(13, 9, 6700, gray=True)).convert("1")
    data_case("bilevel.png", write=lambda p: bits.save(p))
    with open(os.path.join(DATA_OUT, "images.json"), "w") as f:
        json.dump({"opencv": cv2.__version__, "images": images}, f, indent=1)

    # Larger files for timing only.
    for name, (w, h), kw in (
        ("photo_1600x1200_q90_420.jpg", (1600, 1200), dict(quality=90, subsampling=2)),
        ("photo_1600x1200_q95_444.jpg", (1600, 1200), dict(quality=95, subsampling=0)),
        ("photo_1600x1200_q90_prog.jpg", (1600, 1200), dict(quality=90, subsampling=2, progressive=True)),
    ):
        with open(os.path.join(BENCH_OUT, name), "wb") as f:
            f.write(pil_bytes(natural(w, h, 7000), **kw))

    total = sum(os.path.getsize(os.path.join(JPEG_OUT, f)) for f in os.listdir(JPEG_OUT))
    total2 = sum(os.path.getsize(os.path.join(DATA_OUT, f)) for f in os.listdir(DATA_OUT))
    print(f"{len(manifest['decode'])} decode cases, {len(manifest['errors'])} error cases, {total} bytes; "
          f"{len(images)} load_rgb cases, {total2} bytes")


if __name__ == "__main__":
    main()
