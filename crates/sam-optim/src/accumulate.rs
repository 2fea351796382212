//! Gradient accumulation that *averages* micro-batches, and the batch arithmetic behind it.
//!
//! With every micro-batch loss a mean over its samples, the mean of `n` equally sized
//! micro-batch gradients is the gradient of the mean loss over all their samples, so an
//! accumulated step equals one step on a batch `n` times larger. (Burn's `GradientsAccumulator`
//! and `SupervisedTraining::grads_accumulation` sum instead, which scales the gradients, and so
//! the clipping threshold and AdamW's `eps`, by `n`.)

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{OptimError, Result};

/// How the global batch is made: `micro_batch_size × accumulation steps × num_devices`.
/// `Default` is the seed recipe's global batch of 256 from micro-batches of 4 on one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchConfig {
    /// Images per optimizer step over all devices and micro-batches.
    pub global_batch_size: usize,
    /// Images per forward/backward pass on one device.
    pub micro_batch_size: usize,
    /// Data-parallel devices (their gradients are averaged by the all-reduce, not here).
    pub num_devices: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            global_batch_size: 256,
            micro_batch_size: 4,
            num_devices: 1,
        }
    }
}

impl BatchConfig {
    /// Micro-batches to accumulate per optimizer step on each device; errors name the field.
    pub fn accumulation_steps(&self) -> Result<usize> {
        for (field, v) in [
            ("batch.global_batch_size", self.global_batch_size),
            ("batch.micro_batch_size", self.micro_batch_size),
            ("batch.num_devices", self.num_devices),
        ] {
            if v == 0 {
                return Err(OptimError::config(field, v, "must be > 0"));
            }
        }
        // Saturating: an overflowing product cannot divide the global batch, so it errors below.
        let per_step = self.micro_batch_size.saturating_mul(self.num_devices);
        if !self.global_batch_size.is_multiple_of(per_step) {
            return Err(OptimError::config(
                "batch.global_batch_size",
                self.global_batch_size,
                format!(
                    "must be a multiple of batch.micro_batch_size × batch.num_devices = {} × {} \
                     = {per_step}",
                    self.micro_batch_size, self.num_devices
                ),
            ));
        }
        Ok(self.global_batch_size / per_step)
    }
}

/// Averages the gradients of a fixed number of micro-batches.
///
/// ```ignore
/// let mut acc = GradAccumulator::new(config.batch.accumulation_steps()?)?;
/// for micro in batches {
///     let grads = GradientsParams::from_grads(loss(&model, micro).backward(), &model);
///     if let Some(mean) = acc.push(&model, grads) {
///         (model, _) = optim.step(model, mean)?;
///     }
/// }
/// ```
#[derive(Debug)]
pub struct GradAccumulator {
    steps: usize,
    count: usize,
    sum: GradientsParams,
}

impl GradAccumulator {
    /// An accumulator over `steps` micro-batches (1 = no accumulation).
    pub fn new(steps: usize) -> Result<Self> {
        if steps == 0 {
            return Err(OptimError::config(
                "accumulation_steps",
                steps,
                "must be > 0",
            ));
        }
        Ok(Self {
            steps,
            count: 0,
            sum: GradientsParams::new(),
        })
    }

    /// Micro-batches per optimizer step.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Micro-batches accumulated since the last completed window.
    pub fn pending(&self) -> usize {
        self.count
    }

    /// Adds one micro-batch's gradients; when this completes the window, returns the mean of its
    /// gradients (ready for the optimizer) and starts a new window.
    pub fn push<M: Module>(
        &mut self,
        module: &M,
        grads: GradientsParams,
    ) -> Option<GradientsParams> {
        module.visit(&mut AddInto {
            sum: &mut self.sum,
            new: grads,
        });
        self.count += 1;
        if self.count < self.steps {
            return None;
        }
        self.flush(module)
    }

    /// The mean over the micro-batches accumulated so far (e.g. the short last window of an
    /// epoch), or `None` if there are none; starts a new window.
    pub fn flush<M: Module>(&mut self, module: &M) -> Option<GradientsParams> {
        if self.count == 0 {
            return None;
        }
        let n = self.count;
        self.count = 0;
        let mut grads = std::mem::take(&mut self.sum);
        module.visit(&mut DivideBy {
            grads: &mut grads,
            n,
        });
        Some(grads)
    }
}

/// The parameter-by-parameter sum of gradients of the same module (e.g. the shards of one
/// micro-batch computed on several data-parallel devices, already moved to one device).
pub fn sum_gradients<M: Module>(
    module: &M,
    parts: impl IntoIterator<Item = GradientsParams>,
) -> GradientsParams {
    let mut sum = GradientsParams::new();
    for new in parts {
        module.visit(&mut AddInto { sum: &mut sum, new });
    }
    sum
}

/// Sums a micro-batch's gradients into the running sum, parameter by parameter.
struct AddInto<'a> {
    sum: &'a mut GradientsParams,
    new: GradientsParams,
}

impl ModuleVisitor for AddInto<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(new) = self.new.remove::<D>(param.id) else {
            return;
        };
        let total = match self.sum.remove::<D>(param.id) {
            Some(sum) => sum + new,
            None => new,
        };
        self.sum.register::<D>(param.id, total);
    }
}

struct DivideBy<'a> {
    grads: &'a mut GradientsParams,
    n: usize,
}

impl ModuleVisitor for DivideBy<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.n == 1 {
            return;
        }
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads
                .register::<D>(param.id, g.div_scalar(self.n as f64));
        }
    }
}
