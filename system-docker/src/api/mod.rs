//! The Docker Engine API over the daemon's unix socket. Paths may carry a version prefix
//! (`/v1.41/containers/json`); it is stripped before routing, and every response carries
//! the `Api-Version` header clients negotiate with.

pub mod containers;
pub mod error;
pub mod images;
pub mod stream;
pub mod system;
pub mod types;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{any, get, post};
use axum::Router;
use serde::de::DeserializeOwned;

use crate::daemon::Daemon;
use error::ApiError;

/// Query flags as Docker clients send them: `1`, `true`, `True`.
pub fn flag(q: &HashMap<String, String>, key: &str) -> bool {
    q.get(key)
        .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "True" | "TRUE"))
}

/// Parses a JSON request body, answering 400 with serde's located message when it is bad.
pub fn json_body<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON in request body: {e}")))
}

fn strip_version(uri: &Uri) -> Option<Uri> {
    let path = uri.path();
    let rest = path.strip_prefix("/v")?;
    let (ver, tail) = rest.split_once('/')?;
    if ver.is_empty() || !ver.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let pq = match uri.query() {
        Some(q) => format!("/{tail}?{q}"),
        None => format!("/{tail}"),
    };
    pq.parse().ok()
}

async fn headers(mut req: Request, next: Next) -> Response {
    if let Some(u) = strip_version(req.uri()) {
        *req.uri_mut() = u;
    }
    log::debug!("{} {}", req.method(), req.uri());
    let mut resp = next.run(req).await;
    system::api_headers(resp.headers_mut());
    resp
}

async fn not_found(req: Request) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: format!("page not found: {} {}", req.method(), req.uri().path()),
    }
}

/// The whole API as a router over the daemon.
pub fn router(d: Arc<Daemon>) -> axum::routing::IntoMakeService<Router> {
    use containers as c;
    let api = Router::new()
        .route("/_ping", get(system::ping).head(system::ping))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/events", get(system::events))
        .route("/auth", post(system::auth))
        .route("/containers/json", get(c::list))
        .route("/containers/create", post(c::create))
        .route("/containers/{id}/json", get(c::inspect))
        .route("/containers/{id}/logs", get(c::logs))
        .route("/containers/{id}/start", post(c::start))
        .route("/containers/{id}/stop", post(c::stop))
        .route("/containers/{id}/restart", post(c::restart))
        .route("/containers/{id}/kill", post(c::kill))
        .route("/containers/{id}/wait", post(c::wait))
        .route("/containers/{id}/attach", post(c::attach))
        .route("/containers/{id}/resize", post(c::resize))
        .route("/containers/{id}/exec", post(c::exec_create))
        .route("/containers/{id}", axum::routing::delete(c::remove))
        .route("/exec/{id}/start", post(c::exec_start))
        .route("/exec/{id}/resize", post(c::resize))
        .route("/exec/{id}/json", get(c::exec_inspect))
        .route("/images/json", get(images::list))
        .route("/images/load", post(images::load))
        .route("/images/create", post(images::create))
        .route("/images/{*rest}", any(images::by_name))
        .fallback(not_found)
        .with_state(d);
    // The version prefix must go before routing, so the middleware wraps the router as a
    // whole rather than being a route layer.
    Router::new()
        .fallback_service(api)
        .layer(middleware::from_fn(headers))
        .into_make_service()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefix_is_stripped() {
        let u: Uri = "/v1.41/containers/json?all=1".parse().unwrap();
        assert_eq!(
            strip_version(&u).unwrap().to_string(),
            "/containers/json?all=1"
        );
        let u: Uri = "/containers/json".parse().unwrap();
        assert!(strip_version(&u).is_none());
        let u: Uri = "/volumes/x".parse().unwrap();
        assert!(strip_version(&u).is_none());
    }
}
