//! Sigmoid focal loss, as torchvision's `sigmoid_focal_loss`.

use burn::config::Config;
use burn::tensor::Tensor;
use burn::tensor::activation::{relu, sigmoid};

use crate::error::LossError;

// Burn's `Config` derive expands to code naming `Result`, so the alias keeps another name here.
type LossResult<T> = crate::error::Result<T>;
use crate::same_shape;

/// How element losses are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduction {
    /// Average of all elements.
    Mean,
    /// Sum of all elements.
    Sum,
}

/// Focal loss parameters; defaults are the paper's (α = 0.25, γ = 2).
#[derive(Config, Debug, PartialEq)]
pub struct FocalLossConfig {
    /// Weight of the positive class, in `[0, 1]`; negative disables weighting (as torchvision).
    #[config(default = 0.25)]
    pub alpha: f64,
    /// Focusing exponent, `≥ 0`.
    #[config(default = 2.0)]
    pub gamma: f64,
}

impl FocalLossConfig {
    /// Checks the parameters.
    pub fn validate(&self) -> LossResult<()> {
        if !self.alpha.is_finite() || self.alpha > 1.0 {
            return Err(LossError::InvalidConfig(format!(
                "focal alpha {} must be ≤ 1 (negative disables it)",
                self.alpha
            )));
        }
        if !self.gamma.is_finite() || self.gamma < 0.0 {
            return Err(LossError::InvalidConfig(format!(
                "focal gamma {} must be ≥ 0",
                self.gamma
            )));
        }
        Ok(())
    }
}

/// Element-wise sigmoid focal loss of `logits` against binary `targets` (same shape).
pub fn sigmoid_focal_loss<const D: usize>(
    logits: Tensor<D>,
    targets: Tensor<D>,
    config: &FocalLossConfig,
) -> LossResult<Tensor<D>> {
    same_shape("sigmoid focal loss", &logits, &targets)?;
    config.validate()?;
    let prob = sigmoid(logits.clone());
    // Stable BCE with logits: max(x, 0) − x·t + log(1 + e^{−|x|}).
    let ce =
        relu(logits.clone()) - logits.clone() * targets.clone() + logits.abs().neg().exp().log1p();
    let p_t = prob.clone() * targets.clone() + (prob.neg() + 1.0) * (targets.clone().neg() + 1.0);
    let modulating = (p_t.neg() + 1.0).powf_scalar(config.gamma);
    let loss = ce * modulating;
    Ok(if config.alpha >= 0.0 {
        let a = config.alpha;
        let alpha_t = targets.clone() * a + (targets.neg() + 1.0) * (1.0 - a);
        alpha_t * loss
    } else {
        loss
    })
}

impl Reduction {
    /// Reduces all elements to a `[1]` tensor.
    pub fn apply<const D: usize>(self, loss: Tensor<D>) -> Tensor<1> {
        match self {
            Reduction::Mean => loss.mean(),
            Reduction::Sum => loss.sum(),
        }
    }
}
