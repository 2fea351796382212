//! Building blocks shared by the encoder and the decoder (the reference's `modeling/common.py`).

use burn::module::{Module, Param};
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use crate::gelu::gelu;

/// The activation between the two layers of an [`MlpBlock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Exact (erf) GELU, `nn.GELU()`: the image encoder.
    Gelu,
    /// ReLU: the two-way transformer.
    Relu,
}

impl Activation {
    /// Applies the activation.
    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::Gelu => gelu(x),
            Activation::Relu => relu(x),
        }
    }
}

/// `x` through an `nn::LayerNorm` whose epsilon is `eps`, in f32 for 16-bit `x`
/// ([`crate::precision::layer_norm`]).
pub fn norm<const D: usize>(ln: &burn::nn::LayerNorm, eps: f64, x: Tensor<D>) -> Tensor<D> {
    crate::precision::layer_norm(x, ln.gamma.val(), ln.beta.as_ref().map(|b| b.val()), eps)
}

/// `lin1 → act → lin2`.
#[derive(Module, Debug)]
pub struct MlpBlock {
    /// First projection, `[C] → [mlp_dim]`.
    pub lin1: Linear,
    /// Second projection, `[mlp_dim] → [C]`.
    pub lin2: Linear,
    #[module(skip)]
    act: Activation,
}

impl MlpBlock {
    /// A block of width `embedding_dim` with `mlp_dim` hidden units.
    pub fn new(embedding_dim: usize, mlp_dim: usize, act: Activation, device: &Device) -> Self {
        Self {
            lin1: LinearConfig::new(embedding_dim, mlp_dim).init(device),
            lin2: LinearConfig::new(mlp_dim, embedding_dim).init(device),
            act,
        }
    }

    /// `x: [.., C]` → `[.., C]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let hidden = self.act.apply(crate::lora::linear(&self.lin1, x));
        crate::lora::linear(&self.lin2, hidden)
    }
}

/// Layer norm over the channels of an NCHW tensor, as the reference's `LayerNorm2d`
/// (biased variance, eps 1e-6).
#[derive(Module, Debug)]
pub struct LayerNorm2d {
    /// Per-channel scale, `[C]`.
    pub weight: Param<Tensor<1>>,
    /// Per-channel shift, `[C]`.
    pub bias: Param<Tensor<1>>,
    #[module(skip)]
    eps: f64,
}

impl LayerNorm2d {
    /// A norm over `num_channels` channels.
    pub fn new(num_channels: usize, device: &Device) -> Self {
        Self {
            weight: Initializer::Ones.init([num_channels], device),
            bias: Initializer::Zeros.init([num_channels], device),
            eps: 1e-6,
        }
    }

    /// The epsilon added to the variance.
    pub fn eps(&self) -> f64 {
        self.eps
    }

    /// `x: [B, C, H, W]` → `[B, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        // The channel axis is last in NHWC, where the fused layer-norm kernel applies.
        let x = x.permute([0, 2, 3, 1]);
        let y = crate::precision::layer_norm(x, self.weight.val(), Some(self.bias.val()), self.eps);
        y.permute([0, 3, 1, 2])
    }

    /// The same norm on channels-last input: `x: [.., C]` → `[.., C]`.
    pub fn forward_channels_last<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        crate::precision::layer_norm(x, self.weight.val(), Some(self.bias.val()), self.eps)
    }
}
