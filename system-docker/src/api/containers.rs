//! `/containers/...` and `/exec/...` endpoints.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::stream::{body_stream, hijack, stream_type};
use super::types::{CreateRequest, ExecRequest, ExecStartRequest};
use super::{flag, json_body};
use crate::daemon::{exec, lifecycle, logs, Container, Daemon, Record};

type D = State<Arc<Daemon>>;
type Q = Query<HashMap<String, String>>;

/// Docker's `units.HumanDuration`.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".into(),
        120..=3599 => format!("{} minutes", s / 60),
        3600..=7199 => "About an hour".into(),
        7200..=172_799 => format!("{} hours", s / 3600),
        172_800..=1_209_599 => format!("{} days", s / 86_400),
        1_209_600..=5_183_999 => format!("{} weeks", s / 604_800),
        5_184_000..=63_071_999 => format!("{} months", s / 2_592_000),
        _ => format!("{} years", s / 31_536_000),
    }
}

fn since(ts: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(ts)
        .map(|t| chrono::Utc::now().signed_duration_since(t).num_seconds())
        .unwrap_or(0)
}

fn unix(ts: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(ts)
        .map(|t| t.timestamp())
        .unwrap_or(0)
}

/// The STATUS column: `Up 5 minutes`, `Exited (0) 3 seconds ago`, `Created`, …
pub fn status_text(r: &Record) -> String {
    let s = &r.state;
    if s.restarting {
        return format!(
            "Restarting ({}) {} ago",
            s.exit_code,
            human_duration(since(&s.finished_at))
        );
    }
    if s.running {
        return format!("Up {}", human_duration(since(&s.started_at)));
    }
    match s.status.as_str() {
        "created" => "Created".into(),
        _ if s.finished_at.is_empty() => "Created".into(),
        _ => format!(
            "Exited ({}) {} ago",
            s.exit_code,
            human_duration(since(&s.finished_at))
        ),
    }
}

/// The COMMAND of `ps`, quoting arguments with spaces as dockerd does.
fn command_line(r: &Record) -> String {
    let mut out = r.path.clone();
    for a in &r.args {
        out.push(' ');
        if a.contains(' ') {
            out.push_str(&format!("'{a}'"));
        } else {
            out.push_str(a);
        }
    }
    out
}

fn summary(r: &Record) -> Value {
    json!({
        "Id": r.id,
        "Names": [r.name],
        "Image": r.config.image,
        "ImageID": r.image_id,
        "Command": command_line(r),
        "Created": unix(&r.created),
        "Ports": [],
        "Labels": r.config.labels.clone().unwrap_or_default(),
        "State": r.state.status,
        "Status": status_text(r),
        "HostConfig": {"NetworkMode": if r.host_config.network_mode.is_empty() { "default" } else { &r.host_config.network_mode }},
        "NetworkSettings": {"Networks": {}},
        "Mounts": r.mounts,
    })
}

fn parse_filters(q: &HashMap<String, String>) -> ApiResult<BTreeMap<String, Vec<String>>> {
    let Some(raw) = q.get("filters").filter(|f| !f.is_empty()) else {
        return Ok(BTreeMap::new());
    };
    let v: Value = serde_json::from_str(raw)
        .map_err(|e| ApiError::bad_request(format!("invalid filter: {e}")))?;
    let mut out = BTreeMap::new();
    if let Value::Object(m) = v {
        for (k, vals) in m {
            let list = match vals {
                // {"name": {"x": true}} (the form the docker CLI sends)
                Value::Object(o) => o
                    .into_iter()
                    .filter(|(_, b)| b.as_bool() != Some(false))
                    .map(|(k, _)| k)
                    .collect(),
                Value::Array(a) => a
                    .into_iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect(),
                _ => Vec::new(),
            };
            out.insert(k, list);
        }
    }
    Ok(out)
}

