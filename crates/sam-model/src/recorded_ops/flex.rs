//! The host kernels of [`RecordedOps`] on flex: both passes on the tensors' values, with the
//! CPU's widest vectors.

use burn::backend::Flex;
use burn::backend::ops::ActivationOps;
use burn::backend::tensor::FloatTensor;
use burn::tensor::{DType, TensorData};
use rayon::prelude::*;

use super::RecordedOps;
use super::composed::{
    composed_layer_norm, composed_layer_norm_backward, composed_softmax_backward,
    composed_softmax_last, composed_softmax_rel_pos, composed_softmax_rel_pos_backward, in_f32,
};
use crate::precision::is_half;
use crate::softmax::{softmax_rel_pos_rows, softmax_rows};
use crate::vector_math::{centre_row, exp_neg, lane_sum, multiversion, rstd_layer_norm_row};

/// Values per parallel task.
const CHUNK: usize = 1 << 14;

/// `x` (f32) with `kernel` applied to its values, in place where `x` is the only owner of
/// contiguous values (else on a copy); `Err(x)` back if its values cannot be viewed as f32
/// (misaligned), for Burn's ops to take over.
fn in_place(
    x: FloatTensor<Flex>,
    kernel: impl FnOnce(&mut [f32]),
) -> Result<FloatTensor<Flex>, FloatTensor<Flex>> {
    // A shared input (GELU's, which its backward pass keeps) is copied once as f32 values:
    // `into_data` would copy it as bytes and then again into an aligned allocation.
    if !x.is_unique()
        && let Some(values) = x.as_slice::<f32>()
    {
        let mut copy = values.to_vec();
        kernel(&mut copy);
        let shape = x.layout().shape().clone();
        return Ok(FloatTensor::<Flex>::from_data(TensorData::new(copy, shape)));
    }
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
    // The gradient is usually the graph's only reference: no copy.
    with_values(saved, |saved| in_place(grad, |g| kernel(g, saved)))
}

/// `f` of `t`'s values, read where they lie if contiguous (else from a contiguous copy).
fn with_values<R>(t: &FloatTensor<Flex>, f: impl FnOnce(&[f32]) -> R) -> R {
    match t.as_slice::<f32>() {
        Some(values) => f(values),
        None => f(t.to_contiguous().storage::<f32>()),
    }
}

