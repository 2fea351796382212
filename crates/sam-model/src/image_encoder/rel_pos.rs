//! Decomposed relative position bias (MViTv2), as the reference's `get_rel_pos` and
//! `add_decomposed_rel_pos`.

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::interpolate::linear_resize_matrix;

/// Relative positional embeddings for every (query, key) coordinate pair.
///
/// `rel_pos: [L, Ch]` → `[q_size, k_size, Ch]`, where entry `(i, j)` is
/// `rel_pos[i·s_q − j·s_k + (k_size − 1)·s_k]`. The table is linearly resized first when its
/// length is not `2·max(q_size, k_size) − 1` (weights trained at another resolution).
pub fn get_rel_pos(q_size: usize, k_size: usize, rel_pos: Tensor<2>) -> Tensor<3> {
    let max_rel_dist = 2 * q_size.max(k_size) - 1;
    let [len, channels] = rel_pos.dims();
    let device = rel_pos.device();
    let rel_pos_resized = if len != max_rel_dist {
        // F.interpolate(mode="linear") along the length axis.
        linear_resize_matrix(len, max_rel_dist, &device).matmul(rel_pos)
    } else {
        rel_pos
    };
    let index = relative_index(q_size, k_size, &device);
    rel_pos_resized
        .select(0, index)
        .reshape([q_size, k_size, channels])
}

/// Flat `[q_size · k_size]` table indices, as the reference's float arithmetic truncated to long.
fn relative_index(q_size: usize, k_size: usize, device: &Device) -> Tensor<1, Int> {
    let q_scale = (k_size as f64 / q_size as f64).max(1.0);
    let k_scale = (q_size as f64 / k_size as f64).max(1.0);
    let mut index = Vec::with_capacity(q_size * k_size);
    for i in 0..q_size {
        for j in 0..k_size {
            let coord = i as f64 * q_scale - j as f64 * k_scale + (k_size as f64 - 1.0) * k_scale;
            index.push(coord as i64);
        }
    }
    Tensor::from_data(TensorData::new(index, [q_size * k_size]), device)
}

/// The two terms of the decomposed relative position bias: the bias of query `i` and key
/// `(kh, kw)` is `rel_h[i, kh] + rel_w[i, kw]`.
///
/// `q: [B, q_h·q_w, Ch]` (unscaled queries), `rel_pos_h: [2·q_h−1, Ch]`, `rel_pos_w: [2·q_w−1, Ch]`
/// → (`rel_h: [B, q_h·q_w, k_h]`, `rel_w: [B, q_h·q_w, k_w]`).
pub fn decomposed_rel_pos_terms(
    q: Tensor<3>,
    rel_pos_h: Tensor<2>,
    rel_pos_w: Tensor<2>,
    q_size: (usize, usize),
    k_size: (usize, usize),
) -> (Tensor<3>, Tensor<3>) {
    let (q_h, q_w) = q_size;
    let (k_h, k_w) = k_size;
    let [b, _, ch] = q.dims();
    let rh = get_rel_pos(q_h, k_h, rel_pos_h); // [q_h, k_h, Ch]
    let rw = get_rel_pos(q_w, k_w, rel_pos_w); // [q_w, k_w, Ch]

    let r_q = q.reshape([b, q_h, q_w, ch]);
    // einsum("bhwc,hkc->bhwk"): batch over the query row, contract channels.
    let rel_h = r_q
        .clone()
        .permute([1, 0, 2, 3])
        .reshape([q_h, b * q_w, ch])
        .matmul(rh.swap_dims(1, 2))
        .reshape([q_h, b, q_w, k_h])
        .permute([1, 0, 2, 3]);
    // einsum("bhwc,wkc->bhwk"): batch over the query column.
    let rel_w = r_q
        .permute([2, 0, 1, 3])
        .reshape([q_w, b * q_h, ch])
        .matmul(rw.swap_dims(1, 2))
        .reshape([q_w, b, q_h, k_w])
        .permute([1, 2, 0, 3]);
    (
        rel_h.reshape([b, q_h * q_w, k_h]),
        rel_w.reshape([b, q_h * q_w, k_w]),
    )
}

/// Adds the decomposed relative position terms to attention logits, in the reference's order
/// (`attn + rel_h[..., None] + rel_w[..., None, :]`).
///
/// `attn: [B, Nq, k_h·k_w]`, `rel_h: [B, Nq, k_h]`, `rel_w: [B, Nq, k_w]` → `[B, Nq, k_h·k_w]`.
pub fn add_decomposed_rel_pos(
    attn: Tensor<3>,
    rel_h: Tensor<3>,
    rel_w: Tensor<3>,
    (k_h, k_w): (usize, usize),
) -> Tensor<3> {
    let [b, nq, _] = attn.dims();
    let attn = attn.reshape([b, nq, k_h, k_w])
        + rel_h.reshape([b, nq, k_h, 1])
        + rel_w.reshape([b, nq, 1, k_w]);
    attn.reshape([b, nq, k_h * k_w])
}

/// The bias the decomposed relative positions add to the attention logits, materialised.
///
/// `q: [B, q_h·q_w, Ch]` (unscaled queries) → `[B, q_h·q_w, k_h·k_w]`.
pub fn decomposed_rel_pos_bias(
    q: Tensor<3>,
    rel_pos_h: Tensor<2>,
    rel_pos_w: Tensor<2>,
    q_size: (usize, usize),
    k_size: (usize, usize),
) -> Tensor<3> {
    let (k_h, k_w) = k_size;
    let (rel_h, rel_w) = decomposed_rel_pos_terms(q, rel_pos_h, rel_pos_w, q_size, k_size);
    let [b, nq, _] = rel_h.dims();
    let bias = rel_h.reshape([b, nq, k_h, 1]) + rel_w.reshape([b, nq, 1, k_w]);
    bias.reshape([b, nq, k_h * k_w])
}
