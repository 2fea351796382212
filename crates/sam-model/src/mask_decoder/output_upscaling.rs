//! The decoder's 4× upscaler: two stride-2 transposed convs with LayerNorm2d and GELU.

use burn::module::Module;
use burn::nn::conv::{ConvTranspose2d, ConvTranspose2dConfig};
use burn::tensor::activation::gelu;
use burn::tensor::{Device, Tensor};

use crate::common::LayerNorm2d;

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
        let x = gelu(self.norm.forward(deconv_2x2(&self.conv1, x)));
        gelu(deconv_2x2(&self.conv2, x))
    }
}

/// A kernel-2, stride-2 transposed convolution, whose output pixels do not overlap, computed as
/// one matmul over the input channels: the same sums as the convolution (bit-identical on the
/// CPU backend), about twice as fast there.
///
/// `x: [B, Cin, H, W]` with weight `[Cin, Cout, 2, 2]` → `[B, Cout, 2H, 2W]`.
fn deconv_2x2(conv: &ConvTranspose2d, x: Tensor<4>) -> Tensor<4> {
    let [b, cin, h, w] = x.dims();
    let weight = conv.weight.val();
    let [_, cout, kh, kw] = weight.dims();
    let y = x
        .permute([0, 2, 3, 1])
        .reshape([b * h * w, cin])
        .matmul(weight.reshape([cin, cout * kh * kw]))
        .reshape([b, h, w, cout, kh, kw])
        .permute([0, 3, 1, 4, 2, 5])
        .reshape([b, cout, h * kh, w * kw]);
    match &conv.bias {
        Some(bias) => y + bias.val().reshape([1, cout, 1, 1]),
        None => y,
    }
}
