//! `events`, `info` and `version`.

use chrono::Utc;
use clap::Args;
use hyper::Method;
use serde_json::{json, Value};

use super::super::format::{to_text, FormatError, Missing, Template};
use super::super::{tabwriter, units};
use super::{fail, filters_json, str_of};
use crate::client::{query, Body, Client, JsonStream};

#[derive(Args, Debug)]
pub struct FormatArgs {
    /// Format output using a custom template ('json' or a Go template)
    #[arg(short = 'f', long, value_name = "string")]
    format: Option<String>,
}

/// The `--format` template of `inspect`, `info`, `version` and `events` (`json` meaning
/// `{{json .}}`), with docker's error wording.
pub fn parse_template(format: &Option<String>) -> anyhow::Result<Option<Template>> {
    let src = match format.as_deref() {
        None | Some("") => return Ok(None),
        Some("json") => "{{json .}}",
        Some(f) => f,
    };
    Template::parse(src).map(Some).map_err(template_error)
}

/// A template error as `inspect` and friends report it.
pub fn template_error(e: FormatError) -> anyhow::Error {
    let (code, message) = e.inspect_status();
    fail(code, message)
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Show all events created since timestamp
    #[arg(long, value_name = "string")]
    since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long, value_name = "string")]
    until: Option<String>,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter", value_name = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template ('json' or a Go template)
    #[arg(long, value_name = "string")]
    format: Option<String>,
}

/// `system-docker events`: streams until the daemon ends the stream (`--until`) or we are
/// interrupted.
pub async fn events(client: &Client, a: EventsArgs) -> anyhow::Result<i32> {
    let template = parse_template(&a.format)?;
    let now = Utc::now();
    let time = |v: &Option<String>| -> anyhow::Result<Option<String>> {
        v.as_deref()
            .map(|s| units::api_timestamp(s, now).map_err(|e| fail(1, e)))
            .transpose()
    };
    let path = format!(
        "/events{}",
        query([
            ("since", time(&a.since)?),
            ("until", time(&a.until)?),
            ("filters", filters_json(&a.filter)?),
        ])
    );
    let resp = client.request(Method::GET, &path, Body::Empty).await?;
    let mut stream = JsonStream::new(resp.into_body());
    while let Some(ev) = stream.next().await? {
        let line = match &template {
            Some(t) => t.render(&ev, Missing::NoValue).map_err(template_error)?,
            None => pretty_event(&ev),
        };
        println!("{line}");
    }
    Ok(0)
}

/// An event as docker prints it:
/// `2024-01-01T00:00:00.000000000Z container start <id> (image=busybox, name=web)`.
pub fn pretty_event(ev: &Value) -> String {
    let mut out = String::new();
    let nanos = ev.get("timeNano").and_then(Value::as_i64).unwrap_or(0);
    let secs = ev.get("time").and_then(Value::as_i64).unwrap_or(0);
    if nanos != 0 {
        out.push_str(&units::rfc3339_nano_fixed(nanos));
        out.push(' ');
    } else if secs != 0 {
        out.push_str(&units::rfc3339_nano_fixed(
            secs.saturating_mul(1_000_000_000),
        ));
        out.push(' ');
    }
    let action = match str_of(ev, "Action") {
        "" => str_of(ev, "status"),
        a => a,
    };
    let id = ev
        .pointer("/Actor/ID")
        .and_then(Value::as_str)
        .unwrap_or_else(|| str_of(ev, "id"));
    out.push_str(&format!("{} {action} {id}", str_of(ev, "Type")));
    if let Some(attrs) = ev.pointer("/Actor/Attributes").and_then(Value::as_object) {
        if !attrs.is_empty() {
            let pairs: Vec<String> = attrs
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect();
            out.push_str(&format!(" ({})", pairs.join(", ")));
        }
    }
    out
}

