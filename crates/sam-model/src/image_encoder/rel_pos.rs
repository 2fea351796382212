//! Decomposed relative position bias (MViTv2), as the reference's `get_rel_pos` and
//! `add_decomposed_rel_pos`.

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::interpolate::linear_resize_matrix;
use crate::softmax::{CHUNK, softmax_rel_pos_rows};
use crate::vector_math::{map_on_host, maps_on_host};

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

/// `softmax(add_decomposed_rel_pos(attn, rel_h, rel_w))` over the last axis.
///
/// For flex f32 inference the terms are added inside the vectorised softmax while each row is
/// in cache (`softmax_rel_pos_rows`): the same sums in the same order, without the two
/// passes of broadcast adds over the scores. Flex f32 training records the same kernel as one
/// operation whose backward pass takes the terms' gradients (the sums over each key row and
/// column) in the softmax gradient's pass (`crate::recorded_ops`). Elsewhere Burn's ops, as
/// the reference.
///
/// `attn: [B, Nq, k_h·k_w]`, `rel_h: [B, Nq, k_h]`, `rel_w: [B, Nq, k_w]` → `[B, Nq, k_h·k_w]`.
pub fn softmax_with_rel_pos(
    attn: Tensor<3>,
    rel_h: Tensor<3>,
    rel_w: Tensor<3>,
    (k_h, k_w): (usize, usize),
) -> Tensor<3> {
    let burn = |attn: Tensor<3>, rel_h: Tensor<3>, rel_w: Tensor<3>| {
        crate::precision::softmax(add_decomposed_rel_pos(attn, rel_h, rel_w, (k_h, k_w)), 2)
    };
    let row = k_h * k_w;
    #[cfg(any(feature = "flex", feature = "cube"))]
    if row > 0 && crate::recorded_ops::rel_pos_applies(&attn) {
        return crate::recorded_ops::softmax_rel_pos(attn, rel_h, rel_w, (k_h, k_w));
    }
    if row == 0 || !maps_on_host(&attn) {
        return burn(attn, rel_h, rel_w);
    }
    let host = |t: Tensor<3>| t.into_data().try_into_vec::<f32>();
    let (Ok(h_terms), Ok(w_terms)) = (host(rel_h.clone()), host(rel_w.clone())) else {
        return burn(attn, rel_h, rel_w);
    };
    let rows_per_task = (CHUNK / row).max(1);
    map_on_host(
        attn,
        rows_per_task * row,
        |task, values| {
            let (first, rows) = (task * rows_per_task, values.len() / row);
            softmax_rel_pos_rows(
                values,
                &h_terms[first * k_h..(first + rows) * k_h],
                &w_terms[first * k_w..(first + rows) * k_w],
                k_h,
                k_w,
            )
        },
        |attn| burn(attn, rel_h, rel_w),
    )
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

/// Queries and keys whose plain attention is the attention with the decomposed relative
/// position bias: `q'·k' / √D = scale·q·k + rel_h[i, kh] + rel_w[i, kw]`.
///
/// The bias of query `i` and key `(kh, kw)` is the dot product of `[rel_h[i], rel_w[i]]` with
/// the one-hot codes of `kh` and `kw`, so appending the two to the queries and the codes to
/// the keys folds the bias into the product. Flash-attention kernels then run the global blocks
/// without writing the 4096² scores out: Burn's fused kernel on GPUs takes neither a bias nor
/// a scale (it falls back to materialised scores for either), and scales by `1/√D` for the
/// head dimension `D`, so the queries come multiplied by `√D` (and the plain part by `scale`).
/// `D` is a power of 4 where that costs at most a third more columns, so that `√D` is a power
/// of two and the pre-scaling exact in every float type (SAM's 64-dim heads on 64×64 grids:
/// 192 → 256); otherwise the columns rounded up to a multiple of 16.
///
/// `q: [B, Nq, Ch]` (unscaled), `k: [B, k_h·k_w, Ch]`, `rel_h: [B, Nq, k_h]`,
/// `rel_w: [B, Nq, k_w]` → (`[B, Nq, D]`, `[B, k_h·k_w, D]`), in `q`'s dtype.
pub fn fold_rel_pos(
    q: Tensor<3>,
    k: Tensor<3>,
    rel_h: Tensor<3>,
    rel_w: Tensor<3>,
    scale: f64,
    (k_h, k_w): (usize, usize),
) -> (Tensor<3>, Tensor<3>) {
    let [b, nq, ch] = q.dims();
    let [_, nk, _] = k.dims();
    let codes_len = k_h + k_w;
    let dim = folded_dim(ch + codes_len);
    let pad = dim - ch - codes_len;
    let root = (dim as f64).sqrt();
    let device = q.device();
    let dtype = q.dtype();

    // Key `j` sits at row `j / k_w`, column `j % k_w` (the reference's `[k_h, k_w]` order).
    // The codes are identity rows repeated on the device: no host buffer of `Nk·(k_h + k_w)`
    // values to upload per block.
    let eye = |n: usize| Tensor::<2>::eye(n, &device).cast(dtype);
    let by_row = eye(k_h)
        .unsqueeze_dim::<3>(1)
        .expand([k_h, k_w, k_h])
        .reshape([nk, k_h]);
    let by_col = eye(k_w)
        .unsqueeze::<3>()
        .expand([k_h, k_w, k_w])
        .reshape([nk, k_w]);
    let codes = Tensor::cat(vec![by_row, by_col], 1)
        .unsqueeze::<3>()
        .expand([b, nk, codes_len]);

    let mut queries = vec![q * (scale * root), rel_h * root, rel_w * root];
    let mut keys = vec![k, codes];
    if pad > 0 {
        queries.push(Tensor::zeros([b, nq, pad], (&device, dtype)));
        keys.push(Tensor::zeros([b, nk, pad], (&device, dtype)));
    }
    (Tensor::cat(queries, 2), Tensor::cat(keys, 2))
}

/// The head dimension [`fold_rel_pos`] pads `columns` to.
fn folded_dim(columns: usize) -> usize {
    let rounded = columns.next_multiple_of(16);
    let mut power = 1;
    while power < columns {
        power *= 4;
    }
    if 3 * power <= 4 * rounded {
        power
    } else {
        rounded
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::Draws;

    #[test]
    fn folded_dim_prefers_an_exact_power_of_four() {
        // SAM ViT-B/L (64 + 64 + 64) and ViT-H (80 + 64 + 64) global blocks.
        assert_eq!(folded_dim(192), 256);
        assert_eq!(folded_dim(208), 256);
        assert_eq!(folded_dim(56), 64);
        // 14×14 windows: 256 would be 2.7× the 92 columns.
        assert_eq!(folded_dim(92), 96);
        assert_eq!(folded_dim(16), 16);
        assert_eq!(folded_dim(17), 32);
    }

    /// The folded product over `√D` is the scaled product plus the materialised bias, on a
    /// non-square key grid, with and without padding columns.
    #[test]
    fn folded_product_is_the_biased_scores() {
        let device = Device::flex();
        let draws = Draws::new(1);
        let random = |shape: [usize; 3]| draws.standard(shape, &device);
        for (ch, (h, w)) in [(8, (5, 7)), (6, (4, 6))] {
            let (b, n) = (3, h * w);
            let (q, k) = (random([b, n, ch]), random([b, n, ch]));
            let table = |len| draws.standard::<2>([len, ch], &device);
            let (rel_pos_h, rel_pos_w) = (table(2 * h - 1), table(2 * w - 1));
            let scale = (ch as f64).powf(-0.5);
            let bias = decomposed_rel_pos_bias(
                q.clone(),
                rel_pos_h.clone(),
                rel_pos_w.clone(),
                (h, w),
                (h, w),
            );
            let expected = (q.clone() * scale).matmul(k.clone().swap_dims(1, 2)) + bias;
            let (rel_h, rel_w) =
                decomposed_rel_pos_terms(q.clone(), rel_pos_h, rel_pos_w, (h, w), (h, w));
            let (qf, kf) = fold_rel_pos(q, k, rel_h, rel_w, scale, (h, w));
            let dim = qf.dims()[2];
            assert_eq!(dim, folded_dim(ch + h + w));
            assert_eq!(kf.dims(), [b, n, dim]);
            let ours = qf.matmul(kf.swap_dims(1, 2)) / (dim as f64).sqrt();
            let size = expected.clone().abs().max().into_scalar::<f32>();
            let diff = (ours - expected).abs().max().into_scalar::<f32>();
            assert!(
                diff <= 1e-5 * size,
                "ch {ch}: max diff {diff} (size {size})"
            );
        }
    }
}
