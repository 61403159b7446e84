//! Container commands other than `run`/`create`/`exec`: `ps`, `start`, `stop`, `restart`,
//! `kill`, `rm`, `wait` and `logs`.

use chrono::Utc;
use clap::Args;
use hyper::Method;
use serde_json::{json, Value};

use super::super::format::{go_quote, ListFormat};
use super::super::reference::Reference;
use super::super::{stream, units};
use super::run::{attach_start_wait, Attach};
use super::{fail, filters_json, for_each, str_of};
use crate::client::{self, query, Body, Client};

const PS_TABLE: &str =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    all: bool,
    /// Only display container IDs
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter", value_name = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json', 'TEMPLATE')
    #[arg(long, value_name = "string")]
    format: Option<String>,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long = "last", value_name = "int", default_value_t = -1, allow_negative_numbers = true)]
    last: i64,
    /// Show the latest created container (includes all states)
    #[arg(short = 'l', long)]
    latest: bool,
    /// Display total file sizes
    #[arg(short = 's', long)]
    size: bool,
}

/// `system-docker ps`.
pub async fn ps(client: &Client, a: PsArgs) -> anyhow::Result<i32> {
    let format = if a.quiet {
        "{{.ID}}".to_string()
    } else {
        a.format.clone().unwrap_or_default()
    };
    let mut table = PS_TABLE.to_string();
    if a.size {
        table.push_str("\t{{.Size}}");
    }
    let list = ListFormat::parse(&format, &table).map_err(|e| fail(1, e.list_message()))?;
    let limit = if a.latest && a.last == -1 { 1 } else { a.last };
    let path = format!(
        "/containers/json{}",
        query([
            ("all", (a.all || limit > 0).then(|| "1".to_string())),
            ("limit", (limit > 0).then(|| limit.to_string())),
            (
                "size",
                (a.size || format.contains(".Size")).then(|| "1".to_string())
            ),
            ("filters", filters_json(&a.filter)?),
        ])
    );
    let mut containers: Vec<Value> = client.get(&path).await?;
    if limit > 0 {
        containers.truncate(limit as usize);
    }
    let now = Utc::now();
    let rows: Vec<Value> = containers
        .iter()
        .map(|c| ps_row(c, !a.no_trunc, now))
        .collect();
    print!(
        "{}",
        list.render(&rows, &ps_header())
            .map_err(|e| fail(1, e.list_message()))?
    );
    Ok(0)
}

fn ps_header() -> Value {
    json!({
        "ID": "CONTAINER ID", "Names": "NAMES", "Image": "IMAGE", "Command": "COMMAND",
        "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE",
        "Status": "STATUS", "Size": "SIZE", "Labels": "LABELS", "Mounts": "MOUNTS",
        "LocalVolumes": "LOCAL VOLUMES", "Networks": "NETWORKS",
    })
}

/// The 12-character form of an id (docker's `TruncateID`).
pub fn truncate_id(id: &str) -> String {
    crate::ids::short(id).to_string()
}

