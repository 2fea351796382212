//! Typed errors of the optimiser crate.

use std::path::PathBuf;

/// Everything that can go wrong when configuring, stepping, saving or restoring the optimiser.
#[derive(Debug, thiserror::Error)]
pub enum OptimError {
    /// A configuration value is out of range. `field` is the dotted config path
    /// (e.g. `schedule.peak_lr`).
    #[error("invalid `{field}` = {value}: {reason}")]
    InvalidConfig {
        /// The config field at fault, as a dotted path.
        field: String,
        /// The offending value, as written.
        value: String,
        /// What is required instead.
        reason: String,
    },

    /// A parameter-group pattern is not a valid regular expression.
    #[error("invalid pattern `{pattern}` in `{field}`: {reason}")]
    InvalidPattern {
        /// The config field holding the pattern.
        field: String,
        /// The pattern.
        pattern: String,
        /// The regex compiler's message.
        reason: String,
    },

    /// A user-given parameter-group pattern matches no parameter of the model, which is almost
    /// always a typo that would otherwise silently train (or freeze) the wrong thing.
    #[error("pattern `{pattern}` in `{field}` matches no parameter")]
    PatternMatchesNothing {
        /// The config field holding the pattern.
        field: String,
        /// The pattern.
        pattern: String,
    },

    /// A parameter name cannot be placed (e.g. an encoder block index beyond the configured depth).
    #[error("parameter `{path}`: {reason}")]
    Parameter {
        /// The parameter's dotted path.
        path: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The module handed to `step` has a parameter the optimiser was not built for.
    #[error("parameter `{path}` is unknown to this optimizer (it was built for another module)")]
    UnknownParameter {
        /// The parameter's dotted path.
        path: String,
    },

    /// A saved optimiser state is malformed or does not fit the model.
    #[error("optimizer state: {reason}")]
    State {
        /// What is wrong.
        reason: String,
    },

    /// A config file is not valid JSON for [`crate::SamOptimConfig`].
    #[error("invalid optimizer config JSON: {reason}")]
    Json {
        /// The parser's message (line and column).
        reason: String,
    },

    /// A file (state or config) was read but its content is at fault.
    #[error("{path}: {source}")]
    InFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: Box<OptimError>,
    },

    /// Reading or writing a file (state or config) failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl OptimError {
    /// This error, naming the file it came from (I/O errors name it already).
    pub(crate) fn in_file(self, path: &std::path::Path) -> Self {
        match self {
            e @ (Self::Io { .. } | Self::InFile { .. }) => e,
            e => Self::InFile {
                path: path.to_path_buf(),
                source: Box::new(e),
            },
        }
    }

    /// An [`OptimError::InvalidConfig`] for `field`, showing `value` with `Debug`.
    pub(crate) fn config(
        field: impl Into<String>,
        value: impl std::fmt::Debug,
        reason: impl Into<String>,
    ) -> Self {
        Self::InvalidConfig {
            field: field.into(),
            value: format!("{value:?}"),
            reason: reason.into(),
        }
    }

    pub(crate) fn state(reason: impl Into<String>) -> Self {
        Self::State {
            reason: reason.into(),
        }
    }

    /// The config field (dotted path) this error is about, when it is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::InvalidConfig { field, .. }
            | Self::InvalidPattern { field, .. }
            | Self::PatternMatchesNothing { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, OptimError>;
