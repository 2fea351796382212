//! The paper's interactive simulation for one image (Appendix A, "Training algorithm"): a first
//! prompt (a point or a noisy box, equal odds), then rounds that each add a click sampled from
//! the error region of the previous prediction, with the previous mask logits fed back as the
//! mask prompt, plus rounds where the logits are the only new input (one among the click
//! rounds, one at the end). A single point is ambiguous, so it gets the three multimask
//! outputs and the loss of the best one; otherwise the single output. The mask passed to the
//! next round (and used to sample the next click) is the one with the highest predicted IoU.
//! The image embedding is computed once; gradients do not flow between rounds.

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::Rng;
use sam_data::TrainObject;
use sam_losses::SamLoss;
use sam_model::{PointPrompt, Prompts, Sam};

use crate::batch::Targets;
use crate::clicks::{Click, center_click, iou, random_click};
use crate::config::InteractiveConfig;
use crate::error::Result;

/// What a round adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundKind {
    /// The first prompt: a point or a box.
    Initial,
    /// A click from the error region (plus the previous logits).
    Click,
    /// The previous logits alone.
    MaskOnly,
}

/// The training rounds: the first prompt; the click rounds with all but one of the mask-only
/// rounds inserted at random places among them; the last mask-only round at the end.
pub fn training_rounds(config: &InteractiveConfig, rng: &mut impl Rng) -> Vec<RoundKind> {
    let mut middle = vec![RoundKind::Click; config.point_rounds];
    for _ in 1..config.mask_only_rounds {
        let at = rng.random_range(0..=middle.len());
        middle.insert(at, RoundKind::MaskOnly);
    }
    let mut rounds = vec![RoundKind::Initial];
    rounds.extend(middle);
    if config.mask_only_rounds > 0 {
        rounds.push(RoundKind::MaskOnly);
    }
    rounds
}

/// How clicks are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClickPolicy {
    /// Uniform in the error region (training). First points are the sample's random point
    /// and boxes its noisy box.
    Random,
    /// The most interior cell of the error region (evaluation). First points are the most
    /// interior cell of the object and boxes are exact.
    Center,
}

/// Summed (not yet averaged) loss parts of some rounds.
#[derive(Debug, Clone)]
pub struct LossParts {
    /// Weighted total, `[1]`.
    pub total: Tensor<1>,
    /// Focal term, `[1]`.
    pub focal: Tensor<1>,
    /// Dice term, `[1]`.
    pub dice: Tensor<1>,
    /// IoU-prediction term, `[1]`.
    pub iou: Tensor<1>,
}

impl LossParts {
    fn add(self, other: LossParts) -> LossParts {
        LossParts {
            total: self.total + other.total,
            focal: self.focal + other.focal,
            dice: self.dice + other.dice,
            iou: self.iou + other.iou,
        }
    }

    /// Every part multiplied by `f`.
    pub fn scale(self, f: f64) -> LossParts {
        LossParts {
            total: self.total * f,
            focal: self.focal * f,
            dice: self.dice * f,
            iou: self.iou * f,
        }
    }

