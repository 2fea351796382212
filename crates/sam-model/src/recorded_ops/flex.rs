//! The host kernels of [`RecordedOps`] on flex: both passes on the tensors' values, with the
//! CPU's widest vectors.

use burn::backend::Flex;
use burn::backend::ops::ActivationOps;
use burn::backend::tensor::FloatTensor;
use burn::tensor::DType;
use rayon::prelude::*;

use super::{RecordedOps, composed_softmax_backward, composed_softmax_last, in_f32};
use crate::precision::is_half;
use crate::softmax::softmax_rows;
use crate::vector_math::{exp_neg, multiversion};

/// Values per parallel task.
const CHUNK: usize = 1 << 14;

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

impl RecordedOps for Flex {
    fn recorded_softmax_last(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let dtype = x.dtype();
        if is_half(dtype) {
            return in_f32::<Flex, 1>([x], dtype, |[x]| Self::recorded_softmax_last(x));
        }
        let row = row_len(&x);
        if row == 0 || dtype != DType::F32 {
            return composed_softmax_last::<Flex>(x);
        }
        let piece = (CHUNK / row).max(1) * row;
        in_place(x, |values| {
            values
                .par_chunks_mut(piece)
                .for_each(|v| softmax_rows(v, row, 1.0))
        })
        .unwrap_or_else(composed_softmax_last::<Flex>)
    }

    fn recorded_softmax_last_backward(
        y: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let dtype = grad.dtype();
        if is_half(dtype) || is_half(y.dtype()) {
            return in_f32::<Flex, 2>([y, grad], dtype, |[y, grad]| {
                Self::recorded_softmax_last_backward(y, grad)
            });
        }
        let row = row_len(&y);
        if row == 0 || !same_f32(&y, &grad) {
            return composed_softmax_backward::<Flex>(y, grad);
        }
        with_grad(&y, grad, |g, y| {
            zip_rows(g, y, row, |g, y| softmax_grad_rows(g, y, row))
        })
        .unwrap_or_else(|grad| composed_softmax_backward::<Flex>(y, grad))
    }

    fn recorded_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
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

    fn recorded_gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        if !same_f32(&x, &grad) {
            return <Flex as ActivationOps<Flex>>::gelu_backward(x, grad);
        }
        with_grad(&x, grad, |g, x| zip_rows(g, x, 1, gelu_grad))
            .unwrap_or_else(|grad| <Flex as ActivationOps<Flex>>::gelu_backward(x, grad))
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
