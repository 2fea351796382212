//! `SamPredictor`: the reference's `predictor.py`. Embed an image once, then answer any number of
//! point / box / mask prompts against the cached embedding, singly or batched.

#![warn(missing_docs)]

mod embedding;
mod error;
mod predictor;
mod prompt;

pub use embedding::ImageEmbedding;
pub use error::{PredictorError, Result};
pub use predictor::{ImageFormat, MaskOutput, PredictOptions, Prediction, SamPredictor};
pub use prompt::{MaskInput, Point, Prompt};