/// `system-docker info`.
pub async fn info(client: &Client, a: FormatArgs) -> anyhow::Result<i32> {
    let template = parse_template(&a.format)?;
    let client_info = json!({"Debug": false, "Version": crate::VERSION, "Context": "default"});
    let server = client.get::<Value>("/info").await;
    if let Some(t) = template {
        let mut data = server.as_ref().cloned().unwrap_or_else(|_| json!({}));
        data["ClientInfo"] = client_info;
        let out = t.render(&data, Missing::NoValue).map_err(template_error)?;
        println!("{out}");
        return server.map(|_| 0).map_err(|e| fail(1, e.to_string()));
    }
    print!(
        "Client:\n Version:    {}\n Context:    default\n Debug Mode: false\n\nServer:\n",
        crate::VERSION
    );
    match server {
        Ok(info) => {
            print!("{}", pretty_info(&info));
            if let Some(warnings) = info.get("Warnings").and_then(Value::as_array) {
                for w in warnings.iter().filter_map(Value::as_str) {
                    eprintln!("{w}");
                }
            }
            Ok(0)
        }
        Err(e) => {
            println!("ERROR: {e}");
            Err(fail(1, "errors pretty printing info"))
        }
    }
}

/// The server half of `info`, fields in docker's order, absent ones left out.
pub fn pretty_info(i: &Value) -> String {
    fn line(out: &mut String, label: &str, v: Option<String>) {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            out.push_str(&format!("{label}: {v}\n"));
        }
    }
    let text = |key: &str| i.get(key).filter(|v| !v.is_null()).map(to_text);
    let mut out = String::new();
    line(&mut out, " Containers", text("Containers"));
    line(&mut out, "  Running", text("ContainersRunning"));
    line(&mut out, "  Paused", text("ContainersPaused"));
    line(&mut out, "  Stopped", text("ContainersStopped"));
    line(&mut out, " Images", text("Images"));
    line(&mut out, " Server Version", text("ServerVersion"));
    line(&mut out, " Storage Driver", text("Driver"));
    if let Some(status) = i.get("DriverStatus").and_then(Value::as_array) {
        for pair in status.iter().filter_map(Value::as_array) {
            if let [k, v] = pair.as_slice() {
                out.push_str(&format!("  {}: {}\n", to_text(k), to_text(v)));
            }
        }
    }
    line(&mut out, " Logging Driver", text("LoggingDriver"));
    line(&mut out, " Cgroup Driver", text("CgroupDriver"));
    line(&mut out, " Cgroup Version", text("CgroupVersion"));
    if let Some(plugins) = i.get("Plugins").and_then(Value::as_object) {
        out.push_str(" Plugins:\n");
        for kind in ["Volume", "Network", "Log"] {
            if let Some(list) = plugins.get(kind).and_then(Value::as_array) {
                let names: Vec<String> = list.iter().map(to_text).collect();
                out.push_str(&format!("  {kind}: {}\n", names.join(" ")));
            }
        }
    }
    let runtimes = i
        .get("Runtimes")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect::<Vec<_>>().join(" "));
    let swarm = i.pointer("/Swarm/LocalNodeState").map(to_text);
    line(&mut out, " Swarm", swarm);
    line(&mut out, " Runtimes", runtimes);
    line(&mut out, " Default Runtime", text("DefaultRuntime"));
    line(&mut out, " Init Binary", text("InitBinary"));
    for (label, key) in [
        (" containerd version", "/ContainerdCommit/ID"),
        (" runc version", "/RuncCommit/ID"),
        (" init version", "/InitCommit/ID"),
    ] {
        line(&mut out, label, i.pointer(key).map(to_text));
    }
    let security = i.get("SecurityOptions").and_then(Value::as_array);
    if let Some(opts) = security.filter(|o| !o.is_empty()) {
        out.push_str(" Security Options:\n");
        for opt in opts.iter().filter_map(Value::as_str) {
            for kv in opt.split(',') {
                match kv.split_once('=') {
                    Some(("name", v)) => out.push_str(&format!("  {v}\n")),
                    Some((k, v)) => out.push_str(&format!("   {}: {v}\n", title(k))),
                    None => out.push_str(&format!("  {kv}\n")),
                }
            }
        }
    }
    line(&mut out, " Kernel Version", text("KernelVersion"));
    line(&mut out, " Operating System", text("OperatingSystem"));
    line(&mut out, " OSType", text("OSType"));
    line(&mut out, " Architecture", text("Architecture"));
    line(&mut out, " CPUs", text("NCPU"));
    let memory = i
        .get("MemTotal")
        .and_then(Value::as_f64)
        .map(units::bytes_size);
    line(&mut out, " Total Memory", memory);
    line(&mut out, " Name", text("Name"));
    line(&mut out, " ID", text("ID"));
    line(&mut out, " Docker Root Dir", text("DockerRootDir"));
    line(&mut out, " Debug Mode", text("Debug"));
    line(&mut out, " Experimental", text("ExperimentalBuild"));
    let labels = i.get("Labels").and_then(Value::as_array);
    if let Some(labels) = labels.filter(|l| !l.is_empty()) {
        out.push_str(" Labels:\n");
        for l in labels {
            out.push_str(&format!("  {}\n", to_text(l)));
        }
    }
    let insecure = i
        .pointer("/RegistryConfig/InsecureRegistryCIDRs")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty());
    if let Some(cidrs) = insecure {
        out.push_str(" Insecure Registries:\n");
        for c in cidrs {
            out.push_str(&format!("  {}\n", to_text(c)));
        }
    }
    let live_restore = text("LiveRestoreEnabled");
    line(&mut out, " Live Restore Enabled", live_restore);
    out
}

