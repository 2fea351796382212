//! Typed errors of launching and communicating.

/// What can go wrong when joining a job or communicating.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// A launcher variable is missing, malformed or inconsistent; names it.
    #[error("launch environment: {var}: {reason}")]
    Launch {
        /// The variable at fault.
        var: String,
        /// Why.
        reason: String,
    },
    /// The engine was not compiled in.
    #[error("the {engine} engine is not compiled in: build with the `{feature}` feature")]
    NotCompiled {
        /// Engine name.
        engine: &'static str,
        /// Cargo feature that enables it.
        feature: &'static str,
    },
    /// The engine reported an error during an operation.
    #[error("{engine}: {op}: {reason}")]
    Engine {
        /// Engine name.
        engine: &'static str,
        /// The operation (`init`, `all_reduce`, ...).
        op: String,
        /// The engine's message.
        reason: String,
    },
    /// The rendezvous with the other ranks failed.
    #[error("rendezvous at {addr}: {reason}")]
    Bootstrap {
        /// The address used.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The ranks disagree (on a buffer length, a configuration, a resume point...).
    #[error("ranks disagree: {0}")]
    Mismatch(String),
}

impl DistError {
    pub(crate) fn launch(var: &str, reason: impl Into<String>) -> Self {
        Self::Launch {
            var: var.to_string(),
            reason: reason.into(),
        }
    }

    #[allow(dead_code)]
    pub(crate) fn engine(engine: &'static str, op: &str, reason: impl std::fmt::Display) -> Self {
        Self::Engine {
            engine,
            op: op.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, DistError>;
