//! Container lifecycle: create, start (through a shim), stop, kill, restart, remove, wait;
//! exit handling with restart policies and backoff; re-adoption after a daemon restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::AsyncBufReadExt;

use super::container::{Container, Record, ShimInfo};
use super::{Daemon, DaemonError};
use crate::api::types::{CreateRequest, HostConfig, MountPoint, State};
use crate::runtime::spec::{
    self, ContainerSpec, ExitStatus, Mount, MountKind, NsMode, StartReport,
};
use crate::{fsutil, ids, sys};

const FIRST_BACKOFF_MS: u64 = 100;
const MAX_BACKOFF_MS: u64 = 60_000;
/// A container that ran this long before exiting is restarted without delay growth.
const STABLE_RUN: Duration = Duration::from_secs(10);

fn now() -> String {
    crate::jsonlog::now()
}

fn valid_name(name: &str) -> bool {
    let n = name.strip_prefix('/').unwrap_or(name);
    let mut chars = n.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && n.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// Parses `SIGTERM`, `TERM`, `term` or `15`.
pub fn parse_signal(s: &str) -> Result<Signal, DaemonError> {
    let bad = || DaemonError::InvalidParameter(format!("Invalid signal: {s}"));
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let up = s.to_ascii_uppercase();
    let full = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    full.parse::<Signal>().map_err(|_| bad())
}

/// `KEY=value` lists: `extra` overrides `base` key by key, keeping `base`'s order.
pub(crate) fn merge_env(mut base: Vec<String>, extra: Vec<String>) -> Vec<String> {
    for e in extra {
        let key = e.split('=').next().unwrap_or("").to_string();
        base.retain(|x| x.split('=').next() != Some(key.as_str()));
        base.push(e);
    }
    base
}

/// The capabilities a container's processes (and its execs) keep.
pub(crate) fn capabilities(hc: &HostConfig, privileged: bool) -> Result<Vec<String>, DaemonError> {
    if privileged {
        return Ok(crate::runtime::caps::all_names());
    }
    crate::runtime::caps::compute(
        spec::DEFAULT_CAPABILITIES,
        &hc.cap_add.clone().unwrap_or_default(),
        &hc.cap_drop.clone().unwrap_or_default(),
    )
    .map_err(DaemonError::InvalidParameter)
}

/// Stricter than dockerd, whose default is off: processes of containers that are not
/// privileged run with no_new_privs, unless the container says `no-new-privileges:false`
/// (a console whose sudo needs setuid).
pub(crate) fn no_new_privileges(hc: &HostConfig, privileged: bool) -> bool {
    let opted_out = hc
        .security_opt
        .as_ref()
        .is_some_and(|s| s.iter().any(|o| o == "no-new-privileges:false"));
    !(privileged || opted_out)
}

/// The image's defaults under the container's settings, as Docker merges them.
fn merge_image_config(req: &mut CreateRequest, image_cfg: &serde_json::Value) {
    let ic = image_cfg.get("config").cloned().unwrap_or_default();
    let strings = |v: Option<&serde_json::Value>| -> Option<Vec<String>> {
        v.and_then(|v| v.as_array()).map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
    };
    let c = &mut req.config;
    c.env = Some(merge_env(
        strings(ic.get("Env")).unwrap_or_default(),
        c.env.take().unwrap_or_default(),
    ));
    if c.entrypoint.is_none() {
        c.entrypoint = strings(ic.get("Entrypoint"));
        if c.cmd.is_none() {
            c.cmd = strings(ic.get("Cmd"));
        }
    }
    if c.working_dir.is_empty() {
        c.working_dir = ic
            .get("WorkingDir")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
    }
    if c.user.is_empty() {
        c.user = ic
            .get("User")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
    }
    let mut labels: BTreeMap<String, String> = ic
        .get("Labels")
        .and_then(|l| l.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default();
    labels.extend(c.labels.take().unwrap_or_default());
    c.labels = Some(labels);
    if c.stop_signal.is_none() {
        c.stop_signal = ic
            .get("StopSignal")
            .and_then(|v| v.as_str())
            .map(str::to_string);
    }
}

fn host_hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".into())
}

/// `POST /containers/create`.
pub async fn create(
    d: &Arc<Daemon>,
    name: Option<String>,
    mut req: CreateRequest,
) -> Result<String, DaemonError> {
    if req.config.image.is_empty() {
        return Err(DaemonError::InvalidParameter(
            "config.Image: no image specified".into(),
        ));
    }
    let images = d.images.clone();
    let image_name = req.config.image.clone();
    let image = tokio::task::spawn_blocking(move || images.get(&image_name))
        .await
        .map_err(|e| DaemonError::Internal(e.to_string()))??;
    merge_image_config(&mut req, &image.config);
    let hc = req.host_config.take().unwrap_or_default();
    validate_host_config(&hc)?;
    let mut args: Vec<String> = req.config.entrypoint.clone().unwrap_or_default();
    args.extend(req.config.cmd.clone().unwrap_or_default());
    if args.is_empty() {
        return Err(DaemonError::InvalidParameter("No command specified".into()));
    }
    let path = args.remove(0);

    let _guard = d.create_lock.lock().await;
    let id = ids::new_id();
    let name = match name.filter(|n| !n.is_empty()) {
        Some(n) => {
            if !valid_name(&n) {
                return Err(DaemonError::InvalidParameter(format!(
                    "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                )));
            }
            let n = if n.starts_with('/') {
                n
            } else {
                format!("/{n}")
            };
            if let Some(other) = d.all().into_iter().find(|c| c.lock().name == n) {
                return Err(DaemonError::Conflict(format!(
                    "Conflict. The container name \"{n}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                    other.id
                )));
            }
            n
        }
        None => {
            let taken: Vec<String> = d.all().iter().map(|c| c.lock().name.clone()).collect();
            (0..)
                .map(|i| format!("/{}", ids::generated_name(&id, i)))
                .find(|n| !taken.contains(n))
                .unwrap_or_else(|| format!("/{}", ids::short(&id)))
        }
    };
    if req.config.hostname.is_empty() {
        req.config.hostname = if hc.network_mode == "host" {
            host_hostname()
        } else {
            ids::short(&id).to_string()
        };
    }
    let dir = d.cfg.containers_dir().join(&id);
    for sub in ["rootfs/upper", "rootfs/work", "rootfs/merged"] {
        let p = dir.join(sub);
        std::fs::create_dir_all(&p).map_err(DaemonError::io(&p))?;
    }
    let result = (|| -> Result<Arc<Container>, DaemonError> {
        write_etc_files(&dir, &req.config.hostname, &hc.network_mode)?;
        if req.config.open_stdin {
            let fifo = dir.join("stdin.fifo");
            nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
                .map_err(|e| DaemonError::io(&fifo)(e.into()))?;
        }
        let rec = Record {
            id: id.clone(),
            name,
            created: now(),
            path,
            args,
            config: req.config,
            host_config: hc,
            image_id: image.id.clone(),
            state: State {
                status: "created".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        let c = Arc::new(Container::new(dir.clone(), rec));
        c.persist()?;
        Ok(c)
    })();
    let c = match result {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    d.insert(c.clone());
    d.events.publish("container", "create", &id, attrs(&c));
    Ok(id)
}

fn validate_host_config(hc: &HostConfig) -> Result<(), DaemonError> {
    if let Some(rp) = &hc.restart_policy {
        match rp.name.as_str() {
            "" | "no" | "always" | "unless-stopped" | "on-failure" => {}
            other => {
                return Err(DaemonError::InvalidParameter(format!(
                    "invalid restart policy '{other}'"
                )))
            }
        }
        if rp.maximum_retry_count < 0 {
            return Err(DaemonError::InvalidParameter(
                "invalid restart policy: maximum retry count cannot be negative".into(),
            ));
        }
        if rp.name != "on-failure" && rp.maximum_retry_count > 0 {
            return Err(DaemonError::InvalidParameter(
                "invalid restart policy: maximum retry count can only be used with 'on-failure'"
                    .into(),
            ));
        }
        if hc.auto_remove && !matches!(rp.name.as_str(), "" | "no") {
            return Err(DaemonError::InvalidParameter(
                "conflicting options: cannot specify both --restart and --rm".into(),
            ));
        }
    }
    if hc.memory < 0 || hc.nano_cpus < 0 {
        return Err(DaemonError::InvalidParameter(
            "invalid resource limit: negative value".into(),
        ));
    }
    if hc.memory > 0 && hc.memory < 6 * 1024 * 1024 {
        return Err(DaemonError::InvalidParameter(
            "Minimum memory limit allowed is 6MB".into(),
        ));
    }
    if hc.nano_cpus > 0 && (hc.cpu_quota > 0 || hc.cpu_period > 0) {
        return Err(DaemonError::InvalidParameter(
            "Conflicting options: Nano CPUs and CPU Period cannot both be set".into(),
        ));
    }
    for mode in [&hc.network_mode, &hc.pid_mode, &hc.ipc_mode, &hc.uts_mode] {
        let ok = matches!(
            mode.as_str(),
            "" | "host" | "none" | "default" | "bridge" | "private" | "shareable"
        ) || mode.starts_with("container:");
        if !ok {
            return Err(DaemonError::InvalidParameter(format!(
                "invalid namespace mode: {mode:?}"
            )));
        }
    }
    if !(-1000..=1000).contains(&hc.oom_score_adj) {
        return Err(DaemonError::InvalidParameter(format!(
            "Invalid value {}, range for oom score adj is [-1000, 1000]",
            hc.oom_score_adj
        )));
    }
    if let Some(d) = &hc.devices {
        if let Some(bad) = d.iter().find(|d| !d.path_on_host.starts_with('/')) {
            return Err(DaemonError::InvalidParameter(format!(
                "invalid device path: {:?}",
                bad.path_on_host
            )));
        }
    }
    Ok(())
}

/// /etc/hostname, /etc/hosts and /etc/resolv.conf of the container, kept in its dir.
fn write_etc_files(dir: &Path, hostname: &str, network_mode: &str) -> Result<(), DaemonError> {
    let write = |name: &str, data: String| {
        let p = dir.join(name);
        fsutil::write_atomic_unsynced(&p, data.as_bytes()).map_err(DaemonError::io(&p))
    };
    write("hostname", format!("{hostname}\n"))?;
    let hosts = if network_mode == "host" {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n")
    };
    write("hosts", hosts)?;
    write(
        "resolv.conf",
        std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
    )?;
    Ok(())
}

pub fn attrs(c: &Container) -> BTreeMap<String, String> {
    let r = c.lock();
    let mut a: BTreeMap<String, String> = r.config.labels.clone().unwrap_or_default();
    a.insert("name".into(), r.name.trim_start_matches('/').to_string());
    a.insert("image".into(), r.config.image.clone());
    a
}

fn ns_mode(d: &Daemon, mode: &str, default: NsMode) -> Result<NsMode, DaemonError> {
    match mode {
        "host" => Ok(NsMode::Host),
        "" | "default" | "bridge" | "none" | "private" | "shareable" => Ok(default),
        m => {
            let other = m.strip_prefix("container:").unwrap_or(m);
            let o = d.find(other)?;
            let pid = o.lock().state.pid;
            if pid <= 0 {
                return Err(DaemonError::Conflict(format!(
                    "cannot join namespace of a non running container: {other}"
                )));
            }
            Ok(NsMode::Join(pid))
        }
    }
}

/// Parses `-v` binds: `SRC:DST[:OPTS]`; a SRC without `/` is a named local volume.
fn parse_bind(d: &Daemon, bind: &str) -> Result<(Mount, MountPoint), DaemonError> {
    let parts: Vec<&str> = bind.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [s, t] => (*s, *t, ""),
        [s, t, o] => (*s, *t, *o),
        _ => {
            return Err(DaemonError::InvalidParameter(format!(
                "invalid volume specification: '{bind}'"
            )))
        }
    };
    if !dst.starts_with('/') {
        return Err(DaemonError::InvalidParameter(format!(
            "invalid volume specification: '{bind}': invalid mount config for type \"bind\": invalid mount path: '{dst}' mount path must be absolute"
        )));
    }
    let mut read_only = false;
    let mut propagation = None;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => read_only = true,
            "rw" | "z" | "Z" | "nocopy" => {}
            "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" => {
                propagation = Some(o.to_string())
            }
            _ => {
                return Err(DaemonError::InvalidParameter(format!(
                    "invalid mode: {o} (in volume '{bind}')"
                )))
            }
        }
    }
    let (kind, name, source) = if src.starts_with('/') {
        ("bind", String::new(), PathBuf::from(src))
    } else {
        if src.is_empty() || src.contains('/') {
            return Err(DaemonError::InvalidParameter(format!(
                "invalid volume specification: '{bind}'"
            )));
        }
        (
            "volume",
            src.to_string(),
            d.cfg.data_root.join("volumes").join(src).join("_data"),
        )
    };
    if !source.exists() {
        // Docker creates a missing bind source as a directory; a named volume likewise.
        std::fs::create_dir_all(&source).map_err(DaemonError::io(&source))?;
    }
    let mp = MountPoint {
        r#type: kind.into(),
        name,
        source: source.display().to_string(),
        destination: dst.to_string(),
        driver: if kind == "volume" {
            "local".into()
        } else {
            String::new()
        },
        mode: opts.to_string(),
        rw: !read_only,
        propagation: propagation.clone().unwrap_or_else(|| {
            if kind == "bind" {
                "rprivate".into()
            } else {
                String::new()
            }
        }),
    };
    let m = Mount {
        kind: MountKind::Bind,
        source,
        destination: dst.to_string(),
        read_only,
        propagation,
        data: None,
    };
    Ok((m, mp))
}

fn size_to_bytes(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.trim_end_matches('b');
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().ok().map(|n| n * mult)
}

/// The volumes of a container, for `--volumes-from`: as mounted at its last start, or —
/// for one never started — as its binds and mounts declare them.
fn volume_points(d: &Daemon, rec: &Record) -> Result<Vec<MountPoint>, DaemonError> {
    if !rec.mounts.is_empty() {
        return Ok(rec.mounts.clone());
    }
    let mut points = Vec::new();
    for b in rec.host_config.binds.clone().unwrap_or_default() {
        points.push(parse_bind(d, &b)?.1);
    }
    for m in rec.host_config.mounts.clone().unwrap_or_default() {
        if matches!(m.r#type.as_str(), "bind" | "volume" | "") {
            let ro = if m.read_only { ":ro" } else { "" };
            points.push(parse_bind(d, &format!("{}:{}{ro}", m.source, m.target))?.1);
        }
    }
    Ok(points)
}

/// Everything the shim needs, from the record and the image.
fn build_spec(
    d: &Daemon,
    c: &Container,
    rec: &Record,
) -> Result<(ContainerSpec, Vec<MountPoint>), DaemonError> {
    let hc = &rec.host_config;
    let image = d.images.get(&rec.image_id)?;
    let lower = d.images.layer_paths(&image)?;
    let mut mounts = Vec::new();
    let mut points = Vec::new();
    for from in hc.volumes_from.clone().unwrap_or_default() {
        let (name, mode) = from.split_once(':').unwrap_or((from.as_str(), ""));
        let other = d.find(name)?;
        let other_points = volume_points(d, &other.snapshot())?;
        for mut p in other_points.into_iter().filter(|p| p.r#type != "tmpfs") {
            let read_only = match mode {
                "ro" => true,
                "rw" => false,
                "" => !p.rw,
                m => {
                    return Err(DaemonError::InvalidParameter(format!(
                        "invalid mode for volumes-from: {m}"
                    )))
                }
            };
            p.rw = !read_only;
            mounts.push(Mount {
                kind: MountKind::Bind,
                source: PathBuf::from(&p.source),
                destination: p.destination.clone(),
                read_only,
                propagation: Some(p.propagation.clone()).filter(|s| !s.is_empty()),
                data: None,
            });
            points.push(p);
        }
    }
    for b in hc.binds.clone().unwrap_or_default() {
        let (m, p) = parse_bind(d, &b)?;
        mounts.push(m);
        points.push(p);
    }
    for m in hc.mounts.clone().unwrap_or_default() {
        match m.r#type.as_str() {
            "bind" | "volume" | "" => {
                let opts = match (
                    m.read_only,
                    m.bind_options.as_ref().and_then(|b| b.propagation.clone()),
                ) {
                    (true, Some(p)) => format!(":ro,{p}"),
                    (true, None) => ":ro".into(),
                    (false, Some(p)) => format!(":{p}"),
                    (false, None) => String::new(),
                };
                let (mm, p) = parse_bind(d, &format!("{}:{}{opts}", m.source, m.target))?;
                mounts.push(mm);
                points.push(p);
            }
            "tmpfs" => {
                let mut data = vec![];
                if let Some(t) = &m.tmpfs_options {
                    if let Some(s) = t.size_bytes {
                        data.push(format!("size={s}"));
                    }
                    data.push(format!("mode={:o}", t.mode.unwrap_or(0o1777)));
                }
                mounts.push(Mount {
                    kind: MountKind::Tmpfs,
                    source: PathBuf::new(),
                    destination: m.target.clone(),
                    read_only: m.read_only,
                    propagation: None,
                    data: (!data.is_empty()).then(|| data.join(",")),
                });
                points.push(MountPoint {
                    r#type: "tmpfs".into(),
                    destination: m.target,
                    rw: !m.read_only,
                    ..Default::default()
                });
            }
            t => {
                return Err(DaemonError::InvalidParameter(format!(
                    "mount type unknown: {t:?}"
                )))
            }
        }
    }
    for (dst, opts) in hc.tmpfs.clone().unwrap_or_default() {
        let mut read_only = false;
        let data: Vec<&str> = opts
            .split(',')
            .filter(|o| !o.is_empty())
            .filter(|o| match *o {
                "ro" => {
                    read_only = true;
                    false
                }
                "rw" | "noexec" | "exec" | "nosuid" | "suid" | "nodev" | "dev" => false,
                _ => true,
            })
            .collect();
        let mut data = data.join(",");
        if !data.contains("mode=") {
            data = if data.is_empty() {
                "mode=1777".into()
            } else {
                format!("{data},mode=1777")
            };
        }
        mounts.push(Mount {
            kind: MountKind::Tmpfs,
            source: PathBuf::new(),
            destination: dst.clone(),
            read_only,
            propagation: None,
            data: Some(data),
        });
        points.push(MountPoint {
            r#type: "tmpfs".into(),
            destination: dst,
            rw: !read_only,
            ..Default::default()
        });
    }
    let devices = hc
        .devices
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|dm| spec::Device {
            container_path: if dm.path_in_container.is_empty() {
                dm.path_on_host.clone()
            } else {
                dm.path_in_container
            },
            host_path: PathBuf::from(dm.path_on_host),
        })
        .collect();
    let capabilities = capabilities(hc, hc.privileged)?;
    let mut resources = spec::Resources::default();
    if hc.memory > 0 {
        resources.memory = Some(hc.memory);
    }
    if hc.nano_cpus > 0 {
        resources.cpu_period = Some(100_000);
        resources.cpu_quota = Some(hc.nano_cpus / 10_000);
    } else if hc.cpu_quota > 0 {
        resources.cpu_quota = Some(hc.cpu_quota);
        resources.cpu_period = (hc.cpu_period > 0).then_some(hc.cpu_period as u64);
    }
    if let Some(p) = hc.pids_limit.filter(|p| *p > 0) {
        resources.pids = Some(p);
    }
    let log_cfg = hc
        .log_config
        .as_ref()
        .and_then(|l| l.config.clone())
        .unwrap_or_default();
    let opt = |k: &str| log_cfg.get(k).cloned().or_else(|| d.cfg.log_opt(k));
    let max_size = match opt("max-size") {
        Some(s) => Some(size_to_bytes(&s).ok_or_else(|| {
            DaemonError::InvalidParameter(format!("invalid log max-size: {s:?}"))
        })?),
        None => Some(10 << 20),
    };
    let max_files = match opt("max-file") {
        Some(s) => s
            .parse()
            .map_err(|_| DaemonError::InvalidParameter(format!("invalid log max-file: {s:?}")))?,
        None => 3,
    };
    let rootdir = c.dir.join("rootfs");
    let ns = spec::Namespaces {
        net: ns_mode(d, &hc.network_mode, NsMode::Private)?,
        pid: ns_mode(d, &hc.pid_mode, NsMode::Private)?,
        ipc: ns_mode(d, &hc.ipc_mode, NsMode::Private)?,
        uts: ns_mode(d, &hc.uts_mode, NsMode::Private)?,
    };
    let mut etc_files = vec![(c.dir.join("hostname"), "/etc/hostname".to_string())];
    etc_files.push((c.dir.join("hosts"), "/etc/hosts".into()));
    etc_files.push((c.dir.join("resolv.conf"), "/etc/resolv.conf".into()));
    let cgroup_parent = if hc.cgroup_parent.is_empty() {
        d.cfg.cgroup_parent.clone()
    } else {
        hc.cgroup_parent.clone()
    };
    let spec = ContainerSpec {
        id: rec.id.clone(),
        rootfs: spec::Rootfs {
            lower,
            upper: rootdir.join("upper"),
            work: rootdir.join("work"),
            target: rootdir.join("merged"),
            read_only: hc.readonly_rootfs,
        },
        args: std::iter::once(rec.path.clone())
            .chain(rec.args.iter().cloned())
            .collect(),
        env: {
            let mut env = rec.config.env.clone().unwrap_or_default();
            if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
                env.insert(0, format!("HOSTNAME={}", rec.config.hostname));
            }
            env
        },
        cwd: rec.config.working_dir.clone(),
        user: rec.config.user.clone(),
        hostname: rec.config.hostname.clone(),
        namespaces: ns,
        mounts,
        devices,
        privileged: hc.privileged,
        capabilities,
        no_new_privileges: no_new_privileges(hc, hc.privileged),
        masked_paths: spec::MASKED_PATHS.iter().map(|s| s.to_string()).collect(),
        readonly_paths: spec::READONLY_PATHS.iter().map(|s| s.to_string()).collect(),
        etc_files,
        cgroup_parent,
        resources,
        log: spec::LogConfig {
            path: c.log_path(),
            max_size,
            max_files,
        },
        exit_file: c.dir.join("exit.json"),
        stdin_fifo: rec.config.open_stdin.then(|| c.dir.join("stdin.fifo")),
        oom_score_adj: oom_score_adj(hc),
    };
    Ok((spec, points))
}

/// The OOM score adjustment a container's processes get; create refused anything outside
/// the kernel's range.
pub(crate) fn oom_score_adj(hc: &HostConfig) -> i32 {
    hc.oom_score_adj.clamp(-1000, 1000) as i32
}

/// `POST /containers/{id}/start`.
pub async fn start(d: &Arc<Daemon>, c: &Arc<Container>) -> Result<(), DaemonError> {
    let _op = c.op.lock().await;
    start_locked(d, c, false).await
}

async fn start_locked(
    d: &Arc<Daemon>,
    c: &Arc<Container>,
    by_policy: bool,
) -> Result<(), DaemonError> {
    let rec = c.snapshot();
    if rec.state.running {
        return Err(DaemonError::NotModified);
    }
    if by_policy && rec.manually_stopped {
        return Ok(());
    }
    let (spec, points) = {
        let d2 = d.clone();
        let c2 = c.clone();
        tokio::task::spawn_blocking(move || build_spec(&d2, &c2, &rec))
            .await
            .map_err(|e| DaemonError::Internal(e.to_string()))??
    };
    let spec_path = c.dir.join("spec.json");
    fsutil::write_json_atomic_unsynced(&spec_path, &spec).map_err(DaemonError::io(&spec_path))?;
    let exit_file = c.dir.join("exit.json");
    let _ = std::fs::remove_file(&exit_file);
    // Fresh work dir contents each start: a stale overlay work dir makes the mount fail.
    let shim_log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(c.dir.join("shim.log"))
        .map_err(DaemonError::io(c.dir.join("shim.log")))?;
    let mut child = tokio::process::Command::new(&d.shim.0)
        .args(&d.shim.1)
        .arg("run")
        .arg(&c.dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(shim_log)
        .spawn()
        .map_err(DaemonError::io(&d.shim.0))?;
    let shim_pid = child.id().unwrap_or(0) as i32;
    let start_time = sys::process_start_time(shim_pid).unwrap_or(0);
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| DaemonError::Internal("shim has no stdout".into()))?;
    let mut line = String::new();
    let read = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::io::BufReader::new(stdout).read_line(&mut line),
    )
    .await;
    let report: StartReport = match read {
        Ok(Ok(_)) => serde_json::from_str(line.trim()).unwrap_or_else(|_| StartReport::Failed {
            error: format!("shim did not report (see {}/shim.log)", c.dir.display()),
            exit_code: 128,
        }),
        Ok(Err(e)) => StartReport::Failed {
            error: format!("reading the shim's report: {e}"),
            exit_code: 128,
        },
        Err(_) => {
            let _ = child.start_kill();
            StartReport::Failed {
                error: "the shim did not start the container within 60s".into(),
                exit_code: 128,
            }
        }
    };
    match report {
        StartReport::Started { pid } => {
            c.update(|r| {
                r.state = State {
                    status: "running".into(),
                    running: true,
                    pid,
                    started_at: now(),
                    finished_at: r.state.finished_at.clone(),
                    ..Default::default()
                };
                r.manually_stopped = false;
                r.shim = Some(ShimInfo {
                    pid: shim_pid,
                    start_time,
                });
                r.mounts = points;
            })?;
            c.mark_started();
            d.events.publish("container", "start", &c.id, attrs(c));
            let d2 = d.clone();
            let c2 = c.clone();
            tokio::spawn(async move {
                let _ = child.wait().await;
                on_exit(d2, c2).await;
            });
            Ok(())
        }
        StartReport::Failed { error, exit_code } => {
            let _ = child.wait().await;
            c.update(|r| {
                r.state.exit_code = exit_code;
                r.state.error = error.clone();
                if r.state.status != "created" {
                    r.state.status = "exited".into();
                }
                r.state.running = false;
                r.state.restarting = false;
                r.state.pid = 0;
            })?;
            if c.lock().host_config.auto_remove && !by_policy {
                let d2 = d.clone();
                let c2 = c.clone();
                tokio::spawn(async move { remove_now(&d2, &c2) });
            }
            Err(DaemonError::StartFailed(error))
        }
    }
}

