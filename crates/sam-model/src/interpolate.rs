//! Linear/bilinear resampling as matrices, matching PyTorch's `F.interpolate(...,
//! align_corners=False)` without antialiasing.
//!
//! A resize along one axis is a sparse `[out, in]` matrix; applying it with `matmul` keeps the
//! operation differentiable on every backend (Burn's CubeCL bilinear has no backward) and lets
//! several resizes along the same axis collapse into one product.

use burn::tensor::{Device, Tensor, TensorData};

/// Row-major `[n_out, n_in]` weights of a 1-D linear resize, in f64.
///
/// PyTorch: `src = (dst + 0.5)·(in/out) − 0.5`, clamped at 0; upper neighbour clamped to
/// `in − 1`.
pub fn linear_resize_weights(n_in: usize, n_out: usize) -> Vec<f64> {
    let scale = n_in as f32 / n_out as f32;
    let mut m = vec![0f64; n_out * n_in];
    for o in 0..n_out {
        // PyTorch computes the source coordinate and lambda in the op's float type (f32).
        let src = (scale * (o as f32 + 0.5) - 0.5).max(0.0);
        let i0 = (src as usize).min(n_in - 1);
        let i1 = if i0 < n_in - 1 { i0 + 1 } else { i0 };
        let l1 = src - i0 as f32;
        let l0 = 1.0 - l1;
        m[o * n_in + i0] += l0 as f64;
        m[o * n_in + i1] += l1 as f64;
    }
    m
}

/// `[n_out, n_in]` matrix of a 1-D linear resize (align_corners = false).
pub fn linear_resize_matrix(n_in: usize, n_out: usize, device: &Device) -> Tensor<2> {
    let m: Vec<f32> = linear_resize_weights(n_in, n_out)
        .into_iter()
        .map(|v| v as f32)
        .collect();
    Tensor::from_data(TensorData::new(m, [n_out, n_in]), device)
}

/// Product of `[a, b]` and `[b, c]` row-major f64 matrices.
pub(crate) fn matmul_f64(a: &[f64], b: &[f64], rows: usize, inner: usize, cols: usize) -> Vec<f64> {
    let mut out = vec![0f64; rows * cols];
    for r in 0..rows {
        for k in 0..inner {
            let a_rk = a[r * inner + k];
            if a_rk == 0.0 {
                continue;
            }
            for c in 0..cols {
                out[r * cols + c] += a_rk * b[k * cols + c];
            }
        }
    }
    out
}

/// Row-major `[n_final, n_low]` weights of the reference's two-step mask upscaling along one
/// axis: resize `n_low → n_padded`, keep the first `n_valid`, resize `n_valid → n_final`
/// (composed in f64, rounded once to f32).
pub fn upscale_crop_resize_weights(
    n_low: usize,
    n_padded: usize,
    n_valid: usize,
    n_final: usize,
) -> Vec<f32> {
    let up = linear_resize_weights(n_low, n_padded);
    let cropped = &up[..n_valid * n_low];
    let down = linear_resize_weights(n_valid, n_final);
    matmul_f64(&down, cropped, n_final, n_valid, n_low)
        .into_iter()
        .map(|v| v as f32)
        .collect()
}

/// [`upscale_crop_resize_weights`] as a `[n_final, n_low]` matrix.
pub fn upscale_crop_resize_matrix(
    n_low: usize,
    n_padded: usize,
    n_valid: usize,
    n_final: usize,
    device: &Device,
) -> Tensor<2> {
    let m = upscale_crop_resize_weights(n_low, n_padded, n_valid, n_final);
    Tensor::from_data(TensorData::new(m, [n_final, n_low]), device)
}

/// Bilinear resize of `x: [B, C, H, W]` to `[B, C, out_h, out_w]` (align_corners = false).
pub fn resize_bilinear(x: Tensor<4>, out_h: usize, out_w: usize) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    let device = x.device();
    let mh = linear_resize_matrix(h, out_h, &device);
    let mw = linear_resize_matrix(w, out_w, &device);
    apply_separable(x, mh, mw)
}

/// `mh: [H', H]`, `x: [B, C, H, W]`, `mw: [W', W]` → `mh · x · mwᵀ`, `[B, C, H', W']`.
pub fn apply_separable(x: Tensor<4>, mh: Tensor<2>, mw: Tensor<2>) -> Tensor<4> {
    mh.unsqueeze::<4>()
        .matmul(x)
        .matmul(mw.transpose().unsqueeze::<4>())
}
