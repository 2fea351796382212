//! The two-way block's last step on the CPU: the image→token attention, the residual, `norm4`
//! and the next attention's `+ PE`, a block of image-token rows at a time.
//!
//! Through Burn's ops on flex each of those steps is a pass over one prompt's image tokens
//! (`hw × C`, 1 M values at SAM's sizes) or its `hw × heads·Nt` scores, every output
//! allocated, zeroed and copied by the backend: the score bias, the scores' transposing copy,
//! the output bias, the residual add, the norm and the `keys + PE` of the next attention. Here
//! a block of rows goes through all of them while it is in cache. The products are the tensor
//! path's reordered ones ([`super::attention::Attention::forward`]): scores `Y·R + r`, where
//! `Y` is the image tokens plus PE (`R = W_q,h·k_hᵀ`, `r = b_q,h·k_hᵀ`) or, in a batch's
//! first block, their shared `q_proj` (`R` block-diagonal in the heads' `k_hᵀ`); the output
//! `A·(v_h·W_o,h) + b_o`.

use std::sync::Arc;

use burn::tensor::{DType, Device, Tensor, TensorData};
use rayon::prelude::*;

use super::attention::Side;
use crate::host_gemm::matmul_strided;
use crate::vector_math::{exp_neg, host_maps, host_values, multiversion, rstd_layer_norm_row};

/// An image's host values that every prompt's image→token steps read.
#[derive(Clone, Debug)]
pub(crate) struct HostImage {
    /// The positional encoding, `[hw, C]`.
    pub key_pe: Arc<Vec<f32>>,
    /// The image tokens `[hw, C]` of a batch on one image (the first block's residual).
    pub keys: Option<Arc<Vec<f32>>>,
    /// The first block's shared `q_proj(image + PE)`, as rows `[hw, C/2]`.
    pub queries: Option<Arc<Vec<f32>>>,
}

impl HostImage {
    /// `key_pe: [1, hw, C]`'s values, where the host path applies to it (f32 inference on
    /// flex).
    pub fn new(key_pe: &Tensor<3>) -> Option<Self> {
        if !(host_maps(&key_pe.device()) && key_pe.dtype() == DType::F32) {
            return None;
        }
        Some(Self {
            key_pe: Arc::new(host_values(key_pe.clone())?),
            keys: None,
            queries: None,
        })
    }

    /// With the first block's values of a batch on one image: the image tokens `keys: [1, hw,
    /// C]` and the shared `q_proj` split into heads, `queries` (other shapes keep `self`).
    pub fn with_first_block(self, keys: &Tensor<3>, queries: &Side) -> Self {
        let Side::Heads(heads) = queries else {
            return self;
        };
        let [b, h, hw, d] = heads.dims();
        if b != 1 || keys.dims()[0] != 1 || keys.dtype() != DType::F32 {
            return self;
        }
        let rows = heads.clone().swap_dims(1, 2).reshape([1, hw, h * d]);
        Self {
            keys: host_values(keys.clone()).map(Arc::new),
            queries: host_values(rows).map(Arc::new),
            ..self
        }
    }

    /// Without the first block's values, for the later blocks.
    pub fn later_blocks(&self) -> Self {
        Self {
            key_pe: self.key_pe.clone(),
            keys: None,
            queries: None,
        }
    }
}

/// The small factors of one image→token attention for a batch of `B` prompts (from
/// [`super::attention::Attention::host_factors`]).
pub(crate) struct Factors {
    /// `[B, K, heads·Nt]`: the image rows' side of the scores.
    pub r: Vec<f32>,
    /// `[B, heads·Nt]`, added to the scores.
    pub r_bias: Vec<f32>,
    /// `[B, heads·Nt, C]`: each head's token values through its part of `out_proj`.
    pub vo: Vec<f32>,
    /// `[C]`, `out_proj`'s bias.
    pub bo: Vec<f32>,
    /// Heads.
    pub heads: usize,
    /// Scores per head and image row: the tokens `Nt`.
    pub nt: usize,
    /// `K`, the width of the image rows `Y`.
    pub k: usize,
    /// `1/√d`, applied to the scores before the softmax.
    pub scale: f32,
}

/// `norm4`'s parameters.
pub(crate) struct Norm<'a> {
    pub gamma: &'a [f32],
    pub beta: &'a [f32],
    pub eps: f32,
}

/// Image rows per task: the rows' scores, outputs and inputs (~0.3 MB at SAM's sizes) stay in
/// L2 with the factors.
const TASK_ROWS: usize = 128;

/// An input of [`update`]: values shared by the batch's prompts (a batch of 1 is every
/// prompt's), or a tensor's own values, which the step overwrites with one of its results.
pub(crate) enum Input<'a> {
    /// `[B|1, hw, K]` values and their batch.
    Shared(&'a [f32], usize),
    /// `[B, hw, C]`, reused for a result (the image rows only where `K = C`).
    Owned(TensorData),
}