/// The shim is gone: record the exit status and apply the restart policy. Boxed because
/// it starts containers again, and starting a container spawns this.
fn on_exit(
    d: Arc<Daemon>,
    c: Arc<Container>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(on_exit_inner(d, c, true))
}

/// Records a container's exit; restarts it per its policy when `may_restart`.
async fn on_exit_inner(d: Arc<Daemon>, c: Arc<Container>, may_restart: bool) {
    let (d, c) = (&d, &c);
    let exit: Option<ExitStatus> = std::fs::read(c.dir.join("exit.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let missing = exit.is_none();
    let (code, finished, oom) = match exit {
        Some(e) => (e.exit_code, e.finished_at, e.oom_killed),
        // The shim itself was killed: the container's status is unknown.
        None => (255, now(), false),
    };
    let started_at = c.lock().state.started_at.clone();
    let res = c.update(|r| {
        r.state.running = false;
        r.state.pid = 0;
        r.state.exit_code = code;
        r.state.finished_at = finished.clone();
        r.state.oom_killed = oom;
        r.state.status = "exited".into();
        r.shim = None;
        if missing {
            r.state.error = "shim exited without recording the container's status".into();
        }
    });
    if let Err(e) = res {
        log::error!("container {}: recording exit: {e}", c.id);
    }
    let mut a = attrs(c);
    a.insert("exitCode".into(), code.to_string());
    d.events.publish("container", "die", &c.id, a);
    c.mark_exited();
    let rec = c.snapshot();
    if rec.host_config.auto_remove {
        // Attached clients (`docker run --rm`) read the output from the log file, which
        // goes with the container: let them finish first.
        let mut readers = c.attached.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(5), readers.wait_for(|n| *n == 0)).await;
        remove_now(d, c);
        return;
    }
    let policy = rec.host_config.restart_policy.clone().unwrap_or_default();
    let restart = !rec.manually_stopped
        && match policy.name.as_str() {
            "always" | "unless-stopped" => true,
            "on-failure" => {
                code != 0
                    && (policy.maximum_retry_count == 0
                        || i64::from(rec.restart_count) < policy.maximum_retry_count)
            }
            _ => false,
        };
    if !restart || !may_restart {
        return;
    }
    let ran = chrono::DateTime::parse_from_rfc3339(&started_at)
        .map(|s| {
            chrono::Utc::now()
                .signed_duration_since(s)
                .to_std()
                .unwrap_or_default()
        })
        .unwrap_or_default();
    let delay = if ran >= STABLE_RUN {
        FIRST_BACKOFF_MS
    } else {
        let prev = c.backoff_ms.load(Ordering::Relaxed);
        if prev == 0 {
            FIRST_BACKOFF_MS
        } else {
            (prev * 2).min(MAX_BACKOFF_MS)
        }
    };
    c.backoff_ms.store(delay, Ordering::Relaxed);
    let _ = c.update(|r| {
        r.state.restarting = true;
        r.state.status = "restarting".into();
    });
    let d2 = d.clone();
    let c2 = c.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let _op = c2.op.lock().await;
        if c2.lifecycle.borrow().removed {
            return;
        }
        let _ = c2.update(|r| {
            r.state.restarting = false;
            if !r.state.running {
                r.state.status = "exited".into();
            }
        });
        if c2.lock().manually_stopped {
            return;
        }
        let _ = c2.update(|r| r.restart_count += 1);
        match start_locked(&d2, &c2, true).await {
            Ok(()) => d2
                .events
                .publish("container", "restart", &c2.id, attrs(&c2)),
            Err(e) => log::warn!("container {}: restart failed: {e}", c2.id),
        }
    });
}

