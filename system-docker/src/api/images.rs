//! `/images/...` endpoints. Image names may contain `/` (`localhost:5000/app`), so the
//! per-image routes are matched on the path's suffix (`/json`, `/tag`) by hand.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use super::error::{ApiError, ApiResult};
use super::flag;
use super::stream::body_stream;
use crate::daemon::Daemon;
use crate::image::{Image, RegistryAuth, Removed};

type D = State<Arc<Daemon>>;
type Q = Query<HashMap<String, String>>;

fn unix(ts: &Option<String>) -> i64 {
    ts.as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp())
        .unwrap_or(0)
}

fn summary(i: &Image) -> Value {
    json!({
        "Id": i.id,
        "ParentId": "",
        "RepoTags": i.repo_tags,
        "RepoDigests": i.repo_digests,
        "Created": unix(&i.created),
        "Size": i.size,
        "VirtualSize": i.size,
        "SharedSize": -1,
        "Labels": i.config.pointer("/config/Labels").cloned().unwrap_or(Value::Null),
        "Containers": -1,
    })
}

pub async fn list(State(d): D, Query(q): Q) -> ApiResult<Json<Vec<Value>>> {
    let images = d.images.clone();
    let mut list = tokio::task::spawn_blocking(move || images.list())
        .await
        .map_err(|e| ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: e.to_string(),
        })??;
    if let Some(raw) = q.get("filters").filter(|f| !f.is_empty()) {
        let f: Value = serde_json::from_str(raw)
            .map_err(|e| ApiError::bad_request(format!("invalid filter: {e}")))?;
        // Filters come as {"key": {"value": true}} (the docker CLI) or {"key": ["value"]}.
        let values = |key: &str| -> Option<Vec<String>> {
            match f.get(key)? {
                Value::Object(o) => Some(o.keys().cloned().collect()),
                Value::Array(a) => Some(
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect(),
                ),
                _ => None,
            }
        };
        if let Some(wanted) = values("reference") {
            // Docker keeps the images with a matching tag, showing only those tags.
            for i in list.iter_mut() {
                i.repo_tags
                    .retain(|t| wanted.iter().any(|w| reference_matches(t, w)));
            }
            list.retain(|i| !i.repo_tags.is_empty());
        }
        if let Some(d) = values("dangling") {
            let dangling = d.iter().any(|v| v == "true" || v == "1");
            list.retain(|i| i.repo_tags.is_empty() == dangling);
        }
    }
    list.sort_by(|a, b| b.created.cmp(&a.created));
    Ok(Json(list.iter().map(summary).collect()))
}

/// Whether tag `tag` (`repo:tag`) matches the filter `pattern` (`repo` or `repo:tag`; a
/// colon inside a registry's `host:port` is not a tag separator).
fn reference_matches(tag: &str, pattern: &str) -> bool {
    let split = |s: &str| -> (String, String) {
        let slash = s.rfind('/').map_or(0, |i| i + 1);
        match s[slash..].rfind(':') {
            Some(c) => (s[..slash + c].to_string(), s[slash + c + 1..].to_string()),
            None => (s.to_string(), "latest".to_string()),
        }
    };
    let (trepo, ttag) = split(tag);
    let has_tag = {
        let slash = pattern.rfind('/').map_or(0, |i| i + 1);
        pattern[slash..].contains(':')
    };
    let (prepo, ptag) = split(pattern);
    trepo == prepo && (!has_tag || ttag == ptag)
}

fn inspect_json(i: &Image) -> Value {
    let c = &i.config;
    json!({
        "Id": i.id,
        "RepoTags": i.repo_tags,
        "RepoDigests": i.repo_digests,
        "Parent": "",
        "Comment": c.get("comment").cloned().unwrap_or(json!("")),
        "Created": i.created.clone().unwrap_or_default(),
        "DockerVersion": c.get("docker_version").cloned().unwrap_or(json!("")),
        "Author": c.get("author").cloned().unwrap_or(json!("")),
        "Config": c.get("config").cloned().unwrap_or(Value::Null),
        "Architecture": c.get("architecture").cloned().unwrap_or(json!("amd64")),
        "Os": c.get("os").cloned().unwrap_or(json!("linux")),
        "Size": i.size,
        "VirtualSize": i.size,
        "GraphDriver": {"Name": "overlay2", "Data": null},
        "RootFS": {"Type": "layers", "Layers": i.diff_ids},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    })
}

