//! An interactive session with a container process, shared by `run`, `start -a` and
//! `exec`: raw terminal mode, waiting for the exit status, output and stdin copying over a
//! hijacked connection, signal forwarding, and docker's exit statuses for start failures.

use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::time::Duration;

use nix::sys::termios::{self, SetArg, Termios};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::super::stream;
use crate::client::{self, Client, Hijacked};

/// How long to wait for the daemon to acknowledge a wait request before starting the
/// container anyway (dockerd answers at once; the headers prove the wait is registered).
const WAIT_ACK: Duration = Duration::from_secs(2);

/// Our terminal in raw mode until dropped, when the saved settings come back.
pub struct RawTerminal {
    saved: Termios,
}

impl RawTerminal {
    /// Puts stdin in raw mode if it is a terminal.
    pub fn enable() -> Option<Self> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return None;
        }
        let saved = termios::tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(Self { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// The size of our terminal as (rows, columns), if stdout is a terminal with a size.
fn terminal_size() -> Option<(u16, u16)> {
    let ws = rustix::termios::tcgetwinsize(std::io::stdout()).ok()?;
    (ws.ws_row > 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
}

/// Keeps a container's or exec's terminal (`resize_path`, e.g. `/containers/{id}/resize`)
/// the size of ours: now, and again whenever ours changes (SIGWINCH). Abort to stop.
pub fn follow_terminal_size(client: &Client, resize_path: String) -> Option<JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    if !std::io::stdout().is_terminal() {
        return None;
    }
    let client = client.clone();
    Some(tokio::spawn(async move {
        let resize = |(h, w): (u16, u16)| {
            let path = format!("{resize_path}?h={h}&w={w}");
            let client = client.clone();
            async move { client.post(&path, None).await }
        };
        // The process may not have its terminal yet right after start; retry briefly.
        for attempt in 0..10u64 {
            let Some(size) = terminal_size() else { break };
            if resize(size).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10 * (attempt + 1))).await;
        }
        let Ok(mut winch) = signal(SignalKind::window_change()) else {
            return;
        };
        while winch.recv().await.is_some() {
            if let Some(size) = terminal_size() {
                if let Err(e) = resize(size).await {
                    log::debug!("resizing the terminal: {e}");
                }
            }
        }
    }))
}

/// A pending `POST /containers/{id}/wait`.
pub struct Waiter {
    task: JoinHandle<Result<i32, String>>,
}

impl Waiter {
    /// Sends the wait request (`condition` `next-exit`, `removed` or `not-running`) and
    /// returns once the daemon has acknowledged it, so that an exit right after start is
    /// not missed.
    pub async fn begin(client: &Client, id: &str, condition: &str) -> Result<Self, client::Error> {
        let (ack_tx, ack_rx) = oneshot::channel::<Result<(), client::Error>>();
        let client = client.clone();
        let path = format!("/containers/{id}/wait?condition={condition}");
        let task = tokio::spawn(async move {
            let resp = match client
                .request(hyper::Method::POST, &path, client::Body::Empty)
                .await
            {
                Ok(r) => {
                    let _ = ack_tx.send(Ok(()));
                    r
                }
                Err(e) => {
                    let msg = e.to_string();
                    let _ = ack_tx.send(Err(e));
                    return Err(msg);
                }
            };
            let mut body = client::JsonStream::new(resp.into_body());
            match body.next().await {
                Ok(Some(v)) => wait_status(&v),
                Ok(None) => Err("unexpected EOF".into()),
                Err(e) => Err(e.to_string()),
            }
        });
        if let Ok(Ok(Err(e))) = tokio::time::timeout(WAIT_ACK, ack_rx).await {
            return Err(e);
        }
        Ok(Self { task })
    }

    /// The exit status; 125 (with a message on stderr) when waiting failed, as docker does.
    pub async fn status(self) -> i32 {
        match self.task.await {
            Ok(Ok(code)) => code,
            Ok(Err(msg)) => {
                eprintln!("Error waiting for container: {msg}");
                125
            }
            Err(e) => {
                eprintln!("Error waiting for container: {e}");
                125
            }
        }
    }

    /// Waits at most `limit` (for `--rm` after a failed start: the removal).
    pub async fn settle(self, limit: Duration) {
        let _ = tokio::time::timeout(limit, self.task).await;
    }
}

