//! The decoder's tail on the CPU: the 4× upscaler and the hypernetwork product, one row of image
//! tokens at a time.
//!
//! Through Burn's ops on flex each step of the tail is a pass over the whole upscaled map (1 M
//! and 2 M values per prompt at SAM's sizes): every matrix product's output is allocated,
//! zeroed and copied to aligned memory by the backend, the biases are added in passes of their
//! own, and the GELUs read 8 MB out of cache. Here one row of image tokens goes through both
//! transposed convolutions, the norm, the GELUs and the hypernetwork product while it is in
//! cache, and its pixels are written straight into the mask images. The sums are the tensor
//! path's (the same `gemm` products over the same inner dimensions); the norm takes the
//! reference's formula, `(x − mean) / √(var + eps)·weight + bias`.

use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

use super::output_upscaling::OutputUpscaling;
use crate::host_gemm::{matmul, matmul_strided};
use crate::vector_math::{host_maps, host_values, layer_norm_row, multiversion};

/// Whether [`masks`] runs for `src` with `up`'s weights: f32 inference on flex.
pub(crate) fn applies(up: &OutputUpscaling, src: &Tensor<3>, hyper_in: &Tensor<3>) -> bool {
    let f32 = |dtype: DType| dtype == DType::F32;
    // Empty grids, batches or token sets take Burn's ops (the pieces below are non-empty).
    let nonempty = src.dims().iter().chain(&hyper_in.dims()).all(|&d| d > 0);
    nonempty
        && host_maps(&src.device())
        && f32(src.dtype())
        && f32(hyper_in.dtype())
        && f32(up.conv1.weight.val().dtype())
        && f32(up.conv2.weight.val().dtype())
        && f32(up.norm.weight.val().dtype())
        && f32(up.norm.bias.val().dtype())
        && up.conv1.bias.as_ref().is_some_and(|b| f32(b.val().dtype()))
        && up.conv2.bias.as_ref().is_some_and(|b| f32(b.val().dtype()))
}

/// The upscaler's weights as host values, each convolution as one matrix `[Cin, (dy, dx, Cout)]`.
struct Weights {
    w1: Vec<f32>,
    b1: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
    w2: Vec<f32>,
    b2: Vec<f32>,
    /// `C`, `C/4`, `C/8` of the reference.
    c: usize,
    c4: usize,
    c8: usize,
}

fn values<const D: usize>(x: Tensor<D>) -> Vec<f32> {
    // `applies` checked the dtypes, so the conversion never fails.
    host_values(x).unwrap_or_default()
}

/// `[Cin, Cout, 2, 2]` → `[Cin, (dy, dx, Cout)]` row-major.
fn deconv_matrix(weight: Tensor<4>) -> (Vec<f32>, usize, usize) {
    let [cin, cout, kh, kw] = weight.dims();
    let w = values(weight);
    let mut m = vec![0.0; cin * kh * kw * cout];
    for ci in 0..cin {
        for co in 0..cout {
            for dy in 0..kh {
                for dx in 0..kw {
                    m[ci * kh * kw * cout + (dy * kw + dx) * cout + co] =
                        w[((ci * cout + co) * kh + dy) * kw + dx];
                }
            }
        }
    }
    (m, cin, cout)
}

impl Weights {
    fn new(up: &OutputUpscaling) -> Self {
        let (w1, c, c4) = deconv_matrix(up.conv1.weight.val());
        let (w2, _, c8) = deconv_matrix(up.conv2.weight.val());
        let bias = |b: &Option<burn::module::Param<Tensor<1>>>| {
            b.as_ref().map(|b| values(b.val())).unwrap_or_default()
        };
        Self {
            w1,
            b1: bias(&up.conv1.bias),
            gamma: values(up.norm.weight.val()),
            beta: values(up.norm.bias.val()),
            eps: up.norm.eps() as f32,
            w2,
            b2: bias(&up.conv2.bias),
            c,
            c4,
            c8,
        }
    }
}

/// Rows of image tokens per task: one row of SAM's 64 tokens is 0.2 G multiply-adds and
/// ~200 KB of intermediate values (in L2 with the first convolution's weights); two or four rows
/// per task measured the same.
const TASK_ROWS: usize = 1;

/// One task's working memory, reused across the rows it takes.
struct Scratch {
    /// After the first convolution: `[w, (dy1, dx1, C/4)]`.
    a1: Vec<f32>,
    /// After the second: `[w, (dy1, dx1, dy2, dx2, C/8)]`.
    a2: Vec<f32>,
    /// The masks of the row's pixels, `[T, (x, dy1, dx1, dy2, dx2)]`.
    masks: Vec<f32>,
}

