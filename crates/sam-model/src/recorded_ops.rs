//! Softmax and GELU recorded as one autodiff operation each, with their own backward passes.
//!
//! Burn's autodiff spells softmax out as `exp(x − max) / sum`: it keeps the shifted scores
//! (to recompute `exp` in the backward pass) and the exponentials, besides the output the next
//! product keeps. For a ViT-B training step at 1024² that is 2 × 805 MB more per global block
//! than the reference keeps (ViT-L: 2 × 1 GiB, and in f32 even when training in bf16, whose
//! softmax runs in f32). Here the softmax is one recorded operation that keeps only its output
//! (`∂x = y ⊙ (∂y − Σ ∂y ⊙ y)`), in the input's dtype: a 16-bit softmax is computed in f32 in
//! both passes, and its backward pass reads the 16-bit output the next product sees.
//!
//! - On flex, both passes run on the host values with the vectorised kernels of inference
//!   ([`crate::vector_math`]), instead of half a dozen passes with flex's scalar `expf`. GELU
//!   likewise (it keeps its input, as Burn's does), vectorised instead of flex's scalar `erff`.
//! - On the CubeCL backends (wgpu, CUDA), both passes are Burn's own ops, fused where Burn's
//!   fusion is on: the gain is the memory. GELU is recorded there for its backward pass:
//!   Burn's autodiff GELU differentiates the tanh approximation (the default
//!   `ActivationOps::gelu_backward`, which only flex overrides) while its forward pass is the
//!   exact form; here the backward pass is the exact form's derivative, as PyTorch's
//!   (`crates/sam-model/tests/gradients.rs` found the difference, ~1e-3 of the parameters'
//!   gradients on wgpu).
//!
//! The operations are a Burn backend extension; [`softmax_last`] and [`gelu`] are taken where
//! [`applies`] and [`gelu_applies`] say, Burn's own ops everywhere else.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::ops::ActivationOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    Autodiff, Backend, Dispatch, DispatchDevice, TensorMetadata, backend_extension,
};
use burn::tensor::{DType, FloatDType, Tensor};

use crate::precision::is_half;

#[cfg(feature = "flex")]
mod flex;

/// Softmax and GELU as single recorded operations (see the module's documentation). The
/// default bodies are Burn's ops; flex overrides them with host kernels.
#[backend_extension(
    Flex: cfg(feature = "flex"),
    Cube: cfg(feature = "cube"),
    Autodiff
)]
pub trait RecordedOps: Backend {
    /// Softmax over the last axis; a 16-bit input is computed in f32 and cast back.
    fn recorded_softmax_last(x: FloatTensor<Self>) -> FloatTensor<Self> {
        composed_softmax_last::<Self>(x)
    }
    /// `y ⊙ (grad − Σ grad ⊙ y)` over the last axis: the softmax's input gradient from its
    /// output `y` (in f32 for 16-bit tensors), in `grad`'s dtype.
    fn recorded_softmax_last_backward(
        y: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        composed_softmax_backward::<Self>(y, grad)
    }
    /// Layer norm over the last axis (`(x − mean)·rstd·gamma + beta`, biased variance); a
    /// 16-bit input is normalised in f32 and cast back.
    fn recorded_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        composed_layer_norm::<Self>(x, gamma, beta, epsilon)
    }
    /// The layer norm's gradients `(∂x, ∂gamma, ∂beta)` from its input and `grad` (in f32 for
    /// 16-bit tensors), each in its tensor's dtype (`∂beta` in `gamma`'s).
    fn recorded_layer_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        composed_layer_norm_backward::<Self>(x, gamma, grad, epsilon)
    }
    /// `softmax(attn + rel_h[.., kh] + rel_w[.., kw])` over the last axis, the image encoder's
    /// scores with the decomposed rel-pos bias (`add_decomposed_rel_pos`'s sums, in its order):
    /// `attn: [B, Nq, k_h·k_w]`, `rel_h: [B, Nq, k_h]`, `rel_w: [B, Nq, k_w]`.
    fn recorded_softmax_rel_pos(
        attn: FloatTensor<Self>,
        rel_h: FloatTensor<Self>,
        rel_w: FloatTensor<Self>,
        k_size: (usize, usize),
    ) -> FloatTensor<Self> {
        composed_softmax_rel_pos::<Self>(attn, rel_h, rel_w, k_size)
    }
    /// The gradients `(∂attn, ∂rel_h, ∂rel_w)` of [`recorded_softmax_rel_pos`] from its output
    /// `y` and `grad`: the softmax's input gradient, and its sums over each key column and
    /// each key row.
    ///
    /// [`recorded_softmax_rel_pos`]: RecordedOps::recorded_softmax_rel_pos
    fn recorded_softmax_rel_pos_backward(
        y: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        k_size: (usize, usize),
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        composed_softmax_rel_pos_backward::<Self>(y, grad, k_size)
    }
    /// Exact-form GELU.
    fn recorded_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        <Self as ActivationOps<Self>>::gelu(x)
    }
    /// `grad ⊙ GELU'(x)`, the exact form's derivative.
    fn recorded_gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        composed_gelu_backward::<Self>(x, grad)
    }
}

