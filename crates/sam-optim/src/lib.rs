//! The optimisation recipe of SAM on Burn, independent of the model crate.
//!
//! - [`adamw_update`] / [`AdamWConfig`]: AdamW as `torch.optim.AdamW` computes it (decoupled
//!   weight decay; β 0.9/0.999, eps 1e-8 — Burn's `AdamWConfig` defaults to eps 1e-5);
//! - [`GroupPlan`] / [`GroupsConfig`]: parameter groups decided by parameter *names*: no weight
//!   decay for biases, norms, position embeddings and learned tokens, layer-wise learning-rate
//!   decay (patch embedding → layer 0, encoder block `i` → `i + 1`, everything after → last),
//!   frozen groups;
//! - [`LrSchedule`] / [`ScheduleConfig`]: linear warmup, then cosine (the seed) or step decay (the
//!   paper), constant after the end;
//! - [`GradAccumulator`] / [`BatchConfig`]: accumulation that averages micro-batches so that
//!   `micro × steps × devices` is the global batch;
//! - [`clip_grad_norm`]: global-norm clipping with `clip_grad_norm_` semantics;
//! - [`SamOptimizer`]: all of the above behind one `step`, with [`OptimizerSnapshot`] to save and
//!   restore optimizer, schedule position and step counter exactly.
//!
//! ```ignore
//! let config = SamOptimConfig::default(); // the seed recipe
//! let mut optim = SamOptimizer::new(config, &model)?;
//! let model = optim.freeze(model);
//! let mut acc = optim.accumulator()?;
//! for micro_batch in loader {
//!     let grads = GradientsParams::from_grads(loss(&model, micro_batch).backward(), &model);
//!     if let Some(mean) = acc.push(&model, grads) {
//!         let (m, report) = optim.step(model, mean)?;
//!         model = m;
//!     }
//! }
//! optim.save("optim.safetensors")?;
//! ```

#![warn(missing_docs)]

mod accumulate;
mod adamw;
mod clip;
mod config;
mod error;
mod groups;
mod optimizer;
mod params;
mod schedule;
mod state;

pub use accumulate::{BatchConfig, GradAccumulator, sum_gradients};
pub use adamw::{AdamWConfig, AdamWState, adamw_update};
pub use clip::{clip_grad_norm, global_grad_norm};
pub use config::SamOptimConfig;
pub use error::{OptimError, Result};
pub use groups::{
    GroupPlan, GroupSummary, GroupsConfig, ParamSettings, always_frozen_name, layer_id,
    sam_no_decay_name,
};
pub use optimizer::{SamOptimizer, StepReport};
pub use params::{ModuleParam, ParamInfo, module_params};
pub use schedule::{Decay, LrSchedule, ScheduleConfig};
pub use state::{OptimizerSnapshot, ParamSnapshot};
