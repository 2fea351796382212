//! Typed errors of the CLIP crate; each names the file, field, key, shape or value at fault.

use std::fmt;
use std::path::PathBuf;

/// One way a weight file fails to fit the model its config describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TensorMismatch {
    /// The model needs this tensor; the file lacks it.
    Missing {
        /// Hugging Face key (`text_model.encoder.layers.0.mlp.fc1.weight`).
        key: String,
        /// The shape the config implies (PyTorch layout).
        expected: Vec<usize>,
    },
    /// The file holds a tensor the model has no place for.
    Unexpected {
        /// Its key.
        key: String,
        /// Its shape in the file.
        shape: Vec<usize>,
    },
    /// The tensor exists with another shape.
    Shape {
        /// Its key.
        key: String,
        /// The shape the config implies (PyTorch layout).
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// The tensor is not a floating-point one.
    Dtype {
        /// Its key.
        key: String,
        /// Its dtype in the file.
        dtype: String,
    },
}

impl fmt::Display for TensorMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing { key, expected } => {
                write!(f, "missing tensor {key} (expected shape {expected:?})")
            }
            Self::Unexpected { key, shape } => write!(f, "unexpected tensor {key} {shape:?}"),
            Self::Shape {
                key,
                expected,
                found,
            } => write!(
                f,
                "tensor {key} has shape {found:?} but the config needs {expected:?}"
            ),
            Self::Dtype { key, dtype } => {
                write!(f, "tensor {key} has dtype {dtype}, not a float type")
            }
        }
    }
}

/// Everything that can go wrong building, loading or running CLIP.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    /// A config file (`config.json`, `preprocessor_config.json`) is missing, unreadable or not
    /// JSON.
    #[error("cannot read config {path}: {reason}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// A config field has a wrong type or a value this implementation cannot run.
    #[error("config {path}: field {field}: {reason}")]
    ConfigField {
        /// The file (or `<config>` for a config built in code).
        path: PathBuf,
        /// The field, dotted from the top (`text_config.hidden_act`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The weight file is missing, truncated or corrupt.
    #[error("cannot read weights {path}: {reason}")]
    WeightsRead {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// Strict loading failed: tensors missing, unexpected, mis-shaped or not float.
    #[error("weights {path} do not fit the config: {}", list(mismatches))]
    Weights {
        /// The file.
        path: PathBuf,
        /// Every mismatch, missing ones first, then shapes, dtypes, unexpected.
        mismatches: Vec<TensorMismatch>,
    },

    /// The tokenizer file is missing or unreadable, or it cannot encode a text.
    #[error("tokenizer {path}: {reason}")]
    Tokenizer {
        /// The `tokenizer.json`.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// An image file is missing or cannot be decoded.
    #[error("cannot read image {path}: {reason}")]
    Image {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// An input the model or a preprocessor cannot take (token ids out of the vocabulary, a
    /// text longer than the context, an image of the wrong size, an empty mask …).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

fn list(items: &[TensorMismatch]) -> String {
    const SHOWN: usize = 8;
    let mut s = items
        .iter()
        .take(SHOWN)
        .map(|m| m.to_string())
        .collect::<Vec<_>>()
        .join("; ");
    if items.len() > SHOWN {
        s.push_str(&format!("; … ({} in all)", items.len()));
    }
    s
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, ClipError>;