/// `/images/{name}/json`, `/images/{name}/tag`, `DELETE /images/{name}`.
pub async fn by_name(
    State(d): D,
    Path(rest): Path<String>,
    Query(q): Q,
    method: Method,
) -> ApiResult<Response> {
    let images = d.images.clone();
    let blocking = |f: Box<dyn FnOnce() -> ApiResult<Response> + Send>| async move {
        tokio::task::spawn_blocking(f).await.map_err(|e| ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: e.to_string(),
        })?
    };
    if method == Method::GET {
        let name = rest
            .strip_suffix("/json")
            .ok_or_else(not_found)?
            .to_string();
        return blocking(Box::new(move || {
            Ok(Json(inspect_json(&images.get(&name)?)).into_response())
        }))
        .await;
    }
    if method == Method::POST {
        let name = rest.strip_suffix("/tag").ok_or_else(not_found)?.to_string();
        let repo = q.get("repo").cloned().unwrap_or_default();
        if repo.is_empty() {
            return Err(ApiError::bad_request(
                "repository name must have at least one component",
            ));
        }
        let target = match q.get("tag").filter(|t| !t.is_empty()) {
            Some(t) => format!("{repo}:{t}"),
            None => repo,
        };
        let d2 = d.clone();
        return blocking(Box::new(move || {
            images.tag(&name, &target)?;
            let id = images.get(&target)?.id;
            let mut a = std::collections::BTreeMap::new();
            a.insert("name".into(), target.clone());
            d2.events.publish("image", "tag", &id, a);
            Ok(StatusCode::CREATED.into_response())
        }))
        .await;
    }
    if method == Method::DELETE {
        let force = flag(&q, "force");
        let d2 = d.clone();
        return blocking(Box::new(move || {
            let in_use = |id: &str| d2.image_in_use(id);
            let removed = images.remove(&rest, force, &in_use)?;
            let out: Vec<Value> = removed
                .into_iter()
                .map(|r| match r {
                    Removed::Untagged(t) => {
                        let mut a = std::collections::BTreeMap::new();
                        a.insert("name".into(), t.clone());
                        d2.events.publish("image", "untag", &t, a);
                        json!({"Untagged": t})
                    }
                    Removed::Deleted(id) => {
                        d2.events
                            .publish("image", "delete", &id, Default::default());
                        json!({"Deleted": id})
                    }
                })
                .collect();
            Ok(Json(out).into_response())
        }))
        .await;
    }
    Err(not_found())
}

fn not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: "page not found".into(),
    }
}

/// `POST /images/load`: the archive is spooled to disk first (layers are read by random
/// access), then imported; the response is the JSON message stream `docker load` reads.
pub async fn load(State(d): D, Query(q): Q, req: Request) -> ApiResult<Response> {
    let quiet = flag(&q, "quiet");
    let tmp_dir = d.cfg.data_root.join("tmp");
    let path = tmp_dir.join(format!("load-{}.tar", crate::ids::new_id()));
    let spool = async {
        let mut f = tokio::fs::File::create(&path).await?;
        let mut body = req.into_body().into_data_stream();
        while let Some(chunk) = body.next().await {
            let chunk: Bytes = chunk.map_err(std::io::Error::other)?;
            f.write_all(&chunk).await?;
        }
        f.flush().await
    };
    if let Err(e) = spool.await {
        let _ = tokio::fs::remove_file(&path).await;
        return Err(ApiError::bad_request(format!(
            "reading the uploaded archive: {e}"
        )));
    }
    let images = d.images.clone();
    let p2 = path.clone();
    let result = tokio::task::spawn_blocking(move || images.load(&p2)).await;
    let _ = tokio::fs::remove_file(&path).await;
    let lines = result.map_err(|e| ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: e.to_string(),
    })??;
    for l in &lines {
        let name = l.rsplit(": ").next().unwrap_or("").to_string();
        let mut a = std::collections::BTreeMap::new();
        a.insert("name".into(), name.clone());
        d.events.publish("image", "load", &name, a);
    }
    let mut body = String::new();
    for l in lines {
        if !quiet || l.starts_with("Loaded") {
            body.push_str(&json!({"stream": format!("{l}\n")}).to_string());
            body.push('\n');
        }
    }
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        Body::from(body),
    )
        .into_response())
}

