//! The recorded operations with the backend's own ops: the default bodies of [`RecordedOps`](super::RecordedOps)
//! (the CubeCL backends run these) and flex's fallbacks for what its host kernels do not take.

use burn::backend::ops::ActivationOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, TensorMetadata};
use burn::tensor::{DType, FloatDType};

use crate::precision::is_half;

/// `f` of `tensors` cast to f32, cast back to `dtype`.
pub(super) fn in_f32<B: Backend, const N: usize>(
    tensors: [FloatTensor<B>; N],
    dtype: DType,
    f: impl FnOnce([FloatTensor<B>; N]) -> FloatTensor<B>,
) -> FloatTensor<B> {
    let out = f(tensors.map(|t| B::float_cast(t, FloatDType::F32)));
    B::float_cast(out, dtype.into())
}

/// Burn's softmax over the last axis, in f32 for a 16-bit input.
pub(super) fn composed_softmax_last<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let last = x.shape().num_dims().saturating_sub(1);
    let dtype = x.dtype();
    let softmax = |x| <B as ActivationOps<B>>::softmax(x, last);
    if is_half(dtype) {
        in_f32::<B, 1>([x], dtype, |[x]| softmax(x))
    } else {
        softmax(x)
    }
}

/// The softmax's input gradient with the backend's own ops, in f32 for 16-bit tensors.
pub(super) fn composed_softmax_backward<B: Backend>(
    y: FloatTensor<B>,
    grad: FloatTensor<B>,
) -> FloatTensor<B> {
    let dtype = grad.dtype();
    let backward = |y: FloatTensor<B>, grad: FloatTensor<B>| {
        let last = y.shape().num_dims() - 1;
        let dot = B::float_sum_dim(B::float_mul(grad.clone(), y.clone()), last);
        B::float_mul(y, B::float_sub(grad, dot))
    };
    if is_half(dtype) || is_half(y.dtype()) {
        in_f32::<B, 2>([y, grad], dtype, |[y, grad]| backward(y, grad))
    } else {
        backward(y, grad)
    }
}

/// `grad ⊙ (Φ(x) + x·φ(x))`, the derivative of the exact `x·Φ(x)`, with the backend's ops
/// (in f32 for 16-bit tensors).
pub(super) fn composed_gelu_backward<B: Backend>(
    x: FloatTensor<B>,
    grad: FloatTensor<B>,
) -> FloatTensor<B> {
    let dtype = grad.dtype();
    let backward = |[x, grad]: [FloatTensor<B>; 2]| {
        let scaled = B::float_mul_scalar(x.clone(), std::f64::consts::FRAC_1_SQRT_2.into());
        let cdf = B::float_mul_scalar(
            B::float_add_scalar(B::float_erf(scaled), 1.0.into()),
            0.5.into(),
        );
        let square = B::float_mul(x.clone(), x.clone());
        let pdf = B::float_mul_scalar(
            B::float_exp(B::float_mul_scalar(square, (-0.5).into())),
            (0.5 * std::f64::consts::FRAC_2_SQRT_PI * std::f64::consts::FRAC_1_SQRT_2).into(),
        );
        B::float_mul(grad, B::float_add(cdf, B::float_mul(x, pdf)))
    };
    if is_half(dtype) || is_half(x.dtype()) {
        in_f32::<B, 2>([x, grad], dtype, backward)
    } else {
        backward([x, grad])
    }
}

/// The rel-pos softmax with Burn's broadcast adds and softmax (in f32 for a 16-bit input).
pub(super) fn composed_softmax_rel_pos<B: Backend>(
    attn: FloatTensor<B>,
    rel_h: FloatTensor<B>,
    rel_w: FloatTensor<B>,
    (k_h, k_w): (usize, usize),
) -> FloatTensor<B> {
    let dtype = attn.dtype();
    let add = |[attn, rel_h, rel_w]: [FloatTensor<B>; 3]| {
        let shape = attn.shape();
        let (b, nq) = (shape[0], shape[1]);
        let attn = B::float_reshape(attn, [b, nq, k_h, k_w].into());
        let attn = B::float_add(attn, B::float_reshape(rel_h, [b, nq, k_h, 1].into()));
        let attn = B::float_add(attn, B::float_reshape(rel_w, [b, nq, 1, k_w].into()));
        <B as ActivationOps<B>>::softmax(B::float_reshape(attn, shape), 2)
    };
    if is_half(dtype) {
        in_f32::<B, 3>([attn, rel_h, rel_w], dtype, add)
    } else {
        add([attn, rel_h, rel_w])
    }
}