/// The masks of [`super::MaskDecoder`]: `src: [B, h·w, C]` (the transformer's image tokens,
/// row-major) upscaled 4×, each pixel's `C/8` features dotted with `hyper_in: [B|1, T, C/8]`
/// → `[B, T, 4h, 4w]`. Only where [`applies`] holds.
pub(crate) fn masks(
    up: &OutputUpscaling,
    src: Tensor<3>,
    hyper_in: Tensor<3>,
    (h, w): (usize, usize),
) -> Tensor<4> {
    let device = src.device();
    let [b, hw, _] = src.dims();
    let [bh, t, _] = hyper_in.dims();
    debug_assert_eq!(hw, h * w);
    let weights = Weights::new(up);
    let src = src.into_data();
    let src = src.as_slice::<f32>().unwrap_or(&[]);
    let hyper = values(hyper_in);
    let (c, c8) = (weights.c, weights.c8);
    let mut out = vec![0.0f32; b * t * 16 * hw];

    // Each task takes `rows` rows of image tokens of one prompt, which own rows 4y..4(y+rows)
    // of every mask image of that prompt: gather those disjoint slices per task.
    let rows = TASK_ROWS;
    let per_task = rows * 16 * w;
    let mut tasks: Vec<(usize, usize, Vec<&mut [f32]>)> = Vec::new();
    for (bi, prompt) in out.chunks_mut(t * 16 * hw).enumerate() {
        let first = tasks.len();
        tasks.extend((0..h.div_ceil(rows)).map(|i| (bi, i * rows, Vec::with_capacity(t))));
        for plane in prompt.chunks_mut(16 * hw) {
            for (i, slice) in plane.chunks_mut(per_task).enumerate() {
                tasks[first + i].2.push(slice);
            }
        }
    }
    tasks.into_par_iter().for_each_init(
        || Scratch {
            a1: vec![0.0; rows * w * 4 * weights.c4],
            a2: vec![0.0; rows * w * 16 * c8],
            masks: vec![0.0; t * rows * 16 * w],
        },
        |scratch, (bi, y, planes)| {
            let n = rows.min(h - y) * w;
            let first = bi * hw + y * w;
            let tokens = &src[first * c..(first + n) * c];
            let hyper_b = if bh == 1 { 0 } else { bi };
            let hyper = &hyper[hyper_b * t * c8..(hyper_b + 1) * t * c8];
            tile(&weights, tokens, hyper, scratch, planes, w);
        },
    );
    Tensor::from_data(
        TensorData::new(out, [b, t, 4 * h, 4 * w]),
        (&device, DType::F32),
    )
}

/// Whole rows of image tokens `[n, C]` (`n` a multiple of the row length `w`) through the
/// upscaler and the hypernetwork product `hyper: [T, C/8]`, into the rows they own of each of
/// the `T` mask images (`planes[t]`: `[4n/w, 4w]`).
fn tile(
    weights: &Weights,
    tokens: &[f32],
    hyper: &[f32],
    scratch: &mut Scratch,
    mut planes: Vec<&mut [f32]>,
    w: usize,
) {
    let Weights { c, c4, c8, .. } = *weights;
    let t = planes.len();
    let n = tokens.len() / c;
    let a1 = &mut scratch.a1[..n * 4 * c4];
    let a2 = &mut scratch.a2[..n * 16 * c8];
    // [n, C] · [C, 4·C/4]: pixel (token, dy1, dx1) × C/4.
    matmul((n, 4 * c4, c), tokens, &weights.w1, a1, false);
    norm_gelu_rows(a1, &weights.b1, &weights.gamma, &weights.beta, weights.eps);
    // [4n, C/4] · [C/4, 4·C/8]: pixel (token, dy1, dx1, dy2, dx2) × C/8.
    matmul((4 * n, 4 * c8, c4), a1, &weights.w2, a2, false);
    bias_gelu_rows(a2, &weights.b2);
    // [T, C/8] · [C/8, 16n] (the pixels' features read transposed).
    let pixels = 16 * n;
    let masks = &mut scratch.masks[..t * pixels];
    matmul_strided(
        (t, pixels, c8),
        (hyper, (c8, 1)),
        (a2, (1, c8)),
        (masks, (pixels, 1)),
        false,
    );
    // Pixel (y, x, dy1, dx1, dy2, dx2) of these token rows is mask pixel
    // (4y + 2·dy1 + dy2, 4x + 2·dx1 + dx2) of their rows.
    for (plane, masks) in planes.iter_mut().zip(masks.chunks_exact(pixels)) {
        for (p, &m) in masks.iter().enumerate() {
            let (token, sub) = (p / 16, p % 16);
            let (y, x) = (token / w, token % w);
            let (dy1, dx1, dy2, dx2) = (sub >> 3, (sub >> 2) & 1, (sub >> 1) & 1, sub & 1);
            plane[(4 * y + 2 * dy1 + dy2) * 4 * w + 4 * x + 2 * dx1 + dx2] = m;
        }
    }
}

