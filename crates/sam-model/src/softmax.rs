//! Softmax over the last axis, vectorised on the CPU backend.
//!
//! Every attention in SAM normalises its scores over the last axis. Flex computes each `exp`
//! with libm's scalar `expf`; for 64 prompts the decoder exponentiates ~100 M scores, the
//! encoder's global blocks ~800 M. On flex, f32 inference therefore runs the softmax on the
//! tensor's values (`crate::vector_math`) with the exponential PyTorch's vectorised CPU
//! kernel uses, in the reference's steps: the row's maximum, `exp(x − max)`, their sum, and a
//! multiplication by its reciprocal. Other devices and dtypes, autodiff and other axes take
//! [`crate::precision::softmax`].

use burn::tensor::Tensor;

use crate::vector_math::{exp_neg, map_on_host, multiversion};

/// Scores per parallel task (whole rows).
pub(crate) const CHUNK: usize = 1 << 14;

/// Lanes of the running maxima and sums: two AVX-512 registers' worth, so that the loops
/// vectorise (one accumulator would force the adds into order).
const LANES: usize = 32;

/// `softmax(scale · x)` over the last axis; any shape. `scale` multiplies the scores first,
/// as `attn = (q · scale) @ kᵀ` does in the reference, folded into the one pass here.
pub fn softmax_last<const D: usize>(x: Tensor<D>, scale: f64) -> Tensor<D> {
    let row = x.dims()[D - 1];
    let burn = |x: Tensor<D>| {
        let x = if scale == 1.0 { x } else { x * scale };
        crate::precision::softmax(x, D - 1)
    };
    if row == 0 {
        return burn(x);
    }
    let rows_per_task = (CHUNK / row).max(1);
    map_on_host(
        x,
        rows_per_task * row,
        |_, rows| softmax_rows(rows, row, scale as f32),
        burn,
    )
}

multiversion! {
    /// Softmax of `scale ·` each row of `row` values, in place, with the CPU's widest vectors.
    pub(crate) fn softmax_rows(values: &mut [f32], row: usize, scale: f32) => softmax_rows_kernel
}

multiversion! {
    /// `softmax(x + rel_h[kh] + rel_w[kw])` of each row of `k_h·k_w` scores, in place, with
    /// each row's `k_h` and `k_w` terms from `rel_h` and `rel_w`: the image encoder's rel-pos
    /// bias added in the reference's order (`(attn + rel_h) + rel_w`) while the rows are in
    /// cache, instead of two passes of Burn's broadcast adds over the whole score matrix.
    pub(crate) fn softmax_rel_pos_rows(
        values: &mut [f32],
        rel_h: &[f32],
        rel_w: &[f32],
        k_h: usize,
        k_w: usize,
    ) => softmax_rel_pos_kernel
}

#[inline(always)]
fn softmax_rel_pos_kernel(
    values: &mut [f32],
    rel_h: &[f32],
    rel_w: &[f32],
    k_h: usize,
    k_w: usize,
) {
    let row = k_h * k_w;
    let rows = values
        .chunks_exact_mut(row)
        .zip(rel_h.chunks_exact(k_h))
        .zip(rel_w.chunks_exact(k_w));
    for ((r, rh), rw) in rows {
        for (seg, &a) in r.chunks_exact_mut(k_w).zip(rh) {
            for (v, &c) in seg.iter_mut().zip(rw) {
                *v = *v + a + c;
            }
        }
    }
    softmax_rows_kernel(values, row, 1.0);
}

/// Three passes over the task's rows, which stay in cache: shift each row by its maximum, then
/// exponentiate the whole task's values at once (the decoder's image→token rows are only 7
/// long, too short to vectorise one by one), then normalise each row.
#[inline(always)]
fn softmax_rows_kernel(values: &mut [f32], row: usize, scale: f32) {
    for r in values.chunks_exact_mut(row) {
        if scale != 1.0 {
            r.iter_mut().for_each(|v| *v *= scale);
        }
        let max = lane_max(r);
        // `max − x ≥ 0`, the argument of `exp_neg`.
        r.iter_mut().for_each(|v| *v = max - *v);
    }
    values.iter_mut().for_each(|v| *v = exp_neg(*v));
    for r in values.chunks_exact_mut(row) {
        let inv = 1.0 / lane_sum(r);
        r.iter_mut().for_each(|v| *v *= inv);
    }
}

/// The sum, in lanes for long rows (one accumulator would force the adds into order).
#[inline(always)]
fn lane_sum(r: &[f32]) -> f32 {
    if r.len() < 2 * LANES {
        return r.iter().sum();
    }
    let mut sums = [0.0f32; LANES];
    let mut chunks = r.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (v, s) in chunk.iter().zip(sums.iter_mut()) {
            *s += *v;
        }
    }
    chunks.remainder().iter().sum::<f32>() + sums.iter().sum::<f32>()
}

/// The largest value, ignoring NaNs: a NaN still makes its row NaN, through the sum.
#[inline(always)]
fn lane_max(r: &[f32]) -> f32 {
    // Not `f32::max`, whose NaN rule costs a compare and blend per element.
    let max = |m: f32, v: f32| if v > m { v } else { m };
    if r.len() < 2 * LANES {
        return r.iter().copied().fold(f32::NEG_INFINITY, max);
    }
    let mut maxes = [f32::NEG_INFINITY; LANES];
    let mut chunks = r.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (v, m) in chunk.iter().zip(maxes.iter_mut()) {
            *m = max(*m, *v);
        }
    }
    chunks
        .remainder()
        .iter()
        .chain(maxes.iter())
        .copied()
        .fold(f32::NEG_INFINITY, max)
}

// The host kernels run on flex only.
#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::test_util::normal;
    use crate::vector_math::MIN_HOST;
    use burn::tensor::Device;

    /// Against Burn's softmax on rows shorter than, equal to and longer than the lanes, with a
    /// scale, on sizes that fill several tasks; and the reference's NaN behaviour.
    #[test]
    fn softmax_matches_burn() {
        let device = Device::flex();
        for (rows, row, scale) in [(4096, 7, 0.25), (1024, 32, 1.0), (64, 4099, 0.125)] {
            let x = normal([2, rows, row], 0.0, 8.0, (rows * row) as u64, &device);
            let ours = softmax_last(x.clone(), scale);
            let burn = burn::tensor::activation::softmax(x * scale, 2);
            let diff = (ours.clone() - burn).abs().max().into_scalar::<f32>();
            assert!(diff <= 1e-6, "{rows}×{row}: max |diff| {diff}");
            let sums = ours.sum_dim(2).into_data().try_to_vec::<f32>().unwrap();
            assert!(sums.iter().all(|s| (s - 1.0).abs() <= 1e-5));
        }
        let mut values = vec![0.0f32; 2 * 40];
        values[3] = f32::NAN;
        let x = Tensor::<2>::from_data(
            burn::tensor::TensorData::new(
                values.repeat(MIN_HOST / 40 + 1),
                [2 * (MIN_HOST / 40 + 1), 40],
            ),
            &device,
        );
        let out = softmax_last(x, 1.0)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert!(
            out[..40].iter().all(|v| v.is_nan()),
            "a NaN poisons its row"
        );
        assert!(out[40..80].iter().all(|v| (v - 1.0 / 40.0).abs() < 1e-7));
    }
}
