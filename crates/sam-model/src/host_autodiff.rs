//! Softmax and GELU with their own backward passes for training on the CPU backend.
//!
//! Burn's autodiff spells softmax out as `exp(x − max) / sum`: it keeps the shifted scores
//! (to recompute `exp` in the backward pass) and the exponentials, besides the output the next
//! product keeps, and its backward pass makes half a dozen passes over them with flex's scalar
//! `expf`. For a ViT-B training step at 1024² that is 2 × 805 MB more per global block than
//! the reference keeps, and `exp` recomputed over every score. Here the softmax is one
//! recorded operation that keeps only its output (`∂x = y ⊙ (∂y − Σ ∂y ⊙ y)`), and both
//! passes run on the host values with the vectorised kernels of inference
//! ([`crate::vector_math`]). GELU likewise keeps its input, as Burn's does, with its forward
//! and backward passes vectorised instead of flex's scalar `erff`.
//!
//! The operations are a Burn backend extension routed to flex and to autodiff over flex;
//! [`softmax_last`] and [`gelu`] fall back to Burn's own ops everywhere else.

use burn::backend::TensorMetadata;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::ops::ActivationOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{DType, Device, Tensor};
use rayon::prelude::*;

use crate::softmax::softmax_rows;
use crate::vector_math::{exp_neg, multiversion};

/// Values per parallel task.
const CHUNK: usize = 1 << 14;

/// Operations on flex tensors' values, differentiable through their own backward passes.
#[backend_extension(Flex, Autodiff)]
pub trait HostKernels: Backend {
    /// Softmax over the last axis.
    fn host_softmax_last(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// `y ⊙ (grad − Σ grad ⊙ y)` over the last axis: the softmax's input gradient from its
    /// output `y`.
    fn host_softmax_last_backward(
        y: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
    /// Exact-form GELU.
    fn host_gelu(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// `grad ⊙ GELU'(x)`.
    fn host_gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// Whether [`softmax_last`] and [`gelu`] take the extension for `x`: f32 on autodiff over
/// flex (inference has its own host paths), big enough to pay for the round trip.
pub(crate) fn applies<const D: usize>(x: &Tensor<D>) -> bool {
    let device = x.device();
    x.dtype() == DType::F32
        && device.is_autodiff()
        && device == Device::flex()
        && x.shape().num_elements() >= crate::vector_math::MIN_HOST
}

/// Softmax over the last axis of an f32 tensor on autodiff flex ([`applies`]).
pub(crate) fn softmax_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as HostKernels>::host_softmax_last(
        x.into_dispatch(),
    ))
}

/// GELU of an f32 tensor on autodiff flex ([`applies`]).
pub(crate) fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as HostKernels>::host_gelu(x.into_dispatch()))
}

/// `x` (f32) with `kernel` applied to its values, in place where `x` is the only owner of
/// contiguous values (else on a copy); `Err(x)` back if its values cannot be viewed as f32
/// (misaligned), for Burn's ops to take over.
fn in_place(
    x: FloatTensor<Flex>,
    kernel: impl FnOnce(&mut [f32]),
) -> Result<FloatTensor<Flex>, FloatTensor<Flex>> {
    let mut data = x.into_data();
    match data.as_mut_slice::<f32>() {
        Ok(values) => kernel(values),
        Err(_) => return Err(FloatTensor::<Flex>::from_data(data)),
    }
    Ok(FloatTensor::<Flex>::from_data(data))
}

/// Whether `a` and `b` are f32 tensors of one shape.
fn same_f32(a: &FloatTensor<Flex>, b: &FloatTensor<Flex>) -> bool {
    a.dtype() == DType::F32 && b.dtype() == DType::F32 && a.layout().shape() == b.layout().shape()
}

/// `kernel(grad values, saved values)` with the gradient updated in place and returned; the
/// saved tensor (an output or input the graph shares) is read where it lies if contiguous.
/// Both f32 of one shape ([`same_f32`]); `Err(grad)` back if its values cannot be viewed as
/// f32 (misaligned), for Burn's ops to take over.
fn with_grad(
    saved: &FloatTensor<Flex>,
    grad: FloatTensor<Flex>,
    kernel: impl FnOnce(&mut [f32], &[f32]),
) -> Result<FloatTensor<Flex>, FloatTensor<Flex>> {
    let contiguous;
    let saved_values = match saved.as_slice::<f32>() {
        Some(values) => values,
        None => {
            contiguous = saved.to_contiguous();
            contiguous.storage::<f32>()
        }
    };
    // The gradient is usually the graph's only reference: no copy.
    in_place(grad, |g| kernel(g, saved_values))
}

/// The last axis' length.
fn row_len(t: &FloatTensor<Flex>) -> usize {
    t.layout().shape().iter().last().copied().unwrap_or(1)
}

