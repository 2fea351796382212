//! Sigmoid focal loss, as torchvision's `sigmoid_focal_loss`.

use burn::tensor::Tensor;
use burn::tensor::activation::{relu, sigmoid};
use serde::{Deserialize, Serialize};

use crate::error::{LossError, Result as LossResult};

use crate::same_shape;

/// How element losses are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduction {
    /// Average of all elements.
    Mean,
    /// Sum of all elements.
    Sum,
}

/// Focal loss parameters; defaults are the paper's (α = 0.25, γ = 2). In JSON, missing fields
/// take these defaults and unknown ones are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FocalLossConfig {
    /// Weight of the positive class, in `[0, 1]`; negative disables weighting (as torchvision).
    pub alpha: f64,
    /// Focusing exponent, `≥ 0`.
    pub gamma: f64,
}

impl Default for FocalLossConfig {
    fn default() -> Self {
        Self {
            alpha: 0.25,
            gamma: 2.0,
        }
    }
}

impl FocalLossConfig {
    /// The paper's parameters.
    pub fn new() -> Self {
        Self::default()
    }

    /// With another α.
    pub fn with_alpha(mut self, alpha: f64) -> Self {
        self.alpha = alpha;
        self
    }

    /// With another γ.
    pub fn with_gamma(mut self, gamma: f64) -> Self {
        self.gamma = gamma;
        self
    }

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
