//! Typed errors of the generator.

/// What can stop mask generation.
#[derive(Debug, thiserror::Error)]
pub enum AmgError {
    /// A generator setting is out of range.
    #[error("invalid automatic mask generator setting: {0}")]
    InvalidConfig(String),
    /// The predictor failed (image, prompts).
    #[error(transparent)]
    Predictor(#[from] sam_predictor::PredictorError),
    /// The model failed.
    #[error(transparent)]
    Model(#[from] sam_model::SamError),
    /// Image or RLE problem.
    #[error(transparent)]
    Data(#[from] sam_data::DataError),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, AmgError>;