/// Sends `sig` to the container's first process.
fn signal(c: &Container, sig: Signal) -> Result<(), DaemonError> {
    let pid = c.lock().state.pid;
    if pid <= 0 {
        return Err(DaemonError::NotRunning(c.id.clone()));
    }
    sys::kill(pid, sig).map_err(|e| DaemonError::Internal(format!("sending {sig} to {pid}: {e}")))
}

async fn wait_exit(c: &Container, since_exits: u64, timeout: Duration) -> bool {
    let mut rx = c.lifecycle.subscribe();
    let done = tokio::time::timeout(timeout, async {
        let _ = rx.wait_for(|l| l.exits > since_exits || l.removed).await;
    })
    .await;
    done.is_ok()
}

/// `POST /containers/{id}/stop`: the stop signal, then SIGKILL after the timeout.
pub async fn stop(
    d: &Arc<Daemon>,
    c: &Arc<Container>,
    timeout: Option<i64>,
    sig: Option<String>,
) -> Result<(), DaemonError> {
    let _op = c.op.lock().await;
    stop_locked(d, c, timeout, sig).await
}

async fn stop_locked(
    d: &Arc<Daemon>,
    c: &Arc<Container>,
    timeout: Option<i64>,
    sig: Option<String>,
) -> Result<(), DaemonError> {
    let rec = c.snapshot();
    c.update(|r| r.manually_stopped = true)?;
    if !rec.state.running {
        if rec.state.restarting {
            c.update(|r| {
                r.state.restarting = false;
                r.state.status = "exited".into();
            })?;
            return Ok(());
        }
        return Err(DaemonError::NotModified);
    }
    let sig = parse_signal(
        sig.as_deref()
            .or(rec.config.stop_signal.as_deref())
            .unwrap_or("SIGTERM"),
    )?;
    let secs = timeout.or(rec.config.stop_timeout).unwrap_or(10);
    let exits = c.lifecycle.borrow().exits;
    let mut a = attrs(c);
    a.insert("signal".into(), (sig as i32).to_string());
    d.events.publish("container", "kill", &c.id, a);
    let _ = signal(c, sig);
    let graceful = secs >= 0 && wait_exit(c, exits, Duration::from_secs(secs as u64)).await;
    if !graceful {
        let _ = signal(c, Signal::SIGKILL);
        if !wait_exit(c, exits, Duration::from_secs(30)).await {
            return Err(DaemonError::Internal(format!(
                "container {} did not exit after SIGKILL",
                c.id
            )));
        }
    }
    d.events.publish("container", "stop", &c.id, attrs(c));
    Ok(())
}

