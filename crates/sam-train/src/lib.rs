//! Training Segment Anything on Burn. The official code never released training; this crate
//! follows the paper (§3, Appendix A) and the seed's recipe:
//!
//! - [`interactive`]: the interactive simulation per image (first point or noisy box, clicks
//!   from the error region with the previous logits as mask prompt, mask-only rounds,
//!   multimask for a single point, loss averaged over rounds);
//! - [`trainer`]: micro-batches, accumulation to the global batch, AdamW with the seed's
//!   schedule (`sam-optim`), freezing, non-finite-loss skipping, validation, metrics,
//!   atomic checkpoints and exact resume;
//! - [`distributed`]: multi-process data parallelism over MPI or NCCL (`sam-dist`);
//! - [`evaluate`]: mIoU after 1..N clicks and with box prompts, on any dataset.

#![warn(missing_docs)]

pub mod batch;
pub mod checkpoint;
pub mod clicks;
pub mod coco_ap;
pub mod config;
pub mod distributed;
pub mod error;
pub mod evaluate;
pub mod interactive;
pub mod metrics;
pub mod plot;
pub mod source;
pub mod text_prompt;
pub mod trainer;

pub use coco_ap::{ApConfig, BoxSource, coco_mask_ap};
pub use config::{InteractiveConfig, Precision, TextPromptConfig, TrainConfig};
pub use error::{Result, TrainError};
pub use evaluate::{EvalConfig, EvalReport, evaluate};
pub use metrics::StepMetrics;
pub use source::{SharedDataset, TrainData};
pub use text_prompt::{ObjectCrop, ObjectEmbedder};
pub use trainer::{Trainer, load_start_weights};
