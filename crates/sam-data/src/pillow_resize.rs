//! Bilinear and bicubic resize of 8-bit RGB images, bit-identical to Pillow's
//! `Image.resize(size, BILINEAR)` (what the reference's `ResizeLongestSide.apply_image` calls
//! through torchvision) and `Image.resize(size, BICUBIC)` (what CLIP's image processor calls).
//!
//! Pillow resamples separably — one axis, rounded to u8, then the other — with a
//! filter (triangle, or cubic convolution with a = −0.5) whose support grows with the reduction
//! factor (antialiasing), weights normalised in f64 and converted to 22-bit fixed point. No crate
//! reproduces those steps exactly (`fast_image_resize` differs by ±1–2 on up to 27% of pixels),
//! so they are written out here.

use std::ops::Range;

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Fixed-point taps of one output pixel: the first source index and the weights.
struct Taps {
    start: usize,
    weights: Vec<i32>,
}

/// Pillow's resampling filters (`Image.Resampling`) that this module reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// `BILINEAR` (2): the triangle filter, support 1.
    Bilinear,
    /// `BICUBIC` (3): cubic convolution with a = −0.5, support 2. Its negative lobes can
    /// overshoot; the fixed-point sums are clipped to 0..=255 as Pillow's `clip8` does.
    Bicubic,
}

impl Filter {
    /// Pillow's `struct filter`: the kernel's half-width at scale 1.
    fn support(self) -> f64 {
        match self {
            Filter::Bilinear => 1.0,
            Filter::Bicubic => 2.0,
        }
    }

    /// Pillow's `bilinear_filter` / `bicubic_filter`, with the same operation order (the f64
    /// results feed the rounding to fixed point, so the expression is kept as written there).
    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Filter::Bilinear => {
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Filter::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for a full-range box, for the output
/// pixels `outputs` (each one's taps depend on its index alone).
fn coefficients(
    filter: Filter,
    in_size: usize,
    out_size: usize,
    outputs: Range<usize>,
) -> Vec<Taps> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ss = 1.0 / filterscale;
    outputs
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            // C's (int) cast truncates toward zero.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let count = xmax.saturating_sub(xmin);
            let mut w: Vec<f64> = (0..count)
                .map(|x| filter.weight((x as f64 + xmin as f64 - center + 0.5) * ss))
                .collect();
            let total: f64 = w.iter().sum();
            if total != 0.0 {
                w.iter_mut().for_each(|v| *v /= total);
            }
            let one = (1u32 << PRECISION_BITS) as f64;
            let weights = w
                .iter()
                .map(|&v| {
                    if v < 0.0 {
                        (-0.5 + v * one) as i32
                    } else {
                        (0.5 + v * one) as i32
                    }
                })
                .collect();
            Taps {
                start: xmin,
                weights,
            }
        })
        .collect()
}

/// The source pixels `taps` read, as a range.
fn reads(taps: &[Taps]) -> Range<usize> {
    let lo = taps.iter().map(|t| t.start).min().unwrap_or(0);
    let hi = taps
        .iter()
        .map(|t| t.start + t.weights.len())
        .max()
        .unwrap_or(0);
    lo..hi.max(lo)
}

/// The horizontal taps of the output columns `cols`; with `mirror`, of the image mirrored
/// left–right first, read from the unmirrored one: output `x` reads the mirrored pixels
/// `start..start + n`, which are the source pixels `width − start − n..width − start` in reverse
/// order, so the weights are reversed (an integer sum does not depend on its order).
fn horizontal_taps(
    filter: Filter,
    width: usize,
    out_w: usize,
    cols: Range<usize>,
    mirror: bool,
) -> Vec<Taps> {
    let mut taps = coefficients(filter, width, out_w, cols);
    if mirror {
        for t in &mut taps {
            t.start = width - t.start - t.weights.len();
            t.weights.reverse();
        }
    }
    taps
}

/// Mirrors each row of an RGB image `width` pixels wide.
pub(crate) fn mirror_rows(image: &mut [u8], width: usize) {
    if width == 0 {
        return;
    }
    for row in image.chunks_exact_mut(width * 3) {
        row.as_chunks_mut::<3>().0.reverse();
    }
}

/// `taps` reading from a buffer that starts at source pixel `offset`.
fn shifted(mut taps: Vec<Taps>, offset: usize) -> Vec<Taps> {
    taps.iter_mut().for_each(|t| t.start -= offset);
    taps
}

