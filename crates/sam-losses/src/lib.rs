//! The losses SAM is trained with (paper §3 and Appendix A; SAM 2's `training/loss_fns.py`),
//! for any Burn backend and differentiable on autodiff devices.
//!
//! With logits `x`, targets `t ∈ {0, 1}`, `p = σ(x)`:
//!
//! - **sigmoid focal loss** (Lin et al.): `α_t · (1 − p_t)^γ · BCE(x, t)` with
//!   `p_t = p·t + (1 − p)(1 − t)`, `α_t = α·t + (1 − α)(1 − t)`; α = 0.25, γ = 2. The BCE is
//!   computed as `max(x, 0) − x·t + log(1 + e^{−|x|})`, finite for any `|x|`.
//! - **dice loss**: `1 − (2 Σ p·t + s) / (Σ p + Σ t + s)` per mask, smoothing `s = 1`.
//! - **IoU-prediction loss**: `(ŝ − IoU(x > 0, t > 0))²`, the actual IoU taken without gradient.
//! - **[`SamLoss`]**: `20 · focal + 1 · dice + 1 · iou`, each mask term averaged over its pixels,
//!   summed over objects and divided by the number of objects. With several outputs per object
//!   only the one with the lowest `20 · focal + dice` is back-propagated; the IoU term covers all
//!   outputs (averaged).

#![warn(missing_docs)]

mod dice;
mod error;
mod focal;
mod iou;
mod sam_loss;

pub use dice::dice_loss_per_mask;
pub use error::{LossError, Result};
pub use focal::{FocalLossConfig, Reduction, sigmoid_focal_loss};
pub use iou::{actual_iou, iou_loss_per_mask};
pub use sam_loss::{SamLoss, SamLossConfig, SamLossOutput};

use burn::tensor::Tensor;

/// Fails unless `a` and `b` have the same shape; the message names both.
pub(crate) fn same_shape<const D: usize, const E: usize>(
    what: &str,
    a: &Tensor<D>,
    b: &Tensor<E>,
) -> Result<()> {
    let (da, db) = (a.dims().to_vec(), b.dims().to_vec());
    if da != db {
        return Err(LossError::ShapeMismatch {
            what: what.to_string(),
            prediction: da,
            target: db,
        });
    }
    Ok(())
}
