//! Applying a merged cloud-config and the datasource's metadata to a host root: what `ros
//! cloud-init apply` does at boot (and `ros config apply` by hand).
//!
//! Steps, in order: hostname, users and SSH keys, `write_files`, `ros.sysctl`,
//! `ros.modules`, `ros.environment`, `mounts`, deferred `write_files`, `timezone`
//! (`etc/timezone`, `etc/localtime`), `ntp` (a chrony sources file the ntp service reads at
//! start), `ca_certs` (the trusted certificates and the `etc/ssl/certs` bundle), commands
//! (`bootcmd` every boot; `runcmd` and userdata scripts once per instance id). Each step is
//! independent: one that fails is reported and the others still apply, so a typo in
//! `write_files` never costs the host its SSH keys.
//!
//! Every path is under [`ApplyOptions::root`] (`/` on a booted host, a tempdir in tests). Does
//! not own: mounting, loading kernel modules (PID 1 reads what is written here), the network.

mod accounts;
mod certs;
mod commands;
mod files;
mod hostname;
mod system;
mod time;
mod users;

use std::fmt;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::ExitStatus;

use serde_json::{Map, Value};

use crate::instance::Metadata;
use crate::schema::CloudConfig;

/// Where and how to apply.
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// The host root every path is relative to.
    pub root: PathBuf,
    /// Whether to run `bootcmd`, `runcmd` and userdata scripts at all.
    pub run_commands: bool,
    /// True at boot: `bootcmd` runs.
    pub boot: bool,
    /// Whether `runcmd` and userdata scripts run here (once per instance id). At boot they
    /// run late, once the services are up ([`run_late`]), so this is false there.
    pub late_commands: bool,
}

/// What was done and what failed, one line each (`users: alice: uid 1200 in use by bob`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub done: Vec<String>,
    pub errors: Vec<String>,
}

impl ApplyReport {
    fn ok(&mut self, step: &str, what: impl fmt::Display) {
        self.done.push(format!("{step}: {what}"));
    }

    /// One line: the step, the error, and its sources.
    fn fail(&mut self, step: &str, err: &ApplyError) {
        let mut line = format!("{step}: {err}");
        let mut source = std::error::Error::source(err);
        while let Some(s) = source {
            line.push_str(&format!(": {s}"));
            source = s.source();
        }
        self.errors.push(line);
    }
}