fn filter_matches(r: &Record, key: &str, values: &[String]) -> ApiResult<bool> {
    if values.is_empty() {
        return Ok(true);
    }
    let labels = r.config.labels.clone().unwrap_or_default();
    Ok(values.iter().any(|v| match key {
        "id" => r.id.starts_with(v.as_str()),
        "name" => r
            .name
            .trim_start_matches('/')
            .contains(v.trim_start_matches('/')),
        "status" => r.state.status == *v,
        "label" => match v.split_once('=') {
            Some((k, val)) => labels.get(k).map(String::as_str) == Some(val),
            None => labels.contains_key(v),
        },
        "ancestor" => {
            r.config.image == *v
                || r.image_id
                    .strip_prefix("sha256:")
                    .is_some_and(|h| h.starts_with(v.trim_start_matches("sha256:")))
        }
        "exited" => !r.state.running && r.state.exit_code.to_string() == *v,
        _ => true,
    }))
}

pub async fn list(State(d): D, Query(q): Q) -> ApiResult<Json<Vec<Value>>> {
    let all = flag(&q, "all");
    let filters = parse_filters(&q)?;
    for k in filters.keys() {
        if !["id", "name", "status", "label", "ancestor", "exited"].contains(&k.as_str()) {
            return Err(ApiError::bad_request(format!("invalid filter '{k}'")));
        }
    }
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|n| *n > 0);
    let mut recs: Vec<Record> = d.all().iter().map(|c| c.snapshot()).collect();
    recs.sort_by(|a, b| b.created.cmp(&a.created));
    let mut out = Vec::new();
    for r in recs {
        // As dockerd: a limit (`ps -n`, `ps -l`) counts stopped containers too.
        let show = all
            || limit.is_some()
            || r.state.running
            || r.state.restarting
            || filters.contains_key("status")
            || filters.contains_key("exited");
        if !show {
            continue;
        }
        let mut ok = true;
        for (k, v) in &filters {
            ok &= filter_matches(&r, k, v)?;
        }
        if ok {
            out.push(summary(&r));
        }
    }
    if let Some(n) = limit {
        out.truncate(n);
    }
    Ok(Json(out))
}

pub async fn create(State(d): D, Query(q): Q, body: axum::body::Bytes) -> ApiResult<Response> {
    let req: CreateRequest = json_body(&body)?;
    let id = lifecycle::create(&d, q.get("name").cloned(), req).await?;
    Ok((StatusCode::CREATED, Json(json!({"Id": id, "Warnings": []}))).into_response())
}

fn find(d: &Daemon, id: &str) -> ApiResult<Arc<Container>> {
    Ok(d.find(id)?)
}

pub async fn inspect(State(d): D, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let c = find(&d, &id)?;
    let r = c.snapshot();
    let execs: Vec<String> = d
        .execs
        .lock()
        .map(|m| {
            m.values()
                .filter(|e| e.container.id == r.id && e.state().running)
                .map(|e| e.id.clone())
                .collect()
        })
        .unwrap_or_default();
    let rootfs = c.dir.join("rootfs");
    let mut config = serde_json::to_value(&r.config).unwrap_or_default();
    if let Some(o) = config.as_object_mut() {
        o.insert("Image".into(), json!(r.config.image));
    }
    Ok(Json(json!({
        "Id": r.id,
        "Created": r.created,
        "Path": r.path,
        "Args": r.args,
        "State": r.state,
        "Image": r.image_id,
        "ResolvConfPath": c.dir.join("resolv.conf"),
        "HostnamePath": c.dir.join("hostname"),
        "HostsPath": c.dir.join("hosts"),
        "LogPath": c.log_path(),
        "Name": r.name,
        "RestartCount": r.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": if execs.is_empty() { Value::Null } else { json!(execs) },
        "HostConfig": r.host_config,
        "GraphDriver": {"Name": "overlay2", "Data": {
            "UpperDir": rootfs.join("upper"), "WorkDir": rootfs.join("work"), "MergedDir": rootfs.join("merged")}},
        "Mounts": r.mounts,
        "Config": config,
        "NetworkSettings": {"Networks": {}, "Ports": {}, "SandboxKey": "", "IPAddress": "", "Gateway": "", "MacAddress": ""},
    })))
}

