//! `run` and `create`: the container flags, and docker's flow — create (pulling the image
//! when it is missing), attach, wait, start, copy output, exit with the container's status.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args};
use serde_json::Value;

use super::super::reference::Reference;
use super::super::units;
use super::session::{self, RawTerminal, Session, Waiter};
use super::{fail, image, str_of};
use crate::client::{self, query, Client};

/// The flags of `run` and `create`.
#[derive(Args, Debug, Default, Clone)]
pub struct RunArgs {
    /// Print help
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
    /// Run container in background and print container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Automatically remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env", value_name = "list")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "list")]
    pub env_file: Vec<PathBuf>,
    /// Bind mount a volume
    #[arg(short = 'v', long = "volume", value_name = "list")]
    pub volume: Vec<String>,
    /// Mount volumes from the specified container(s)
    #[arg(long = "volumes-from", value_name = "list")]
    pub volumes_from: Vec<String>,
    /// Add a host device to the container
    #[arg(long, value_name = "list")]
    pub device: Vec<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Container NIS domain name
    #[arg(long)]
    pub domainname: Option<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Mount a tmpfs directory
    #[arg(long, value_name = "list")]
    pub tmpfs: Vec<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Add Linux capabilities
    #[arg(long = "cap-add", value_name = "list")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop", value_name = "list")]
    pub cap_drop: Vec<String>,
    /// Memory limit
    #[arg(short = 'm', long, value_name = "bytes", value_parser = parse_bytes)]
    pub memory: Option<i64>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long = "memory-swap", value_name = "bytes", value_parser = parse_swap, allow_hyphen_values = true)]
    pub memory_swap: Option<i64>,
    /// Memory soft limit
    #[arg(long = "memory-reservation", value_name = "bytes", value_parser = parse_bytes)]
    pub memory_reservation: Option<i64>,
    /// Number of CPUs
    #[arg(long, value_name = "decimal", value_parser = parse_cpus)]
    pub cpus: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares", value_name = "int")]
    pub cpu_shares: Option<i64>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", value_name = "int", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// Restart policy to apply when a container exits (no, always, on-failure[:N], unless-stopped)
    #[arg(long, value_name = "string")]
    pub restart: Option<String>,
    /// Connect a container to a network
    #[arg(long = "network", visible_alias = "net", value_name = "network")]
    pub network: Option<String>,
    /// PID namespace to use
    #[arg(long, value_name = "string")]
    pub pid: Option<String>,
    /// IPC mode to use
    #[arg(long, value_name = "string")]
    pub ipc: Option<String>,
    /// UTS namespace to use
    #[arg(long, value_name = "string")]
    pub uts: Option<String>,
    /// User namespace to use
    #[arg(long, value_name = "string")]
    pub userns: Option<String>,
    /// Cgroup namespace to use (host|private)
    #[arg(long, value_name = "string")]
    pub cgroupns: Option<String>,
    /// Optional parent cgroup for the container
    #[arg(long = "cgroup-parent", value_name = "string")]
    pub cgroup_parent: Option<String>,
    /// Set meta data on a container
    #[arg(short = 'l', long = "label", value_name = "list")]
    pub label: Vec<String>,
    /// Logging driver for the container
    #[arg(long = "log-driver", value_name = "string")]
    pub log_driver: Option<String>,
    /// Log driver options
    #[arg(long = "log-opt", value_name = "list")]
    pub log_opt: Vec<String>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// Signal to stop the container
    #[arg(long = "stop-signal", value_name = "string")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout", value_name = "int")]
    pub stop_timeout: Option<i64>,
    /// Add additional groups to join
    #[arg(long = "group-add", value_name = "list")]
    pub group_add: Vec<String>,
    /// Security Options
    #[arg(long = "security-opt", value_name = "list")]
    pub security_opt: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host", value_name = "list")]
    pub add_host: Vec<String>,
    /// Set custom DNS servers
    #[arg(long, value_name = "list")]
    pub dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search", value_name = "list")]
    pub dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option", value_name = "list")]
    pub dns_option: Vec<String>,
    /// Size of /dev/shm
    #[arg(long = "shm-size", value_name = "bytes", value_parser = parse_bytes)]
    pub shm_size: Option<i64>,
    /// Tune host's OOM preferences (-1000 to 1000)
    #[arg(
        long = "oom-score-adj",
        value_name = "int",
        allow_negative_numbers = true
    )]
    pub oom_score_adj: Option<i64>,
    /// Sysctl options
    #[arg(long, value_name = "map")]
    pub sysctl: Vec<String>,
    /// Ulimit options
    #[arg(long, value_name = "ulimit")]
    pub ulimit: Vec<String>,
    /// Pull image before running ("always", "missing", "never")
    #[arg(long, default_value = "missing", value_parser = ["always", "missing", "never"])]
    pub pull: String,
    /// Suppress the pull output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Proxy received signals to the process
    #[arg(
        long = "sig-proxy",
        default_value_t = true,
        action = ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true",
        value_name = "bool"
    )]
    pub sig_proxy: bool,
    /// IMAGE [COMMAND] [ARG...]
    #[arg(
        value_name = "IMAGE [COMMAND] [ARG...]",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        num_args = 1..
    )]
    pub args: Vec<String>,
}

