//! `CLIPEncoderLayer`: a pre-norm transformer block.

use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::{Device, Tensor};

use crate::activation::HiddenAct;
use crate::attention::ClipAttention;
use crate::mlp::ClipMlp;

/// `CLIPEncoderLayer`: `x + attn(ln1(x))`, then `x + mlp(ln2(x))`.
#[derive(Module, Debug)]
pub struct ClipEncoderLayer {
    /// Self-attention.
    pub self_attn: ClipAttention,
    /// LayerNorm before the attention.
    pub layer_norm1: LayerNorm,
    /// The MLP.
    pub mlp: ClipMlp,
    /// LayerNorm before the MLP.
    pub layer_norm2: LayerNorm,
}

/// The sizes of one tower's layers.
#[derive(Debug, Clone, Copy)]
pub struct LayerShape {
    /// Width `C`.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// MLP activation.
    pub hidden_act: HiddenAct,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
}

impl ClipEncoderLayer {
    /// A layer of the given shape.
    pub fn new(s: LayerShape, device: &Device) -> Self {
        let norm = || {
            LayerNormConfig::new(s.hidden_size)
                .with_epsilon(s.layer_norm_eps)
                .init(device)
        };
        Self {
            self_attn: ClipAttention::new(s.hidden_size, s.num_heads, device),
            layer_norm1: norm(),
            mlp: ClipMlp::new(s.hidden_size, s.intermediate_size, s.hidden_act, device),
            layer_norm2: norm(),
        }
    }

    /// `x: [B, N, C]` → `[B, N, C]`.
    pub fn forward(&self, x: Tensor<3>, causal: bool) -> Tensor<3> {
        self.forward_masked(x, causal, None)
    }

    /// [`ClipEncoderLayer::forward`] with an attention mask (`true` = not attended).
    pub fn forward_masked(
        &self,
        x: Tensor<3>,
        causal: bool,
        mask: Option<Tensor<4, burn::tensor::Bool>>,
    ) -> Tensor<3> {
        let residual = x.clone();
        let x = residual
            + self
                .self_attn
                .forward_masked(self.layer_norm1.forward(x), causal, mask);
        let residual = x.clone();
        residual + self.mlp.forward(self.layer_norm2.forward(x))
    }
}