/// `POST /containers/{id}/kill`.
pub async fn kill(
    d: &Arc<Daemon>,
    c: &Arc<Container>,
    sig: Option<String>,
) -> Result<(), DaemonError> {
    let sig = parse_signal(sig.as_deref().unwrap_or("SIGKILL"))?;
    if !c.lock().state.running {
        return Err(DaemonError::Conflict(format!(
            "Container {} is not running",
            c.id
        )));
    }
    if matches!(sig, Signal::SIGKILL | Signal::SIGTERM | Signal::SIGINT) {
        c.update(|r| r.manually_stopped = true)?;
    }
    let mut a = attrs(c);
    a.insert("signal".into(), (sig as i32).to_string());
    d.events.publish("container", "kill", &c.id, a);
    signal(c, sig)
}

/// `POST /containers/{id}/restart`.
pub async fn restart(
    d: &Arc<Daemon>,
    c: &Arc<Container>,
    timeout: Option<i64>,
) -> Result<(), DaemonError> {
    let _op = c.op.lock().await;
    match stop_locked(d, c, timeout, None).await {
        Ok(()) | Err(DaemonError::NotModified) => {}
        Err(e) => return Err(e),
    }
    start_locked(d, c, false).await?;
    d.events.publish("container", "restart", &c.id, attrs(c));
    Ok(())
}