fn parse_bytes(v: &str) -> Result<i64, String> {
    units::ram_in_bytes(v)
}

fn parse_swap(v: &str) -> Result<i64, String> {
    if v == "-1" {
        Ok(-1)
    } else {
        units::ram_in_bytes(v)
    }
}

/// `--cpus` as nano CPUs, exact as docker requires (`1.5` → 1500000000).
fn parse_cpus(v: &str) -> Result<i64, String> {
    let bad = || format!("failed to parse {v} as a rational number");
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > 9 {
        return Err("value is too precise".into());
    }
    let whole: i64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    let nanos: i64 = format!("{frac:0<9}").parse().map_err(|_| bad())?;
    whole
        .checked_mul(1_000_000_000)
        .and_then(|w| w.checked_add(nanos))
        .ok_or_else(bad)
}

/// `system-docker run`.
pub async fn run(client: &Client, args: RunArgs) -> anyhow::Result<i32> {
    let stdin_tty = std::io::stdin().is_terminal();
    if args.tty && args.interactive && !stdin_tty {
        return Err(fail(1, "the input device is not a TTY"));
    }
    let body = match super::config::create_body(&args, |k| std::env::var(k).ok()) {
        Ok(b) => b,
        Err(e) => return Err(report_usage("run", &e)),
    };
    let id = match create_container(client, &args, body).await {
        Ok(id) => id,
        Err(e) => return Err(report_run_error("run", &e)),
    };
    if args.detach {
        if let Err(e) = client.post(&format!("/containers/{id}/start"), None).await {
            return Err(report_run_error("run", &e.to_string()));
        }
        println!("{id}");
        return Ok(0);
    }
    attach_start_wait(
        client,
        &id,
        Attach {
            tty: args.tty,
            stdin: args.interactive,
            auto_remove: args.rm,
            sig_proxy: args.sig_proxy && !args.tty,
        },
        "run",
    )
    .await
}

/// `system-docker create`.
pub async fn create(client: &Client, args: RunArgs) -> anyhow::Result<i32> {
    let body = match super::config::create_body(&args, |k| std::env::var(k).ok()) {
        Ok(b) => b,
        Err(e) => return Err(report_usage("create", &e)),
    };
    match create_container(client, &args, body).await {
        Ok(id) => {
            println!("{id}");
            Ok(0)
        }
        Err(e) => Err(report_run_error("create", &e)),
    }
}

/// docker's report of a failed create or start (`docker: <msg>` and a pointer to the
/// help), with docker's exit status for the failure.
fn report_run_error(command: &str, msg: &str) -> anyhow::Error {
    report(session::start_error_status(msg), command, msg)
}

/// docker's report of a flag it cannot make sense of (exit status 125).
fn report_usage(command: &str, msg: &str) -> anyhow::Error {
    report(125, command, msg)
}

fn report(code: i32, command: &str, msg: &str) -> anyhow::Error {
    fail(
        code,
        format!(
            "system-docker: {msg}\n\nRun 'system-docker {command} --help' for more information"
        ),
    )
}

/// Creates the container, pulling its image first when `--pull` says so or it is missing;
/// returns the id. Errors are messages ready to print.
async fn create_container(client: &Client, args: &RunArgs, body: Value) -> Result<String, String> {
    let image = body["Image"].as_str().unwrap_or_default().to_string();
    // An image id or digest-only reference cannot be pulled by name.
    let named = Reference::parse(&image)
        .ok()
        .filter(|_| !image.starts_with("sha256:"))
        .map(Reference::with_default_tag);
    let path = format!("/containers/create{}", query([("name", args.name.clone())]));
    if args.pull == "always" {
        if let Some(r) = &named {
            pull_for_run(client, r, args.quiet).await?;
        }
    }
    let created = match client.post(&path, Some(body.clone())).await {
        Ok(v) => v,
        Err(e) if is_missing_image(&e) && args.pull == "missing" && named.is_some() => {
            let r = named.as_ref().ok_or_else(|| e.to_string())?;
            eprintln!("Unable to find image '{}' locally", r.familiar_string());
            pull_for_run(client, r, args.quiet).await?;
            client
                .post(&path, Some(body))
                .await
                .map_err(|e| e.to_string())?
        }
        Err(e) => return Err(e.to_string()),
    };
    if let Some(warnings) = created.get("Warnings").and_then(Value::as_array) {
        for w in warnings.iter().filter_map(Value::as_str) {
            eprintln!("WARNING: {w}");
        }
    }
    let id = str_of(&created, "Id");
    if id.is_empty() {
        return Err(format!("unexpected create response: {created}"));
    }
    Ok(id.to_string())
}