/// Whether the layer norm's host kernels take `x` with `params` (`gamma`, `beta`): all f32,
/// each parameter as long as `x`'s rows.
fn layer_norm_on_host(x: &FloatTensor<Flex>, params: &[&FloatTensor<Flex>]) -> bool {
    let c = row_len(x);
    c > 0
        && x.dtype() == DType::F32
        && params
            .iter()
            .all(|p| p.dtype() == DType::F32 && p.layout().num_elements() == c)
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

/// Whether the rel-pos softmax's host kernels take scores of `shape` with terms of `h_len`
/// and `w_len` values: whole rows of `k_h·k_w` scores, one term of each per key row or column.
fn rel_pos_on_host(shape: &[usize], k_h: usize, k_w: usize, h_len: usize, w_len: usize) -> bool {
    let row = k_h * k_w;
    let scores: usize = shape.iter().product();
    row > 0
        && shape.last() == Some(&row)
        && h_len == scores / row * k_h
        && w_len == scores / row * k_w
}

impl RecordedOps for Flex {
    fn recorded_softmax_rel_pos(
        attn: FloatTensor<Self>,
        rel_h: FloatTensor<Self>,
        rel_w: FloatTensor<Self>,
        (k_h, k_w): (usize, usize),
    ) -> FloatTensor<Self> {
        let f32s = [&attn, &rel_h, &rel_w]
            .iter()
            .all(|t| t.dtype() == DType::F32);
        let shape: Vec<usize> = attn.layout().shape().iter().copied().collect();
        let (h_len, w_len) = (rel_h.layout().num_elements(), rel_w.layout().num_elements());
        if !f32s || !rel_pos_on_host(&shape, k_h, k_w, h_len, w_len) {
            return composed_softmax_rel_pos::<Flex>(attn, rel_h, rel_w, (k_h, k_w));
        }
        let row = k_h * k_w;
        let rows_per_task = (CHUNK / row).max(1);
        // The inference kernel: the terms added while each row is in cache, in the
        // reference's order, instead of two passes of broadcast adds over the scores.
        let y = with_values(&rel_h, |h_terms| {
            with_values(&rel_w, |w_terms| {
                in_place(attn, |values| {
                    values
                        .par_chunks_mut(rows_per_task * row)
                        .zip(h_terms.par_chunks(rows_per_task * k_h))
                        .zip(w_terms.par_chunks(rows_per_task * k_w))
                        .for_each(|((v, h), w)| softmax_rel_pos_rows(v, h, w, k_h, k_w))
                })
            })
        });
        y.unwrap_or_else(|attn| composed_softmax_rel_pos::<Flex>(attn, rel_h, rel_w, (k_h, k_w)))
    }

    fn recorded_softmax_rel_pos_backward(
        y: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        (k_h, k_w): (usize, usize),
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let shape: Vec<usize> = y.layout().shape().iter().copied().collect();
        let rows = shape.iter().product::<usize>() / (k_h * k_w).max(1);
        let host = same_f32(&y, &grad) && rel_pos_on_host(&shape, k_h, k_w, rows * k_h, rows * k_w);
        if !host {
            return composed_softmax_rel_pos_backward::<Flex>(y, grad, (k_h, k_w));
        }
        let row = k_h * k_w;
        let rows_per_task = (CHUNK / row).max(1);
        let mut d_rel_h = vec![0.0f32; rows * k_h];
        let mut d_rel_w = vec![0.0f32; rows * k_w];
        let d_attn = with_grad(&y, grad, |g, y| {
            g.par_chunks_mut(rows_per_task * row)
                .zip(y.par_chunks(rows_per_task * row))
                .zip(d_rel_h.par_chunks_mut(rows_per_task * k_h))
                .zip(d_rel_w.par_chunks_mut(rows_per_task * k_w))
                .for_each(|(((g, y), dh), dw)| softmax_rel_pos_grad_rows(g, y, dh, dw, k_w));
        });
        match d_attn {
            Ok(d_attn) => {
                let terms = |values: Vec<f32>, k: usize| {
                    let mut dims = shape.clone();
                    if let Some(last) = dims.last_mut() {
                        *last = k;
                    }
                    FloatTensor::<Flex>::from_data(TensorData::new(values, dims))
                };
                (d_attn, terms(d_rel_h, k_h), terms(d_rel_w, k_w))
            }
            Err(grad) => composed_softmax_rel_pos_backward::<Flex>(y, grad, (k_h, k_w)),
        }
    }

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

    fn recorded_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let dtype = x.dtype();
        if is_half(dtype) {
            return in_f32::<Flex, 3>([x, gamma, beta], dtype, |[x, gamma, beta]| {
                Self::recorded_layer_norm(x, gamma, beta, epsilon)
            });
        }
        if !layer_norm_on_host(&x, &[&gamma, &beta]) {
            return composed_layer_norm::<Flex>(x, gamma, beta, epsilon);
        }
        let c = row_len(&x);
        let piece = (CHUNK / c).max(1) * c;
        // The input kept for the backward pass is shared: `in_place` normalises a copy.
        let normed = with_values(&gamma, |gamma| {
            with_values(&beta, |beta| {
                in_place(x, |values| {
                    values
                        .par_chunks_mut(piece)
                        .for_each(|rows| layer_norm_rows(rows, gamma, beta, epsilon as f32))
                })
            })
        });
        normed.unwrap_or_else(|x| composed_layer_norm::<Flex>(x, gamma, beta, epsilon))
    }

    fn recorded_layer_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let c = row_len(&x);
        if !layer_norm_on_host(&x, &[&gamma]) || !same_f32(&x, &grad) {
            return composed_layer_norm_backward::<Flex>(x, gamma, grad, epsilon);
        }
        let piece = (CHUNK / c).max(1) * c;
        let mut partials = Vec::new();
        let d_x = with_values(&gamma, |gamma| {
            with_grad(&x, grad, |g, x| {
                partials = g
                    .par_chunks_mut(piece)
                    .zip(x.par_chunks(piece))
                    .map(|(g, x)| {
                        let mut sums = vec![0.0f32; 2 * c];
                        let (d_gamma, d_beta) = sums.split_at_mut(c);
                        layer_norm_grad_rows(g, x, gamma, epsilon as f32, d_gamma, d_beta);
                        sums
                    })
                    .collect();
            })
        });
        let d_x = match d_x {
            Ok(d_x) => d_x,
            Err(grad) => return composed_layer_norm_backward::<Flex>(x, gamma, grad, epsilon),
        };
        // The pieces' sums in a fixed order: the same bits for any thread count.
        let mut sums = vec![0.0f32; 2 * c];
        for partial in &partials {
            for (s, p) in sums.iter_mut().zip(partial) {
                *s += p;
            }
        }
        let d_beta = sums.split_off(c);
        let vector =
            |values: Vec<f32>| FloatTensor::<Flex>::from_data(TensorData::new(values, [c]));
        (d_x, vector(sums), vector(d_beta))
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
    /// The rel-pos softmax's input gradient in place of `grad`, row by row (`k_h·k_w` long,
    /// `dh.len()` rows), from the output `y`; each row's sums over its key columns into
    /// `dh` (`k_h` per row) and over its key rows into `dw` (`k_w` per row, zeroed first).
    fn softmax_rel_pos_grad_rows(
        grad: &mut [f32],
        y: &[f32],
        dh: &mut [f32],
        dw: &mut [f32],
        k_w: usize,
    ) => softmax_rel_pos_grad_kernel
}

