//! `docker exec`: processes started inside a running container's namespaces by a
//! short-lived `shim exec`, with their output streamed to the client.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::container::Container;
use super::logs::frame;
use super::{lifecycle, Daemon, DaemonError};
use crate::api::types::ExecRequest;
use crate::runtime::spec::ExecSpec;
use crate::{fsutil, ids};

#[derive(Debug, Clone, Default)]
pub struct ExecState {
    pub running: bool,
    pub exit_code: Option<i32>,
    pub pid: i32,
    pub started: bool,
}

pub struct Exec {
    pub id: String,
    pub container: Arc<Container>,
    pub req: ExecRequest,
    pub state: Mutex<ExecState>,
}

impl Exec {
    pub fn state(&self) -> ExecState {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// `POST /containers/{id}/exec`.
pub fn create(d: &Daemon, c: Arc<Container>, req: ExecRequest) -> Result<String, DaemonError> {
    if !c.lock().state.running {
        return Err(DaemonError::Conflict(format!(
            "Container {} is not running",
            c.id
        )));
    }
    if req.cmd.as_ref().is_none_or(|c| c.is_empty()) {
        return Err(DaemonError::InvalidParameter(
            "No exec command specified".into(),
        ));
    }
    let id = ids::new_id();
    let e = Arc::new(Exec {
        id: id.clone(),
        container: c,
        req,
        state: Mutex::new(ExecState::default()),
    });
    if let Ok(mut m) = d.execs.lock() {
        // Finished execs are kept for inspection a while; bound the table.
        if m.len() > 256 {
            m.retain(|_, e| e.state().running || !e.state().started);
        }
        m.insert(id.clone(), e);
    }
    Ok(id)
}

pub fn find(d: &Daemon, id: &str) -> Result<Arc<Exec>, DaemonError> {
    d.execs
        .lock()
        .ok()
        .and_then(|m| m.get(id).cloned())
        .ok_or_else(|| DaemonError::NoSuchExec(id.to_string()))
}

/// Starts the process; output goes to `tx` (framed unless TTY), `stdin` feeds its input.
/// Returns once the process has exited and its output is sent.
pub async fn start(
    d: &Arc<Daemon>,
    e: &Arc<Exec>,
    stdin: Option<Box<dyn AsyncRead + Send + Unpin>>,
    tx: Option<mpsc::Sender<Bytes>>,
) -> Result<(), DaemonError> {
    {
        let mut s = e
            .state
            .lock()
            .map_err(|_| DaemonError::Internal("exec lock".into()))?;
        if s.started {
            return Err(DaemonError::Conflict(format!(
                "exec {} has already been started",
                e.id
            )));
        }
        s.started = true;
        s.running = true;
    }
    let rec = e.container.snapshot();
    if !rec.state.running {
        return Err(DaemonError::Conflict(format!(
            "Container {} is not running",
            rec.id
        )));
    }
    let env = lifecycle::merge_env(
        rec.config.env.clone().unwrap_or_default(),
        e.req.env.clone().unwrap_or_default(),
    );
    let hc = &rec.host_config;
    let privileged = hc.privileged || e.req.privileged;
    let capabilities = lifecycle::capabilities(hc, privileged)?;
    let spec = ExecSpec {
        pid: rec.state.pid,
        args: e.req.cmd.clone().unwrap_or_default(),
        env,
        cwd: if e.req.working_dir.is_empty() {
            rec.config.working_dir.clone()
        } else {
            e.req.working_dir.clone()
        },
        user: if e.req.user.is_empty() {
            rec.config.user.clone()
        } else {
            e.req.user.clone()
        },
        capabilities,
        no_new_privileges: lifecycle::no_new_privileges(hc, privileged),
        cgroup_parent: if hc.cgroup_parent.is_empty() {
            d.cfg.cgroup_parent.clone()
        } else {
            hc.cgroup_parent.clone()
        },
        container_id: rec.id.clone(),
        oom_score_adj: lifecycle::oom_score_adj(hc),
    };
    let dir = d.cfg.exec_root.join("execs");
    std::fs::create_dir_all(&dir).map_err(DaemonError::io(&dir))?;
    let spec_path = dir.join(format!("{}.json", e.id));
    fsutil::write_json_atomic_unsynced(&spec_path, &spec).map_err(DaemonError::io(&spec_path))?;
    let attach = tx.is_some();
    let piped = |on: bool| {
        if on {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        }
    };
    let mut child = tokio::process::Command::new(&d.shim.0)
        .args(&d.shim.1)
        .arg("exec")
        .arg(&spec_path)
        .stdin(piped(stdin.is_some() && e.req.attach_stdin))
        .stdout(piped(attach))
        .stderr(piped(attach))
        .spawn()
        .map_err(DaemonError::io(&d.shim.0))?;
    if let Ok(mut s) = e.state.lock() {
        s.pid = child.id().unwrap_or(0) as i32;
    }
    d.events.publish(
        "container",
        &format!("exec_start: {}", spec.args.join(" ")),
        &rec.id,
        super::lifecycle::attrs(&e.container),
    );
    if let (Some(mut input), Some(mut child_in)) = (stdin, child.stdin.take()) {
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut input, &mut child_in).await;
            let _ = child_in.shutdown().await;
        });
    }
    let tty = e.req.tty;
    let pumps: Vec<_> = [
        (
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>),
            1u8,
        ),
        (
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>),
            2u8,
        ),
    ]
    .into_iter()
    .filter_map(|(r, n)| Some((r?, n)))
    .map(|(mut r, n)| {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(k) => {
                        if let Some(tx) = &tx {
                            if tx.send(frame(n, &buf[..k], tty)).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            }
        })
    })
    .collect();
    let status = child.wait().await;
    for p in pumps {
        let _ = p.await;
    }
    let code = status.ok().and_then(|s| s.code()).unwrap_or(126);
    if let Ok(mut s) = e.state.lock() {
        s.running = false;
        s.exit_code = Some(code);
    }
    let mut a = super::lifecycle::attrs(&e.container);
    a.insert("execID".into(), e.id.clone());
    a.insert("exitCode".into(), code.to_string());
    d.events.publish("container", "exec_die", &rec.id, a);
    Ok(())
}