/// docker's `Ellipsis`: at most `max` characters, the last one `…` when cut.
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// One `ps` row: the fields docker's container formatter offers, as strings.
fn ps_row(c: &Value, trunc: bool, now: chrono::DateTime<Utc>) -> Value {
    let id = str_of(c, "Id");
    let names: Vec<String> = c
        .get("Names")
        .and_then(Value::as_array)
        .map(|n| {
            n.iter()
                .filter_map(Value::as_str)
                .map(|s| s.trim_start_matches('/').to_string())
                .collect()
        })
        .unwrap_or_default();
    let names = if trunc {
        // Only the first name that is not a legacy link (`other/alias`).
        names
            .into_iter()
            .find(|n| !n.contains('/'))
            .unwrap_or_default()
    } else {
        names.join(",")
    };
    let command = str_of(c, "Command");
    let command = if trunc {
        ellipsis(command, 20)
    } else {
        command.to_string()
    };
    let created = c.get("Created").and_then(Value::as_i64).unwrap_or(0);
    let labels: Vec<String> = c
        .get("Labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    let mounts = c
        .get("Mounts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mount_names: Vec<String> = mounts
        .iter()
        .map(|m| {
            let name = match str_of(m, "Name") {
                "" => str_of(m, "Source"),
                n => n,
            };
            if trunc {
                ellipsis(name, 15)
            } else {
                name.to_string()
            }
        })
        .collect();
    let local_volumes = mounts
        .iter()
        .filter(|m| str_of(m, "Driver") == "local")
        .count();
    let networks: Vec<String> = c
        .pointer("/NetworkSettings/Networks")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let size_rw = c.get("SizeRw").and_then(Value::as_f64).unwrap_or(0.0);
    let size_root = c.get("SizeRootFs").and_then(Value::as_f64).unwrap_or(0.0);
    let size = if size_root > 0.0 {
        format!(
            "{} (virtual {})",
            units::human_size(size_rw),
            units::human_size(size_root)
        )
    } else {
        units::human_size(size_rw)
    };
    json!({
        "ID": if trunc { truncate_id(id) } else { id.to_string() },
        "Image": ps_image(c, trunc),
        "Command": go_quote(&command),
        "CreatedAt": units::go_time_string(created),
        "RunningFor": units::time_ago(created, now),
        "Ports": ports(c.get("Ports")),
        "State": str_of(c, "State"),
        "Status": str_of(c, "Status"),
        "Size": size,
        "Names": names,
        "Labels": labels.join(","),
        "Mounts": mount_names.join(","),
        "LocalVolumes": local_volumes.to_string(),
        "Networks": networks.join(","),
    })
}

/// The IMAGE column: an image id shortened, a digest reference without its digest, names
/// in their familiar form.
fn ps_image(c: &Value, trunc: bool) -> String {
    let image = str_of(c, "Image");
    if image.is_empty() {
        return "<no image>".into();
    }
    if !trunc {
        return image.to_string();
    }
    let image_id = str_of(c, "ImageID");
    if truncate_id(image_id) == truncate_id(image) {
        return truncate_id(image);
    }
    match Reference::parse(image) {
        Ok(mut r) => {
            r.digest = None;
            r.familiar_string()
        }
        Err(_) => image.to_string(),
    }
}

/// The PORTS column (`0.0.0.0:8080->80/tcp, 9000/udp`).
fn ports(ports: Option<&Value>) -> String {
    let Some(ports) = ports.and_then(Value::as_array) else {
        return String::new();
    };
    let mut ports: Vec<&Value> = ports.iter().collect();
    ports.sort_by_key(|p| {
        (
            p.get("PrivatePort").and_then(Value::as_u64).unwrap_or(0),
            str_of(p, "IP").to_string(),
            p.get("PublicPort").and_then(Value::as_u64).unwrap_or(0),
            str_of(p, "Type").to_string(),
        )
    });
    ports
        .iter()
        .map(|p| {
            let private = p.get("PrivatePort").and_then(Value::as_u64).unwrap_or(0);
            let kind = str_of(p, "Type");
            let ip = str_of(p, "IP");
            match p.get("PublicPort").and_then(Value::as_u64) {
                Some(public) if public != 0 && !ip.is_empty() => {
                    let host = if ip.contains(':') {
                        format!("[{ip}]")
                    } else {
                        ip.to_string()
                    };
                    format!("{host}:{public}->{private}/{kind}")
                }
                _ => format!("{private}/{kind}"),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short = 'a', long)]
    attach: bool,
    /// Attach container's STDIN
    #[arg(short = 'i', long)]
    interactive: bool,
    #[arg(value_name = "CONTAINER", required = true)]
    containers: Vec<String>,
}

/// `system-docker start`.
pub async fn start(client: &Client, a: StartArgs) -> anyhow::Result<i32> {
    if a.attach || a.interactive {
        if a.containers.len() > 1 {
            return Err(fail(
                1,
                "you cannot start and attach multiple containers at once",
            ));
        }
        let name = &a.containers[0];
        let c: Value = client
            .get(&format!("/containers/{}/json", client::path_escape(name)))
            .await?;
        let tty = c
            .pointer("/Config/Tty")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let open_stdin = c
            .pointer("/Config/OpenStdin")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let auto_remove = c
            .pointer("/HostConfig/AutoRemove")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let id = str_of(&c, "Id").to_string();
        let attach = Attach {
            tty,
            stdin: a.interactive && open_stdin,
            auto_remove,
            sig_proxy: !tty,
        };
        return attach_start_wait(client, &id, attach, "start").await;
    }
    let mut failed = Vec::new();
    for name in &a.containers {
        let path = format!("/containers/{}/start", client::path_escape(name));
        match client.post(&path, None).await {
            Ok(_) => println!("{name}"),
            Err(e) => {
                eprintln!("{e}");
                failed.push(name.clone());
            }
        }
    }
    if failed.is_empty() {
        Ok(0)
    } else {
        Err(fail(
            1,
            format!("Error: failed to start containers: {}", failed.join(", ")),
        ))
    }
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait before killing the container
    #[arg(
        short = 't',
        long = "time",
        value_name = "int",
        allow_negative_numbers = true
    )]
    time: Option<i64>,
    /// Signal to send to the container
    #[arg(short = 's', long, value_name = "string")]
    signal: Option<String>,
    #[arg(value_name = "CONTAINER", required = true)]
    containers: Vec<String>,
}

/// `system-docker stop` and `restart` (`action`).
pub async fn stop(client: &Client, a: StopArgs, action: &str) -> anyhow::Result<i32> {
    let q = query([
        ("t", a.time.map(|t| t.to_string())),
        ("signal", a.signal.clone()),
    ]);
    for_each(&a.containers, |name| {
        let path = format!("/containers/{}/{action}{q}", client::path_escape(&name));
        async move { client.post(&path, None).await.map(drop) }
    })
    .await
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short = 's', long, value_name = "string")]
    signal: Option<String>,
    #[arg(value_name = "CONTAINER", required = true)]
    containers: Vec<String>,
}