/// `kernel(values, other)` over `values` in parallel tasks of whole rows, `other` (the same
/// shape) read alongside.
fn zip_rows(
    values: &mut [f32],
    other: &[f32],
    row: usize,
    kernel: impl Fn(&mut [f32], &[f32]) + Sync,
) {
    let piece = (CHUNK / row.max(1)).max(1) * row.max(1);
    values
        .par_chunks_mut(piece)
        .zip(other.par_chunks(piece))
        .for_each(|(v, o)| kernel(v, o));
}

impl HostKernels for Flex {
    fn host_softmax_last(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let row = row_len(&x);
        let last = x.layout().shape().num_dims().saturating_sub(1);
        let burn = |x| <Flex as ActivationOps<Flex>>::softmax(x, last);
        if row == 0 || x.dtype() != DType::F32 {
            return burn(x);
        }
        let piece = (CHUNK / row).max(1) * row;
        in_place(x, |values| {
            values
                .par_chunks_mut(piece)
                .for_each(|v| softmax_rows(v, row, 1.0))
        })
        .unwrap_or_else(burn)
    }

    fn host_softmax_last_backward(
        y: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let row = row_len(&y);
        if row == 0 || !same_f32(&y, &grad) {
            return composed_softmax_backward::<Flex>(y, grad);
        }
        with_grad(&y, grad, |g, y| {
            zip_rows(g, y, row, |g, y| softmax_grad_rows(g, y, row))
        })
        .unwrap_or_else(|grad| composed_softmax_backward::<Flex>(y, grad))
    }

    fn host_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let burn = <Flex as ActivationOps<Flex>>::gelu;
        if x.dtype() != DType::F32 {
            return burn(x);
        }
        in_place(x, |values| {
            values
                .par_chunks_mut(CHUNK)
                .for_each(crate::gelu::gelu_in_place)
        })
        .unwrap_or_else(burn)
    }

    fn host_gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        if !same_f32(&x, &grad) {
            return <Flex as ActivationOps<Flex>>::gelu_backward(x, grad);
        }
        with_grad(&x, grad, |g, x| zip_rows(g, x, 1, gelu_grad))
            .unwrap_or_else(|grad| <Flex as ActivationOps<Flex>>::gelu_backward(x, grad))
    }
}

/// The softmax's input gradient with the backend's own ops.
fn composed_softmax_backward<B: Backend>(
    y: FloatTensor<B>,
    grad: FloatTensor<B>,
) -> FloatTensor<B> {
    let last = y.shape().num_dims() - 1;
    let dot = B::float_sum_dim(B::float_mul(grad.clone(), y.clone()), last);
    B::float_mul(y, B::float_sub(grad, dot))
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

impl<B: Backend + HostKernels, C: CheckpointStrategy> HostKernels for Autodiff<B, C> {
    fn host_softmax_last(x: FloatTensor<Self>) -> FloatTensor<Self> {
        record::<B, C>(
            x,
            B::host_softmax_last,
            B::host_softmax_last_backward,
            Saved::Output,
        )
    }

    fn host_softmax_last_backward(
        y: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        composed_softmax_backward::<Self>(y, grad)
    }

    fn host_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        record::<B, C>(x, B::host_gelu, B::host_gelu_backward, Saved::Input)
    }

    fn host_gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        <Self as ActivationOps<Self>>::gelu_backward(x, grad)
    }
}

multiversion! {
    /// The softmax's input gradient in place of `grad`, row by row, from the output `y`.
    fn softmax_grad_rows(grad: &mut [f32], y: &[f32], row: usize) => softmax_grad_kernel
}

multiversion! {
    /// `grad ⊙ GELU'(x)` in place of `grad`.
    fn gelu_grad(grad: &mut [f32], x: &[f32]) => gelu_grad_kernel
}

/// Lanes of the running dot products (see `crate::softmax`'s sums).
const LANES: usize = 32;

#[inline(always)]
fn softmax_grad_kernel(grad: &mut [f32], y: &[f32], row: usize) {
    for (g, y) in grad.chunks_exact_mut(row).zip(y.chunks_exact(row)) {
        let dot = lane_dot(g, y);
        for (g, &y) in g.iter_mut().zip(y) {
            *g = y * (*g - dot);
        }
    }
}

/// `Σ a ⊙ b` in lanes, so that the loop vectorises.
#[inline(always)]
fn lane_dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0.0f32; LANES];
    let (a_body, b_body) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a_body
        .remainder()
        .iter()
        .zip(b_body.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (a, b) in a_body.zip(b_body) {
        for i in 0..LANES {
            sums[i] += a[i] * b[i];
        }
    }
    sums.iter().sum::<f32>() + tail
}