/// Burn's ops on every CubeCL runtime (fused or not, as Burn is built).
#[cfg(feature = "cube")]
impl RecordedOps for burn::backend::Cube {}

/// Whether [`softmax_last`] and [`layer_norm`] take `x`: an f32 or 16-bit tensor on an
/// autodiff device over flex (f32 big enough to pay for the host round trip) or a CubeCL
/// runtime.
pub(crate) fn applies<const D: usize>(x: &Tensor<D>) -> bool {
    let (device, dtype) = (x.device(), x.dtype());
    if !device.is_autodiff() || !(dtype == DType::F32 || is_half(dtype)) {
        return false;
    }
    #[allow(unreachable_patterns)]
    match device.inner().as_dispatch() {
        #[cfg(feature = "flex")]
        DispatchDevice::Flex(_) => {
            is_half(dtype) || x.shape().num_elements() >= crate::vector_math::MIN_HOST
        }
        #[cfg(feature = "cube")]
        DispatchDevice::Cube(_) => true,
        _ => false,
    }
}

/// Whether [`gelu`] takes `x`: f32 on autodiff over flex, big enough to pay for the round
/// trip (flex's own GELU backward is exact too), and any float on autodiff over a CubeCL
/// runtime, where Burn's autodiff GELU would take the derivative of the tanh approximation
/// (`ActivationOps::gelu_backward`'s default) for the exact form's forward pass.
pub(crate) fn gelu_applies<const D: usize>(x: &Tensor<D>) -> bool {
    let (device, dtype) = (x.device(), x.dtype());
    if !device.is_autodiff() {
        return false;
    }
    #[allow(unreachable_patterns)]
    match device.inner().as_dispatch() {
        #[cfg(feature = "flex")]
        DispatchDevice::Flex(_) => {
            dtype == DType::F32 && x.shape().num_elements() >= crate::vector_math::MIN_HOST
        }
        #[cfg(feature = "cube")]
        DispatchDevice::Cube(_) => dtype == DType::F32 || is_half(dtype),
        _ => false,
    }
}

/// Whether [`softmax_rel_pos`] takes `attn`: f32 scores on autodiff over flex, big enough to
/// pay for the round trip. On the CubeCL backends Burn's broadcast adds keep nothing for the
/// backward pass either (and fuse), so they stay with Burn's ops and the recorded softmax.
pub(crate) fn rel_pos_applies<const D: usize>(attn: &Tensor<D>) -> bool {
    #[cfg(feature = "flex")]
    {
        let device = attn.device();
        attn.dtype() == DType::F32
            && device.is_autodiff()
            && device == burn::tensor::Device::flex()
            && attn.shape().num_elements() >= crate::vector_math::MIN_HOST
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = attn;
        false
    }
}

/// Softmax over the last axis of a tensor [`applies`] holds for.
pub(crate) fn softmax_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as RecordedOps>::recorded_softmax_last(
        x.into_dispatch(),
    ))
}

