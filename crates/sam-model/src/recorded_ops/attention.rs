//! The image encoder's attention in training as one recorded operation, with the backend's
//! own products: `softmax(scale·q·kᵀ + rel_h + rel_w)·v` from the stacked `qkv` and the
//! rel-pos tables.
//!
//! Why one operation: Burn's autodiff gives each of q, k and v (slices of one `[3, N, n, hd]`
//! tensor) a gradient the size of the whole tensor, zero-filled with the slice written in, and
//! adds the three; the rel-pos terms take a fourth. Here the backward pass writes the three
//! gradients into one tensor. The sums are the reference's: the rel-pos terms from the
//! unscaled queries (`einsum("bhwc,hkc->bhwk")`), the scores from `q·scale`, the rel-pos softmax
//! ([`RecordedOps::recorded_softmax_rel_pos`], flex's host kernel on flex).

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, TensorMetadata};
use burn::tensor::Slice;

use super::RecordedOps;

/// `t: [N, h·w, c]` as the row-batched `[h, N·w, c]` (`by_rows`) or column-batched
/// `[w, N·h, c]` layout of the rel-pos products.
fn batched<B: Backend>(t: FloatTensor<B>, (h, w): (usize, usize), by_rows: bool) -> FloatTensor<B> {
    let [n, _, c] = dims3::<B>(&t);
    let grid = B::float_reshape(t, [n, h, w, c].into());
    if by_rows {
        let t = B::float_permute(grid, &[1, 0, 2, 3]);
        B::float_reshape(t, [h, n * w, c].into())
    } else {
        let t = B::float_permute(grid, &[2, 0, 1, 3]);
        B::float_reshape(t, [w, n * h, c].into())
    }
}

/// The inverse of [`batched`]: `[h, N·w, c]` or `[w, N·h, c]` → `[N, h·w, c]`.
fn unbatched<B: Backend>(
    t: FloatTensor<B>,
    (h, w): (usize, usize),
    by_rows: bool,
) -> FloatTensor<B> {
    let [_, batch, c] = dims3::<B>(&t);
    let side = if by_rows { w } else { h };
    let n = batch / side.max(1);
    let t = if by_rows {
        B::float_permute(B::float_reshape(t, [h, n, w, c].into()), &[1, 0, 2, 3])
    } else {
        B::float_permute(B::float_reshape(t, [w, n, h, c].into()), &[1, 2, 0, 3])
    };
    B::float_reshape(t, [n, h * w, c].into())
}

fn dims3<B: Backend>(t: &FloatTensor<B>) -> [usize; 3] {
    let shape = t.shape();
    [shape[0], shape[1], shape[2]]
}

/// The stacked `qkv: [3, N, n, hd]`'s three parts, each `[N, n, hd]`.
fn parts<B: Backend>(qkv: &FloatTensor<B>) -> [FloatTensor<B>; 3] {
    let shape = qkv.shape();
    let (n, tokens, hd) = (shape[1], shape[2], shape[3]);
    [0, 1, 2].map(|i| {
        let ranges = [i..i + 1, 0..n, 0..tokens, 0..hd].map(Slice::from);
        B::float_reshape(B::float_slice(qkv.clone(), &ranges), [n, tokens, hd].into())
    })
}

/// `[a, b, c] → [a, c, b]`.
fn transposed<B: Backend>(t: FloatTensor<B>) -> FloatTensor<B> {
    B::float_swap_dims(t, 1, 2)
}

/// The forward pass: the output `[N, n, hd]` and the probabilities `[N, n, n]` (kept for the
/// backward pass). `rel_h: [h, h, hd]` and `rel_w: [w, w, hd]` are `get_rel_pos`'s tables.
pub(super) fn forward<B: Backend + RecordedOps>(
    qkv: FloatTensor<B>,
    rel_h: FloatTensor<B>,
    rel_w: FloatTensor<B>,
    scale: f64,
    grid: (usize, usize),
) -> (FloatTensor<B>, FloatTensor<B>) {
    let [q, k, v] = parts::<B>(&qkv);
    // einsum("bhwc,hkc->bhwk") and einsum("bhwc,wkc->bhwk") on the unscaled queries.
    let terms = |table: FloatTensor<B>, by_rows: bool| {
        let product = B::float_matmul(
            batched::<B>(q.clone(), grid, by_rows),
            transposed::<B>(table),
        );
        unbatched::<B>(product, grid, by_rows)
    };
    let (term_h, term_w) = (terms(rel_h, true), terms(rel_w, false));
    let scores = B::float_matmul(B::float_mul_scalar(q, scale.into()), transposed::<B>(k));
    let probs = B::recorded_softmax_rel_pos(scores, term_h, term_w, grid);
    (B::float_matmul(probs.clone(), v), probs)
}

/// The backward pass: the gradients of `qkv` (`[3, N, n, hd]`, one tensor), `rel_h` and
/// `rel_w` from the kept inputs and probabilities and the output's gradient `grad`.
pub(super) fn backward<B: Backend + RecordedOps>(
    qkv: FloatTensor<B>,
    rel_h: FloatTensor<B>,
    rel_w: FloatTensor<B>,
    probs: FloatTensor<B>,
    grad: FloatTensor<B>,
    scale: f64,
    grid: (usize, usize),
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let [q, k, v] = parts::<B>(&qkv);
    let d_probs = B::float_matmul(grad.clone(), transposed::<B>(v));
    let d_v = B::float_matmul(transposed::<B>(probs.clone()), grad);
    let (d_scores, d_term_h, d_term_w) = B::recorded_softmax_rel_pos_backward(probs, d_probs, grid);
    // scores = (q·scale)·kᵀ
    let d_q = B::float_mul_scalar(B::float_matmul(d_scores.clone(), k), scale.into());
    // As `(q·scale)ᵀ·∂s`, transposed: the large `∂s` as the product's right operand (packed
    // row-major) rather than transposed on the left.
    let d_k = transposed::<B>(B::float_matmul(
        transposed::<B>(B::float_mul_scalar(q.clone(), scale.into())),
        d_scores,
    ));
    // term = batched(q)·tableᵀ per row (column) of the grid.
    let rel_pos_grads = |table: FloatTensor<B>, d_term: FloatTensor<B>, by_rows: bool| {
        let d_term = batched::<B>(d_term, grid, by_rows);
        let d_q = unbatched::<B>(B::float_matmul(d_term.clone(), table), grid, by_rows);
        let q = batched::<B>(q.clone(), grid, by_rows);
        (d_q, B::float_matmul(transposed::<B>(d_term), q))
    };
    let (d_q_h, d_rel_h) = rel_pos_grads(rel_h, d_term_h, true);
    let (d_q_w, d_rel_w) = rel_pos_grads(rel_w, d_term_w, false);
    let d_q = B::float_add(B::float_add(d_q, d_q_h), d_q_w);
    let [n, tokens, hd] = dims3::<B>(&d_v);
    let stacked = [d_q, d_k, d_v].map(|t| B::float_reshape(t, [1, n, tokens, hd].into()));
    (B::float_cat(stacked.to_vec(), 0), d_rel_h, d_rel_w)
}