pub async fn start(State(d): D, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let c = find(&d, &id)?;
    lifecycle::start(&d, &c).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn timeout(q: &HashMap<String, String>) -> ApiResult<Option<i64>> {
    match q.get("t").or_else(|| q.get("timeout")) {
        None => Ok(None),
        Some(t) => t
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid timeout: {t:?}"))),
    }
}

pub async fn stop(State(d): D, Path(id): Path<String>, Query(q): Q) -> ApiResult<StatusCode> {
    let c = find(&d, &id)?;
    lifecycle::stop(&d, &c, timeout(&q)?, q.get("signal").cloned()).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn restart(State(d): D, Path(id): Path<String>, Query(q): Q) -> ApiResult<StatusCode> {
    let c = find(&d, &id)?;
    lifecycle::restart(&d, &c, timeout(&q)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn kill(State(d): D, Path(id): Path<String>, Query(q): Q) -> ApiResult<StatusCode> {
    let c = find(&d, &id)?;
    lifecycle::kill(&d, &c, q.get("signal").cloned().filter(|s| !s.is_empty())).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Docker clients read the response headers of `wait` before they start the container,
/// so the headers go out at once and the body when the condition holds.
pub async fn wait(State(d): D, Path(id): Path<String>, Query(q): Q) -> ApiResult<Response> {
    let c = find(&d, &id)?;
    let condition = q.get("condition").cloned().unwrap_or_default();
    if !matches!(
        condition.as_str(),
        "" | "not-running" | "next-exit" | "removed"
    ) {
        return Err(ApiError::bad_request(format!(
            "invalid condition: \"{condition}\" (must be one of not-running, next-exit, removed)"
        )));
    }
    Ok(body_stream("application/json", move |tx| async move {
        let body = match lifecycle::wait(&c, &condition).await {
            Ok(code) => json!({"StatusCode": code, "Error": null}),
            Err(e) => json!({"StatusCode": -1, "Error": {"Message": e.to_string()}}),
        };
        let _ = tx.send(bytes::Bytes::from(format!("{body}\n"))).await;
    }))
}

pub async fn remove(State(d): D, Path(id): Path<String>, Query(q): Q) -> ApiResult<StatusCode> {
    let c = find(&d, &id)?;
    lifecycle::remove(&d, &c, flag(&q, "force")).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn nanos_param(q: &HashMap<String, String>, key: &str) -> ApiResult<Option<i64>> {
    let Some(v) = q.get(key).filter(|v| !v.is_empty() && *v != "0") else {
        return Ok(None);
    };
    let (secs, frac) = v.split_once('.').unwrap_or((v, "0"));
    let secs: i64 = secs
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid {key}: {v:?}")))?;
    let frac: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let frac: i64 = frac
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid {key}: {v:?}")))?;
    Ok(Some(secs * 1_000_000_000 + frac))
}

pub async fn logs(State(d): D, Path(id): Path<String>, Query(q): Q) -> ApiResult<Response> {
    let c = find(&d, &id)?;
    let opts = logs::LogOptions {
        stdout: flag(&q, "stdout"),
        stderr: flag(&q, "stderr"),
        follow: flag(&q, "follow"),
        timestamps: flag(&q, "timestamps"),
        tail: q.get("tail").and_then(|t| t.parse().ok()),
        since: nanos_param(&q, "since")?,
        until: nanos_param(&q, "until")?,
    };
    if !opts.stdout && !opts.stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let tty = c.lock().config.tty;
    Ok(body_stream(stream_type(tty), move |tx| {
        logs::stream_logs(c, opts, tty, tx)
    }))
}

pub async fn attach(
    State(d): D,
    Path(id): Path<String>,
    Query(q): Q,
    req: Request,
) -> ApiResult<Response> {
    let c = find(&d, &id)?;
    let tty = c.lock().config.tty;
    let (stdout, stderr) = (flag(&q, "stdout"), flag(&q, "stderr"));
    if flag(&q, "logs") {
        // Past output first (`docker attach --logs`), then the live stream.
        let opts = logs::LogOptions {
            stdout,
            stderr,
            ..Default::default()
        };
        let live = logs::Attach::new(c.clone());
        return Ok(hijack(
            req,
            stream_type(tty),
            move |_input, tx| async move {
                logs::stream_logs(c, opts, tty, tx.clone()).await;
                live.run(tty, stdout, stderr, tx).await;
            },
        ));
    }
    // The writer is opened before the 101 goes out: the client starts the container as soon
    // as it has the answer, and a container that opens its stdin with no writer sees EOF.
    // Opened read-write so the open never waits for the container; closing it at the
    // client's EOF is the container's EOF.
    let writer = if flag(&q, "stdin") && c.lock().config.open_stdin {
        let fifo = c.dir.join("stdin.fifo");
        let w = tokio::net::unix::pipe::OpenOptions::new()
            .read_write(true)
            .open_sender(&fifo)
            .map_err(|e| ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: format!("opening stdin of {}: {e}", c.id),
            })?;
        Some(w)
    } else {
        None
    };
    let live = logs::Attach::new(c.clone());
    let was_running = c.lock().state.running;
    let mut lifecycle = c.lifecycle.subscribe();
    let at_attach = *lifecycle.borrow();
    Ok(hijack(req, stream_type(tty), move |input, tx| async move {
        if let (Some(mut w), Some(mut input)) = (writer, input) {
            tokio::spawn(async move {
                if let Err(e) = tokio::io::copy(&mut input, &mut w).await {
                    log::debug!("attach: stdin: {e}");
                }
                // A pipe's buffered data dies with its last open fd: hold the writer until
                // the container has its stdin open (it opens it before its exec, which
                // precedes the start report).
                if !was_running {
                    let _ = tokio::time::timeout(
                        std::time::Duration::from_secs(300),
                        lifecycle.wait_for(|l| l.starts > at_attach.starts || l.removed),
                    )
                    .await;
                }
                drop(w);
            });
        }
        live.run(tty, stdout, stderr, tx).await
    }))
}

pub async fn resize() -> StatusCode {
    StatusCode::OK
}

pub async fn exec_create(
    State(d): D,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let c = find(&d, &id)?;
    let req: ExecRequest = json_body(&body)?;
    let id = exec::create(&d, c, req)?;
    Ok((StatusCode::CREATED, Json(json!({"Id": id}))).into_response())
}

pub async fn exec_start(State(d): D, Path(id): Path<String>, req: Request) -> ApiResult<Response> {
    let e = exec::find(&d, &id)?;
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let start: ExecStartRequest = if bytes.is_empty() {
        ExecStartRequest::default()
    } else {
        json_body(&bytes)?
    };
    if e.state().started {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            message: format!("exec {id} has already been started"),
        });
    }
    if start.detach {
        let d2 = d.clone();
        tokio::spawn(async move {
            if let Err(err) = exec::start(&d2, &e, None, None).await {
                log::warn!("exec {}: {err}", e.id);
            }
        });
        return Ok(StatusCode::OK.into_response());
    }
    let req = Request::from_parts(parts, axum::body::Body::empty());
    let tty = e.req.tty || start.tty;
    Ok(hijack(req, stream_type(tty), move |input, tx| async move {
        if let Err(err) = exec::start(&d, &e, input, Some(tx.clone())).await {
            let _ = tx
                .send(logs::frame(2, format!("{err}\n").as_bytes(), tty))
                .await;
        }
    }))
}

pub async fn exec_inspect(State(d): D, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let e = exec::find(&d, &id)?;
    let s = e.state();
    let args = e.req.cmd.clone().unwrap_or_default();
    Ok(Json(json!({
        "ID": e.id,
        "Running": s.running,
        "ExitCode": s.exit_code,
        "ProcessConfig": {
            "tty": e.req.tty,
            "entrypoint": args.first().cloned().unwrap_or_default(),
            "arguments": args.iter().skip(1).collect::<Vec<_>>(),
            "privileged": e.req.privileged,
            "user": e.req.user,
        },
        "OpenStdin": e.req.attach_stdin,
        "OpenStderr": e.req.attach_stderr,
        "OpenStdout": e.req.attach_stdout,
        "CanRemove": false,
        "ContainerID": e.container.id,
        "DetachKeys": "",
        "Pid": s.pid,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_docker() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(600), "10 minutes");
        assert_eq!(human_duration(3 * 86_400), "3 days");
    }
}
