//! The IoU-prediction loss: MSE between the predicted IoU and the actual IoU of the thresholded
//! mask with the ground truth (SAM 2's `iou_loss`).

use burn::tensor::Tensor;

use crate::error::{LossError, Result};
use crate::same_shape;

/// IoU of `logits > 0` with `targets > 0` per mask, `[N, M]`, without gradient. `valid` excludes
/// pixels; an empty union gives IoU 0 (the union is clamped to 1, as SAM 2).
pub fn actual_iou(
    logits: Tensor<4>,
    targets: Tensor<4>,
    valid: Option<Tensor<4>>,
) -> Result<Tensor<2>> {
    same_shape("IoU", &logits, &targets)?;
    let [n, m, h, w] = logits.dims();
    let mut pred = logits.detach().greater_elem(0.0).float();
    let mut gt = targets.detach().greater_elem(0.0).float();
    if let Some(valid) = valid {
        same_shape("IoU valid-pixel mask", &pred, &valid)?;
        let valid = valid.detach();
        pred = pred * valid.clone();
        gt = gt * valid;
    }
    let pred = pred.reshape([n, m, h * w]);
    let gt = gt.reshape([n, m, h * w]);
    let inter = (pred.clone() * gt.clone()).sum_dim(2);
    let union = (pred + gt).sum_dim(2) - inter.clone();
    Ok((inter / union.clamp_min(1.0)).reshape([n, m]))
}

/// `(predicted − actual IoU)²` per mask, `[N, M]`; gradients flow into `iou_predictions` only.
pub fn iou_loss_per_mask(
    logits: Tensor<4>,
    targets: Tensor<4>,
    iou_predictions: Tensor<2>,
    valid: Option<Tensor<4>>,
) -> Result<Tensor<2>> {
    let [n, m, _, _] = logits.dims();
    if iou_predictions.dims() != [n, m] {
        return Err(LossError::ShapeMismatch {
            what: "IoU predictions vs masks [N, M]".into(),
            prediction: iou_predictions.dims().to_vec(),
            target: vec![n, m],
        });
    }
    let actual = actual_iou(logits, targets, valid)?;
    Ok((iou_predictions - actual).square())
}