fn title(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A build time as docker shows it (`Thu May  7 21:09:36 2026`, local time).
fn build_time(t: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(t) {
        Ok(t) => t
            .with_timezone(&chrono::Local)
            .format("%a %b %e %H:%M:%S %Y")
            .to_string(),
        Err(_) => t.to_string(),
    }
}

/// Go's name for our architecture, as `version` prints it (`linux/amd64`).
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// `system-docker version`.
pub async fn version(client: &Client, a: FormatArgs) -> anyhow::Result<i32> {
    let template = parse_template(&a.format)?;
    let server = client.get::<Value>("/version").await;
    let api = client
        .api_version()
        .await
        .unwrap_or_else(|_| crate::API_VERSION.to_string());
    let client_version = json!({
        "Platform": {"Name": ""},
        "Version": crate::VERSION,
        "ApiVersion": api,
        "DefaultAPIVersion": crate::API_VERSION,
        "Os": std::env::consts::OS,
        "Arch": go_arch(),
        "Context": "default",
    });
    let out = match &template {
        Some(t) => {
            let data = json!({
                "Client": client_version,
                "Server": server.as_ref().ok().cloned().unwrap_or(Value::Null),
            });
            t.render(&data, Missing::NoValue).map_err(template_error)? + "\n"
        }
        None => pretty_version(&client_version, server.as_ref().ok()),
    };
    print!("{out}");
    match server {
        Ok(_) => Ok(0),
        Err(e) => Err(fail(1, e.to_string())),
    }
}

/// docker's version layout: `Client:` and `Server:` sections, values aligned at column 20.
pub fn pretty_version(client: &Value, server: Option<&Value>) -> String {
    fn kv(t: &mut String, indent: &str, k: &str, v: &str) {
        if !v.is_empty() {
            t.push_str(&format!("{indent}{k}:\t{v}\n"));
        }
    }
    let api = str_of(client, "ApiVersion");
    let default = str_of(client, "DefaultAPIVersion");
    let api = if api != default && !default.is_empty() {
        format!("{api} (downgraded from {default})")
    } else {
        api.to_string()
    };
    let mut t = String::from("Client:\n");
    kv(&mut t, " ", "Version", str_of(client, "Version"));
    kv(&mut t, " ", "API version", &api);
    let os_arch = format!("{}/{}", str_of(client, "Os"), str_of(client, "Arch"));
    kv(&mut t, " ", "OS/Arch", &os_arch);
    let mut out = tabwriter::align(&t, 20, 1);
    let Some(s) = server else {
        return out;
    };
    let platform = s
        .pointer("/Platform/Name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut t = if platform.is_empty() {
        "Server:\n".to_string()
    } else {
        format!("Server: {platform}\n")
    };
    let mut components = s
        .get("Components")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if components.is_empty() {
        // A daemon without components: its top-level fields describe the engine.
        components.push(json!({"Name": "Engine", "Version": s.get("Version"), "Details": s}));
    }
    for c in &components {
        let name = str_of(c, "Name");
        let details = c.get("Details").cloned().unwrap_or(Value::Null);
        let d = |k: &str| {
            details
                .get(k)
                .filter(|v| !v.is_null())
                .map(to_text)
                .unwrap_or_default()
        };
        t.push_str(&format!(" {name}:\n"));
        kv(&mut t, "  ", "Version", str_of(c, "Version"));
        if name == "Engine" {
            let api = match (d("ApiVersion"), d("MinAPIVersion")) {
                (api, min) if api.is_empty() || min.is_empty() => api,
                (api, min) => format!("{api} (minimum version {min})"),
            };
            kv(&mut t, "  ", "API version", &api);
            kv(&mut t, "  ", "Go version", &d("GoVersion"));
            kv(&mut t, "  ", "Git commit", &d("GitCommit"));
            kv(&mut t, "  ", "Built", &build_time(&d("BuildTime")));
            if !d("Os").is_empty() {
                kv(
                    &mut t,
                    "  ",
                    "OS/Arch",
                    &format!("{}/{}", d("Os"), d("Arch")),
                );
            }
            kv(&mut t, "  ", "Experimental", &d("Experimental"));
        } else if let Some(m) = details.as_object() {
            for (k, v) in m {
                t.push_str(&format!("  {k}:\t{}\n", to_text(v)));
            }
        }
    }
    out.push('\n');
    out.push_str(&tabwriter::align(&t, 20, 1));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_like_docker() {
        let ev = json!({
            "Type": "container", "Action": "start", "status": "start", "id": "abc",
            "Actor": {"ID": "abc", "Attributes": {"name": "web", "image": "busybox"}},
            "time": 1_700_000_000, "timeNano": 1_700_000_000_123_456_789i64
        });
        let line = pretty_event(&ev);
        assert!(
            line.ends_with(" container start abc (image=busybox, name=web)"),
            "{line}"
        );
        assert!(line.contains(":20.123456789"), "{line}");
        let ev = json!({"Type": "image", "Action": "pull", "Actor": {"ID": "busybox:latest", "Attributes": {}}});
        assert_eq!(pretty_event(&ev), "image pull busybox:latest");
    }

    #[test]
    fn version_layout() {
        let client = json!({"Version": "0.1.0", "ApiVersion": "1.41", "DefaultAPIVersion": "1.43", "Os": "linux", "Arch": "amd64"});
        let server = json!({
            "Version": "0.1.0", "ApiVersion": "1.43", "MinAPIVersion": "1.24", "Os": "linux", "Arch": "amd64",
            "Components": [{"Name": "Engine", "Version": "0.1.0",
                "Details": {"ApiVersion": "1.43", "MinAPIVersion": "1.24", "Os": "linux", "Arch": "amd64", "Experimental": "false"}}]
        });
        assert_eq!(
            pretty_version(&client, Some(&server)),
            "Client:\n Version:           0.1.0\n API version:       1.41 (downgraded from 1.43)\n OS/Arch:           linux/amd64\n\
             \nServer:\n Engine:\n  Version:          0.1.0\n  API version:      1.43 (minimum version 1.24)\n  OS/Arch:          linux/amd64\n  Experimental:     false\n"
        );
    }

    #[test]
    fn info_layout() {
        let info = json!({
            "Containers": 3, "ContainersRunning": 1, "ContainersPaused": 0, "ContainersStopped": 2,
            "Images": 4, "ServerVersion": "0.1.0", "Driver": "overlay2",
            "DriverStatus": [["Backing Filesystem", "extfs"]],
            "SecurityOptions": ["name=seccomp,profile=builtin"], "MemTotal": 33_350_000_000i64,
            "NCPU": 2, "KernelVersion": "6.1.0"
        });
        let out = pretty_info(&info);
        assert!(
            out.starts_with(
                " Containers: 3\n  Running: 1\n  Paused: 0\n  Stopped: 2\n Images: 4\n"
            ),
            "{out}"
        );
        assert!(
            out.contains(" Storage Driver: overlay2\n  Backing Filesystem: extfs\n"),
            "{out}"
        );
        assert!(
            out.contains(" Security Options:\n  seccomp\n   Profile: builtin\n"),
            "{out}"
        );
        assert!(out.contains(" Total Memory: 31.06GiB\n"), "{out}");
    }
}