/// Why one part of a step failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("cannot {op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A value the host cannot take (a path escaping the root, an unknown owner, …).
    #[error("{0}")]
    Invalid(String),
    #[error("cannot run {command}")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("{command} failed: {status}")]
    Failed { command: String, status: ExitStatus },
    #[error("{command} still ran after {}s; killed", after.as_secs())]
    TimedOut {
        command: String,
        after: std::time::Duration,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl Fn(io::Error) -> ApplyError + 'a {
    move |source| ApplyError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Applies `config` (the merged, validated document as JSON — what [`crate::load::load`]
/// gives in `Loaded.value`) and the datasource's metadata to the host under `opts.root`.
pub fn apply(config: &Value, meta: Option<&Metadata>, opts: &ApplyOptions) -> ApplyReport {
    let mut report = ApplyReport::default();
    let Some(cfg) = typed(config, &mut report) else {
        return report;
    };
    let root = opts.root.as_path();
    let is_host = root == Path::new("/");
    let r = &mut report;

    hostname::apply(root, is_host, &cfg, meta, r);
    users::apply(root, &cfg, meta, r);
    let files = cfg.write_files.as_deref().unwrap_or_default();
    files::apply(root, files.iter().filter(|f| !f.defer), r);
    if let Some(ros) = &cfg.ros {
        if let Some(sysctl) = &ros.sysctl {
            system::sysctl(root, sysctl, r);
        }
        if let Some(modules) = &ros.modules {
            system::modules(root, modules, r);
        }
        if let Some(env) = &ros.environment {
            system::environment(root, env, r);
        }
    }
    if let Some(mounts) = &cfg.mounts {
        system::mounts(root, mounts, r);
    }
    // After users exist and before runcmd, as cloud-init's write_files_deferred: a deferred
    // file may be owned by a user made above and used by a command below.
    files::apply(root, files.iter().filter(|f| f.defer), r);
    if let Some(tz) = &cfg.timezone {
        time::timezone(root, tz.as_str(), r);
    }
    // Also without `ntp:`: the file is on the state partition, and a config that no longer
    // names servers must not keep the old ones.
    time::ntp(root, cfg.ntp.as_ref(), r);
    // After both write_files passes, so a certificate one drops into
    // usr/local/share/ca-certificates is in the bundle too; before commands, which may use it.
    if let Some(ca) = &cfg.ca_certs {
        certs::apply(root, ca, r);
    }
    if opts.run_commands {
        if opts.boot {
            commands::boot(root, &cfg, r);
        }
        if opts.late_commands {
            commands::late(root, &cfg, meta, r);
        }
    }
    report
}

/// `runcmd` and the userdata scripts, once per instance id: what a boot runs last, when the
/// services (the user engine among them) are up.
pub fn run_late(config: &Value, meta: Option<&Metadata>, root: &Path) -> ApplyReport {
    let mut report = ApplyReport::default();
    if let Some(cfg) = typed(config, &mut report) {
        commands::late(root, &cfg, meta, &mut report);
    }
    report
}

/// The typed config. Layers were validated one by one when loaded, so the merge validates
/// too; should it not, the top-level keys that validate alone are still applied.
fn typed(config: &Value, report: &mut ApplyReport) -> Option<CloudConfig> {
    if config.is_null() || config.as_object().is_some_and(Map::is_empty) {
        return Some(CloudConfig::default());
    }
    let check = |v: &Value| {
        crate::parse_document("merged config", &crate::edit::to_document(v)).map(|v| v.config)
    };
    match check(config) {
        Ok(c) => Some(c),
        Err(e) => {
            report.errors.push(format!("config: {e}"));
            let map = config.as_object()?;
            let kept: Map<String, Value> = map
                .iter()
                .filter(|(k, v)| {
                    let one: Map<String, Value> =
                        [((*k).clone(), (*v).clone())].into_iter().collect();
                    check(&Value::Object(one)).is_ok()
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            check(&Value::Object(kept)).ok()
        }
    }
}

/// `path` (absolute in the config, or relative) under `root`. `..` is refused: it could
/// leave the root.
fn under_root(root: &Path, path: &str) -> Result<PathBuf, ApplyError> {
    let mut out = root.to_path_buf();
    for c in Path::new(path).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(ApplyError::Invalid(format!(
                    "{path:?}: \"..\" is not allowed in a path"
                )))
            }
        }
    }
    if out == root {
        return Err(ApplyError::Invalid(format!("{path:?}: not a file path")));
    }
    Ok(out)
}

/// Rewrites `path` in place: truncate and write the whole content, then fsync. For files a
/// running host bind-mounts one by one into the console (`/etc/passwd`, `group`, `shadow`,
/// `hosts`, `hostname`): a rename would leave the container with the old inode, and fails
/// with EBUSY on a bind-mount target. `mode` applies only when the file is created.
fn write_in_place(path: &Path, data: &[u8], mode: u32) -> Result<(), ApplyError> {
    if let Some(dir) = path.parent() {
        create_dirs(dir)?;
    }
    let err = io_err("write", path);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io_err("open", path))?;
    f.write_all(data).map_err(&err)?;
    f.sync_all().map_err(err)
}

/// `mkdir -p` with mode 0755 for what it creates.
fn create_dirs(dir: &Path) -> Result<(), ApplyError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(io_err("create directory", dir))
}

/// Writes `data` to `path` by rename (a reader sees the old file or the new one, never half
/// of it), creating the directories; nothing when the file already holds exactly that.
fn replace_file(path: &Path, data: &[u8], mode: u32) -> Result<(), ApplyError> {
    match fs::read(path) {
        Ok(old) if old == data => return Ok(()),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("read", path)(e)),
    }
    if let Some(dir) = path.parent() {
        create_dirs(dir)?;
    }
    crate::edit::write_atomic(path, data, mode).map_err(io_err("write", path))
}

/// Removes `path` if it is there; whether it was.
fn remove_file(path: &Path) -> Result<bool, ApplyError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err("remove", path)(e)),
    }
}

/// A file's text, empty when it does not exist yet.
fn read_or_empty(path: &Path) -> Result<String, ApplyError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(io_err("read", path)(e)),
    }
}