/// Pillow's `clip8` (a lookup table over −640..=639 there; a clamp is the same on that range,
/// which holds every sum normalised weights can reach).
#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Horizontal pass over the rows `rows` of a `width`-pixel-wide image: one output pixel per tap
/// set, `rows.len() × taps.len()`.
fn horizontal_pass(src: &[u8], width: usize, rows: Range<usize>, taps: &[Taps]) -> Vec<u8> {
    let half = 1i32 << (PRECISION_BITS - 1);
    let out_w = taps.len();
    let mut out = vec![0u8; out_w * rows.len() * 3];
    if out_w == 0 {
        return out;
    }
    for (y, dst) in rows.zip(out.chunks_exact_mut(out_w * 3)) {
        let row = &src[y * width * 3..(y + 1) * width * 3];
        for (t, d) in taps.iter().zip(dst.chunks_exact_mut(3)) {
            let pixels = &row[t.start * 3..(t.start + t.weights.len()) * 3];
            let mut acc = [half; 3];
            for (p, &k) in pixels.chunks_exact(3).zip(&t.weights) {
                acc[0] += p[0] as i32 * k;
                acc[1] += p[1] as i32 * k;
                acc[2] += p[2] as i32 * k;
            }
            d[0] = clip8(acc[0]);
            d[1] = clip8(acc[1]);
            d[2] = clip8(acc[2]);
        }
    }
    out
}

/// Vertical pass over the columns `cols` of a `width`-pixel-wide image: one output row per tap
/// set, `taps.len() × cols.len()`. Whole rows are accumulated at a time, which vectorises;
/// each pixel still sums its taps in order.
fn vertical_pass(src: &[u8], width: usize, cols: Range<usize>, taps: &[Taps]) -> Vec<u8> {
    let half = 1i32 << (PRECISION_BITS - 1);
    let stride = width * 3;
    let (a, b) = (cols.start * 3, cols.end * 3);
    let n = b - a;
    let mut out = vec![0u8; n * taps.len()];
    if n == 0 {
        return out;
    }
    let mut acc = vec![0i32; n];
    for (t, dst) in taps.iter().zip(out.chunks_exact_mut(n)) {
        acc.fill(half);
        for (i, &k) in t.weights.iter().enumerate() {
            let row = &src[(t.start + i) * stride + a..(t.start + i) * stride + b];
            for (s, &v) in acc.iter_mut().zip(row) {
                *s += v as i32 * k;
            }
        }
        for (d, &s) in dst.iter_mut().zip(&acc) {
            *d = clip8(s);
        }
    }
    out
}

/// Whether Pillow (13) runs the vertical pass first.
///
/// Pillow 13 picks the pass order per call; the order changes the rounding of the u8
/// intermediate. Measured on 1,469 random size pairs (1–1500 px, noise images, every one
/// matching exactly one order): vertical first exactly when the height shrinks and it loses more
/// than twice as many pixels as the width does. The same rule holds for the bicubic filter
/// (400 random size pairs, `tools/reference/make_bicubic_fixtures.py`).
fn vertical_first(width: usize, height: usize, out_w: usize, out_h: usize) -> bool {
    out_h < height && (height - out_h) as i64 > 2 * (width as i64 - out_w as i64)
}

/// Resizes an interleaved RGB buffer (`height × width × 3`, row-major) to `out_w × out_h`.
///
/// Panics only if `src.len() != width·height·3`; callers validate (see [`crate::ResizeLongestSide`]).
pub fn resize_bilinear_rgb(
    src: &[u8],
    width: usize,
    height: usize,
    out_w: usize,
    out_h: usize,
) -> Vec<u8> {
    resize_rgb(src, width, height, out_w, out_h, Filter::Bilinear)
}

/// Resizes an interleaved RGB buffer (`height × width × 3`, row-major) to `out_w × out_h` with
/// Pillow's bicubic filter (`Image.resize(size, BICUBIC)`, resample 3).
///
/// Panics only if `src.len() != width·height·3`; callers validate.
pub fn resize_bicubic_rgb(
    src: &[u8],
    width: usize,
    height: usize,
    out_w: usize,
    out_h: usize,
) -> Vec<u8> {
    resize_rgb(src, width, height, out_w, out_h, Filter::Bicubic)
}

/// Resizes an interleaved RGB buffer (`height × width × 3`, row-major) to `out_w × out_h` with
/// `filter`, as Pillow's `Image.resize(size, filter)`.
///
/// Panics only if `src.len() != width·height·3`; callers validate.
pub fn resize_rgb(
    src: &[u8],
    width: usize,
    height: usize,
    out_w: usize,
    out_h: usize,
    filter: Filter,
) -> Vec<u8> {
    let whole = [0, 0, out_w, out_h];
    resize_rgb_window(src, width, height, (out_w, out_h), whole, false, filter)
}

/// The `window = [x0, y0, w, h]` part of [`resize_bilinear_rgb`]'s output for `src`, mirrored
/// left–right first when `mirror`, computed alone: the same taps over the same intermediate
/// rows or columns, so the same bytes, without mirroring a full-size image or resizing what a
/// crop would throw away.
///
/// Panics if `src.len() != width·height·3` or the window is not inside `out = (w, h)`.
pub(crate) fn resize_bilinear_rgb_window(
    src: &[u8],
    width: usize,
    height: usize,
    out: (usize, usize),
    window: [usize; 4],
    mirror: bool,
) -> Vec<u8> {
    resize_rgb_window(src, width, height, out, window, mirror, Filter::Bilinear)
}

