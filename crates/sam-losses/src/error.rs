//! Typed errors of the losses.

/// What can be wrong with a loss's inputs.
#[derive(Debug, thiserror::Error)]
pub enum LossError {
    /// Prediction and target (or another input) do not fit together.
    #[error("{what}: prediction shape {prediction:?} does not match {target:?}")]
    ShapeMismatch {
        /// Which input pair.
        what: String,
        /// The prediction's shape.
        prediction: Vec<usize>,
        /// The other shape.
        target: Vec<usize>,
    },
    /// A parameter out of range.
    #[error("invalid loss setting: {0}")]
    InvalidConfig(String),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, LossError>;