/// `system-docker kill`.
pub async fn kill(client: &Client, a: KillArgs) -> anyhow::Result<i32> {
    let q = query([("signal", a.signal.clone())]);
    for_each(&a.containers, |name| {
        let path = format!("/containers/{}/kill{q}", client::path_escape(&name));
        async move { client.post(&path, None).await.map(drop) }
    })
    .await
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short = 'f', long)]
    force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short = 'v', long)]
    volumes: bool,
    /// Remove the specified link
    #[arg(short = 'l', long)]
    link: bool,
    #[arg(value_name = "CONTAINER", required = true)]
    containers: Vec<String>,
}

/// `system-docker rm`; with `-f`, a container that does not exist is not an error.
pub async fn rm(client: &Client, a: RmArgs) -> anyhow::Result<i32> {
    let q = query([
        ("force", a.force.then(|| "1".to_string())),
        ("v", a.volumes.then(|| "1".to_string())),
        ("link", a.link.then(|| "1".to_string())),
    ]);
    let mut errors = Vec::new();
    for name in &a.containers {
        let path = format!("/containers/{}{q}", client::path_escape(name));
        match client.call(Method::DELETE, &path, Body::Empty).await {
            Ok(_) => println!("{name}"),
            Err(e) if a.force && e.is_not_found() => eprintln!("{e}"),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(0)
    } else {
        Err(fail(1, errors.join("\n")))
    }
}

#[derive(Args, Debug)]
pub struct WaitArgs {
    #[arg(value_name = "CONTAINER", required = true)]
    containers: Vec<String>,
}

/// `system-docker wait`: prints each container's exit code.
pub async fn wait(client: &Client, a: WaitArgs) -> anyhow::Result<i32> {
    let mut errors = Vec::new();
    for name in &a.containers {
        let path = format!("/containers/{}/wait", client::path_escape(name));
        match client.post(&path, None).await {
            Ok(v) => println!(
                "{}",
                v.get("StatusCode").and_then(Value::as_i64).unwrap_or(-1)
            ),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(0)
    } else {
        Err(fail(1, errors.join("\n")))
    }
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short = 'f', long)]
    follow: bool,
    /// Show timestamps
    #[arg(short = 't', long)]
    timestamps: bool,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, value_name = "string", default_value = "all")]
    tail: String,
    /// Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m")
    #[arg(long, value_name = "string")]
    since: Option<String>,
    /// Show logs before a timestamp or relative time
    #[arg(long, value_name = "string")]
    until: Option<String>,
    /// Show extra details provided to logs
    #[arg(long)]
    details: bool,
    #[arg(value_name = "CONTAINER")]
    container: String,
}