/// `Φ(x) + x·φ(x)`: the derivative of `x·Φ(x)`, with the erf of [`crate::gelu`].
#[inline(always)]
fn gelu_grad_kernel(grad: &mut [f32], x: &[f32]) {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    for (g, &x) in grad.iter_mut().zip(x) {
        let cdf = 0.5 * (1.0 + crate::gelu::erf(x * std::f32::consts::FRAC_1_SQRT_2));
        let pdf = INV_SQRT_2PI * exp_neg(0.5 * x * x);
        *g *= cdf + x * pdf;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, activation};

    fn max_rel(ours: Tensor<3>, burn: Tensor<3>) -> f32 {
        let diff = (ours - burn.clone()).abs().max().into_scalar::<f32>();
        diff / burn.abs().max().into_scalar::<f32>()
    }

    /// `t`'s values in f64 on plain flex.
    fn f64(t: &Tensor<3>) -> Tensor<3> {
        Tensor::from_data(t.to_data().convert::<f64>(), (&Device::flex(), DType::F64))
    }

    /// Values and input gradients against the exact ones (f64) and Burn's own softmax and
    /// GELU, through a transposed (non-contiguous) input, on the plain and the
    /// gradient-checkpointing autodiff devices.
    #[test]
    fn gradients_match_f64_and_burns() {
        for device in [
            Device::flex().autodiff(),
            Device::flex().autodiff().gradient_checkpointing(),
        ] {
            let x = Tensor::<3>::random([3, 300, 40], Distribution::Normal(0.0, 2.0), &device)
                .require_grad();
            let w = Tensor::<3>::random([3, 40, 300], Distribution::Normal(0.0, 1.0), &device);
            let input = || x.clone().swap_dims(1, 2) * 1.5;
            assert!(applies(&input()));
            // The exact input gradients of `Σ w ⊙ f(1.5·xᵀ)`: `1.5·(f'(u) ⊙ w)ᵀ`.
            let (u, w64) = (f64(&input()), f64(&w));
            let softmax = activation::softmax(u.clone(), 2);
            let softmax_grad =
                softmax.clone() * (w64.clone() - (w64.clone() * softmax.clone()).sum_dim(2));
            let cdf = ((u.clone() * std::f64::consts::FRAC_1_SQRT_2).erf() + 1.0) * 0.5;
            let pdf = (u.clone().powi_scalar(2) * -0.5).exp() * 0.398_942_280_401_432_7;
            let gelu_grad = w64 * (cdf + u.clone() * pdf);
            let exact = |g: Tensor<3>| g.swap_dims(1, 2) * 1.5;
            for (name, ours, burn, exact_values, exact_grad) in [
                (
                    "softmax",
                    crate::precision::softmax(input(), 2),
                    activation::softmax(input(), 2),
                    softmax,
                    exact(softmax_grad),
                ),
                (
                    "gelu",
                    crate::gelu::gelu(input()),
                    activation::gelu(input()),
                    activation::gelu(u.clone()),
                    exact(gelu_grad),
                ),
            ] {
                let grad = |y: Tensor<3>| {
                    let grads = (y * w.clone()).sum().backward();
                    x.grad(&grads).expect("x has a gradient")
                };
                let values = max_rel(f64(&ours), exact_values.clone());
                assert!(values < 1e-6, "{name} values off by {values}");
                let values = max_rel(ours.clone(), burn.clone());
                assert!(
                    values < 1e-6,
                    "{name} values differ from Burn's by {values}"
                );
                let (ours, burn) = (grad(ours), grad(burn));
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

    /// Inputs without a gradient run forward only; 16-bit and small tensors keep Burn's ops.
    #[test]
    fn untracked_and_excluded_inputs() {
        let device = Device::flex().autodiff();
        let x = Tensor::<3>::random([2, 100, 100], Distribution::Normal(0.0, 1.0), &device);
        let y = crate::precision::softmax(x.clone(), 2);
        let sums = y.sum_dim(2) - 1.0;
        assert!(sums.abs().max().into_scalar::<f32>() < 1e-5);
        assert!(!applies(&x.clone().slice([0..1, 0..10, 0..10])));
        assert!(!applies(&x.clone().cast(burn::tensor::FloatDType::BF16)));
        assert!(!applies(&Tensor::<3>::from_data(
            x.to_data(),
            &Device::flex()
        )));
    }

    /// The forward pass records the softmax as one operation: a gradient reaches the input
    /// through a chain of two softmaxes and a GELU.
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
        let grad = |y: Tensor<3>| x.grad(&(y * w.clone()).sum().backward()).expect("gradient");
        let rel = max_rel(grad(ours), grad(burn));
        assert!(rel < 1e-5, "gradients differ by {rel}");
    }
}