    /// Sum of optional parts.
    pub fn sum(a: Option<LossParts>, b: Option<LossParts>) -> Option<LossParts> {
        match (a, b) {
            (Some(a), Some(b)) => Some(a.add(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The outcome of simulating some objects of one image.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Loss summed over rounds, when a loss was given.
    pub loss: Option<LossParts>,
    /// IoU of the passed-on mask with the ground truth, per round, per object.
    pub ious: Vec<Vec<f64>>,
}

/// The objects of one image that share a kind of first prompt, with their state.
pub struct Simulation<'a> {
    /// The model.
    pub sam: &'a Sam,
    /// `[1, C, E, E]`.
    pub embedding: Tensor<4>,
    /// All objects of the image.
    pub objects: &'a [TrainObject],
    /// Their ground truth.
    pub targets: &'a Targets,
    /// Which objects this simulation covers.
    pub which: Vec<usize>,
    /// Whether their first prompt is a box.
    pub first_box: bool,
    /// `[n, D]` embedding prompts (text-prompt training): the first prompt, kept in every
    /// round; `first_box` is then ignored.
    pub embeddings: Option<Tensor<2>>,
    /// Click and first-prompt policy.
    pub policy: ClickPolicy,
}

impl Simulation<'_> {
    /// Runs `rounds`; with `loss`, also the loss of each round (normalised by `num_objects`).
    pub fn run(
        &self,
        rounds: &[RoundKind],
        loss: Option<(&SamLoss, f64)>,
        rng: &mut impl Rng,
    ) -> Result<Outcome> {
        let device = self.embedding.device();
        let n = self.which.len();
        let grid = &self.targets.grid;
        let gt = self.targets.tensor(&self.which, &device);
        let valid = self.targets.valid(n, &device);
        let mut clicks: Vec<Vec<Click>> = vec![Vec::new(); n];
        let mut boxes: Option<Tensor<2>> = None;
        let mut prev: Option<Tensor<4>> = None;
        let mut prev_host: Vec<Vec<bool>> = Vec::new();
        let mut total: Option<LossParts> = None;
        let mut ious = Vec::with_capacity(rounds.len());
        for &kind in rounds {
            match kind {
                RoundKind::Initial if self.embeddings.is_some() => {}
                RoundKind::Initial => self.first_prompt(&mut clicks, &mut boxes, &device),
                RoundKind::Click => {
                    for (k, &i) in self.which.iter().enumerate() {
                        let gt_i = &self.targets.masks[i];
                        let c = match self.policy {
                            ClickPolicy::Random => random_click(&prev_host[k], gt_i, grid, rng),
                            ClickPolicy::Center => center_click(&prev_host[k], gt_i, grid),
                        };
                        // A perfect mask gets a padding point, so every object keeps the
                        // same number of points.
                        clicks[k].push(c.unwrap_or(Click {
                            xy: [0.0, 0.0],
                            label: -1,
                        }));
                    }
                }
                RoundKind::MaskOnly => {}
            }
            // A single point, or an embedding alone (a text), is ambiguous.
            let multimask =
                kind == RoundKind::Initial && (self.embeddings.is_some() || !self.first_box);
            let prompts = Prompts {
                points: point_prompt(&clicks, &device),
                boxes: boxes.clone(),
                masks: prev.clone(),
                embeddings: self.embeddings.clone(),
            };
            let pred = self
                .sam
                .predict(self.embedding.clone(), prompts, multimask)?;
            if let Some((loss_fn, norm)) = loss {
                let out = loss_fn.forward(
                    pred.low_res_masks.clone(),
                    gt.clone(),
                    pred.iou_predictions.clone(),
                    Some(valid.clone()),
                    Some(norm),
                )?;
                let parts = LossParts {
                    total: out.total,
                    focal: out.focal,
                    dice: out.dice,
                    iou: out.iou,
                };
                total = LossParts::sum(total, Some(parts));
            }
            let [_, m, h, w] = pred.low_res_masks.dims();
            let chosen = if m > 1 {
                let best = pred.iou_predictions.detach().argmax(1); // [n, 1]
                pred.low_res_masks
                    .detach()
                    .gather(1, best.reshape([n, 1, 1, 1]).expand([n, 1, h, w]))
            } else {
                pred.low_res_masks.detach()
            };
            prev_host = binary_rows(chosen.clone(), n)?;
            ious.push(
                self.which
                    .iter()
                    .zip(&prev_host)
                    .map(|(&i, p)| iou(p, &self.targets.masks[i], grid))
                    .collect(),
            );
            prev = Some(chosen);
        }
        Ok(Outcome { loss: total, ious })
    }

    fn first_prompt(
        &self,
        clicks: &mut [Vec<Click>],
        boxes: &mut Option<Tensor<2>>,
        device: &Device,
    ) {
        let grid = &self.targets.grid;
        if self.first_box {
            let data: Vec<f32> = self
                .which
                .iter()
                .flat_map(|&i| {
                    let o = &self.objects[i];
                    match self.policy {
                        ClickPolicy::Random => o.noisy_box,
                        ClickPolicy::Center => o.bbox,
                    }
                    .map(|v| v as f32)
                })
                .collect();
            *boxes = Some(Tensor::from_data(
                TensorData::new(data, [self.which.len(), 4]),
                device,
            ));
            return;
        }
        for (k, &i) in self.which.iter().enumerate() {
            let o = &self.objects[i];
            let click = match self.policy {
                ClickPolicy::Random => None,
                ClickPolicy::Center => center_click(
                    &vec![false; grid.side * grid.side],
                    &self.targets.masks[i],
                    grid,
                ),
            };
            // An object too thin for a whole low-res cell keeps its exact random point.
            clicks[k].push(click.unwrap_or(Click {
                xy: o.point,
                label: 1,
            }));
        }
    }
}

fn point_prompt(clicks: &[Vec<Click>], device: &Device) -> Option<PointPrompt> {
    let n = clicks.len();
    let k = clicks.first().map_or(0, |c| c.len());
    if k == 0 {
        return None;
    }
    let coords: Vec<f32> = clicks
        .iter()
        .flat_map(|c| c.iter().flat_map(|p| p.xy.map(|v| v as f32)))
        .collect();
    let labels: Vec<i64> = clicks
        .iter()
        .flat_map(|c| c.iter().map(|p| p.label))
        .collect();
    Some(PointPrompt {
        coords: Tensor::from_data(TensorData::new(coords, [n, k, 2]), device),
        labels: Tensor::<2, Int>::from_data(TensorData::new(labels, [n, k]), device),
    })
}

/// `[n, 1, L, L]` logits → per object, `L²` booleans (`> 0`).
fn binary_rows(logits: Tensor<4>, n: usize) -> Result<Vec<Vec<bool>>> {
    let values = sam_model::f32_values(logits);
    let per = values.len() / n.max(1);
    Ok(values
        .chunks(per)
        .map(|c| c.iter().map(|&v| v > 0.0).collect())
        .collect())
}

/// Splits an image's objects by their first prompt (box with probability `p`).
pub fn split_first_prompt(n: usize, p: f64, rng: &mut impl Rng) -> (Vec<usize>, Vec<usize>) {
    let mut boxes = Vec::new();
    let mut points = Vec::new();
    for i in 0..n {
        if rng.random_bool(p) {
            boxes.push(i);
        } else {
            points.push(i);
        }
    }
    (boxes, points)
}