/// `DELETE /containers/{id}`.
pub async fn remove(d: &Arc<Daemon>, c: &Arc<Container>, force: bool) -> Result<(), DaemonError> {
    let _op = c.op.lock().await;
    let running = c.lock().state.running;
    if running {
        if !force {
            return Err(DaemonError::Conflict(format!(
                "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
                c.id
            )));
        }
        c.update(|r| r.manually_stopped = true)?;
        let exits = c.lifecycle.borrow().exits;
        let _ = signal(c, Signal::SIGKILL);
        if !wait_exit(c, exits, Duration::from_secs(30)).await {
            return Err(DaemonError::Internal(format!(
                "container {} did not exit after SIGKILL",
                c.id
            )));
        }
    }
    if c.lifecycle.borrow().removed {
        return Ok(());
    }
    c.update(|r| r.manually_stopped = true)?;
    remove_now(d, c);
    Ok(())
}

fn remove_now(d: &Daemon, c: &Container) {
    if c.lifecycle.borrow().removed {
        return;
    }
    let a = attrs(c);
    d.forget(&c.id);
    // The record goes first so a crash mid-way never resurrects a half-deleted container.
    let _ = std::fs::remove_file(c.dir.join("container.json"));
    if let Err(e) = std::fs::remove_dir_all(&c.dir) {
        log::warn!("removing {}: {e}", c.dir.display());
    }
    c.mark_removed();
    d.events.publish("container", "destroy", &c.id, a);
}