multiversion! {
    /// Rows of `bias.len()` values: plus the bias, the reference's `LayerNorm2d` over the row,
    /// then GELU.
    fn norm_gelu_rows(values: &mut [f32], bias: &[f32], gamma: &[f32], beta: &[f32], eps: f32)
        => norm_gelu_kernel
}

#[inline(always)]
fn norm_gelu_kernel(values: &mut [f32], bias: &[f32], gamma: &[f32], beta: &[f32], eps: f32) {
    for row in values.chunks_exact_mut(bias.len()) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v += b;
        }
        layer_norm_row(row, gamma, beta, eps);
    }
    crate::gelu::gelu_kernel(values);
}

multiversion! {
    /// Rows of `bias.len()` values: plus the bias, then GELU.
    fn bias_gelu_rows(values: &mut [f32], bias: &[f32]) => bias_gelu_kernel
}

#[inline(always)]
fn bias_gelu_kernel(values: &mut [f32], bias: &[f32]) {
    for row in values.chunks_exact_mut(bias.len()) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v += b;
        }
    }
    crate::gelu::gelu_kernel(values);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask_decoder::pixels_to_image;
    use crate::test_util::Draws;
    use burn::module::Param;
    use burn::tensor::Device;

    /// Every compiled variant of the fused rows gives the same bits.
    #[test]
    fn variants_agree() {
        let values: Vec<f32> = (0..64 * 8)
            .map(|i| ((i * 37) % 101) as f32 / 17.0 - 3.0)
            .collect();
        let bias: Vec<f32> = (0..8).map(|i| i as f32 * 0.1 - 0.3).collect();
        let gamma: Vec<f32> = (0..8).map(|i| 1.0 + i as f32 * 0.05).collect();
        crate::vector_math::assert_variants_agree("norm_gelu_rows", || {
            let mut v = values.clone();
            norm_gelu_rows(&mut v, &bias, &gamma, &bias, 1e-6);
            v
        });
        crate::vector_math::assert_variants_agree("bias_gelu_rows", || {
            let mut v = values.clone();
            bias_gelu_rows(&mut v, &bias);
            v
        });
    }

    /// The fused rows against the upscaler's tensor path, on a non-square grid, with a norm
    /// that is not the identity, one `hyper_in` per prompt or one for all.
    #[test]
    fn matches_the_tensor_path() {
        let device = Device::flex();
        let draws = Draws::new(1);
        let random = |shape: [usize; 3]| draws.standard(shape, &device);
        let mut up = OutputUpscaling::new(32, &device);
        up.norm.weight = Param::from_tensor(random([1, 1, 8]).reshape([8]) + 1.0);
        up.norm.bias = Param::from_tensor(random([1, 1, 8]).reshape([8]));
        let (b, t, h, w) = (3, 4, 5, 7);
        let src = random([b, h * w, 32]) * 2.0;
        for hyper in [random([b, t, 4]), random([1, t, 4])] {
            assert!(applies(&up, &src, &hyper));
            let ours = masks(&up, src.clone(), hyper.clone(), (h, w));
            let upscaled = up.forward_tokens(src.clone());
            let reference = pixels_to_image(hyper.matmul(upscaled.swap_dims(1, 2)), (h, w));
            assert_eq!(ours.dims(), [b, t, 4 * h, 4 * w]);
            let scale = reference.clone().abs().max().into_scalar::<f32>();
            let diff = (ours - reference).abs().max().into_scalar::<f32>();
            assert!(diff <= 1e-5 * scale, "max diff {diff} (scale {scale})");
        }
        // Autodiff keeps Burn's ops (the graph must see them).
        let ad = device.clone().autodiff();
        let draws = Draws::new(100);
        let src_ad = draws.standard([1, 4, 32], &ad);
        let hyper_ad = draws.standard([1, t, 4], &ad);
        assert!(!applies(&up, &src_ad, &hyper_ad));
    }
}
