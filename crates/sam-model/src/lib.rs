//! The Segment Anything model on Burn: image encoder, prompt encoder and mask decoder, with the
//! official checkpoints loading unmodified.
//!
//! The module split and names follow the reference's `segment_anything/modeling/`.

#![warn(missing_docs)]

pub mod common;
pub mod config;
pub mod error;
pub mod gelu;
pub mod hf;
#[cfg(feature = "flex")]
pub(crate) mod host_gemm;
pub mod image_encoder;
pub mod interpolate;
pub mod lora;
pub mod mask_decoder;
pub mod precision;
pub mod prompt_encoder;
#[cfg(any(feature = "flex", feature = "cube"))]
pub(crate) mod recorded_ops;
pub mod resample;
pub mod sam;
pub mod softmax;
#[cfg(test)]
pub(crate) mod test_util;
pub mod util;
pub(crate) mod vector_math;
pub mod weights;

pub use config::{MAX_IMAGE_SIZE, SamConfig};
pub use error::{Result, SamError};
pub use hf::{hf_config, is_hf_folder};
pub use lora::{LoraAdapter, LoraConfig};
pub use mask_decoder::MaskPrediction;
pub use prompt_encoder::{PointPrompt, PromptEmbeddings};
pub use sam::{MASK_THRESHOLD, PIXEL_MEAN, PIXEL_STD, Prompts, Sam};
pub use util::{bool_values, f32_values};
pub use weights::{CheckpointFormat, checkpoint_shapes, variant_mismatches};
