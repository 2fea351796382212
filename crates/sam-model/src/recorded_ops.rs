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
//! The operations are a Burn backend extension; [`softmax_last`], [`layer_norm`], [`gelu`] and
//! [`softmax_rel_pos`] are taken where [`applies`], [`gelu_applies`] and [`rel_pos_applies`]
//! say, Burn's own ops everywhere else. `composed.rs` holds the backend-generic bodies,
//! `autodiff.rs` the graph nodes, `flex.rs` the host kernels.

use burn::backend::ops::ActivationOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, DispatchDevice, backend_extension};
use burn::tensor::{DType, Device, Tensor};

use crate::precision::is_half;

mod attention;
mod autodiff;
mod composed;
#[cfg(feature = "flex")]
mod flex;
#[cfg(test)]
mod tests;

use composed::{
    composed_gelu_backward, composed_layer_norm, composed_layer_norm_backward,
    composed_softmax_backward, composed_softmax_last, composed_softmax_rel_pos,
    composed_softmax_rel_pos_backward,
};

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
    /// The image encoder's attention, `softmax(scale·q·kᵀ + rel-pos)·v`, of the stacked
    /// `qkv: [3, N, h·w, hd]` over an `h × w` grid with `get_rel_pos`'s tables
    /// `rel_h: [h, h, hd]` and `rel_w: [w, w, hd]` → `[N, h·w, hd]` (`attention.rs`).
    fn recorded_attention(
        qkv: FloatTensor<Self>,
        rel_h: FloatTensor<Self>,
        rel_w: FloatTensor<Self>,
        scale: f64,
        grid: (usize, usize),
    ) -> FloatTensor<Self> {
        attention::forward::<Self>(qkv, rel_h, rel_w, scale, grid).0
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

/// Where a recorded operation would run: an f32 or 16-bit tensor on an autodiff device over
/// one of these runtimes (see [`runtime`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(all(feature = "flex", feature = "cube")), allow(dead_code))]
enum Runtime {
    /// flex; `host`: f32 with at least `MIN_HOST` values, enough to pay for the round trip
    /// to the host kernels.
    Flex { host: bool },
    /// A CubeCL runtime (wgpu, CUDA).
    Cube,
}

/// The runtime under `device` for a tensor of `dtype` with `values` values counted as the
/// operation's size; `None` off autodiff, for other dtypes and other runtimes.
#[cfg_attr(not(feature = "flex"), allow(unused_variables))]
fn runtime(device: Device, dtype: DType, values: usize) -> Option<Runtime> {
    if !device.is_autodiff() || !(dtype == DType::F32 || is_half(dtype)) {
        return None;
    }
    #[allow(unreachable_patterns)]
    match device.inner().as_dispatch() {
        #[cfg(feature = "flex")]
        DispatchDevice::Flex(_) => Some(Runtime::Flex {
            host: dtype == DType::F32 && values >= crate::vector_math::MIN_HOST,
        }),
        #[cfg(feature = "cube")]
        DispatchDevice::Cube(_) => Some(Runtime::Cube),
        _ => None,
    }
}

/// [`runtime`] of `x`, its size its number of values.
fn runtime_of<const D: usize>(x: &Tensor<D>) -> Option<Runtime> {
    runtime(x.device(), x.dtype(), x.shape().num_elements())
}

/// Whether [`softmax_last`] and [`layer_norm`] take `x`: on flex f32 big enough to pay for
/// the host round trip, or 16-bit; on a CubeCL runtime, f32 or 16-bit.
pub(crate) fn applies<const D: usize>(x: &Tensor<D>) -> bool {
    match runtime_of(x) {
        Some(Runtime::Flex { host }) => host || is_half(x.dtype()),
        Some(Runtime::Cube) => true,
        None => false,
    }
}

/// Whether [`gelu`] takes `x`: on flex f32 big enough to pay for the round trip (flex's own
/// GELU backward is exact too); on a CubeCL runtime, f32 or 16-bit, where Burn's autodiff GELU
/// would take the derivative of the tanh approximation (`ActivationOps::gelu_backward`'s
/// default) for the exact form's forward pass.
pub(crate) fn gelu_applies<const D: usize>(x: &Tensor<D>) -> bool {
    matches!(
        runtime_of(x),
        Some(Runtime::Flex { host: true } | Runtime::Cube)
    )
}

/// Whether [`softmax_rel_pos`] takes `attn`: f32 scores on flex, big enough to pay for the
/// round trip. On the CubeCL backends Burn's broadcast adds keep nothing for the backward
/// pass either (and fuse), so they stay with Burn's ops and the recorded softmax.
pub(crate) fn rel_pos_applies<const D: usize>(attn: &Tensor<D>) -> bool {
    runtime_of(attn) == Some(Runtime::Flex { host: true })
}

/// Whether [`attention`] takes `qkv` in training: f32, on flex with scores of `MIN_HOST`
/// values or more, or on a CubeCL runtime.
///
/// Not 16-bit passes: there the operation's sums differ from the spelled-out attention's
/// (the rel-pos terms are added to the scores in f32 rather than in the 16-bit type), and on
/// the tiny model the bf16 gradient's cosine with the f32 one fell from 0.997 to 0.994, its
/// loss 0.6% → 1.8% off; the spelled-out path's bf16 numerics are the measured ones
/// (docs/numerics.md).
pub(crate) fn attention_applies(qkv: &Tensor<4>) -> bool {
    let [_, n, tokens, _] = qkv.dims();
    qkv.dtype() == DType::F32
        && matches!(
            runtime(qkv.device(), qkv.dtype(), n * tokens * tokens),
            Some(Runtime::Flex { host: true } | Runtime::Cube)
        )
}

/// The image encoder's attention over an `h × w` grid as one recorded operation:
/// `qkv: [3, N, h·w, hd]`, the rel-pos tables `rel_h: [h, h, hd]`, `rel_w: [w, w, hd]` →
/// `[N, h·w, hd]`.
pub(crate) fn attention(
    qkv: Tensor<4>,
    rel_h: Tensor<3>,
    rel_w: Tensor<3>,
    scale: f64,
    grid: (usize, usize),
) -> Tensor<3> {
    Tensor::from_dispatch(<Dispatch as RecordedOps>::recorded_attention(
        qkv.into_dispatch(),
        rel_h.into_dispatch(),
        rel_w.into_dispatch(),
        scale,
        grid,
    ))
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