multiversion! {
    /// PyTorch's layer norm of every row of `rows` in place.
    fn layer_norm_rows(rows: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) => layer_norm_kernel
}

multiversion! {
    /// The layer norm's input gradient in place of `grad`, row by row, from the input `x`;
    /// `Σ grad ⊙ x̂` and `Σ grad` over the rows added to `d_gamma` and `d_beta`.
    fn layer_norm_grad_rows(
        grad: &mut [f32],
        x: &[f32],
        gamma: &[f32],
        eps: f32,
        d_gamma: &mut [f32],
        d_beta: &mut [f32],
    ) => layer_norm_grad_kernel
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

#[inline(always)]
fn softmax_rel_pos_grad_kernel(
    grad: &mut [f32],
    y: &[f32],
    dh: &mut [f32],
    dw: &mut [f32],
    k_w: usize,
) {
    let rows = dw.len() / k_w;
    let k_h = dh.len() / rows.max(1);
    let row = k_h * k_w;
    let per_row = grad
        .chunks_exact_mut(row)
        .zip(y.chunks_exact(row))
        .zip(dh.chunks_exact_mut(k_h))
        .zip(dw.chunks_exact_mut(k_w));
    for (((g, y), dh), dw) in per_row {
        let dot = lane_dot(g, y);
        dw.fill(0.0);
        for ((g, y), dh) in g.chunks_exact_mut(k_w).zip(y.chunks_exact(k_w)).zip(dh) {
            for (g, &y) in g.iter_mut().zip(y) {
                *g = y * (*g - dot);
            }
            for (dw, &g) in dw.iter_mut().zip(g.iter()) {
                *dw += g;
            }
            *dh = lane_sum(g);
        }
    }
}

#[inline(always)]
fn layer_norm_kernel(rows: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    for row in rows.chunks_exact_mut(gamma.len()) {
        rstd_layer_norm_row(row, gamma, beta, eps);
    }
}

/// With `x̂ = (x − mean)·rstd` and `g = grad ⊙ gamma`:
/// `∂x = rstd·(g − mean(g) − x̂·mean(g ⊙ x̂))`.
#[inline(always)]
fn layer_norm_grad_kernel(
    grad: &mut [f32],
    x: &[f32],
    gamma: &[f32],
    eps: f32,
    d_gamma: &mut [f32],
    d_beta: &mut [f32],
) {
    let c = gamma.len();
    let n = c as f32;
    let mut normed = vec![0.0f32; c];
    for (g, x) in grad.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
        // The forward pass' own mean and variance (`rstd_layer_norm_row`).
        normed.copy_from_slice(x);
        let rstd = 1.0 / (centre_row(&mut normed) + eps).sqrt();
        for h in normed.iter_mut() {
            *h *= rstd;
        }
        for (((g, h), dg), db) in g
            .iter()
            .zip(&normed)
            .zip(d_gamma.iter_mut())
            .zip(d_beta.iter_mut())
        {
            *dg += g * h;
            *db += g;
        }
        for (g, gamma) in g.iter_mut().zip(gamma) {
            *g *= gamma;
        }
        let g_mean = lane_sum(g) / n;
        let gx_mean = lane_dot(g, &normed) / n;
        for (g, h) in g.iter_mut().zip(&normed) {
            *g = rstd * (*g - g_mean - h * gx_mean);
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
    use crate::vector_math::assert_variants_agree;

    /// Every compiled variant of the backward kernels gives the same bits, as the forward
    /// kernels' do (`vector_math`'s test): CI's CPU would otherwise run only the widest.
    #[test]
    fn every_backward_variant_gives_the_same_bits() {
        let values = |n: usize, k: usize| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * 7919 + k * 104_729) % 2000) as f32 / 97.0 - 10.3)
                .collect()
        };
        // Rows of 100 (not a multiple of the lanes) and of 64; 12 rows.
        for (k_h, k_w) in [(10, 10), (8, 8)] {
            let (row, rows) = (k_h * k_w, 12);
            // A softmax output: positive rows summing to one.
            let y: Vec<f32> = values(rows * row, 1)
                .chunks_exact(row)
                .flat_map(|r| {
                    let e: Vec<f32> = r.iter().map(|v| (v / 4.0).exp()).collect();
                    let s: f32 = e.iter().sum();
                    e.into_iter().map(move |v| v / s)
                })
                .collect();
            let grad = values(rows * row, 2);
            assert_variants_agree(&format!("softmax_grad rows of {row}"), || {
                let mut g = grad.clone();
                softmax_grad_rows(&mut g, &y, row);
                g
            });
            assert_variants_agree(&format!("softmax_rel_pos_grad {k_h}×{k_w}"), || {
                let mut g = grad.clone();
                let (mut dh, mut dw) = (vec![0.0; rows * k_h], vec![7.0; rows * k_w]);
                softmax_rel_pos_grad_rows(&mut g, &y, &mut dh, &mut dw, k_w);
                [g, dh, dw].concat()
            });
        }
        for c in [48, 100] {
            let rows = 9;
            let (x, grad) = (values(rows * c, 3), values(rows * c, 4));
            let (gamma, beta) = (values(c, 5), values(c, 6));
            assert_variants_agree(&format!("layer_norm rows of {c}"), || {
                let mut r = x.clone();
                layer_norm_rows(&mut r, &gamma, &beta, 1e-6);
                r
            });
            assert_variants_agree(&format!("layer_norm_grad rows of {c}"), || {
                let mut g = grad.clone();
                let (mut d_gamma, mut d_beta) = (vec![0.5; c], vec![-0.5; c]);
                layer_norm_grad_rows(&mut g, &x, &gamma, 1e-6, &mut d_gamma, &mut d_beta);
                [g, d_gamma, d_beta].concat()
            });
        }
        let (x, grad) = (values(4099, 7), values(4099, 8));
        assert_variants_agree("gelu_grad", || {
            let mut g = grad.clone();
            gelu_grad(&mut g, &x);
            g
        });
    }
}
