//! Typed errors of the data crate.

use std::path::PathBuf;

/// What can go wrong between a file and a model input.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// An image file could not be read or decoded.
    #[error("cannot read image {path}: {reason}")]
    ImageRead {
        /// The file at fault.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// An array file (e.g. `.npy`) could not be read or written.
    #[error("array file {path}: {reason}")]
    ArrayFile {
        /// The file at fault.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A dataset file (annotation JSON, folder listing, ...) is missing, malformed or disagrees
    /// with its image.
    #[error("dataset file {path}: {reason}")]
    DatasetFile {
        /// The file (or folder) at fault.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A tar shard or one of its members is unreadable, truncated, or lacks its partner.
    #[error("tar shard {shard}, member {member}: {reason}")]
    TarMember {
        /// The shard file.
        shard: PathBuf,
        /// The member at fault (`(shard)` when the shard itself is).
        member: String,
        /// Why.
        reason: String,
    },
    /// An image of zero width or height, or a buffer of the wrong length.
    #[error("invalid image: {0}")]
    InvalidImage(String),
    /// A coordinate or size that cannot be transformed.
    #[error("invalid value: {0}")]
    InvalidValue(String),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, DataError>;
