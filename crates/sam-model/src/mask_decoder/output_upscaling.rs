//! The decoder's 4× upscaler: two stride-2 transposed convs with LayerNorm2d and GELU.

use burn::module::Module;
use burn::nn::conv::{ConvTranspose2d, ConvTranspose2dConfig};
use burn::tensor::{Device, Tensor};

use crate::common::LayerNorm2d;
use crate::gelu::gelu;

/// The reference's `output_upscaling` `nn.Sequential` (indices 0, 1, 3 map to these fields in
/// `weights.rs`; 2 and 4 are the GELUs).
#[derive(Module, Debug)]
pub struct OutputUpscaling {
    /// `.0`: `C → C/4`, k2 s2.
    pub conv1: ConvTranspose2d,
    /// `.1`.
    pub norm: LayerNorm2d,
    /// `.3`: `C/4 → C/8`, k2 s2.
    pub conv2: ConvTranspose2d,
}

impl OutputUpscaling {
    /// Builds the upscaler for width `transformer_dim`.
    pub fn new(transformer_dim: usize, device: &Device) -> Self {
        let (c4, c8) = (transformer_dim / 4, transformer_dim / 8);
        Self {
            conv1: ConvTranspose2dConfig::new([transformer_dim, c4], [2, 2])
                .with_stride([2, 2])
                .init(device),
            norm: LayerNorm2d::new(c4, device),
            conv2: ConvTranspose2dConfig::new([c4, c8], [2, 2])
                .with_stride([2, 2])
                .init(device),
        }
    }

    /// `x: [B, C, E, E]` → `[B, C/8, 4E, 4E]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let tokens = x.reshape([b, c, h * w]).swap_dims(1, 2);
        let y = self.forward_tokens(tokens);
        let [_, _, co] = y.dims();
        // [B, (y, x, dy1, dx1, dy2, dx2), C'] → [B, C', (y, dy1, dy2), (x, dx1, dx2)]
        y.reshape([b, h, w, 2, 2, 2, 2, co])
            .permute([0, 7, 1, 3, 5, 2, 4, 6])
            .reshape([b, co, 4 * h, 4 * w])
    }

    /// The same upscaling, channels-last, in the layout the decoder works in: the transformer
    /// hands its image tokens over as rows of channels, and the two transposed convolutions
    /// are matrix products over those rows. Keeping the channels last throughout never
    /// transposes the `[B, C/4, 2E, 2E]` and `[B, C/8, 4E, 4E]` maps, and the norm runs on the
    /// contiguous last axis; the sums are the reference's, only the pixel order differs.
    ///
    /// `x: [B, E·E, C]` (row-major tokens) → `[B, 16·E·E, C/8]`, pixel `(y, x, dy1, dx1, dy2,
    /// dx2)` (row-major) being output pixel `(4y + 2·dy1 + dy2, 4x + 2·dx1 + dx2)`; see
    /// [`pixels_to_image`].
    pub fn forward_tokens(&self, x: Tensor<3>) -> Tensor<3> {
        let x = deconv_2x2_tokens(&self.conv1, x);
        let x = gelu(self.norm.forward_channels_last(x));
        gelu(deconv_2x2_tokens(&self.conv2, x))
    }
}

/// Reorders per-pixel values of [`OutputUpscaling::forward_tokens`]' pixel order into an image.
///
/// `x: [B, T, 16·E·E]` → `[B, T, 4E, 4E]`.
pub fn pixels_to_image(x: Tensor<3>, (h, w): (usize, usize)) -> Tensor<4> {
    let [b, t, _] = x.dims();
    x.reshape([b, t, h, w, 2, 2, 2, 2])
        .permute([0, 1, 2, 4, 6, 3, 5, 7])
        .reshape([b, t, 4 * h, 4 * w])
}

/// A kernel-2, stride-2 transposed convolution on channels-last pixels: its output pixels do
/// not overlap, so it is one matrix product over the input channels (the convolution's sums).
///
/// `x: [B, N, Cin]` with weight `[Cin, Cout, 2, 2]` → `[B, 4N, Cout]`, pixel `(n, dy, dx)`.
fn deconv_2x2_tokens(conv: &ConvTranspose2d, x: Tensor<3>) -> Tensor<3> {
    let [b, n, cin] = x.dims();
    let weight = conv.weight.val();
    let [_, cout, kh, kw] = weight.dims();
    let weight = weight.permute([0, 2, 3, 1]).reshape([cin, kh * kw * cout]);
    let y = x
        .matmul(weight.unsqueeze::<3>())
        .reshape([b, n * kh * kw, cout]);
    match &conv.bias {
        Some(bias) => y + bias.val().reshape([1, 1, cout]),
        None => y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::normal;

    /// The matrix-product form against Burn's own transposed convolutions and NCHW norm.
    #[test]
    fn matches_the_transposed_convolutions() {
        let device = Device::flex();
        let up = OutputUpscaling::new(32, &device);
        let x = normal([2, 32, 3, 5], 0.0, 1.0, 1, &device);
        let direct = gelu(
            up.conv2
                .forward(gelu(up.norm.forward(up.conv1.forward(x.clone())))),
        );
        let ours = up.forward(x.clone());
        assert_eq!(ours.dims(), [2, 4, 12, 20]);
        let diff = (ours.clone() - direct.clone())
            .abs()
            .max()
            .into_scalar::<f32>();
        let scale = direct.clone().abs().max().into_scalar::<f32>();
        assert!(diff <= 1e-5 * scale, "max diff {diff} (scale {scale})");

        // The channels-last path with the pixel reordering gives the same image.
        let tokens = x.reshape([2, 32, 15]).swap_dims(1, 2);
        let per_pixel = up.forward_tokens(tokens).swap_dims(1, 2); // [B, C/8, P]
        let image = pixels_to_image(per_pixel, (3, 5));
        let diff = (image - direct).abs().max().into_scalar::<f32>();
        assert!(diff <= 1e-5 * scale, "max diff {diff} (scale {scale})");
    }
}
