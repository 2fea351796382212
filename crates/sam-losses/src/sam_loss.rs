//! SAM's combined loss with multimask selection.

use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

use crate::dice::dice_loss_per_mask;
use crate::error::{LossError, Result as LossResult};

use crate::focal::{FocalLossConfig, sigmoid_focal_loss};
use crate::iou::iou_loss_per_mask;

/// Weights and parameters; the defaults are the paper's (focal : dice : IoU = 20 : 1 : 1).
/// In JSON, missing fields take these defaults and unknown ones are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamLossConfig {
    /// Weight of the focal term.
    pub focal_weight: f64,
    /// Weight of the dice term.
    pub dice_weight: f64,
    /// Weight of the IoU-prediction term.
    pub iou_weight: f64,
    /// Focal α and γ.
    pub focal: FocalLossConfig,
    /// Dice smoothing.
    pub dice_smooth: f64,
}

impl Default for SamLossConfig {
    fn default() -> Self {
        Self {
            focal_weight: 20.0,
            dice_weight: 1.0,
            iou_weight: 1.0,
            focal: FocalLossConfig::default(),
            dice_smooth: 1.0,
        }
    }
}

impl SamLossConfig {
    /// The paper's settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// With another focal weight.
    pub fn with_focal_weight(mut self, v: f64) -> Self {
        self.focal_weight = v;
        self
    }

    /// With another dice weight.
    pub fn with_dice_weight(mut self, v: f64) -> Self {
        self.dice_weight = v;
        self
    }

    /// With another IoU-prediction weight.
    pub fn with_iou_weight(mut self, v: f64) -> Self {
        self.iou_weight = v;
        self
    }

    /// With other focal parameters.
    pub fn with_focal(mut self, v: FocalLossConfig) -> Self {
        self.focal = v;
        self
    }

    /// With another dice smoothing.
    pub fn with_dice_smooth(mut self, v: f64) -> Self {
        self.dice_smooth = v;
        self
    }
}

impl SamLossConfig {
    /// Builds the loss (validating the settings).
    pub fn init(&self) -> LossResult<SamLoss> {
        self.focal.validate()?;
        for (name, v) in [
            ("focal_weight", self.focal_weight),
            ("dice_weight", self.dice_weight),
            ("iou_weight", self.iou_weight),
            ("dice_smooth", self.dice_smooth),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(LossError::InvalidConfig(format!("{name} {v} must be ≥ 0")));
            }
        }
        Ok(SamLoss {
            config: self.clone(),
        })
    }
}

/// The loss and its parts (each part unweighted, already divided by the number of objects).
#[derive(Debug, Clone)]
pub struct SamLossOutput {
    /// `focal_weight · focal + dice_weight · dice + iou_weight · iou`, `[1]`.
    pub total: Tensor<1>,
    /// Focal term of the selected masks, `[1]`.
    pub focal: Tensor<1>,
    /// Dice term of the selected masks, `[1]`.
    pub dice: Tensor<1>,
    /// IoU-prediction term (mean over each object's outputs), `[1]`.
    pub iou: Tensor<1>,
    /// The output chosen for each object, `[N, 1]` (all zeros with a single output).
    pub selected: Tensor<2, Int>,
}

/// SAM's combined loss.
#[derive(Debug, Clone)]
pub struct SamLoss {
    config: SamLossConfig,
}

impl SamLoss {
    /// The settings.
    pub fn config(&self) -> &SamLossConfig {
        &self.config
    }

    /// The loss of `N` objects with `M` outputs each.
    ///
    /// - `logits: [N, M, H, W]` mask logits (any spatial size);
    /// - `targets: [N, 1 | M, H, W]` binary ground truth;
    /// - `iou_predictions: [N, M]`;
    /// - `valid: [N, 1 | M, H, W]` of 0/1, pixels to count (e.g. excluding padding), or `None`;
    /// - `num_objects`: the normaliser; `None` uses `N`. Pass the global count when a batch is
    ///   split across images or devices, so every object weighs the same.
    pub fn forward(
        &self,
        logits: Tensor<4>,
        targets: Tensor<4>,
        iou_predictions: Tensor<2>,
        valid: Option<Tensor<4>>,
        num_objects: Option<f64>,
    ) -> LossResult<SamLossOutput> {
        let [n, m, h, w] = logits.dims();
        let expand = |what: &str, t: Tensor<4>| -> LossResult<Tensor<4>> {
            let [tn, tm, th, tw] = t.dims();
            if tn != n || th != h || tw != w || (tm != 1 && tm != m) {
                return Err(LossError::ShapeMismatch {
                    what: format!("SAM loss {what} (expected [N, 1 | M, H, W])"),
                    prediction: vec![n, m, h, w],
                    target: vec![tn, tm, th, tw],
                });
            }
            Ok(if tm == 1 && m > 1 {
                t.expand([n, m, h, w])
            } else {
                t
            })
        };
        let targets = expand("targets", targets)?;
        let valid = valid.map(|v| expand("valid-pixel mask", v)).transpose()?;
        let norm = num_objects.unwrap_or(n as f64).max(1.0);
        let c = &self.config;

        // Focal: mean over the (valid) pixels of each mask → [N, M].
        let focal_px = sigmoid_focal_loss(logits.clone(), targets.clone(), &c.focal)?;
        let focal = match &valid {
            Some(v) => {
                let count = v.clone().reshape([n, m, h * w]).sum_dim(2).clamp_min(1.0);
                (focal_px * v.clone()).reshape([n, m, h * w]).sum_dim(2) / count
            }
            None => focal_px.reshape([n, m, h * w]).mean_dim(2),
        }
        .reshape([n, m])
            / norm;
        let dice = dice_loss_per_mask(
            logits.clone(),
            targets.clone(),
            valid.clone(),
            c.dice_smooth,
        )? / norm;
        let iou = iou_loss_per_mask(logits, targets, iou_predictions, valid)? / norm;

        let (focal, dice, iou, selected) = if m > 1 {
            let combo = (focal.clone() * c.focal_weight + dice.clone() * c.dice_weight).detach();
            let best = combo.argmin(1); // [N, 1]
            (
                focal.gather(1, best.clone()),
                dice.gather(1, best.clone()),
                iou.mean_dim(1),
                best,
            )
        } else {
            let device = focal.device();
            (focal, dice, iou, Tensor::<2, Int>::zeros([n, 1], &device))
        };
        let (focal, dice, iou) = (focal.sum(), dice.sum(), iou.sum());
        let total = focal.clone() * c.focal_weight
            + dice.clone() * c.dice_weight
            + iou.clone() * c.iou_weight;
        Ok(SamLossOutput {
            total,
            focal,
            dice,
            iou,
            selected,
        })
    }
}
