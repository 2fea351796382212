//! Learning-rate schedules: linear warmup, then cosine (the seed) or step decay (the paper), then
//! constant.
//!
//! The schedule is a closed-form function of the optimizer step, so resuming needs nothing but
//! the step counter. It reproduces PyTorch's `SequentialLR(LinearLR, CosineAnnealingLR)` (and
//! `SequentialLR(LinearLR, MultiStepLR)` given the milestones minus `warmup_steps`: inside
//! `SequentialLR` PyTorch counts them from the end of the warmup, here they are absolute steps)
//! up to floating-point rounding: PyTorch evaluates the same curves recursively. Unlike `CosineAnnealingLR` (and Burn's cosine scheduler), the
//! learning rate stays at its minimum after `total_steps` instead of rising again.

use serde::{Deserialize, Serialize};

use crate::error::{OptimError, Result};

/// What follows the warmup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Decay {
    /// Half a cosine from the peak down to `min_lr` at `total_steps`, then `min_lr` for ever.
    Cosine {
        /// The learning rate at and after `total_steps`.
        min_lr: f64,
    },
    /// Multiply the peak by `gamma` at each milestone (absolute step numbers), as the SAM paper
    /// does (×0.1 at 60k and 86,666 of 90k steps).
    Step {
        /// Steps at which the rate drops, strictly increasing, after the warmup.
        milestones: Vec<usize>,
        /// The factor applied at each milestone.
        gamma: f64,
    },
}

/// A warmup + decay schedule; `Default` is the seed recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    /// The learning rate reached at the end of the warmup (before layer-wise scaling).
    pub peak_lr: f64,
    /// Steps of linear warmup (0 for none).
    pub warmup_steps: usize,
    /// The first step's rate as a fraction of the peak (PyTorch `LinearLR`'s `start_factor`).
    pub warmup_start_factor: f64,
    /// Length of the run in optimizer steps; the decay ends here.
    pub total_steps: usize,
    /// The decay after the warmup.
    pub decay: Decay,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            peak_lr: 1e-4,
            warmup_steps: 2_500,
            warmup_start_factor: 1e-3,
            total_steps: 90_000,
            decay: Decay::Cosine { min_lr: 1e-6 },
        }
    }
}

impl ScheduleConfig {
    /// The SAM paper's schedule: peak 8e-4, 250 warmup steps, ×0.1 at 60k and 86,666, 90k steps.
    pub fn sam_paper() -> Self {
        Self {
            peak_lr: 8e-4,
            warmup_steps: 250,
            warmup_start_factor: 1e-3,
            total_steps: 90_000,
            decay: Decay::Step {
                milestones: vec![60_000, 86_666],
                gamma: 0.1,
            },
        }
    }

    /// Checks every field; errors name the field as `schedule.<name>`.
    pub fn validate(&self) -> Result<()> {
        if !(self.peak_lr.is_finite() && self.peak_lr > 0.0) {
            return Err(OptimError::config(
                "schedule.peak_lr",
                self.peak_lr,
                "must be finite and > 0",
            ));
        }
        if !(self.warmup_start_factor > 0.0 && self.warmup_start_factor <= 1.0) {
            return Err(OptimError::config(
                "schedule.warmup_start_factor",
                self.warmup_start_factor,
                "must be in (0, 1]",
            ));
        }
        if self.total_steps == 0 {
            return Err(OptimError::config(
                "schedule.total_steps",
                self.total_steps,
                "must be > 0",
            ));
        }
        if self.warmup_steps >= self.total_steps {
            return Err(OptimError::config(
                "schedule.warmup_steps",
                self.warmup_steps,
                format!(
                    "the warmup must be shorter than the run (schedule.total_steps = {})",
                    self.total_steps
                ),
            ));
        }
        match &self.decay {
            Decay::Cosine { min_lr } => {
                if !(min_lr.is_finite() && *min_lr >= 0.0 && *min_lr <= self.peak_lr) {
                    return Err(OptimError::config(
                        "schedule.decay.min_lr",
                        min_lr,
                        format!("must be in [0, schedule.peak_lr = {:e}]", self.peak_lr),
                    ));
                }
            }
            Decay::Step { milestones, gamma } => {
                if !(*gamma > 0.0 && *gamma <= 1.0) {
                    return Err(OptimError::config(
                        "schedule.decay.gamma",
                        gamma,
                        "must be in (0, 1]",
                    ));
                }
                let increasing = milestones.windows(2).all(|w| w[0] < w[1]);
                let inside = milestones
                    .iter()
                    .all(|&m| m > self.warmup_steps && m <= self.total_steps);
                if !increasing || !inside {
                    return Err(OptimError::config(
                        "schedule.decay.milestones",
                        milestones,
                        format!(
                            "must be strictly increasing and within ({}, {}] (after the warmup, \
                             at most total_steps)",
                            self.warmup_steps, self.total_steps
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A validated schedule: the base learning rate of any optimizer step.
#[derive(Debug, Clone, PartialEq)]
pub struct LrSchedule {
    config: ScheduleConfig,
}

impl LrSchedule {
    /// Validates `config` and builds the schedule.
    pub fn new(config: ScheduleConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self { config })
    }

    /// The configuration.
    pub fn config(&self) -> &ScheduleConfig {
        &self.config
    }

    /// The base learning rate used by optimizer step `step` (0-based), before layer-wise scaling.
    pub fn lr_at(&self, step: usize) -> f64 {
        let c = &self.config;
        let peak = c.peak_lr;
        if step < c.warmup_steps {
            let t = step as f64 / c.warmup_steps as f64;
            return peak * (c.warmup_start_factor + (1.0 - c.warmup_start_factor) * t);
        }
        match &c.decay {
            Decay::Cosine { min_lr } => {
                if step >= c.total_steps {
                    return *min_lr;
                }
                let t = (step - c.warmup_steps) as f64 / (c.total_steps - c.warmup_steps) as f64;
                min_lr + (peak - min_lr) * (1.0 + (std::f64::consts::PI * t).cos()) / 2.0
            }
            Decay::Step { milestones, gamma } => {
                let passed = milestones.iter().filter(|&&m| m <= step).count();
                peak * gamma.powi(passed as i32)
            }
        }
    }
}
