//! Typed errors of training and evaluation.

use std::path::PathBuf;

/// What can go wrong in a training or evaluation run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A setting is out of range or settings disagree; names the field.
    #[error("invalid training config: {field}: {reason}")]
    InvalidConfig {
        /// Dotted path of the field at fault.
        field: String,
        /// Why.
        reason: String,
    },
    /// The model (building, loading, a forward pass).
    #[error(transparent)]
    Model(#[from] sam_model::SamError),
    /// Data reading or transforms.
    #[error(transparent)]
    Data(#[from] sam_data::DataError),
    /// Prompting the model (evaluation through the predictor).
    #[error(transparent)]
    Predictor(#[from] sam_predictor::PredictorError),
    /// The loss.
    #[error(transparent)]
    Loss(#[from] sam_losses::LossError),
    /// The optimizer.
    #[error(transparent)]
    Optim(#[from] sam_optim::OptimError),
    /// A checkpoint or metrics file.
    #[error("{path}: {reason}")]
    File {
        /// The file or folder at fault.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Communicating with the other ranks of a multi-process run.
    #[error(transparent)]
    Distributed(#[from] sam_dist::DistError),
    /// The embedder of text-prompt training failed.
    #[error("text-prompt embeddings: {0}")]
    Embedder(String),
    /// Too many steps had a non-finite loss.
    #[error(
        "training stopped: {count} steps had a non-finite loss (limit {limit}); last at step {step}"
    )]
    NonFinite {
        /// Skipped steps so far.
        count: usize,
        /// The configured limit.
        limit: usize,
        /// The step of the last one.
        step: usize,
    },
}

impl TrainError {
    pub(crate) fn config(field: &str, reason: impl Into<String>) -> Self {
        Self::InvalidConfig {
            field: field.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn file(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        Self::File {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, TrainError>;