/// `POST /images/create?fromImage=…&tag=…`: a pull, streamed as JSON progress messages.
pub async fn create(State(d): D, Query(q): Q, req: Request) -> ApiResult<Response> {
    let from = q
        .get("fromImage")
        .cloned()
        .filter(|f| !f.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "importing from a tarball (fromSrc) is not supported; use fromImage or load",
            )
        })?;
    let reference = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) if t.starts_with("sha256:") => format!("{from}@{t}"),
        Some(t) => format!("{from}:{t}"),
        None => from,
    };
    let auth = req
        .headers()
        .get("X-Registry-Auth")
        .and_then(|h| h.to_str().ok())
        .and_then(decode_auth);
    let images = d.images.clone();
    Ok(body_stream("application/json", move |tx| async move {
        let (ptx, mut prx) = tokio::sync::mpsc::unbounded_channel::<Value>();
        let forward = {
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Some(v) = prx.recv().await {
                    if tx.send(Bytes::from(format!("{v}\n"))).await.is_err() {
                        break;
                    }
                }
            })
        };
        let mut progress = move |v: Value| {
            let _ = ptx.send(v);
        };
        let result = images.pull(&reference, auth, &mut progress).await;
        drop(progress);
        let _ = forward.await;
        match result {
            Ok(img) => {
                let mut a = std::collections::BTreeMap::new();
                a.insert("name".into(), reference.clone());
                d.events.publish("image", "pull", &img.id, a);
            }
            Err(e) => {
                let msg = e.to_string();
                let _ = tx
                    .send(Bytes::from(format!(
                        "{}\n",
                        json!({"errorDetail": {"message": msg}, "error": msg})
                    )))
                    .await;
            }
        }
    }))
}

/// `X-Registry-Auth`: base64url JSON `{"username","password","serveraddress"}`.
fn decode_auth(h: &str) -> Option<RegistryAuth> {
    let bytes = base64_decode(h.trim())?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    let username = v.get("username")?.as_str()?.to_string();
    if username.is_empty() {
        return None;
    }
    let password = v
        .get("password")
        .and_then(|p| p.as_str())
        .unwrap_or("")
        .to_string();
    Some(RegistryAuth { username, password })
}

/// Standard or URL-safe base64, padded or not.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    };
    let clean: Vec<u8> = s.bytes().filter(|c| *c != b'=').collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= val(*c)? << (18 - 6 * i);
        }
        let n = match chunk.len() {
            4 => 3,
            3 => 2,
            2 => 1,
            _ => return None,
        };
        for i in 0..n {
            out.push((acc >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_filter() {
        assert!(reference_matches("busybox:latest", "busybox"));
        assert!(reference_matches("busybox:latest", "busybox:latest"));
        assert!(!reference_matches("busybox:1", "busybox:latest"));
        assert!(!reference_matches("busybox-oci:latest", "busybox"));
        assert!(reference_matches(
            "127.0.0.1:5000/library/busybox:latest",
            "127.0.0.1:5000/library/busybox"
        ));
    }

    #[test]
    fn registry_auth_header() {
        // {"username":"u","password":"p"}
        let a = decode_auth("eyJ1c2VybmFtZSI6InUiLCJwYXNzd29yZCI6InAifQ==").unwrap();
        assert_eq!((a.username.as_str(), a.password.as_str()), ("u", "p"));
        assert!(decode_auth("e30=").is_none(), "{{}} carries no credentials");
    }
}