/// `POST /containers/{id}/wait`: the exit code once the condition holds.
pub async fn wait(c: &Arc<Container>, condition: &str) -> Result<i32, DaemonError> {
    let mut rx = c.lifecycle.subscribe();
    let start = *rx.borrow();
    match condition {
        "" | "not-running" => {
            let running = {
                let r = c.lock();
                r.state.running || r.state.restarting
            };
            if running {
                let _ = rx.wait_for(|l| l.exits > start.exits || l.removed).await;
            }
        }
        "next-exit" => {
            let _ = rx.wait_for(|l| l.exits > start.exits || l.removed).await;
        }
        "removed" => {
            let _ = rx.wait_for(|l| l.removed).await;
        }
        other => {
            return Err(DaemonError::InvalidParameter(format!(
                "invalid condition: \"{other}\" (must be one of not-running, next-exit, removed)"
            )))
        }
    }
    Ok(c.lock().state.exit_code)
}

/// Reads every container record at daemon start; re-adopts running shims, collects the
/// exit status of those that ended while the daemon was away, and restarts per policy —
/// unless `--no-autostart` says the daemon's client recreates its containers itself (ros
/// at boot: system containers are made fresh each boot, and an old one started first
/// would grab the consoles and devices its successor needs).
pub async fn restore(d: &Arc<Daemon>) {
    let dir = d.cfg.containers_dir();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if !path.join("container.json").exists() {
            // A create that crashed before its record was written.
            let _ = std::fs::remove_dir_all(&path);
            continue;
        }
        let c = match Container::load(&path) {
            Ok(c) => Arc::new(c),
            Err(err) => {
                log::error!("skipping container {}: {err}", path.display());
                continue;
            }
        };
        d.insert(c.clone());
        let rec = c.snapshot();
        let alive = rec
            .shim
            .is_some_and(|s| sys::process_alive(s.pid, s.start_time));
        if rec.state.running && alive {
            let shim = rec.shim.map(|s| s.pid).unwrap_or(0);
            log::info!("re-adopting container {} (shim {shim})", ids::short(&c.id));
            match sys::pidfd_open(shim) {
                Ok(fd) => {
                    let d2 = d.clone();
                    let c2 = c.clone();
                    tokio::spawn(async move {
                        if let Err(err) = sys::pidfd_wait(fd).await {
                            log::error!("watching shim of {}: {err}", c2.id);
                        }
                        on_exit(d2, c2).await;
                    });
                }
                Err(err) => log::error!("watching shim {shim}: {err}"),
            }
        } else if rec.state.running || rec.state.restarting {
            on_exit_inner(d.clone(), c.clone(), !d.cfg.no_autostart).await;
        } else if !d.cfg.no_autostart {
            let policy = rec
                .host_config
                .restart_policy
                .clone()
                .unwrap_or_default()
                .name;
            if policy == "always" || (policy == "unless-stopped" && !rec.manually_stopped) {
                if let Err(err) = start(d, &c).await {
                    log::warn!(
                        "container {}: start at daemon start failed: {err}",
                        ids::short(&c.id)
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_signals() {
        assert!(valid_name("web-1.a_b"));
        assert!(valid_name("/ab"));
        assert!(!valid_name("-x"));
        assert!(!valid_name("a b"));
        assert_eq!(parse_signal("TERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("sigusr1").unwrap(), Signal::SIGUSR1);
        assert!(parse_signal("NOPE").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(size_to_bytes("10m"), Some(10 << 20));
        assert_eq!(size_to_bytes("1k"), Some(1024));
        assert_eq!(size_to_bytes("512"), Some(512));
        assert_eq!(size_to_bytes("x"), None);
    }

    #[test]
    fn image_defaults_merge_under_container_settings() {
        let img = serde_json::json!({"config": {"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"], "WorkingDir": "/w", "Labels": {"l": "i"}}});
        let mut req: CreateRequest = serde_json::from_value(
            serde_json::json!({"Image": "x", "Env": ["A=2"], "Labels": {"m": "c"}}),
        )
        .unwrap();
        merge_image_config(&mut req, &img);
        assert_eq!(req.config.env.unwrap(), ["PATH=/bin", "A=2"]);
        assert_eq!(req.config.cmd.unwrap(), ["sh"]);
        assert_eq!(req.config.working_dir, "/w");
        assert_eq!(req.config.labels.unwrap().len(), 2);
        let mut req: CreateRequest =
            serde_json::from_value(serde_json::json!({"Image": "x", "Entrypoint": ["top"]}))
                .unwrap();
        merge_image_config(&mut req, &img);
        assert_eq!(
            req.config.cmd, None,
            "an entrypoint given at create drops the image's Cmd"
        );
    }
}