/// Changes the owner without following a symlink at `path`. Not being root is not an error
/// (a test or a dry run as a user); a root that cannot chown is.
fn chown(path: &Path, uid: u32, gid: Option<u32>) -> Result<(), ApplyError> {
    match std::os::unix::fs::lchown(path, Some(uid), gid) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied && !is_root() => Ok(()),
        Err(e) => Err(io_err("chown", path)(e)),
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn chmod(path: &Path, mode: u32) -> Result<(), ApplyError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err("chmod", path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::MetadataExt;

    pub(super) fn opts(root: &Path) -> ApplyOptions {
        ApplyOptions {
            root: root.to_path_buf(),
            run_commands: true,
            boot: true,
            late_commands: true,
        }
    }

    #[test]
    fn paths_stay_under_root() {
        let root = Path::new("/r");
        assert_eq!(
            under_root(root, "/etc/x").unwrap(),
            PathBuf::from("/r/etc/x")
        );
        assert_eq!(
            under_root(root, "etc/./x").unwrap(),
            PathBuf::from("/r/etc/x")
        );
        assert!(under_root(root, "/etc/../../x").is_err());
        assert!(under_root(root, "/").is_err());
    }

    #[test]
    fn in_place_keeps_the_inode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("etc/hosts");
        write_in_place(&p, b"one\n", 0o644).unwrap();
        let ino = fs::metadata(&p).unwrap().ino();
        write_in_place(&p, b"two\n", 0o600).unwrap();
        let m = fs::metadata(&p).unwrap();
        assert_eq!(m.ino(), ino);
        assert_eq!(m.mode() & 0o777, 0o644);
        assert_eq!(fs::read_to_string(&p).unwrap(), "two\n");
    }

    #[test]
    fn empty_config_does_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let r = apply(&Value::Null, None, &opts(dir.path()));
        assert!(r.errors.is_empty() && r.done.is_empty(), "{r:?}");
        let r = apply(&json!({}), None, &opts(dir.path()));
        assert!(r.errors.is_empty() && r.done.is_empty(), "{r:?}");
    }

    #[test]
    fn an_invalid_key_keeps_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = json!({"hostname": "bad_name!", "ros": {"modules": ["br_netfilter"]}});
        let r = apply(&cfg, None, &opts(dir.path()));
        assert_eq!(r.errors.len(), 1, "{r:?}");
        assert!(r.errors[0].contains("hostname"), "{r:?}");
        let conf = dir.path().join("etc/modules-load.d/cloud-config.conf");
        assert_eq!(fs::read_to_string(conf).unwrap(), "br_netfilter\n");
        assert!(!dir.path().join("etc/hostname").exists());
    }

    #[test]
    fn applies_what_load_gives() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("var/lib/ros/conf");
        fs::create_dir_all(&conf).unwrap();
        let yaml = "#cloud-config\nhostname: edge\nwrite_files:\n  - path: /etc/motd\n    \
                    permissions: 0600\n    encoding: b64\n    content: aGkK\nrancher:\n  \
                    environment:\n    A: b\n";
        fs::write(conf.join("cloud-config.yml"), yaml).unwrap();
        let loaded = crate::load::load(&crate::load::ConfigPaths::new(dir.path()));
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let r = apply(&loaded.value, None, &opts(dir.path()));
        assert!(r.errors.is_empty(), "{r:?}");
        let motd = dir.path().join("etc/motd");
        assert_eq!(fs::read(&motd).unwrap(), b"hi\n");
        assert_eq!(fs::metadata(&motd).unwrap().mode() & 0o777, 0o600);
        assert_eq!(
            fs::read_to_string(dir.path().join("etc/environment")).unwrap(),
            "A=b\n"
        );
    }

    #[test]
    fn time_and_certificates_are_independent() {
        let dir = tempfile::tempdir().unwrap();
        let pem = "-----BEGIN CERTIFICATE-----\nQQ==\n-----END CERTIFICATE-----\n";
        let cfg = json!({
            "timezone": "Mars/Olympus_Mons",
            "ntp": {"servers": ["10.0.0.1"]},
            "ca_certs": {"trusted": [pem]},
        });
        let r = apply(&cfg, None, &opts(dir.path()));
        assert_eq!(r.errors.len(), 1, "{r:?}");
        assert!(
            r.errors[0].starts_with("timezone: Mars/Olympus_Mons: "),
            "{r:?}"
        );
        let sources = dir
            .path()
            .join("var/lib/ros/ntp/sources.d/cloud-config.sources");
        assert!(fs::read_to_string(sources)
            .unwrap()
            .contains("server 10.0.0.1 iburst\n"));
        assert_eq!(
            fs::read_to_string(dir.path().join("etc/ssl/certs/ca-certificates.crt")).unwrap(),
            pem
        );
    }

    #[test]
    fn steps_are_independent() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = json!({
            "hostname": "node1",
            "write_files": [
                {"path": "/etc/a", "content": "a", "owner": "nosuch"},
                {"path": "/etc/b", "content": "b"},
            ],
            "ros": {"sysctl": {"net.ipv4.ip_forward": "1"}},
        });
        let r = apply(&cfg, None, &opts(dir.path()));
        assert_eq!(r.errors.len(), 2, "{r:?}");
        assert_eq!(
            fs::read_to_string(dir.path().join("etc/hostname")).unwrap(),
            "node1\n"
        );
        assert_eq!(fs::read_to_string(dir.path().join("etc/b")).unwrap(), "b");
    }
}
