//! The MLP activations CLIP configs name (`hidden_act`, through `transformers`' `ACT2FN`).

use burn::tensor::Tensor;
use burn::tensor::activation::{gelu, sigmoid};
use serde::{Deserialize, Serialize};

/// `hidden_act` of `CLIPTextConfig` / `CLIPVisionConfig`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HiddenAct {
    /// `"quick_gelu"`: `x · sigmoid(1.702 x)` (`QuickGELUActivation`), the OpenAI models.
    #[serde(rename = "quick_gelu")]
    QuickGelu,
    /// `"gelu"`: the exact (erf) GELU, `nn.functional.gelu` (e.g. LAION's OpenCLIP exports).
    #[serde(rename = "gelu")]
    Gelu,
}

impl HiddenAct {
    /// Applies the activation element-wise.
    pub fn forward<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            // The product order of transformers: `input * torch.sigmoid(1.702 * input)`.
            HiddenAct::QuickGelu => x.clone() * sigmoid(x * 1.702),
            HiddenAct::Gelu => gelu(x),
        }
    }
}
