//! `/_ping`, `/version`, `/info`, `/events`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::stream::body_stream;
use crate::daemon::events::EventFilter;
use crate::daemon::Daemon;

type D = State<Arc<Daemon>>;

pub fn api_headers(h: &mut HeaderMap) {
    h.insert("Api-Version", HeaderValue::from_static(crate::API_VERSION));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&format!("system-docker/{} (linux)", crate::VERSION)) {
        h.insert(header::SERVER, v);
    }
}

pub async fn ping() -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "OK").into_response()
}

fn kernel() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub async fn version() -> Json<Value> {
    Json(json!({
        "Platform": {"Name": "ros system-docker"},
        "Components": [{"Name": "Engine", "Version": crate::VERSION, "Details": {
            "ApiVersion": crate::API_VERSION, "MinAPIVersion": crate::MIN_API_VERSION,
            "Os": "linux", "Arch": "amd64", "KernelVersion": kernel(), "Experimental": "false"}}],
        "Version": crate::VERSION,
        "ApiVersion": crate::API_VERSION,
        "MinAPIVersion": crate::MIN_API_VERSION,
        "GitCommit": option_env!("ROS_GIT_COMMIT").unwrap_or("unknown"),
        "GoVersion": "none (Rust)",
        "Os": "linux",
        "Arch": "amd64",
        "KernelVersion": kernel(),
        "BuildTime": "",
    }))
}

fn meminfo_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map(|k| k * 1024)
        .unwrap_or(0)
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "Linux".into())
}

pub async fn info(State(d): D) -> Json<Value> {
    let recs: Vec<_> = d.all().iter().map(|c| c.snapshot()).collect();
    let running = recs.iter().filter(|r| r.state.running).count();
    let images = d.images.list().map(|l| l.len()).unwrap_or(0);
    let h = crate::runtime::cgroups::Hierarchies::host();
    let cgroup_version = if h.v1.is_empty() && h.unified.is_some() {
        "2"
    } else {
        "1"
    };
    let hostname = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    Json(json!({
        "ID": hostname,
        "Containers": recs.len(),
        "ContainersRunning": running,
        "ContainersPaused": 0,
        "ContainersStopped": recs.len() - running,
        "Images": images,
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]],
        "Plugins": {"Volume": ["local"], "Network": ["host", "none"], "Authorization": null, "Log": ["json-file"]},
        "MemoryLimit": true,
        "SwapLimit": false,
        "CpuCfsPeriod": true,
        "CpuCfsQuota": true,
        "CPUShares": true,
        "CPUSet": false,
        "PidsLimit": true,
        "IPv4Forwarding": true,
        "BridgeNfIptables": false,
        "BridgeNfIp6tables": false,
        "Debug": d.cfg.log_level == "debug",
        "NFd": std::fs::read_dir("/proc/self/fd").map(|r| r.count()).unwrap_or(0),
        "OomKillDisable": false,
        "NGoroutines": 0,
        "SystemTime": crate::jsonlog::now(),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cgroup_version,
        "NEventsListener": d.events.listeners(),
        "KernelVersion": kernel(),
        "OperatingSystem": os_name(),
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"InsecureRegistryCIDRs": ["127.0.0.0/8"], "IndexConfigs": {}, "Mirrors": []},
        "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "MemTotal": meminfo_total(),
        "DockerRootDir": d.cfg.data_root,
        "HttpProxy": std::env::var("HTTP_PROXY").unwrap_or_default(),
        "HttpsProxy": std::env::var("HTTPS_PROXY").unwrap_or_default(),
        "NoProxy": std::env::var("NO_PROXY").unwrap_or_default(),
        "Name": hostname,
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": crate::VERSION,
        "Runtimes": {"system-docker": {"path": d.exe}},
        "DefaultRuntime": "system-docker",
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false, "Error": "", "RemoteManagers": null},
        "LiveRestoreEnabled": true,
        "Isolation": "",
        "InitBinary": "",
        "ContainerdCommit": {"ID": "", "Expected": ""},
        "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""},
        "SecurityOptions": ["name=seccomp,profile=unconfined", "name=no-new-privileges"],
        "Warnings": [],
    }))
}

fn time_param(q: &HashMap<String, String>, key: &str) -> ApiResult<Option<i64>> {
    let Some(v) = q.get(key).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let (secs, frac) = v.split_once('.').unwrap_or((v, "0"));
    let s: i64 = secs
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid {key} time: {v:?}")))?;
    let frac: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    Ok(Some(s * 1_000_000_000 + frac.parse::<i64>().unwrap_or(0)))
}

pub async fn events(State(d): D, Query(q): Query<HashMap<String, String>>) -> ApiResult<Response> {
    let since = time_param(&q, "since")?;
    let until = time_param(&q, "until")?;
    let mut filter = EventFilter::default();
    if let Some(raw) = q.get("filters").filter(|f| !f.is_empty()) {
        let v: Value = serde_json::from_str(raw)
            .map_err(|e| ApiError::bad_request(format!("invalid filter: {e}")))?;
        if let Value::Object(m) = v {
            for (k, vals) in m {
                let list: Vec<String> = match vals {
                    Value::Object(o) => o.keys().cloned().collect(),
                    Value::Array(a) => a
                        .iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect(),
                    _ => vec![],
                };
                filter.filters.insert(k, list);
            }
        }
    }
    let (history, mut rx) = d.events.subscribe();
    Ok(body_stream("application/json", move |tx| async move {
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
        let mut last = 0i64;
        if since.is_some() {
            for ev in history {
                if since.is_some_and(|s| ev.time_nano < s)
                    || until.is_some_and(|u| ev.time_nano > u)
                {
                    continue;
                }
                last = ev.time_nano;
                if filter.matches(&ev)
                    && tx
                        .send(Bytes::from(format!("{}\n", json!(ev))))
                        .await
                        .is_err()
                {
                    return;
                }
            }
        }
        if until.is_some_and(|u| u <= now) {
            return;
        }
        let deadline = until.map(|u| std::time::Duration::from_nanos((u - now).max(0) as u64));
        let live = async {
            loop {
                let ev = match rx.recv().await {
                    Ok(ev) => ev,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                };
                if ev.time_nano <= last || !filter.matches(&ev) {
                    continue;
                }
                if tx
                    .send(Bytes::from(format!("{}\n", json!(ev))))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        };
        match deadline {
            Some(dl) => {
                let _ = tokio::time::timeout(dl, live).await;
            }
            None => live.await,
        }
    }))
}

/// `POST /auth`: checks registry credentials (`docker login`); nothing is stored.
pub async fn auth(State(d): D, body: axum::body::Bytes) -> ApiResult<Json<Value>> {
    let v: Value = super::json_body(&body)?;
    let user = v
        .get("username")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if user.is_empty() {
        return Err(ApiError::bad_request("login: a username is required"));
    }
    let password = v
        .get("password")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let server = v
        .get("serveraddress")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let auth = crate::image::RegistryAuth {
        username: user,
        password,
    };
    d.images.login(&server, auth).await?;
    Ok(Json(
        json!({"Status": "Login Succeeded", "IdentityToken": ""}),
    ))
}
