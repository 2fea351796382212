//! Non-overlapping windows with bottom/right zero padding (the reference's `window_partition`
//! and `window_unpartition`). The blocks run the same steps fused into the attention's head
//! split ([`Attention::forward_windowed`](super::Attention::forward_windowed)),
//! which the tests check against these.

use burn::tensor::Tensor;
use burn::tensor::ops::PadMode;

/// `x: [B, H, W, C]` → (`[B·nW, ws, ws, C]`, padded `(Hp, Wp)`).
///
/// Padded tokens are zeros and are **not** masked in attention, exactly as the reference.
pub fn window_partition(x: Tensor<4>, window_size: usize) -> (Tensor<4>, (usize, usize)) {
    let [b, h, w, c] = x.dims();
    let pad_h = (window_size - h % window_size) % window_size;
    let pad_w = (window_size - w % window_size) % window_size;
    let x = if pad_h > 0 || pad_w > 0 {
        x.pad(
            [(0, 0), (0, pad_h), (0, pad_w), (0, 0)],
            PadMode::Constant(0.0),
        )
    } else {
        x
    };
    let (hp, wp) = (h + pad_h, w + pad_w);
    let windows = x
        .reshape([
            b,
            hp / window_size,
            window_size,
            wp / window_size,
            window_size,
            c,
        ])
        .permute([0, 1, 3, 2, 4, 5])
        .reshape([
            b * (hp / window_size) * (wp / window_size),
            window_size,
            window_size,
            c,
        ]);
    (windows, (hp, wp))
}

/// Reverses [`window_partition`] and crops the padding: `[B·nW, ws, ws, C]` → `[B, H, W, C]`.
pub fn window_unpartition(
    windows: Tensor<4>,
    window_size: usize,
    (hp, wp): (usize, usize),
    (h, w): (usize, usize),
) -> Tensor<4> {
    let [bn, _, _, c] = windows.dims();
    let b = bn / ((hp / window_size) * (wp / window_size));
    let x = windows
        .reshape([
            b,
            hp / window_size,
            wp / window_size,
            window_size,
            window_size,
            c,
        ])
        .permute([0, 1, 3, 2, 4, 5])
        .reshape([b, hp, wp, c]);
    if hp > h || wp > w {
        x.slice([0..b, 0..h, 0..w, 0..c])
    } else {
        x
    }
}