/// The status code of a wait response, or its error message.
fn wait_status(v: &Value) -> Result<i32, String> {
    if let Some(msg) = v
        .get("Error")
        .and_then(|e| e.get("Message"))
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
    {
        return Err(msg.to_string());
    }
    v.get("StatusCode")
        .and_then(Value::as_i64)
        .map(|c| c as i32)
        .ok_or_else(|| format!("unexpected wait response: {v}"))
}

/// Copying in progress between a hijacked connection and our stdio.
pub struct Session {
    output: JoinHandle<Result<(), stream::StreamError>>,
    input: Option<JoinHandle<std::io::Result<()>>>,
}

impl Session {
    /// Starts copying the output (and stdin, if `stdin`).
    pub fn spawn(hijacked: Hijacked, tty: bool, stdin: bool) -> Self {
        let output = tokio::spawn(stream::copy_output(hijacked.reader, tty));
        let input = match (stdin, hijacked.writer) {
            (true, Some(w)) => Some(tokio::spawn(stream::forward_stdin(w))),
            _ => None,
        };
        Self { output, input }
    }

    /// Waits for the output to end; the stdin copy, if still blocked, is abandoned.
    pub async fn finish(self) -> Result<(), stream::StreamError> {
        let r = match self.output.await {
            Ok(r) => r,
            Err(e) => Err(stream::StreamError::Io(std::io::Error::other(e))),
        };
        if let Some(input) = self.input {
            input.abort();
        }
        r
    }

    /// Stops copying.
    pub fn abort(self) {
        self.output.abort();
        if let Some(input) = self.input {
            input.abort();
        }
    }
}

/// Forwards SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to the container while
/// it runs (docker's `--sig-proxy`); abort the handle to stop.
pub fn proxy_signals(client: &Client, id: &str) -> JoinHandle<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let client = client.clone();
    let id = id.to_string();
    tokio::spawn(async move {
        let kinds = [
            (SignalKind::interrupt(), "SIGINT"),
            (SignalKind::terminate(), "SIGTERM"),
            (SignalKind::hangup(), "SIGHUP"),
            (SignalKind::quit(), "SIGQUIT"),
            (SignalKind::user_defined1(), "SIGUSR1"),
            (SignalKind::user_defined2(), "SIGUSR2"),
        ];
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
        for (kind, name) in kinds {
            let Ok(mut sig) = signal(kind) else { continue };
            let tx = tx.clone();
            tokio::spawn(async move {
                while sig.recv().await.is_some() {
                    if tx.send(name).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        while let Some(name) = rx.recv().await {
            let path = format!("/containers/{id}/kill?signal={name}");
            if let Err(e) = client.post(&path, None).await {
                log::debug!("forwarding {name}: {e}");
            }
        }
    })
}

/// docker's exit status for a container that could not be created or started: 127 when
/// the command was not found, 126 when it could not be executed, else 125.
pub fn start_error_status(message: &str) -> i32 {
    let m = message
        .strip_prefix("Error response from daemon: ")
        .unwrap_or(message);
    if m.contains("executable file not found")
        || m.contains("no such file or directory")
        || m.contains("system cannot find the file specified")
    {
        127
    } else if m.contains("permission denied") || m.contains("is a directory") {
        126
    } else {
        125
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn start_errors_map_to_docker_statuses() {
        assert_eq!(
            start_error_status(
                "Error response from daemon: exec: \"nope\": executable file not found in $PATH"
            ),
            127
        );
        assert_eq!(
            start_error_status("open /bin/x: no such file or directory"),
            127
        );
        assert_eq!(start_error_status("exec /etc: permission denied"), 126);
        assert_eq!(start_error_status("exec /etc: is a directory"), 126);
        assert_eq!(start_error_status("cgroup limit could not be applied"), 125);
    }

    #[test]
    fn wait_responses() {
        assert_eq!(wait_status(&json!({"StatusCode": 3, "Error": null})), Ok(3));
        assert_eq!(wait_status(&json!({"StatusCode": 0})), Ok(0));
        assert_eq!(
            wait_status(&json!({"StatusCode": 0, "Error": {"Message": "gone"}})),
            Err("gone".into())
        );
        assert_eq!(
            wait_status(&json!({"StatusCode": 0, "Error": {"Message": ""}})),
            Ok(0)
        );
    }
}