/// `system-docker logs`.
pub async fn logs(client: &Client, a: LogsArgs) -> anyhow::Result<i32> {
    let name = client::path_escape(&a.container);
    let c: Value = client.get(&format!("/containers/{name}/json")).await?;
    let tty = c
        .pointer("/Config/Tty")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let now = Utc::now();
    let time = |v: &Option<String>| -> anyhow::Result<Option<String>> {
        v.as_deref()
            .map(|s| units::api_timestamp(s, now).map_err(|e| fail(1, e)))
            .transpose()
    };
    let path = format!(
        "/containers/{name}/logs{}",
        query([
            ("stdout", Some("1".to_string())),
            ("stderr", Some("1".to_string())),
            ("since", time(&a.since)?),
            ("until", time(&a.until)?),
            ("timestamps", a.timestamps.then(|| "1".to_string())),
            ("follow", a.follow.then(|| "1".to_string())),
            ("tail", Some(a.tail.clone())),
            ("details", a.details.then(|| "1".to_string())),
        ])
    );
    let resp = client.request(Method::GET, &path, Body::Empty).await?;
    match stream::copy_body(resp.into_body(), tty).await {
        Ok(()) => Ok(0),
        Err(stream::StreamError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(fail(1, e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn sample() -> Value {
        json!({
            "Id": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "Names": ["/web", "/other/alias"],
            "Image": "busybox",
            "ImageID": "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210",
            "Command": "sh -c 'while true; do sleep 1; done'",
            "Created": 1_700_000_000 - 125,
            "State": "running",
            "Status": "Up 2 minutes",
            "Ports": [],
            "Labels": {"b": "2", "a": "1"},
            "Mounts": [{"Type": "bind", "Source": "/var/lib/very-long-directory-name", "Destination": "/x", "Driver": ""}],
            "NetworkSettings": {"Networks": {"host": {}}}
        })
    }

    #[test]
    fn ps_rows_like_docker() {
        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let row = ps_row(&sample(), true, now);
        assert_eq!(row["ID"], "0123456789ab");
        assert_eq!(row["Names"], "web");
        assert_eq!(row["Command"], "\"sh -c 'while true; …\"");
        assert_eq!(row["RunningFor"], "2 minutes ago");
        assert_eq!(row["Labels"], "a=1,b=2");
        assert_eq!(row["Mounts"], "/var/lib/very-…");
        assert_eq!(row["LocalVolumes"], "0");
        assert_eq!(row["Networks"], "host");
        assert_eq!(row["Size"], "0B");
        let row = ps_row(&sample(), false, now);
        assert_eq!(row["Names"], "web,other/alias");
        assert_eq!(row["Command"], "\"sh -c 'while true; do sleep 1; done'\"");
        assert_eq!(row["ID"].as_str().unwrap().len(), 64);
    }

    #[test]
    fn ps_table_output() {
        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let rows = vec![ps_row(&sample(), true, now)];
        let out = ListFormat::parse("", PS_TABLE)
            .unwrap()
            .render(&rows, &ps_header())
            .unwrap();
        assert_eq!(
            out,
            "CONTAINER ID   IMAGE     COMMAND                  CREATED         STATUS         PORTS     NAMES\n\
             0123456789ab   busybox   \"sh -c 'while true; …\"   2 minutes ago   Up 2 minutes             web\n"
        );
    }

    #[test]
    fn image_column() {
        let mut c = sample();
        assert_eq!(ps_image(&c, true), "busybox");
        c["Image"] = json!("docker.io/library/alpine:3@sha256:abcd");
        assert_eq!(ps_image(&c, true), "alpine:3");
        assert_eq!(
            ps_image(&c, false),
            "docker.io/library/alpine:3@sha256:abcd"
        );
        c["Image"] =
            json!("sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210");
        assert_eq!(ps_image(&c, true), "fedcba987654");
        c["Image"] = json!("");
        assert_eq!(ps_image(&c, true), "<no image>");
    }

    #[test]
    fn ports_column() {
        let p = json!([
            {"PrivatePort": 80, "PublicPort": 8080, "IP": "0.0.0.0", "Type": "tcp"},
            {"PrivatePort": 53, "Type": "udp"}
        ]);
        assert_eq!(ports(Some(&p)), "53/udp, 0.0.0.0:8080->80/tcp");
        assert_eq!(ports(None), "");
    }

    #[test]
    fn ellipsis_like_docker() {
        assert_eq!(ellipsis("short", 20), "short");
        assert_eq!(ellipsis("exactly-twenty-chars", 20), "exactly-twenty-chars");
        assert_eq!(
            ellipsis("twenty-one-characters", 20),
            "twenty-one-characte…"
        );
    }
}
