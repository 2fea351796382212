//! Dice loss on sigmoid probabilities, per mask (SAM 2's `dice_loss`).

use burn::tensor::Tensor;
use burn::tensor::activation::sigmoid;

use crate::error::Result;
use crate::same_shape;

/// `1 − (2 Σ p·t + s) / (Σ p + Σ t + s)` over the spatial axes of `[N, M, H, W]` logits and
/// targets; `valid` (`[N, M, H, W]` of 0/1) excludes pixels. Returns `[N, M]`.
pub fn dice_loss_per_mask(
    logits: Tensor<4>,
    targets: Tensor<4>,
    valid: Option<Tensor<4>>,
    smooth: f64,
) -> Result<Tensor<2>> {
    same_shape("dice loss", &logits, &targets)?;
    let [n, m, h, w] = logits.dims();
    let mut prob = sigmoid(logits);
    let mut targets = targets;
    if let Some(valid) = valid {
        same_shape("dice loss valid-pixel mask", &prob, &valid)?;
        prob = prob * valid.clone();
        targets = targets * valid;
    }
    let prob = prob.reshape([n, m, h * w]);
    let targets = targets.reshape([n, m, h * w]);
    let numerator = (prob.clone() * targets.clone()).sum_dim(2) * 2.0;
    let denominator = prob.sum_dim(2) + targets.sum_dim(2);
    let loss = ((numerator + smooth) / (denominator + smooth)).neg() + 1.0;
    Ok(loss.reshape([n, m]))
}
