//! The `POST /containers/create` body from `run`/`create` flags, following the docker CLI's
//! mapping (`-v` → `HostConfig.Binds` or `Volumes`, `--memory` → bytes, `--restart` →
//! `RestartPolicy`, `--env-file` before `-e`, …). Keys are left out when their flag is not
//! given, so the daemon's defaults apply.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{json, Map, Value};

use super::run::RunArgs;

/// The create body for `args`; `lookup` reads our environment for `-e NAME` without a value.
pub fn create_body(
    args: &RunArgs,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Value, String> {
    let (image, cmd) = args
        .args
        .split_first()
        .ok_or("\"run\" requires at least 1 argument")?;
    let mut env = Vec::new();
    for file in &args.env_file {
        env.extend(read_env_file(file, &lookup)?);
    }
    for e in &args.env {
        env.extend(env_entry(e, &lookup)?);
    }

    let mut binds = Vec::new();
    let mut volumes = Map::new();
    for spec in &args.volume {
        match parse_volume(spec)? {
            Volume::Bind(b) => binds.push(Value::String(b)),
            Volume::Anonymous(path) => {
                volumes.insert(path, json!({}));
            }
        }
    }

    let attached = !args.detach;
    let mut config = Map::new();
    config.insert("Image".into(), json!(image));
    if !cmd.is_empty() {
        config.insert("Cmd".into(), json!(cmd));
    }
    if let Some(ep) = &args.entrypoint {
        // An empty --entrypoint resets the image's entrypoint, sent as [""] like docker.
        config.insert("Entrypoint".into(), json!([ep]));
    }
    if !env.is_empty() {
        config.insert("Env".into(), json!(env));
    }
    put_str(&mut config, "User", &args.user);
    put_str(&mut config, "WorkingDir", &args.workdir);
    put_str(&mut config, "Hostname", &args.hostname);
    put_str(&mut config, "Domainname", &args.domainname);
    put_str(&mut config, "StopSignal", &args.stop_signal);
    if let Some(t) = args.stop_timeout {
        config.insert("StopTimeout".into(), json!(t));
    }
    if !args.label.is_empty() {
        config.insert("Labels".into(), json!(kv_map(&args.label)));
    }
    if !volumes.is_empty() {
        config.insert("Volumes".into(), Value::Object(volumes));
    }
    config.insert("Tty".into(), json!(args.tty));
    config.insert("OpenStdin".into(), json!(args.interactive));
    config.insert("StdinOnce".into(), json!(args.interactive && attached));
    config.insert("AttachStdin".into(), json!(args.interactive && attached));
    config.insert("AttachStdout".into(), json!(attached));
    config.insert("AttachStderr".into(), json!(attached));

    let mut host = Map::new();
    if !binds.is_empty() {
        host.insert("Binds".into(), Value::Array(binds));
    }
    put_list(&mut host, "VolumesFrom", &args.volumes_from);
    if !args.device.is_empty() {
        let devices = args
            .device
            .iter()
            .map(|d| parse_device(d))
            .collect::<Result<Vec<_>, _>>()?;
        host.insert("Devices".into(), Value::Array(devices));
    }
    put_true(&mut host, "Privileged", args.privileged);
    put_true(&mut host, "ReadonlyRootfs", args.read_only);
    put_true(&mut host, "AutoRemove", args.rm);
    put_true(&mut host, "Init", args.init);
    let (cap_add, cap_drop) = effective_caps(&args.cap_add, &args.cap_drop);
    put_list(&mut host, "CapAdd", &cap_add);
    put_list(&mut host, "CapDrop", &cap_drop);
    if !args.tmpfs.is_empty() {
        let mut tmpfs = Map::new();
        for t in &args.tmpfs {
            let (path, opts) = t.split_once(':').unwrap_or((t, ""));
            if !path.starts_with('/') {
                return Err(format!("invalid tmpfs path: {path}: must be absolute"));
            }
            tmpfs.insert(path.to_string(), json!(opts));
        }
        host.insert("Tmpfs".into(), Value::Object(tmpfs));
    }
    put_num(&mut host, "Memory", args.memory);
    put_num(&mut host, "MemorySwap", args.memory_swap);
    put_num(&mut host, "MemoryReservation", args.memory_reservation);
    put_num(&mut host, "NanoCpus", args.cpus);
    put_num(&mut host, "CpuShares", args.cpu_shares);
    put_num(&mut host, "PidsLimit", args.pids_limit);
    put_num(&mut host, "ShmSize", args.shm_size);
    put_num(&mut host, "OomScoreAdj", args.oom_score_adj);
    if let Some(r) = &args.restart {
        let policy = restart_policy(r)?;
        if args.rm && policy["Name"] != "no" {
            return Err("conflicting options: cannot specify both --restart and --rm".into());
        }
        host.insert("RestartPolicy".into(), policy);
    }
    put_str(&mut host, "NetworkMode", &args.network);
    put_str(&mut host, "PidMode", &args.pid);
    put_str(&mut host, "IpcMode", &args.ipc);
    put_str(&mut host, "UTSMode", &args.uts);
    put_str(&mut host, "UsernsMode", &args.userns);
    put_str(&mut host, "CgroupnsMode", &args.cgroupns);
    put_str(&mut host, "CgroupParent", &args.cgroup_parent);
    if args.log_driver.is_some() || !args.log_opt.is_empty() {
        let mut opts = BTreeMap::new();
        for o in &args.log_opt {
            let Some((k, v)) = o.split_once('=') else {
                return Err(format!("invalid key/value pair format in logging opt: {o}"));
            };
            opts.insert(k.to_string(), v.to_string());
        }
        host.insert(
            "LogConfig".into(),
            json!({"Type": args.log_driver.clone().unwrap_or_default(), "Config": opts}),
        );
    }
    put_list(&mut host, "GroupAdd", &args.group_add);
    put_list(&mut host, "SecurityOpt", &args.security_opt);
    let hosts: Vec<String> = args
        .add_host
        .iter()
        .map(|h| extra_host(h))
        .collect::<Result<_, _>>()?;
    put_list(&mut host, "ExtraHosts", &hosts);
    put_list(&mut host, "Dns", &args.dns);
    put_list(&mut host, "DnsSearch", &args.dns_search);
    put_list(&mut host, "DnsOptions", &args.dns_option);
    if !args.sysctl.is_empty() {
        let mut sysctls = BTreeMap::new();
        for s in &args.sysctl {
            let Some((k, v)) = s.split_once('=') else {
                return Err(format!(
                    "invalid argument \"{s}\" for \"--sysctl\" flag: sysctl '{s}' is not allowed"
                ));
            };
            sysctls.insert(k.to_string(), v.to_string());
        }
        host.insert("Sysctls".into(), json!(sysctls));
    }
    if !args.ulimit.is_empty() {
        let ulimits = args
            .ulimit
            .iter()
            .map(|u| parse_ulimit(u))
            .collect::<Result<Vec<_>, _>>()?;
        host.insert("Ulimits".into(), Value::Array(ulimits));
    }
    config.insert("HostConfig".into(), Value::Object(host));
    Ok(Value::Object(config))
}

fn put_str(m: &mut Map<String, Value>, key: &str, v: &Option<String>) {
    if let Some(v) = v {
        m.insert(key.into(), json!(v));
    }
}

fn put_num(m: &mut Map<String, Value>, key: &str, v: Option<i64>) {
    if let Some(v) = v {
        m.insert(key.into(), json!(v));
    }
}

fn put_true(m: &mut Map<String, Value>, key: &str, v: bool) {
    if v {
        m.insert(key.into(), json!(true));
    }
}

fn put_list(m: &mut Map<String, Value>, key: &str, v: &[String]) {
    if !v.is_empty() {
        m.insert(key.into(), json!(v));
    }
}

/// Capabilities as docker sends them: upper case with the `CAP_` prefix, `ALL` standing
/// alone, one added and dropped cancelling out, sorted.
fn effective_caps(add: &[String], drop: &[String]) -> (Vec<String>, Vec<String>) {
    let normalize = |caps: &[String]| -> BTreeSet<String> {
        let set: BTreeSet<String> = caps
            .iter()
            .map(|c| {
                let c = c.trim().to_uppercase();
                if c == "ALL" || c.starts_with("CAP_") {
                    c
                } else {
                    format!("CAP_{c}")
                }
            })
            .collect();
        if set.contains("ALL") {
            BTreeSet::from(["ALL".to_string()])
        } else {
            set
        }
    };
    let (add, drop) = (normalize(add), normalize(drop));
    let both: BTreeSet<String> = add.intersection(&drop).cloned().collect();
    (
        add.difference(&both).cloned().collect(),
        drop.difference(&both).cloned().collect(),
    )
}

/// `k=v` and bare `k` (empty value) entries as a map, as docker reads labels.
fn kv_map(entries: &[String]) -> BTreeMap<String, String> {
    entries
        .iter()
        .map(|e| {
            let (k, v) = e.split_once('=').unwrap_or((e, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// One `-e` value: `K=V` as is, a bare `K` takes our value of `K` if we have one.
fn env_entry(e: &str, lookup: &impl Fn(&str) -> Option<String>) -> Result<Option<String>, String> {
    let (k, value) = match e.split_once('=') {
        Some((k, _)) => (k, true),
        None => (e, false),
    };
    if k.is_empty() {
        return Err(format!("invalid environment variable: {e}"));
    }
    if value {
        return Ok(Some(e.to_string()));
    }
    Ok(Some(match lookup(k) {
        Some(v) => format!("{k}={v}"),
        None => e.to_string(),
    }))
}

/// An `--env-file`: `K=V` lines, `#` comments and blank lines skipped, a bare `K` taking our
/// value of `K` (dropped when we have none).
fn read_env_file(
    path: &Path,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| super::go_io_error("open", path, &e))?;
    parse_env_file(&text, lookup)
}

fn parse_env_file(
    text: &str,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((k, v)) => {
                if k.is_empty() {
                    return Err(format!("no variable name on line '{line}'"));
                }
                if k.contains(char::is_whitespace) {
                    return Err(format!("variable '{k}' contains whitespaces"));
                }
                out.push(format!("{k}={v}"));
            }
            None => {
                let k = line.trim_end();
                if let Some(v) = lookup(k) {
                    out.push(format!("{k}={v}"));
                }
            }
        }
    }
    Ok(out)
}

enum Volume {
    /// `src:dst[:mode]`, for `HostConfig.Binds`.
    Bind(String),
    /// A bare container path, for `Config.Volumes`.
    Anonymous(String),
}

fn parse_volume(spec: &str) -> Result<Volume, String> {
    let invalid = || format!("invalid volume specification: '{spec}'");
    let parts: Vec<&str> = spec.split(':').collect();
    match parts.as_slice() {
        [path] if path.starts_with('/') => Ok(Volume::Anonymous(path.to_string())),
        [src, dst] | [src, dst, _] if !src.is_empty() && dst.starts_with('/') => {
            // docker resolves ./relative host paths against the working directory.
            if *src == "." || src.starts_with("./") {
                let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
                let abs = cwd.join(src.trim_start_matches("./").trim_start_matches('.'));
                let abs = abs.to_string_lossy().trim_end_matches('/').to_string();
                let rest = &spec[src.len()..];
                return Ok(Volume::Bind(format!("{abs}{rest}")));
            }
            Ok(Volume::Bind(spec.to_string()))
        }
        _ => Err(invalid()),
    }
}

/// `--device host[:container][:perms]`.
fn parse_device(spec: &str) -> Result<Value, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let valid_mode = |m: &str| !m.is_empty() && m.chars().all(|c| matches!(c, 'r' | 'w' | 'm'));
    let (src, mut dst, mut perms) = (parts[0], "", "rwm");
    match parts.len() {
        1 => {}
        2 if valid_mode(parts[1]) => perms = parts[1],
        2 => dst = parts[1],
        3 if valid_mode(parts[2]) => {
            dst = parts[1];
            perms = parts[2];
        }
        3 => return Err(format!("invalid device mode: {}", parts[2])),
        _ => return Err(format!("invalid device specification: {spec}")),
    }
    if src.is_empty() {
        return Err(format!("invalid device specification: {spec}"));
    }
    if dst.is_empty() {
        dst = src;
    }
    Ok(json!({"PathOnHost": src, "PathInContainer": dst, "CgroupPermissions": perms}))
}

/// `--restart no|always|on-failure[:N]|unless-stopped`.
pub fn restart_policy(spec: &str) -> Result<Value, String> {
    let (name, count) = match spec.split_once(':') {
        Some(("", _)) => {
            return Err("invalid restart policy format: no policy provided before colon".into())
        }
        Some((name, count)) => {
            let n: i64 = count.parse().map_err(|_| {
                "invalid restart policy format: maximum retry count must be an integer".to_string()
            })?;
            (name, Some(n))
        }
        None => (spec, None),
    };
    match name {
        "" | "no" | "always" | "unless-stopped" if count.is_some() => Err(format!(
            "maximum retry count cannot be used with restart policy '{name}'"
        )),
        "" | "no" => Ok(json!({"Name": "no", "MaximumRetryCount": 0})),
        "always" | "unless-stopped" | "on-failure" => {
            let n = count.unwrap_or(0);
            if n < 0 {
                return Err("maximum retry count cannot be negative".into());
            }
            Ok(json!({"Name": name, "MaximumRetryCount": n}))
        }
        other => Err(format!("invalid restart policy '{other}'")),
    }
}

/// `--add-host host:ip` (or `host=ip`) in the `host:ip` form of `ExtraHosts`.
fn extra_host(spec: &str) -> Result<String, String> {
    let (h, ip) = spec
        .split_once('=')
        .or_else(|| spec.split_once(':'))
        .ok_or_else(|| format!("bad format for add-host: \"{spec}\""))?;
    if h.is_empty() || ip.is_empty() {
        return Err(format!("bad format for add-host: \"{spec}\""));
    }
    Ok(format!("{h}:{ip}"))
}

/// `--ulimit name=soft[:hard]`.
fn parse_ulimit(spec: &str) -> Result<Value, String> {
    let bad = || format!("invalid ulimit argument: {spec}");
    let (name, limits) = spec.split_once('=').ok_or_else(bad)?;
    let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
    let soft: i64 = soft.parse().map_err(|_| bad())?;
    let hard: i64 = hard.parse().map_err(|_| bad())?;
    if name.is_empty() || (soft > hard && hard != -1) {
        return Err(bad());
    }
    Ok(json!({"Name": name, "Soft": soft, "Hard": hard}))
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

    fn body(args: &[&str]) -> Result<Value, String> {
        let run = Wrapper::try_parse_from(std::iter::once("run").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?
            .run;
        create_body(&run, |k| (k == "HOME").then(|| "/root".to_string()))
    }

    #[test]
    fn minimal() {
        let b = body(&["busybox"]).unwrap();
        assert_eq!(b["Image"], "busybox");
        assert!(b.get("Cmd").is_none());
        assert_eq!(b["AttachStdout"], true);
        assert_eq!(b["AttachStdin"], false);
        assert_eq!(b["Tty"], false);
        assert_eq!(b["HostConfig"], json!({}));
        let b = body(&["-d", "-it", "busybox", "sh", "-c", "echo hi"]).unwrap();
        assert_eq!(b["Cmd"], json!(["sh", "-c", "echo hi"]));
        assert_eq!(b["AttachStdout"], false);
        assert_eq!(b["OpenStdin"], true);
        assert_eq!(b["StdinOnce"], false);
        assert_eq!(b["Tty"], true);
    }

    #[test]
    fn volumes_and_binds() {
        let b = body(&["-v", "/a:/b:ro", "-v", "/data", "-v", "named:/srv", "img"]).unwrap();
        assert_eq!(b["HostConfig"]["Binds"], json!(["/a:/b:ro", "named:/srv"]));
        assert_eq!(b["Volumes"], json!({"/data": {}}));
        assert!(body(&["-v", "relative", "img"]).is_err());
        assert!(body(&["-v", "/a:b", "img"]).is_err());
        assert!(body(&["-v", "/a:/b:ro:x", "img"]).is_err());
        let b = body(&["-v", "./x:/y", "img"]).unwrap();
        let bind = b["HostConfig"]["Binds"][0].as_str().unwrap().to_string();
        assert!(bind.starts_with('/') && bind.ends_with("/x:/y"), "{bind}");
        let b = body(&["--volumes-from", "other:ro", "img"]).unwrap();
        assert_eq!(b["HostConfig"]["VolumesFrom"], json!(["other:ro"]));
    }

    #[test]
    fn resources() {
        let b = body(&[
            "--memory",
            "64m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "100",
            "img",
        ])
        .unwrap();
        assert_eq!(b["HostConfig"]["Memory"], 67_108_864);
        assert_eq!(b["HostConfig"]["NanoCpus"], 500_000_000);
        assert_eq!(b["HostConfig"]["PidsLimit"], 100);
        let b = body(&[
            "-m",
            "1g",
            "--memory-swap",
            "-1",
            "--shm-size",
            "128m",
            "img",
        ])
        .unwrap();
        assert_eq!(b["HostConfig"]["Memory"], 1_073_741_824);
        assert_eq!(b["HostConfig"]["MemorySwap"], -1);
        assert_eq!(b["HostConfig"]["ShmSize"], 134_217_728);
    }

    #[test]
    fn restart_policies() {
        let b = body(&["--restart", "on-failure:3", "img"]).unwrap();
        assert_eq!(
            b["HostConfig"]["RestartPolicy"],
            json!({"Name": "on-failure", "MaximumRetryCount": 3})
        );
        let b = body(&["--restart", "always", "img"]).unwrap();
        assert_eq!(b["HostConfig"]["RestartPolicy"]["Name"], "always");
        let b = body(&["--restart", "unless-stopped", "img"]).unwrap();
        assert_eq!(b["HostConfig"]["RestartPolicy"]["Name"], "unless-stopped");
        let b = body(&["--restart", "no", "--rm", "img"]).unwrap();
        assert_eq!(b["HostConfig"]["RestartPolicy"]["Name"], "no");
        assert_eq!(b["HostConfig"]["AutoRemove"], true);
        assert_eq!(
            body(&["--restart", "always", "--rm", "img"]).unwrap_err(),
            "conflicting options: cannot specify both --restart and --rm"
        );
        assert!(restart_policy("on-failure:x").is_err());
        assert!(restart_policy(":3").is_err());
        assert!(restart_policy("always:3").is_err());
        assert!(restart_policy("sometimes").is_err());
    }

    #[test]
    fn env_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("env");
        std::fs::write(
            &file,
            "# comment\n\nFROM_FILE=1\nHOME\nUNSET_VAR\nSPACED=a b\n",
        )
        .unwrap();
        let file = file.to_str().unwrap();
        let b = body(&[
            "--env-file",
            file,
            "-e",
            "A=1",
            "-e",
            "HOME",
            "-e",
            "NOPE",
            "-l",
            "k=v",
            "-l",
            "flag",
            "img",
        ])
        .unwrap();
        assert_eq!(
            b["Env"],
            json!([
                "FROM_FILE=1",
                "HOME=/root",
                "SPACED=a b",
                "A=1",
                "HOME=/root",
                "NOPE"
            ])
        );
        assert_eq!(b["Labels"], json!({"flag": "", "k": "v"}));
        assert!(body(&["-e", "=x", "img"]).is_err());
        assert!(parse_env_file("BAD NAME=1", &|_| None).is_err());
    }

    #[test]
    fn namespaces_users_and_misc() {
        let b = body(&[
            "--net",
            "host",
            "--pid",
            "host",
            "--ipc",
            "host",
            "--uts",
            "host",
            "-u",
            "1000:1000",
            "-w",
            "/srv",
            "-h",
            "box",
            "--entrypoint",
            "/bin/sh",
            "--read-only",
            "--privileged",
            "--cap-add",
            "NET_ADMIN",
            "--cap-drop",
            "ALL",
            "--name",
            "x",
            "img",
        ])
        .unwrap();
        let h = &b["HostConfig"];
        assert_eq!(h["NetworkMode"], "host");
        assert_eq!(h["PidMode"], "host");
        assert_eq!(h["IpcMode"], "host");
        assert_eq!(h["UTSMode"], "host");
        assert_eq!(h["ReadonlyRootfs"], true);
        assert_eq!(h["Privileged"], true);
        assert_eq!(h["CapAdd"], json!(["CAP_NET_ADMIN"]));
        assert_eq!(h["CapDrop"], json!(["ALL"]));
        assert_eq!(b["User"], "1000:1000");
        assert_eq!(b["WorkingDir"], "/srv");
        assert_eq!(b["Hostname"], "box");
        assert_eq!(b["Entrypoint"], json!(["/bin/sh"]));
        let b = body(&["--entrypoint", "", "img"]).unwrap();
        assert_eq!(b["Entrypoint"], json!([""]));
    }

    #[test]
    fn capabilities_like_docker() {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            effective_caps(
                &v(&["net_admin", "CAP_SYS_TIME", "sys_time"]),
                &v(&["ALL", "mknod"])
            ),
            (v(&["CAP_NET_ADMIN", "CAP_SYS_TIME"]), v(&["ALL"]))
        );
        assert_eq!(
            effective_caps(&v(&["CHOWN"]), &v(&["chown", "kill"])),
            (v(&[]), v(&["CAP_KILL"]))
        );
    }

    #[test]
    fn devices_tmpfs_logs_and_limits() {
        let b = body(&[
            "--device",
            "/dev/fuse",
            "--device",
            "/dev/sda:/dev/xvda:r",
            "--device",
            "/dev/kvm:rw",
            "--tmpfs",
            "/run",
            "--tmpfs",
            "/tmp:rw,size=64m",
            "--log-opt",
            "max-size=10m",
            "--log-opt",
            "max-file=3",
            "--ulimit",
            "nofile=1024:2048",
            "--add-host",
            "h=1.2.3.4",
            "--sysctl",
            "net.ipv4.ip_forward=1",
            "img",
        ])
        .unwrap();
        let h = &b["HostConfig"];
        assert_eq!(
            h["Devices"],
            json!([
                {"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"},
                {"PathOnHost": "/dev/sda", "PathInContainer": "/dev/xvda", "CgroupPermissions": "r"},
                {"PathOnHost": "/dev/kvm", "PathInContainer": "/dev/kvm", "CgroupPermissions": "rw"}
            ])
        );
        assert_eq!(h["Tmpfs"], json!({"/run": "", "/tmp": "rw,size=64m"}));
        assert_eq!(
            h["LogConfig"],
            json!({"Type": "", "Config": {"max-size": "10m", "max-file": "3"}})
        );
        assert_eq!(
            h["Ulimits"],
            json!([{"Name": "nofile", "Soft": 1024, "Hard": 2048}])
        );
        assert_eq!(h["ExtraHosts"], json!(["h:1.2.3.4"]));
        assert_eq!(h["Sysctls"], json!({"net.ipv4.ip_forward": "1"}));
        assert!(body(&["--log-opt", "max-size", "img"]).is_err());
        assert!(body(&["--tmpfs", "run", "img"]).is_err());
        assert!(body(&["--device", "/a:/b:c:d", "img"]).is_err());
    }
}
