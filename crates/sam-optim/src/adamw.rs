//! AdamW exactly as `torch.optim.AdamW` computes it (its single-tensor CPU path).
//!
//! Burn's own `AdamW` has the same mathematics, but it divides by the bias corrections in `f32`,
//! folds them differently into the denominator, and defaults to `eps = 1e-5` and
//! `weight_decay = 1e-4`; its state is also keyed by `ParamId`, which changes when a model is
//! rebuilt from a checkpoint. Here the update is written in PyTorch's operation order, with the
//! scalars in `f64` as PyTorch's Python side has them, so that runs agree to rounding.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{OptimError, Result};

/// Hyper-parameters of AdamW (PyTorch's defaults for betas and eps; the seed recipe's decay).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamWConfig {
    /// Decay of the first-moment average (β₁).
    pub beta1: f64,
    /// Decay of the second-moment average (β₂).
    pub beta2: f64,
    /// Added to the bias-corrected root of the second moment (PyTorch's placement).
    pub eps: f64,
    /// Decoupled weight decay λ: every step multiplies decayed parameters by `1 − lr·λ`.
    /// Parameter groups switch it off for biases, norms, embeddings and tokens.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.05,
        }
    }
}

impl AdamWConfig {
    /// Checks every field; errors name the field as `adamw.<name>`.
    pub fn validate(&self) -> Result<()> {
        for (field, beta) in [("adamw.beta1", self.beta1), ("adamw.beta2", self.beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return Err(OptimError::config(field, beta, "must be in [0, 1)"));
            }
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(OptimError::config(
                "adamw.eps",
                self.eps,
                "must be finite and > 0",
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(OptimError::config(
                "adamw.weight_decay",
                self.weight_decay,
                "must be finite and >= 0",
            ));
        }
        Ok(())
    }
}

/// AdamW's per-parameter state: the step count and both moments, flattened to one dimension so
/// that parameters of any rank share one type (they are elementwise, shape does not matter).
#[derive(Debug, Clone)]
pub struct AdamWState {
    /// Updates applied to this parameter so far (PyTorch's `state["step"]`).
    pub step: u64,
    /// First moment (PyTorch's `exp_avg`), flattened.
    pub exp_avg: Tensor<1>,
    /// Second moment (PyTorch's `exp_avg_sq`), flattened.
    pub exp_avg_sq: Tensor<1>,
}

/// One AdamW update of a flattened parameter with its flattened gradient.
///
/// `lr` and `weight_decay` are this parameter's (its group's) values for this step. Both tensors
/// must be on the same device and have no autodiff tape. Returns the new parameter and state.
pub fn adamw_update(
    config: &AdamWConfig,
    lr: f64,
    weight_decay: f64,
    param: Tensor<1>,
    grad: Tensor<1>,
    state: Option<AdamWState>,
) -> (Tensor<1>, AdamWState) {
    let (step, exp_avg, exp_avg_sq) = match state {
        Some(s) => (s.step, s.exp_avg, s.exp_avg_sq),
        None => (0, grad.zeros_like(), grad.zeros_like()),
    };
    let step = step + 1;

    let mut param = param;
    if weight_decay != 0.0 {
        param = param.mul_scalar(1.0 - lr * weight_decay);
    }

    // `exp_avg.lerp_(grad, 1 − β₁)`: ATen switches formula at weight 0.5 to stay exact at the ends.
    let weight = 1.0 - config.beta1;
    let exp_avg = if weight.abs() < 0.5 {
        exp_avg.clone() + (grad.clone() - exp_avg).mul_scalar(weight)
    } else {
        let one_minus = 1.0f32 - weight as f32;
        grad.clone() - (grad.clone() - exp_avg).mul_scalar(one_minus)
    };

    // `exp_avg_sq.mul_(β₂).addcmul_(grad, grad, value = 1 − β₂)`, i.e. v·β₂ + ((1 − β₂)·g)·g.
    let exp_avg_sq =
        exp_avg_sq.mul_scalar(config.beta2) + grad.clone().mul_scalar(1.0 - config.beta2).mul(grad);

    // Python computes these with float ** float (C `pow`), hence powf rather than powi.
    let bias_correction1 = 1.0 - config.beta1.powf(step as f64);
    let bias_correction2 = 1.0 - config.beta2.powf(step as f64);
    let step_size = lr / bias_correction1;
    let bias_correction2_sqrt = bias_correction2.sqrt();

    let denom = exp_avg_sq
        .clone()
        .sqrt()
        .div_scalar(bias_correction2_sqrt)
        .add_scalar(config.eps);
    // `param.addcdiv_(exp_avg, denom, value = −step_size)` evaluates (value · m) / denom.
    let param = param - exp_avg.clone().mul_scalar(step_size).div(denom);

    (
        param,
        AdamWState {
            step,
            exp_avg,
            exp_avg_sq,
        },
    )
}