impl Input<'_> {
    /// The values and their batch.
    fn values(&self) -> (&[f32], usize) {
        match self {
            Input::Shared(values, batch) => (values, *batch),
            Input::Owned(data) => {
                let batch = data.shape().first().copied().unwrap_or(1);
                (data.as_slice::<f32>().unwrap_or(&[]), batch)
            }
        }
    }

    /// The buffer for a `[b, hw, width]` result: an owned input's values (of that shape), or
    /// new ones (zeroed).
    fn into_output(self, b: usize, hw: usize, width: usize) -> TensorData {
        match self {
            Input::Owned(data) => data,
            Input::Shared(..) => TensorData::new(vec![0.0f32; b * hw * width], [b, hw, width]),
        }
    }
}

/// `(norm(keys + attention(rows)), that + key_pe)` for `B` prompts, both `[B, hw, C]`:
/// `rows: [B|1, hw, K]` (the image side `Y`), `keys: [B|1, hw, C]` (the residual),
/// `key_pe: [hw, C]`. Owned inputs become the results (keys the first, rows the second).
pub(crate) fn update(
    rows: Input,
    keys: Input,
    key_pe: &[f32],
    f: &Factors,
    norm: &Norm,
    (b, hw, c): (usize, usize, usize),
) -> (TensorData, TensorData) {
    let (k, s_cols) = (f.k, f.heads * f.nt);
    {
        let ((rows_v, rows_batch), (keys_v, keys_batch)) = (rows.values(), keys.values());
        // The callers made every buffer from tensors of these shapes.
        assert!(
            rows_v.len() == rows_batch * hw * k
                && keys_v.len() == keys_batch * hw * c
                && key_pe.len() == hw * c
                && f.r.len() == b * k * s_cols
                && f.r_bias.len() == b * s_cols
                && f.vo.len() == b * s_cols * c
                && f.bo.len() == c
                && norm.gamma.len() == c
                && norm.beta.len() == c
                && [&rows, &keys].iter().all(|input| match input {
                    Input::Owned(data) => data.shape().as_slice() == [b, hw, c],
                    Input::Shared(..) => true,
                }),
            "image→token host buffers do not match [{b}, {hw}, {c}]"
        );
    }
    let pick = |batch: usize, bi: usize| if batch == 1 { 0 } else { bi };
    // Shared image rows are read where they are; owned ones from the result that replaces them,
    // each task reading its rows before writing them.
    let rows_shared = shared_values(&rows);
    let mut out_pe = rows.into_output(b, hw, c);
    // The residual is updated in place: shared image tokens are first copied in, one copy per
    // prompt (no zeroed buffer to fill).
    let mut out = match keys {
        Input::Owned(data) => data,
        Input::Shared(values, batch) => {
            let mut out = Vec::with_capacity(b * hw * c);
            for bi in 0..b {
                out.extend_from_slice(&values[pick(batch, bi) * hw * c..][..hw * c]);
            }
            TensorData::new(out, [b, hw, c])
        }
    };
    let out_values = out.as_mut_slice::<f32>().unwrap_or(&mut []);
    let out_pe_values = out_pe.as_mut_slice::<f32>().unwrap_or(&mut []);
    out_values
        .par_chunks_mut(hw * c)
        .zip(out_pe_values.par_chunks_mut(hw * c))
        .enumerate()
        .for_each(|(bi, (out, out_pe))| {
            let rows = rows_shared.map(|(v, batch)| &v[pick(batch, bi) * hw * k..][..hw * k]);
            let r = &f.r[bi * k * s_cols..][..k * s_cols];
            let r_bias = &f.r_bias[bi * s_cols..][..s_cols];
            let vo = &f.vo[bi * s_cols * c..][..s_cols * c];
            out.par_chunks_mut(TASK_ROWS * c)
                .zip(out_pe.par_chunks_mut(TASK_ROWS * c))
                .enumerate()
                .for_each_init(
                    || {
                        (
                            vec![0.0f32; TASK_ROWS * s_cols],
                            vec![0.0f32; TASK_ROWS * c],
                        )
                    },
                    |(scores, attended), (i, (out, out_pe))| {
                        let n = out.len() / c;
                        let first = i * TASK_ROWS;
                        // The scores transposed, `[heads·Nt, n]`: each head's softmax over its
                        // `Nt` tokens is then elementwise across `Nt` rows of `n` values, which
                        // vectorises (one image row's 7 scores do not).
                        let scores = &mut scores[..s_cols * n];
                        for (row, &bias) in scores.chunks_exact_mut(n).zip(r_bias) {
                            row.fill(bias);
                        }
                        let y = match rows {
                            Some(rows) => &rows[first * k..(first + n) * k],
                            None => &out_pe[..],
                        };
                        matmul_strided(
                            (n, s_cols, k),
                            (y, (k, 1)),
                            (r, (s_cols, 1)),
                            (&mut *scores, (1, n)),
                            true,
                        );
                        softmax_columns(scores, f.nt, n, f.scale);
                        let attended = &mut attended[..n * c];
                        for row in attended.chunks_exact_mut(c) {
                            row.copy_from_slice(&f.bo);
                        }
                        matmul_strided(
                            (n, c, s_cols),
                            (scores, (1, n)),
                            (vo, (c, 1)),
                            (attended, (c, 1)),
                            true,
                        );
                        let pe = &key_pe[first * c..(first + n) * c];
                        residual_norm_pe_rows(attended, pe, norm, out, out_pe);
                    },
                );
        });
    (out, out_pe)
}