/// The rel-pos softmax's gradients with the backend's own ops: the softmax's input gradient
/// `∂s` (`[B, Nq, k_h·k_w]`) and its sums over the key columns and rows.
pub(super) fn composed_softmax_rel_pos_backward<B: Backend>(
    y: FloatTensor<B>,
    grad: FloatTensor<B>,
    (k_h, k_w): (usize, usize),
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let shape = y.shape();
    let (b, nq) = (shape[0], shape[1]);
    let d_attn = composed_softmax_backward::<B>(y, grad);
    let grid = B::float_reshape(d_attn.clone(), [b, nq, k_h, k_w].into());
    let d_rel_h = B::float_reshape(B::float_sum_dim(grid.clone(), 3), [b, nq, k_h].into());
    let d_rel_w = B::float_reshape(B::float_sum_dim(grid, 2), [b, nq, k_w].into());
    (d_attn, d_rel_h, d_rel_w)
}

/// Burn's layer norm over the last axis, in f32 for a 16-bit input.
pub(super) fn composed_layer_norm<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    epsilon: f64,
) -> FloatTensor<B> {
    let dtype = x.dtype();
    let norm = |[x, gamma, beta]: [FloatTensor<B>; 3]| B::layer_norm(x, gamma, Some(beta), epsilon);
    if is_half(dtype) {
        in_f32::<B, 3>([x, gamma, beta], dtype, norm)
    } else {
        norm([x, gamma, beta])
    }
}

/// The layer norm's gradients with the backend's own ops, over `[rows, C]` (in f32 for
/// 16-bit tensors): with `x̂ = (x − mean)·rstd` and `g = grad ⊙ gamma`,
/// `∂x = rstd·(g − mean(g) − x̂·mean(g ⊙ x̂))`, `∂gamma = Σ grad ⊙ x̂`, `∂beta = Σ grad`.
pub(super) fn composed_layer_norm_backward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    grad: FloatTensor<B>,
    epsilon: f64,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let (x_dtype, gamma_dtype) = (x.dtype(), gamma.dtype());
    let shape = x.shape();
    let c = shape.iter().last().copied().unwrap_or(1).max(1);
    let rows = shape.num_elements() / c;
    let f32 = |t: FloatTensor<B>| {
        if t.dtype() == DType::F32 {
            t
        } else {
            B::float_cast(t, FloatDType::F32)
        }
    };
    let back = |t: FloatTensor<B>, dtype: DType| {
        if dtype == DType::F32 {
            t
        } else {
            B::float_cast(t, dtype.into())
        }
    };
    let x = B::float_reshape(f32(x), [rows, c].into());
    let grad = B::float_reshape(f32(grad), [rows, c].into());
    let gamma = B::float_reshape(f32(gamma), [1, c].into());
    let mean = B::float_mean_dim(x.clone(), 1);
    let centred = B::float_sub(x, mean);
    let var = B::float_mean_dim(B::float_mul(centred.clone(), centred.clone()), 1);
    let rstd = B::float_recip(B::float_sqrt(B::float_add_scalar(var, epsilon.into())));
    let normed = B::float_mul(centred, rstd.clone());
    let d_beta = B::float_reshape(B::float_sum_dim(grad.clone(), 0), [c].into());
    let d_gamma = B::float_mul(grad.clone(), normed.clone());
    let d_gamma = B::float_reshape(B::float_sum_dim(d_gamma, 0), [c].into());
    let g = B::float_mul(grad, gamma);
    let g_mean = B::float_mean_dim(g.clone(), 1);
    let gx_mean = B::float_mean_dim(B::float_mul(g.clone(), normed.clone()), 1);
    let d_x = B::float_sub(B::float_sub(g, g_mean), B::float_mul(normed, gx_mean));
    let d_x = B::float_reshape(B::float_mul(d_x, rstd), shape);
    (
        back(d_x, x_dtype),
        back(d_gamma, gamma_dtype),
        back(d_beta, gamma_dtype),
    )
}
