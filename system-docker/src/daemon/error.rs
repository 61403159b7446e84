//! Daemon errors, one variant per way an operation can fail. The API maps each to its
//! HTTP status exhaustively (see `api::error`).

use std::path::PathBuf;

use crate::image::ImageError;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    #[error("No such exec instance: {0}")]
    NoSuchExec(String),
    #[error("{0}")]
    Conflict(String),
    #[error("Container {0} is not running")]
    NotRunning(String),
    /// The container is already in the requested state (HTTP 304, no body).
    #[error("container already in that state")]
    NotModified,
    #[error("{0}")]
    InvalidParameter(String),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("failed to create task for container: OCI runtime create failed: {0}: unknown")]
    StartFailed(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Internal(String),
}

impl DaemonError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DaemonError {
        let path = path.into();
        move |source| DaemonError::Io { path, source }
    }
}