/// Layer norm over the last axis of a tensor [`applies`] holds for; `gamma` and
/// `beta: [C]`.
pub(crate) fn layer_norm<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as RecordedOps>::recorded_layer_norm(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
    ))
}

/// `softmax(attn + rel_h[.., kh] + rel_w[.., kw])` over the last axis for scores
/// [`rel_pos_applies`] holds for: `attn: [B, Nq, k_h·k_w]`, `rel_h: [B, Nq, k_h]`,
/// `rel_w: [B, Nq, k_w]` → `[B, Nq, k_h·k_w]`.
pub(crate) fn softmax_rel_pos(
    attn: Tensor<3>,
    rel_h: Tensor<3>,
    rel_w: Tensor<3>,
    k_size: (usize, usize),
) -> Tensor<3> {
    Tensor::from_dispatch(<Dispatch as RecordedOps>::recorded_softmax_rel_pos(
        attn.into_dispatch(),
        rel_h.into_dispatch(),
        rel_w.into_dispatch(),
        k_size,
    ))
}

/// GELU of a tensor [`gelu_applies`] holds for.
pub(crate) fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as RecordedOps>::recorded_gelu(x.into_dispatch()))
}

/// `f` of `tensors` cast to f32, cast back to `dtype`.
fn in_f32<B: Backend, const N: usize>(
    tensors: [FloatTensor<B>; N],
    dtype: DType,
    f: impl FnOnce([FloatTensor<B>; N]) -> FloatTensor<B>,
) -> FloatTensor<B> {
    let out = f(tensors.map(|t| B::float_cast(t, FloatDType::F32)));
    B::float_cast(out, dtype.into())
}

