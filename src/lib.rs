//! sam-burn: Segment Anything in pure Rust on Burn.
//!
//! This root package re-exports the workspace crates and selects the compute backends with
//! features: `flex` (CPU, default), `wgpu`, `cuda`.

#![warn(missing_docs)]

pub use burn;
pub use sam_model as model;
pub use sam_model::{PointPrompt, Prompts, Sam, SamConfig, SamError};

pub mod allocator;
pub mod automatic_masks;
pub mod backend;
pub mod bench;
pub mod bench_check;
pub mod bench_gradients;
pub mod cli;
pub mod clip;
pub mod clip_embedder;
pub mod evaluate;
pub mod memory;
pub mod segment;
pub mod text_demo;
pub mod train;

pub use sam_amg as amg;
pub use sam_data as data;
pub use sam_losses as losses;
pub use sam_optim as optim;
pub use sam_predictor as predictor;
pub use sam_train as training;