/// [`resize_bilinear_rgb_window`] with any [`Filter`].
fn resize_rgb_window(
    src: &[u8],
    width: usize,
    height: usize,
    (out_w, out_h): (usize, usize),
    window: [usize; 4],
    mirror: bool,
    filter: Filter,
) -> Vec<u8> {
    assert_eq!(
        src.len(),
        width * height * 3,
        "buffer is not width × height × 3"
    );
    let [x0, y0, cw, ch] = window;
    assert!(
        x0 + cw <= out_w && y0 + ch <= out_h,
        "window {window:?} outside {out_w}×{out_h}"
    );
    let (cols, rows) = (x0..x0 + cw, y0..y0 + ch);
    // Without a horizontal pass (`out_w == width`) the output columns are source columns,
    // mirrored or not.
    let same_cols = || {
        if mirror {
            width - x0 - cw..width - x0
        } else {
            x0..x0 + cw
        }
    };
    match (out_w != width, out_h != height) {
        (false, false) => {
            let mut out = Vec::with_capacity(cw * ch * 3);
            let kept = same_cols();
            for y in rows {
                let row = &src[y * width * 3..(y + 1) * width * 3];
                out.extend_from_slice(&row[kept.start * 3..kept.end * 3]);
            }
            if mirror {
                mirror_rows(&mut out, cw);
            }
            out
        }
        (false, true) => {
            let mut out = vertical_pass(
                src,
                width,
                same_cols(),
                &coefficients(filter, height, out_h, rows),
            );
            if mirror {
                mirror_rows(&mut out, cw);
            }
            out
        }
        (true, false) => horizontal_pass(
            src,
            width,
            rows,
            &horizontal_taps(filter, width, out_w, cols, mirror),
        ),
        (true, true) if vertical_first(width, height, out_w, out_h) => {
            let h_taps = horizontal_taps(filter, width, out_w, cols, mirror);
            let used = reads(&h_taps);
            let v_taps = coefficients(filter, height, out_h, rows);
            let tmp = vertical_pass(src, width, used.clone(), &v_taps);
            horizontal_pass(&tmp, used.len(), 0..ch, &shifted(h_taps, used.start))
        }
        (true, true) => {
            let v_taps = coefficients(filter, height, out_h, rows);
            let used = reads(&v_taps);
            let h_taps = horizontal_taps(filter, width, out_w, cols, mirror);
            let tmp = horizontal_pass(src, width, used.clone(), &h_taps);
            vertical_pass(&tmp, cw, 0..cw, &shifted(v_taps, used.start))
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    #[test]
    fn a_window_is_the_same_part_of_the_whole_resize_mirrored_or_not() {
        let mut rng = StdRng::seed_from_u64(4);
        let mut orders = [0usize; 4];
        for case in 0..600 {
            let (w, h) = (rng.random_range(1..48), rng.random_range(1..48));
            let src: Vec<u8> = (0..w * h * 3).map(|_| rng.random()).collect();
            // Keep a side unchanged now and then, for the single-pass and copy branches.
            let side = |n: usize, rng: &mut StdRng| {
                if rng.random_bool(0.25) {
                    n
                } else {
                    rng.random_range(1..96)
                }
            };
            let (ow, oh) = (side(w, &mut rng), side(h, &mut rng));
            let (cw, ch) = (rng.random_range(0..=ow), rng.random_range(0..=oh));
            let (x0, y0) = (rng.random_range(0..=ow - cw), rng.random_range(0..=oh - ch));
            let mirror = rng.random_bool(0.5);
            let filter = if rng.random_bool(0.5) {
                Filter::Bilinear
            } else {
                Filter::Bicubic
            };
            let mut mirrored = src.clone();
            if mirror {
                mirror_rows(&mut mirrored, w);
            }
            let full = resize_rgb(&mirrored, w, h, ow, oh, filter);
            let mut expected = Vec::new();
            for y in y0..y0 + ch {
                expected.extend_from_slice(&full[(y * ow + x0) * 3..(y * ow + x0 + cw) * 3]);
            }
            let window = resize_rgb_window(&src, w, h, (ow, oh), [x0, y0, cw, ch], mirror, filter);
            assert!(
                window == expected,
                "case {case}: {w}×{h} → {ow}×{oh}, mirror {mirror}, {filter:?}"
            );
            orders[match (ow != w, oh != h) {
                (true, true) if vertical_first(w, h, ow, oh) => 0,
                (true, true) => 1,
                (true, false) | (false, true) => 2,
                (false, false) => 3,
            }] += 1;
        }
        assert!(orders.iter().all(|&n| n > 10), "{orders:?}");
    }
}