/// Burn's softmax over the last axis, in f32 for a 16-bit input.
fn composed_softmax_last<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
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
fn composed_softmax_backward<B: Backend>(
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
fn composed_gelu_backward<B: Backend>(x: FloatTensor<B>, grad: FloatTensor<B>) -> FloatTensor<B> {
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
fn composed_softmax_rel_pos<B: Backend>(
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
fn composed_softmax_rel_pos_backward<B: Backend>(
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
fn composed_layer_norm<B: Backend>(
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
fn composed_layer_norm_backward<B: Backend>(
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

/// A backward pass from the saved tensor and the output's gradient.
type BackwardFn<B> = fn(FloatTensor<B>, FloatTensor<B>) -> FloatTensor<B>;

/// Which tensor a recorded operation keeps for its backward pass.
enum Saved {
    /// GELU's derivative needs its input.
    Input,
    /// The softmax's needs only its output.
    Output,
}

/// A recorded one-input operation whose backward pass is its state's function of the saved
/// tensor and the gradient.
#[derive(Debug)]
struct FromSaved;

impl<B: Backend> Backward<B, 1> for FromSaved {
    type State = (FloatTensor<B>, BackwardFn<B>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (saved, backward) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| backward(saved, grad));
    }
}

/// `forward(x)` recorded with `backward` and the `saved` tensor. Compute-bound: the saved
/// tensor is kept, not recomputed, under gradient checkpointing.
fn record<B: Backend, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    forward: fn(FloatTensor<B>) -> FloatTensor<B>,
    backward: BackwardFn<B>,
    saved: Saved,
) -> FloatTensor<Autodiff<B, C>> {
    match FromSaved
        .prepare::<C>([x.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let x = x.into_primitive();
            let (kept, y) = match saved {
                Saved::Input => (x.clone(), forward(x)),
                Saved::Output => {
                    let y = forward(x);
                    (y.clone(), y)
                }
            };
            prep.finish((kept, backward), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(x.into_primitive())),
    }
}

/// The recorded layer norm: it keeps its input, `gamma`, the epsilon and `beta`'s dtype.
#[derive(Debug)]
struct LayerNormBackward;

impl<B: Backend + RecordedOps> Backward<B, 3> for LayerNormBackward {
    type State = (FloatTensor<B>, FloatTensor<B>, f64, DType);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (x, gamma, epsilon, beta_dtype) = ops.state;
        let grad = grads.consume::<B>(&ops.node);
        let (d_x, d_gamma, d_beta) = B::recorded_layer_norm_backward(x, gamma, grad, epsilon);
        let [x_node, gamma_node, beta_node] = ops.parents;
        if let Some(node) = x_node {
            grads.register::<B>(node.id, d_x);
        }
        if let Some(node) = gamma_node {
            grads.register::<B>(node.id, d_gamma);
        }
        if let Some(node) = beta_node {
            let d_beta = if d_beta.dtype() == beta_dtype {
                d_beta
            } else {
                B::float_cast(d_beta, beta_dtype.into())
            };
            grads.register::<B>(node.id, d_beta);
        }
    }
}

/// The recorded rel-pos softmax: it keeps its output and the key grid.
#[derive(Debug)]
struct SoftmaxRelPosBackward;

impl<B: Backend + RecordedOps> Backward<B, 3> for SoftmaxRelPosBackward {
    type State = (FloatTensor<B>, (usize, usize));

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (y, k_size) = ops.state;
        let grad = grads.consume::<B>(&ops.node);
        let (d_attn, d_rel_h, d_rel_w) = B::recorded_softmax_rel_pos_backward(y, grad, k_size);
        for (node, grad) in ops.parents.into_iter().zip([d_attn, d_rel_h, d_rel_w]) {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

impl<B: Backend + RecordedOps, C: CheckpointStrategy> RecordedOps for Autodiff<B, C> {
    fn recorded_softmax_rel_pos(
        attn: FloatTensor<Self>,
        rel_h: FloatTensor<Self>,
        rel_w: FloatTensor<Self>,
        k_size: (usize, usize),
    ) -> FloatTensor<Self> {
        let prep = SoftmaxRelPosBackward
            .prepare::<C>([attn.node(), rel_h.node(), rel_w.node()])
            .compute_bound()
            .stateful();
        let (attn, rel_h, rel_w) = (
            attn.into_primitive(),
            rel_h.into_primitive(),
            rel_w.into_primitive(),
        );
        let y = B::recorded_softmax_rel_pos(attn, rel_h, rel_w, k_size);
        match prep {
            OpsKind::Tracked(prep) => prep.finish((y.clone(), k_size), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn recorded_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let beta_dtype = beta.dtype();
        let prep = LayerNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful();
        let (x, gamma, beta) = (
            x.into_primitive(),
            gamma.into_primitive(),
            beta.into_primitive(),
        );
        match prep {
            OpsKind::Tracked(prep) => {
                let y = B::recorded_layer_norm(x.clone(), gamma.clone(), beta, epsilon);
                prep.finish((x, gamma, epsilon, beta_dtype), y)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::recorded_layer_norm(x, gamma, beta, epsilon))
            }
        }
    }

    fn recorded_softmax_last(x: FloatTensor<Self>) -> FloatTensor<Self> {
        record::<B, C>(
            x,
            B::recorded_softmax_last,
            B::recorded_softmax_last_backward,
            Saved::Output,
        )
    }

    fn recorded_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        record::<B, C>(x, B::recorded_gelu, B::recorded_gelu_backward, Saved::Input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution, activation};

    fn max_rel<const D: usize>(ours: Tensor<D>, burn: Tensor<D>) -> f32 {
        let diff = (ours - burn.clone()).abs().max().into_scalar::<f32>();
        diff / burn.abs().max().into_scalar::<f32>()
    }

    /// `t`'s values in f64 on plain flex.
    fn f64<const D: usize>(t: &Tensor<D>) -> Tensor<D> {
        let values = t.clone().cast(FloatDType::F32).to_data().convert::<f64>();
        Tensor::from_data(values, (&Device::flex(), DType::F64))
    }

    /// The input gradient of `Σ w ⊙ y` for `y = f(x)`.
    fn grad(x: &Tensor<3>, y: Tensor<3>, w: &Tensor<3>) -> Tensor<3> {
        let grads = (y * w.clone()).sum().backward();
        x.grad(&grads).expect("x has a gradient")
    }

    /// `x` and the weights of the summed output, on `device` in `dtype`; the input to the ops
    /// is `1.5·xᵀ`, a transposed (non-contiguous) tensor.
    fn inputs(device: &Device, dtype: FloatDType) -> (Tensor<3>, Tensor<3>) {
        let x = Tensor::<3>::random([3, 300, 40], Distribution::Normal(0.0, 2.0), device)
            .cast(dtype)
            .require_grad();
        let w =
            Tensor::<3>::random([3, 40, 300], Distribution::Normal(0.0, 1.0), device).cast(dtype);
        (x, w)
    }

    /// The exact softmax of `u` (f64) and the exact input gradient of `Σ w ⊙ softmax(1.5·xᵀ)`:
    /// `1.5·(softmax'(u) ⊙ w)ᵀ`.
    fn exact_softmax(u: Tensor<3>, w: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        let y = activation::softmax(u, 2);
        let grad = y.clone() * (w.clone() - (w * y.clone()).sum_dim(2));
        (y, grad.swap_dims(1, 2) * 1.5)
    }

    /// Values and input gradients against the exact ones (f64) and Burn's own softmax and
    /// GELU, through a transposed (non-contiguous) input, on the plain and the
    /// gradient-checkpointing autodiff devices.
    #[cfg(feature = "flex")]
    #[test]
    fn gradients_match_f64_and_burns() {
        for device in [
            Device::flex().autodiff(),
            Device::flex().autodiff().gradient_checkpointing(),
        ] {
            let (x, w) = inputs(&device, FloatDType::F32);
            let input = || x.clone().swap_dims(1, 2) * 1.5;
            assert!(applies(&input()) && gelu_applies(&input()));
            let (u, w64) = (f64(&input()), f64(&w));
            let (softmax, softmax_grad) = exact_softmax(u.clone(), w64.clone());
            let cdf = ((u.clone() * std::f64::consts::FRAC_1_SQRT_2).erf() + 1.0) * 0.5;
            let pdf = (u.clone().powi_scalar(2) * -0.5).exp() * 0.398_942_280_401_432_7;
            let gelu_grad = (w64 * (cdf + u.clone() * pdf)).swap_dims(1, 2) * 1.5;
            for (name, ours, burn, exact_values, exact_grad) in [
                (
                    "softmax",
                    crate::precision::softmax(input(), 2),
                    activation::softmax(input(), 2),
                    softmax,
                    softmax_grad,
                ),
                (
                    "gelu",
                    crate::gelu::gelu(input()),
                    activation::gelu(input()),
                    activation::gelu(u.clone()),
                    gelu_grad,
                ),
            ] {
                let values = max_rel(f64(&ours), exact_values.clone());
                assert!(values < 1e-6, "{name} values off by {values}");
                let values = max_rel(ours.clone(), burn.clone());
                assert!(
                    values < 1e-6,
                    "{name} values differ from Burn's by {values}"
                );
                let (ours, burn) = (grad(&x, ours, &w), grad(&x, burn, &w));
                let grads = max_rel(f64(&ours), exact_grad);
                assert!(grads < 5e-6, "{name} gradients off by {grads}");
                // f32 rounding: each is up to ~2e-6 of scale off the exact gradient (the row's dot
                // product cancels), Burn's decomposed one as ours.
                let grads = max_rel(ours, burn);
                assert!(
                    grads < 1e-5,
                    "{name} gradients differ from Burn's by {grads}"
                );
            }
        }
    }

    /// The rel-pos softmax of the image encoder's training (scores from a product, as there)
    /// against Burn's broadcast adds and softmax in f64: values and the gradients of the
    /// queries, keys and both terms, on the plain and the gradient-checkpointing devices;
    /// rows of 9 × 14 keys, not a multiple of the vector lanes.
    #[cfg(feature = "flex")]
    #[test]
    fn rel_pos_softmax_matches_f64() {
        use crate::image_encoder::rel_pos::softmax_with_rel_pos;
        let (k_h, k_w) = (9, 14);
        let plain = Device::flex();
        let random = |shape: [usize; 3], std: f64| {
            Tensor::<3>::random(shape, Distribution::Normal(0.0, std), &plain)
        };
        let leaves = [
            random([3, 100, 16], 1.0),
            random([3, k_h * k_w, 16], 1.0),
            random([3, 100, k_h], 2.0),
            random([3, 100, k_w], 2.0),
        ];
        let w = random([3, 100, k_h * k_w], 1.0);
        // Values and the four leaves' gradients of `Σ w ⊙ softmax(q·kᵀ + rel_h + rel_w)`.
        let run = |device: &Device, dtype: DType| {
            let on = |t: &Tensor<3>| {
                Tensor::<3>::from_data(t.to_data().convert_dtype(dtype), (device, dtype))
                    .require_grad()
            };
            let [q, k, rel_h, rel_w] = leaves.each_ref().map(on);
            let attn = q.clone().matmul(k.clone().swap_dims(1, 2));
            assert_eq!(rel_pos_applies(&attn), dtype == DType::F32, "{dtype:?}");
            let y = softmax_with_rel_pos(attn, rel_h.clone(), rel_w.clone(), (k_h, k_w));
            let grads = (y.clone() * on(&w)).sum().backward();
            let grad = |t: &Tensor<3>| f64(&t.grad(&grads).expect("a leaf's gradient"));
            (f64(&y), [&q, &k, &rel_h, &rel_w].map(grad))
        };
        let (exact, exact_grads) = run(&Device::flex().autodiff(), DType::F64);
        for device in [
            Device::flex().autodiff(),
            Device::flex().autodiff().gradient_checkpointing(),
        ] {
            let (values, grads) = run(&device, DType::F32);
            // A few f32 roundings of the largest probability (random inputs: up to ~1.1e-6).
            let off = max_rel(values, exact.clone());
            assert!(off < 2e-6, "values off by {off}");
            for (name, ours, exact) in ["q", "k", "rel_h", "rel_w"]
                .into_iter()
                .zip(grads)
                .zip(exact_grads.clone())
                .map(|((n, o), e)| (n, o, e))
            {
                let off = max_rel(ours, exact);
                assert!(off < 5e-6, "{name}'s gradient off by {off}");
            }
        }
    }

    /// A 16-bit softmax (computed in f32, its 16-bit output kept) against the exact one of
    /// the same 16-bit input and against Burn's ops on f32 casts, on `device`. The bounds are
    /// a few roundings to the 16-bit type (bf16: 2⁻⁹ of a value; f16: 2⁻¹²).
    fn check_half_softmax(device: &Device, dtype: FloatDType, bound: f32) {
        let (x, w) = inputs(device, dtype);
        let input = || x.clone().swap_dims(1, 2) * 1.5;
        assert!(applies(&input()), "{dtype:?} on {device:?}");
        let ours = crate::precision::softmax(input(), 2);
        assert_eq!(ours.dtype(), DType::from(dtype));
        let burn = activation::softmax(input().cast(FloatDType::F32), 2).cast(dtype);
        let (exact, exact_grad) = exact_softmax(f64(&input()), f64(&w));
        let as_f32 = |t: Tensor<3>| t.cast(FloatDType::F32);
        let values = max_rel(f64(&ours), exact);
        assert!(values < bound, "{dtype:?} values off by {values}");
        let (ours, burn) = (grad(&x, ours, &w), grad(&x, burn, &w));
        assert_eq!(ours.dtype(), DType::from(dtype));
        let grads = max_rel(f64(&ours), exact_grad);
        assert!(grads < 4.0 * bound, "{dtype:?} gradients off by {grads}");
        let to_burn = max_rel(as_f32(ours), as_f32(burn));
        eprintln!("{dtype:?} on {device:?}: values {values:e}, gradients {grads:e} of scale off");
        let grads = to_burn;
        assert!(
            grads < 4.0 * bound,
            "{dtype:?} gradients differ from Burn's by {grads}"
        );
    }

    #[cfg(feature = "flex")]
    #[test]
    fn half_softmax_is_computed_in_f32() {
        let device = Device::flex().autodiff();
        check_half_softmax(&device, FloatDType::BF16, 1e-2);
        check_half_softmax(&device, FloatDType::F16, 2e-3);
    }

    /// On the CubeCL backends the softmax and the layer norm are Burn's ops, recorded as one
    /// operation each.
    #[cfg(feature = "wgpu")]
    #[test]
    fn cube_ops_match_f64() {
        if std::env::var_os("SAM_SKIP_WGPU").is_some() {
            return;
        }
        let device = Device::wgpu(Default::default()).autodiff();
        let (x, w) = inputs(&device, FloatDType::F32);
        let input = || x.clone().swap_dims(1, 2) * 1.5;
        assert!(applies(&input()));
        assert!(gelu_applies(&input()));
        let u = f64(&input());
        let cdf = ((u.clone() * std::f64::consts::FRAC_1_SQRT_2).erf() + 1.0) * 0.5;
        let pdf = (u.clone().powi_scalar(2) * -0.5).exp() * 0.398_942_280_401_432_7;
        let exact_grad = (f64(&w) * (cdf + u * pdf)).swap_dims(1, 2) * 1.5;
        let grads = max_rel(f64(&grad(&x, crate::gelu::gelu(input()), &w)), exact_grad);
        assert!(grads < 5e-6, "GELU gradients off by {grads}");
        let ours = crate::precision::softmax(input(), 2);
        let (exact, exact_grad) = exact_softmax(f64(&input()), f64(&w));
        let values = max_rel(f64(&ours), exact);
        assert!(values < 2e-6, "values off by {values}");
        let grads = max_rel(f64(&grad(&x, ours, &w)), exact_grad);
        assert!(grads < 5e-6, "gradients off by {grads}");
        for (dtype, bound) in [(FloatDType::F16, 2e-3), (FloatDType::BF16, 1e-2)] {
            if device.supports_dtype(dtype) {
                check_half_softmax(&device, dtype, bound);
            }
        }
        let (values, grads) = check_layer_norm(&device, FloatDType::F32);
        assert!(
            values < 1e-6 && grads < 5e-6,
            "layer norm: {values}, {grads}"
        );
    }

    /// The layer norm on `device` in `dtype` (through a channels-last view of an NCHW tensor,
    /// as `LayerNorm2d`'s) against Burn's own in f64: the values and the gradients of the
    /// input, `gamma` and `beta`, then with `gamma` and `beta` frozen. Returns the largest
    /// relative errors of the values and of the gradients.
    fn check_layer_norm(device: &Device, dtype: FloatDType) -> (f32, f32) {
        let random = |shape: [usize; 4], mean: f64, std: f64| {
            Tensor::<4>::random(shape, Distribution::Normal(mean, std), device).cast(dtype)
        };
        let x = random([2, 96, 12, 20], 0.5, 2.0).require_grad();
        let params = random([2, 96, 1, 1], 1.0, 0.5).reshape([2, 96]);
        let w = random([2, 12, 20, 96], 0.0, 1.0);
        let (mut values, mut grads) = (0.0f32, 0.0f32);
        for trained in [true, false] {
            let gamma = params.clone().narrow(0, 0, 1).reshape([96]);
            let beta = params.clone().narrow(0, 1, 1).reshape([96]);
            let (gamma, beta) = if trained {
                (gamma.require_grad(), beta.require_grad())
            } else {
                (gamma, beta)
            };
            let input = x.clone().permute([0, 2, 3, 1]);
            assert!(applies(&input), "{dtype:?} on {device:?}");
            let ours = crate::precision::layer_norm(input, gamma.clone(), Some(beta.clone()), 1e-6);
            assert_eq!(ours.dtype(), DType::from(dtype));
            let grads_of =
                |y: Tensor<4>, w: Tensor<4>, x: &Tensor<4>, g: &Tensor<1>, b: &Tensor<1>| {
                    let all = (y * w).sum().backward();
                    let param = |t: &Tensor<1>| t.grad(&all);
                    (x.grad(&all).expect("x has a gradient"), param(g), param(b))
                };
            let (d_x, d_gamma, d_beta) = grads_of(ours.clone(), w.clone(), &x, &gamma, &beta);
            assert_eq!(d_gamma.is_some(), trained);
            // Burn's decomposed layer norm in f64.
            let exact_device = Device::flex().autodiff();
            let to64 = |t: &Tensor<4>| Tensor::<4>::from_data(f64(t).to_data(), &exact_device);
            let to64_1 = |t: &Tensor<1>| Tensor::<1>::from_data(f64(t).to_data(), &exact_device);
            let (x64, g64, b64) = (
                to64(&x).require_grad(),
                to64_1(&gamma).require_grad(),
                to64_1(&beta).require_grad(),
            );
            let exact = burn::tensor::module::layer_norm(
                x64.clone().permute([0, 2, 3, 1]),
                g64.clone(),
                Some(b64.clone()),
                1e-6,
            );
            let (e_x, e_gamma, e_beta) = grads_of(exact.clone(), to64(&w), &x64, &g64, &b64);
            values = values.max(max_rel(f64(&ours), f64(&exact)));
            grads = grads.max(max_rel(f64(&d_x), f64(&e_x)));
            if trained {
                let rel = |ours: Option<Tensor<1>>, exact: Option<Tensor<1>>| {
                    max_rel(f64(&ours.expect("trained")), f64(&exact.expect("trained")))
                };
                grads = grads.max(rel(d_gamma, e_gamma)).max(rel(d_beta, e_beta));
            }
        }
        eprintln!("layer norm {dtype:?} on {device:?}: values {values:e}, gradients {grads:e}");
        (values, grads)
    }

    #[cfg(feature = "flex")]
    #[test]
    fn layer_norm_matches_f64() {
        for device in [
            Device::flex().autodiff(),
            Device::flex().autodiff().gradient_checkpointing(),
        ] {
            let (values, grads) = check_layer_norm(&device, FloatDType::F32);
            assert!(values < 1e-6 && grads < 2e-6, "f32: {values}, {grads}");
        }
        let device = Device::flex().autodiff();
        let (values, grads) = check_layer_norm(&device, FloatDType::BF16);
        assert!(values < 1e-2 && grads < 4e-2, "bf16: {values}, {grads}");
        let (values, grads) = check_layer_norm(&device, FloatDType::F16);
        assert!(values < 2e-3 && grads < 8e-3, "f16: {values}, {grads}");
    }

    /// Inputs without a gradient run forward only; small f32 tensors keep Burn's ops, as do
    /// devices without autodiff; GELU takes only f32.
    #[cfg(feature = "flex")]
    #[test]
    fn untracked_and_excluded_inputs() {
        let device = Device::flex().autodiff();
        let x = Tensor::<3>::random([2, 100, 100], Distribution::Normal(0.0, 1.0), &device);
        let y = crate::precision::softmax(x.clone(), 2);
        let sums = y.sum_dim(2) - 1.0;
        assert!(sums.abs().max().into_scalar::<f32>() < 1e-5);
        let small = x.clone().slice([0..1, 0..10, 0..10]);
        assert!(!applies(&small) && !gelu_applies(&small));
        let half = x.clone().cast(FloatDType::BF16);
        assert!(applies(&half) && !gelu_applies(&half));
        let plain = Tensor::<3>::from_data(x.to_data(), &Device::flex());
        assert!(!applies(&plain) && !gelu_applies(&plain));
        let double = x.cast(FloatDType::F64);
        assert!(!applies(&double) && !gelu_applies(&double));
    }

    /// The forward pass records the softmax as one operation: a gradient reaches the input
    /// through a chain of two softmaxes and a GELU.
    #[cfg(feature = "flex")]
    #[test]
    fn chained_operations_backpropagate() {
        let device = Device::flex().autodiff();
        let x = Tensor::<3>::random([2, 128, 128], Distribution::Normal(0.0, 1.0), &device)
            .require_grad();
        let ours = crate::precision::softmax(
            crate::gelu::gelu(crate::precision::softmax(x.clone(), 2) * 50.0),
            2,
        );
        let burn = activation::softmax(
            activation::gelu(activation::softmax(x.clone(), 2) * 50.0),
            2,
        );
        let w = Tensor::<3>::random([2, 128, 128], Distribution::Normal(0.0, 1.0), &device);
        let rel = max_rel(grad(&x, ours, &w), grad(&x, burn, &w));
        assert!(rel < 1e-5, "gradients differ by {rel}");
    }
}