fn is_missing_image(e: &client::Error) -> bool {
    e.is_not_found() && e.message().to_lowercase().contains("image")
}

/// Pulls for `run`/`create`: progress on stderr, as docker keeps stdout for the id.
async fn pull_for_run(client: &Client, r: &Reference, quiet: bool) -> Result<(), String> {
    let mut stderr = std::io::stderr();
    let mut sink = std::io::sink();
    let out: &mut dyn std::io::Write = if quiet { &mut sink } else { &mut stderr };
    let terminal = !quiet && std::io::stderr().is_terminal();
    image::pull_image(client, r, out, terminal)
        .await
        .map_err(|e| e.to_string())
}

/// How to attach to a container.
pub struct Attach {
    pub tty: bool,
    pub stdin: bool,
    pub auto_remove: bool,
    pub sig_proxy: bool,
}

/// Attaches to container `id`, registers a wait, starts it, copies its output until it
/// ends, and returns its exit status — the foreground half of `run` and `start -a`.
pub async fn attach_start_wait(
    client: &Client,
    id: &str,
    attach: Attach,
    command: &str,
) -> anyhow::Result<i32> {
    let path = format!(
        "/containers/{id}/attach{}",
        query([
            ("stream", Some("1".to_string())),
            ("stdin", attach.stdin.then(|| "1".to_string())),
            ("stdout", Some("1".to_string())),
            ("stderr", Some("1".to_string())),
        ])
    );
    let hijacked = match client.hijack(&path, None).await {
        Ok(h) => h,
        Err(e) => return Err(report_run_error(command, &e.to_string())),
    };
    let condition = if attach.auto_remove {
        "removed"
    } else {
        "next-exit"
    };
    let waiter = match Waiter::begin(client, id, condition).await {
        Ok(w) => w,
        Err(e) => return Err(report_run_error(command, &e.to_string())),
    };
    let raw = if attach.tty && attach.stdin {
        RawTerminal::enable()
    } else {
        None
    };
    let session = Session::spawn(hijacked, attach.tty, attach.stdin);
    if let Err(e) = client.post(&format!("/containers/{id}/start"), None).await {
        session.abort();
        drop(raw);
        if attach.auto_remove {
            waiter.settle(Duration::from_secs(10)).await;
        }
        return Err(report_run_error(command, &e.to_string()));
    }
    let signals = attach.sig_proxy.then(|| session::proxy_signals(client, id));
    let resizer = attach
        .tty
        .then(|| session::follow_terminal_size(client, format!("/containers/{id}/resize")))
        .flatten();
    let copied = session.finish().await;
    drop(raw);
    let status = waiter.status().await;
    for task in signals.into_iter().chain(resizer) {
        task.abort();
    }
    if let Err(e) = copied {
        eprintln!("{e}");
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    #[command(disable_help_flag = true)]
    struct Wrapper {
        #[command(flatten)]
        run: RunArgs,
    }

    fn parse(args: &[&str]) -> RunArgs {
        Wrapper::try_parse_from(std::iter::once("run").chain(args.iter().copied()))
            .unwrap()
            .run
    }

    #[test]
    fn flags_stop_at_the_image() {
        let a = parse(&[
            "-d", "--name", "x", "-e", "A=1", "busybox", "ls", "-l", "-e", "--rm",
        ]);
        assert!(a.detach);
        assert!(!a.rm);
        assert_eq!(a.env, ["A=1"]);
        assert_eq!(a.args, ["busybox", "ls", "-l", "-e", "--rm"]);
        let a = parse(&["-it", "--rm", "-h", "box", "busybox"]);
        assert!(a.interactive && a.tty && a.rm);
        assert_eq!(a.hostname.as_deref(), Some("box"));
        assert_eq!(a.args, ["busybox"]);
    }

    #[test]
    fn value_flags() {
        let a = parse(&["--memory", "64m", "--cpus=1.5", "--pids-limit", "-1", "img"]);
        assert_eq!(a.memory, Some(67_108_864));
        assert_eq!(a.cpus, Some(1_500_000_000));
        assert_eq!(a.pids_limit, Some(-1));
        let a = parse(&["--net", "host", "--sig-proxy=false", "img"]);
        assert_eq!(a.network.as_deref(), Some("host"));
        assert!(!a.sig_proxy);
        assert!(Wrapper::try_parse_from(["run", "--memory", "lots", "img"]).is_err());
        assert!(Wrapper::try_parse_from(["run", "-d"]).is_err());
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_cpus("2"), Ok(2_000_000_000));
        assert_eq!(parse_cpus("0.5"), Ok(500_000_000));
        assert_eq!(parse_cpus(".25"), Ok(250_000_000));
        assert_eq!(parse_cpus("1.000000001"), Ok(1_000_000_001));
        assert!(parse_cpus("1.0000000001").is_err());
        assert!(parse_cpus("x").is_err());
        assert!(parse_cpus("").is_err());
    }
}
