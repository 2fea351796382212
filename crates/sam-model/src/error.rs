//! Typed errors of the model crate.

use std::path::PathBuf;

/// Everything that can go wrong when building a SAM model or loading its weights.
#[derive(Debug, thiserror::Error)]
pub enum SamError {
    /// The configuration cannot describe a valid model.
    #[error("invalid SAM config: {0}")]
    InvalidConfig(String),

    /// A config file could not be read or parsed.
    #[error("cannot read SAM config {path}: {reason}")]
    ConfigFile {
        /// The file at fault.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// The checkpoint file could not be opened or parsed (missing, truncated, corrupt).
    #[error("cannot read checkpoint {path}: {reason}")]
    CheckpointRead {
        /// The file at fault.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// The checkpoint's extension names no format we read.
    #[error(
        "checkpoint {path}: unknown format (expected .pth/.pt/.bin, .safetensors or .bpk), got {extension:?}"
    )]
    UnknownFormat {
        /// The file at fault.
        path: PathBuf,
        /// Its extension.
        extension: String,
    },

    /// The checkpoint is of another SAM variant (or size) than the config.
    #[error("checkpoint {path} does not match the config: {reason}")]
    VariantMismatch {
        /// The file at fault.
        path: PathBuf,
        /// Which dimension differs, naming both sides.
        reason: String,
    },

    /// Strict loading failed: tensors missing, unexpected, or of the wrong shape.
    #[error("checkpoint {path} does not fit the model: {details}")]
    Mismatch {
        /// The file at fault.
        path: PathBuf,
        /// Missing, unexpected and mis-shaped keys.
        details: String,
    },

    /// A Hugging Face model folder is incomplete, or its config describes a model this
    /// architecture cannot represent.
    #[error("Hugging Face model {path}: {reason}")]
    HfFolder {
        /// The folder or file at fault.
        path: PathBuf,
        /// What is missing or unsupported.
        reason: String,
    },

    /// Saving the model failed.
    #[error("cannot save model to {path}: {reason}")]
    Save {
        /// The destination.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// A tensor given to the model has the wrong shape or value.
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, SamError>;
