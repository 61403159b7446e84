//! Docker-shaped errors: `{"message": "..."}` with the status dockerd would send. Every
//! error variant maps to a status explicitly, so a new variant cannot silently become 500.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::daemon::DaemonError;
use crate::image::ImageError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

fn image_status(e: &ImageError) -> StatusCode {
    match e {
        ImageError::NotFound(_) | ImageError::ManifestUnknown(_) => StatusCode::NOT_FOUND,
        ImageError::Conflict(_) => StatusCode::CONFLICT,
        ImageError::InvalidReference(_)
        | ImageError::InvalidArchive(_)
        | ImageError::DigestMismatch { .. }
        | ImageError::UnsafePath { .. } => StatusCode::BAD_REQUEST,
        ImageError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        ImageError::Registry(_) | ImageError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<DaemonError> for ApiError {
    fn from(e: DaemonError) -> ApiError {
        let status = match &e {
            DaemonError::NoSuchContainer(_) | DaemonError::NoSuchExec(_) => StatusCode::NOT_FOUND,
            DaemonError::Conflict(_) | DaemonError::NotRunning(_) => StatusCode::CONFLICT,
            DaemonError::NotModified => StatusCode::NOT_MODIFIED,
            DaemonError::InvalidParameter(_) | DaemonError::StartFailed(_) => {
                StatusCode::BAD_REQUEST
            }
            DaemonError::Image(i) => image_status(i),
            DaemonError::Io { .. } | DaemonError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError {
            status,
            message: e.to_string(),
        }
    }
}

impl From<ImageError> for ApiError {
    fn from(e: ImageError) -> ApiError {
        ApiError {
            status: image_status(&e),
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status == StatusCode::NOT_MODIFIED {
            return self.status.into_response();
        }
        if self.status.is_server_error() {
            log::error!("API error: {}", self.message);
        }
        (
            self.status,
            Json(serde_json::json!({ "message": self.message })),
        )
            .into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
