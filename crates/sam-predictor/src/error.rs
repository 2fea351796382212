//! Typed errors of the predictor.

use std::path::PathBuf;

/// What can go wrong while predicting.
#[derive(Debug, thiserror::Error)]
pub enum PredictorError {
    /// `predict` was called before `set_image` (or after `reset_image`).
    #[error("an image must be set with set_image(...) before mask prediction")]
    NoImage,
    /// A prompt is malformed (non-finite, an inverted box, a bad label, inconsistent).
    #[error("invalid prompt: {0}")]
    InvalidPrompt(String),
    /// The image could not be used.
    #[error(transparent)]
    Data(#[from] sam_data::DataError),
    /// The model rejected its input.
    #[error(transparent)]
    Model(#[from] sam_model::SamError),
    /// A saved embedding could not be read or written.
    #[error("image embedding file {path}: {reason}")]
    EmbeddingFile {
        /// The file at fault.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, PredictorError>;