/// A shared input's values and batch; `None` for an owned one.
fn shared_values<'a>(input: &Input<'a>) -> Option<(&'a [f32], usize)> {
    match input {
        Input::Shared(values, batch) => Some((values, *batch)),
        Input::Owned(_) => None,
    }
}

multiversion! {
    /// `softmax(scale · x)` over each group of `nt` rows of `n` values (one head's scores of
    /// `n` image rows against its `nt` tokens, transposed), in the steps and the order of the
    /// row-wise kernel ([`crate::softmax`]): scale, maximum, `exp(x − max)`, sum in token
    /// order, times its reciprocal. The same bits for fewer than 64 tokens (SAM's decoder has
    /// 5–7 plus the prompt's); from 64 the row kernel sums in 32 lanes and they differ by ulps.
    fn softmax_columns(scores: &mut [f32], nt: usize, n: usize, scale: f32) => softmax_columns_kernel
}

#[inline(always)]
fn softmax_columns_kernel(scores: &mut [f32], nt: usize, n: usize, scale: f32) {
    if nt == 0 || n == 0 {
        return;
    }
    for head in scores.chunks_exact_mut(nt * n) {
        if scale != 1.0 {
            head.iter_mut().for_each(|v| *v *= scale);
        }
        // NaNs skipped, as the row-wise kernel's maximum does.
        let mut max = vec![f32::NEG_INFINITY; n];
        for row in head.chunks_exact(n) {
            for (m, &v) in max.iter_mut().zip(row) {
                *m = if v > *m { v } else { *m };
            }
        }
        for row in head.chunks_exact_mut(n) {
            for (v, m) in row.iter_mut().zip(&max) {
                *v = exp_neg(m - *v);
            }
        }
        let (first, rest) = head.split_at_mut(n);
        let mut sum = first.to_vec();
        for row in rest.chunks_exact(n) {
            for (s, v) in sum.iter_mut().zip(row) {
                *s += v;
            }
        }
        for s in sum.iter_mut() {
            *s = 1.0 / *s;
        }
        for row in head.chunks_exact_mut(n) {
            for (v, inv) in row.iter_mut().zip(&sum) {
                *v *= inv;
            }
        }
    }
}

multiversion! {
    /// Rows of `C` values: `out = norm(out + attended)`, `out_pe = out + pe`, with the norm
    /// of PyTorch's `nn.LayerNorm` (`(x − mean)·rstd·gamma + beta`).
    fn residual_norm_pe_rows(
        attended: &[f32],
        pe: &[f32],
        norm: &Norm,
        out: &mut [f32],
        out_pe: &mut [f32],
    ) => residual_norm_pe_kernel
}

#[inline(always)]
fn residual_norm_pe_kernel(
    attended: &[f32],
    pe: &[f32],
    norm: &Norm,
    out: &mut [f32],
    out_pe: &mut [f32],
) {
    let c = norm.gamma.len();
    for (o, a) in out.iter_mut().zip(attended) {
        *o += a;
    }
    for row in out.chunks_exact_mut(c) {
        rstd_layer_norm_row(row, norm.gamma, norm.beta, norm.eps);
    }
    for (o, (v, p)) in out_pe.iter_mut().zip(out.iter().zip(pe)) {
        *o = v + p;
    }
}

/// Values as a tensor on `device`.
pub(crate) fn tensor(values: TensorData, device: &Device) -> Tensor<3> {
    Tensor::from_data(values, (device, DType::F32))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The transposed softmax gives the row-wise kernel's bits, for 7 tokens as in SAM and a
    /// single token, with a NaN and values far apart in one group.
    #[test]
    fn softmax_columns_matches_the_row_kernel() {
        for (heads, nt, n) in [(8, 7, 128), (2, 1, 5), (3, 4, 33)] {
            let mut rows: Vec<f32> = (0..n * heads * nt)
                .map(|i| ((i * 7919) % 1000) as f32 / 37.0 - 13.0)
                .collect();
            rows[3] = f32::NAN;
            if nt > 1 {
                rows[nt] = 300.0;
            }
            // Row-major `[n, heads, nt]` → transposed `[heads·nt, n]`.
            let mut columns = vec![0.0f32; rows.len()];
            for (i, row) in rows.chunks_exact(heads * nt).enumerate() {
                for (j, &v) in row.iter().enumerate() {
                    columns[j * n + i] = v;
                }
            }
            crate::softmax::softmax_rows(&mut rows, nt, 0.25);
            softmax_columns(&mut columns, nt, n, 0.25);
            for (i, row) in rows.chunks_exact(heads * nt).enumerate() {
                for (j, &v) in row.iter().enumerate() {
                    let w = columns[j * n + i];
                    assert!(
                        v.to_bits() == w.to_bits() || (v.is_nan() && w.is_nan()),
                        "[{heads}, {nt}, {n}] row {i} column {j}: {v} vs {w}"
                    );
                }
            }
        }
    }
}
