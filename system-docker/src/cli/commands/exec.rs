//! `exec`: create an exec instance, start it over a hijacked connection, copy its output,
//! exit with its exit code.

use std::io::IsTerminal;
use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};

use super::session::{self, RawTerminal, Session};
use super::{fail, str_of};
use crate::client::{self, Client};

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short = 'd', long)]
    detach: bool,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    tty: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env", value_name = "list")]
    env: Vec<String>,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    workdir: Option<String>,
    /// Give extended privileges to the command
    #[arg(long)]
    privileged: bool,
    /// CONTAINER COMMAND [ARG...]
    #[arg(
        value_name = "CONTAINER COMMAND [ARG...]",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        num_args = 2..
    )]
    args: Vec<String>,
}

/// The `POST /containers/{id}/exec` body for `a`.
fn exec_body(a: &ExecArgs) -> Value {
    let env: Vec<String> = a
        .env
        .iter()
        .map(|e| match (e.contains('='), std::env::var(e)) {
            (false, Ok(v)) => format!("{e}={v}"),
            _ => e.clone(),
        })
        .collect();
    let mut body = json!({
        "AttachStdin": a.interactive && !a.detach,
        "AttachStdout": !a.detach,
        "AttachStderr": !a.detach,
        "Tty": a.tty,
        "Detach": a.detach,
        "Privileged": a.privileged,
        "Cmd": &a.args[1..],
    });
    if !env.is_empty() {
        body["Env"] = json!(env);
    }
    if let Some(u) = &a.user {
        body["User"] = json!(u);
    }
    if let Some(w) = &a.workdir {
        body["WorkingDir"] = json!(w);
    }
    body
}

/// `system-docker exec`.
pub async fn exec(client: &Client, a: ExecArgs) -> anyhow::Result<i32> {
    if a.tty && a.interactive && !a.detach && !std::io::stdin().is_terminal() {
        return Err(fail(1, "the input device is not a TTY"));
    }
    let container = client::path_escape(&a.args[0]);
    let created = client
        .post(
            &format!("/containers/{container}/exec"),
            Some(exec_body(&a)),
        )
        .await?;
    let id = str_of(&created, "Id").to_string();
    if id.is_empty() {
        return Err(fail(
            1,
            format!("unexpected exec create response: {created}"),
        ));
    }
    let start_path = format!("/exec/{id}/start");
    if a.detach {
        client
            .post(&start_path, Some(json!({"Detach": true, "Tty": a.tty})))
            .await?;
        return Ok(0);
    }
    let hijacked = match client
        .hijack(&start_path, Some(json!({"Detach": false, "Tty": a.tty})))
        .await
    {
        Ok(h) => h,
        Err(e) => {
            let code = match exit_code(client, &id).await {
                Some(c) if c != 0 => c,
                _ => match session::start_error_status(&e.to_string()) {
                    125 => 1,
                    c => c,
                },
            };
            return Err(fail(code, e.to_string()));
        }
    };
    let raw = if a.tty && a.interactive {
        RawTerminal::enable()
    } else {
        None
    };
    let session = Session::spawn(hijacked, a.tty, a.interactive);
    let resizer = a
        .tty
        .then(|| session::follow_terminal_size(client, format!("/exec/{id}/resize")))
        .flatten();
    let copied = session.finish().await;
    drop(raw);
    if let Some(r) = resizer {
        r.abort();
    }
    if let Err(e) = copied {
        eprintln!("{e}");
    }
    Ok(exit_code(client, &id).await.unwrap_or(-1))
}

/// The exec's exit code once it is no longer running (polled briefly, as the output can end
/// a moment before the daemon records the exit).
async fn exit_code(client: &Client, id: &str) -> Option<i32> {
    for _ in 0..40 {
        let v: Value = client.get(&format!("/exec/{id}/json")).await.ok()?;
        let running = v.get("Running").and_then(Value::as_bool).unwrap_or(false);
        if let Some(code) = v.get("ExitCode").and_then(Value::as_i64) {
            if !running {
                return Some(code as i32);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        exec: ExecArgs,
    }

    #[test]
    fn flags_stop_at_the_command() {
        let a =
            Wrapper::try_parse_from(["exec", "-i", "-u", "0", "-e", "A=1", "c1", "ls", "-l", "-e"])
                .unwrap()
                .exec;
        let b = exec_body(&a);
        assert_eq!(b["Cmd"], json!(["ls", "-l", "-e"]));
        assert_eq!(b["AttachStdin"], true);
        assert_eq!(b["AttachStdout"], true);
        assert_eq!(b["User"], "0");
        assert_eq!(b["Env"], json!(["A=1"]));
        assert_eq!(a.args[0], "c1");
        assert!(Wrapper::try_parse_from(["exec", "c1"]).is_err());
        let a = Wrapper::try_parse_from(["exec", "-d", "c1", "sleep", "1"])
            .unwrap()
            .exec;
        let b = exec_body(&a);
        assert_eq!(b["Detach"], true);
        assert_eq!(b["AttachStdout"], false);
    }
}
