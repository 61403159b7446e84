//! The service model: one entry of `ros.services` in the RancherOS `os-config.yml` shape.
//!
//! [`ServiceDef`] is a definition as written in one file (every field optional, lenient
//! about YAML spellings, unknown fields refused by name); definitions from several files
//! merge as trees (see [`crate::config`]). [`Service`] is the merged, normalized result the
//! reconciler works with; its [`Service::config_hash`] decides keep-vs-recreate.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::fields::{
    parse_bool, Bytes, Flag, Float, HostList, Int, Nanos, Pairs, Restart, Text, TextList, Words,
};

/// Labels ros reads and writes. `io.rancher.os.<x>` is accepted for every `io.ros.<x>`.
pub mod labels {
    /// The service a container belongs to (set by the reconciler).
    pub const SERVICE: &str = "io.ros.service";
    /// sha256 of the normalized definition the container was created from.
    pub const CONFIG_HASH: &str = "io.ros.config-hash";
    /// `system` (the default): the service runs on system-docker.
    pub const SCOPE: &str = "io.ros.scope";
    /// Comma list of services this one starts after.
    pub const AFTER: &str = "io.ros.after";
    /// Comma list of services this one starts before.
    pub const BEFORE: &str = "io.ros.before";
    /// `false`: run to completion before dependents start; a non-zero exit is a failure.
    pub const DETACH: &str = "io.ros.detach";
    /// `true`: create the container, never start it (a volumes holder, say).
    pub const CREATEONLY: &str = "io.ros.createonly";
    /// `true`: keep the container (and its writable layer) across boots.
    pub const PERSISTENT: &str = "io.ros.persistent";
    /// The RancherOS spelling of the `io.ros.` prefix.
    pub const RANCHER_PREFIX: &str = "io.rancher.os.";
    pub const ROS_PREFIX: &str = "io.ros.";
}

/// A problem with one field of one definition. `field` is a path (`privileged`,
/// `healthcheck.interval`, `labels.io.ros.detach`); empty for the definition as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "field {:?}: {}", self.field, self.message)
        }
    }
}

/// `healthcheck:` as compose writes it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthcheckDef {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<Words>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<Nanos>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Nanos>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_period: Option<Nanos>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<Nanos>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<Int>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable: Option<Flag>,
}

/// `logging:` as compose writes it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingDef {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<Text>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<Pairs>,
}

/// Every field a definition may have (aliases included), for "unknown field" messages.
pub const FIELDS: &[&str] = &[
    "image",
    "command",
    "entrypoint",
    "environment",
    "labels",
    "volumes",
    "volumes_from",
    "devices",
    "net",
    "network_mode",
    "pid",
    "ipc",
    "uts",
    "privileged",
    "cap_add",
    "cap_drop",
    "restart",
    "read_only",
    "tmpfs",
    "user",
    "working_dir",
    "healthcheck",
    "hostname",
    "domainname",
    "tty",
    "stdin_open",
    "init",
    "mem_limit",
    "memory_limit",
    "cpus",
    "cpu_shares",
    "pids_limit",
    "shm_size",
    "oom_score_adj",
    "log_driver",
    "log_opt",
    "logging",
    "stop_signal",
    "stop_grace_period",
    "dns",
    "extra_hosts",
    "security_opt",
    "cgroup_parent",
];

/// One service's definition as written in one file. Serializes canonically (aliases folded,
/// absent fields left out) so definitions merge as plain trees and read back the same.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceDef {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<Text>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Words>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Words>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<Pairs>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Pairs>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volumes: Option<TextList>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volumes_from: Option<TextList>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub devices: Option<TextList>,
    /// RancherOS's spelling of `network_mode`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net: Option<Text>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<Text>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<Text>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipc: Option<Text>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uts: Option<Text>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privileged: Option<Flag>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cap_add: Option<TextList>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cap_drop: Option<TextList>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart: Option<Restart>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only: Option<Flag>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<TextList>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<Text>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<Text>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthcheckDef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<Text>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domainname: Option<Text>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tty: Option<Flag>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdin_open: Option<Flag>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<Flag>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_limit: Option<Bytes>,
    /// RancherOS's spelling of `mem_limit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<Bytes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Float>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<Int>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<Int>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<Bytes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<Int>,
    /// compose v1's spelling of `logging.driver`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_driver: Option<Text>,
    /// compose v1's spelling of `logging.options`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_opt: Option<Pairs>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logging: Option<LoggingDef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<Text>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<Nanos>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<TextList>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_hosts: Option<HostList>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_opt: Option<TextList>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup_parent: Option<Text>,
}

/// The closest known field to a misspelt one, if it is close enough to be a typo.
fn suggest(unknown: &str) -> Option<&'static str> {
    FIELDS
        .iter()
        .map(|f| (edit_distance(unknown, f), *f))
        .filter(|(d, f)| *d <= 2.max(f.len() / 4))
        .min()
        .map(|(_, f)| f)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

impl ServiceDef {
    /// Parses one file's definition of a service. Every unknown field (with the known field
    /// it probably meant) and every field of the wrong type is reported.
    pub fn parse(value: &Value) -> Result<ServiceDef, Vec<FieldError>> {
        let Some(map) = value.as_object() else {
            return Err(vec![FieldError::new(
                "",
                format!(
                    "a service definition is a mapping of fields (image, command, …), got {}",
                    type_name(value)
                ),
            )]);
        };
        let mut errors: Vec<FieldError> = Vec::new();
        for (key, v) in map {
            if !FIELDS.contains(&key.as_str()) {
                let hint = suggest(key)
                    .map(|s| format!(" (did you mean {s:?}?)"))
                    .unwrap_or_default();
                errors.push(FieldError::new(key.clone(), format!("unknown field{hint}")));
                continue;
            }
            // Field by field, so every bad one is reported, not only the first.
            let one = Value::Object([(key.clone(), v.clone())].into_iter().collect());
            if let Err(e) = serde_path_to_error::deserialize::<_, ServiceDef>(&one) {
                errors.push(FieldError::new(
                    e.path().to_string(),
                    e.into_inner().to_string(),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut def: ServiceDef = serde_path_to_error::deserialize(value).map_err(|e| {
            let field = e.path().to_string();
            let field = if field == "." { String::new() } else { field };
            vec![FieldError::new(field, e.into_inner().to_string())]
        })?;
        def.canonicalize().map_err(|e| vec![e])?;
        Ok(def)
    }

    /// Folds aliases into their canonical fields (`net` → `network_mode`, `memory_limit` →
    /// `mem_limit`, `log_driver`/`log_opt` → `logging`, `io.rancher.os.*` labels →
    /// `io.ros.*`) and checks the values of the labels ros interprets.
    fn canonicalize(&mut self) -> Result<(), FieldError> {
        fold(
            &mut self.network_mode,
            self.net.take(),
            "net",
            "network_mode",
        )?;
        fold(
            &mut self.mem_limit,
            self.memory_limit.take(),
            "memory_limit",
            "mem_limit",
        )?;
        if self.log_driver.is_some() || self.log_opt.is_some() {
            let logging = self.logging.get_or_insert_with(LoggingDef::default);
            fold(
                &mut logging.driver,
                self.log_driver.take(),
                "log_driver",
                "logging.driver",
            )?;
            if let Some(opts) = self.log_opt.take() {
                let into = logging.options.get_or_insert_with(Pairs::default);
                for (k, v) in opts.0 {
                    into.0.entry(k).or_insert(v);
                }
            }
        }
        if let Some(labels) = &mut self.labels {
            let mut out = BTreeMap::new();
            // Canonical keys first, so they win over their aliases.
            let (canon, alias): (Vec<_>, Vec<_>) = std::mem::take(&mut labels.0)
                .into_iter()
                .partition(|(k, _)| !k.starts_with(labels::RANCHER_PREFIX));
            for (k, v) in canon {
                out.insert(k, v);
            }
            for (k, v) in alias {
                let k = format!(
                    "{}{}",
                    labels::ROS_PREFIX,
                    &k[labels::RANCHER_PREFIX.len()..]
                );
                out.entry(k).or_insert(v);
            }
            for key in [labels::DETACH, labels::CREATEONLY, labels::PERSISTENT] {
                if let Some(Some(v)) = out.get(key) {
                    if parse_bool(v).is_none() {
                        return Err(FieldError::new(
                            format!("labels.{key}"),
                            format!("expected \"true\" or \"false\", got {v:?}"),
                        ));
                    }
                }
            }
            labels.0 = out;
        }
        Ok(())
    }

    /// The canonical tree of this definition (what merges).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Moves `alias` into `canon` unless both are set and disagree.
fn fold<T: PartialEq + fmt::Debug>(
    canon: &mut Option<T>,
    alias: Option<T>,
    alias_name: &str,
    canon_name: &str,
) -> Result<(), FieldError> {
    match (canon.as_ref(), alias) {
        (Some(c), Some(a)) if *c != a => Err(FieldError::new(
            alias_name,
            format!("conflicts with {canon_name} (an alias of it); set only one"),
        )),
        (None, Some(a)) => {
            *canon = Some(a);
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A normalized healthcheck (durations in nanoseconds, as the Docker API has them).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Healthcheck {
    pub test: Vec<String>,
    pub interval: Option<i64>,
    pub timeout: Option<i64>,
    pub start_period: Option<i64>,
    pub start_interval: Option<i64>,
    pub retries: Option<i64>,
}

/// A normalized logging config.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Logging {
    pub driver: Option<String>,
    pub options: BTreeMap<String, String>,
}

/// A merged, normalized service: what the reconciler turns into a container.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Service {
    pub name: String,
    pub image: String,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    /// `KEY=VALUE` (or a bare `KEY`), sorted by key.
    pub environment: Vec<String>,
    /// With `io.rancher.os.*` folded into `io.ros.*`.
    pub labels: BTreeMap<String, String>,
    pub volumes: Vec<String>,
    pub volumes_from: Vec<String>,
    pub devices: Vec<String>,
    pub network_mode: Option<String>,
    pub pid: Option<String>,
    pub ipc: Option<String>,
    pub uts: Option<String>,
    pub privileged: bool,
    pub read_only: bool,
    pub tty: bool,
    pub stdin_open: bool,
    pub init: Option<bool>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub restart: Option<String>,
    pub tmpfs: Vec<String>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub healthcheck: Option<Healthcheck>,
    pub mem_limit: Option<i64>,
    pub cpus: Option<f64>,
    pub cpu_shares: Option<i64>,
    pub pids_limit: Option<i64>,
    pub shm_size: Option<i64>,
    pub oom_score_adj: Option<i64>,
    pub logging: Option<Logging>,
    pub stop_signal: Option<String>,
    /// Nanoseconds.
    pub stop_grace_period: Option<i64>,
    pub dns: Vec<String>,
    pub extra_hosts: Vec<String>,
    pub security_opt: Vec<String>,
    pub cgroup_parent: Option<String>,
}

/// Whether `name` can name a container (and so a service): `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

fn text(t: Option<Text>) -> Option<String> {
    t.map(|t| t.0)
}

fn list(l: Option<TextList>) -> Vec<String> {
    l.map(|l| l.0).unwrap_or_default()
}

fn check_mode(field: &str, value: &Option<String>, allowed: &[&str]) -> Result<(), FieldError> {
    match value {
        Some(v)
            if !allowed.contains(&v.as_str())
                && !v.starts_with("container:")
                && !v.starts_with("service:") =>
        {
            Err(FieldError::new(
                field,
                format!(
                    "{v:?} is not one of {}, container:NAME, service:NAME",
                    allowed.join(", ")
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// `service:NAME` (compose) → `container:NAME` (the Docker API); a service's container is
/// named after it.
fn ns_mode(v: Option<String>) -> Option<String> {
    v.map(|v| match v.strip_prefix("service:") {
        Some(name) => format!("container:{name}"),
        None => v,
    })
}

impl Service {
    /// Normalizes a merged definition. Field types were checked when each file's part was
    /// parsed; what is left is what only the whole can tell (a missing image) and values
    /// that need interpreting (command lines, namespace modes, device specs).
    pub fn from_def(name: &str, def: ServiceDef) -> Result<Service, FieldError> {
        let image = text(def.image)
            .filter(|i| !i.trim().is_empty())
            .ok_or_else(|| FieldError::new("image", "required (the image to run)"))?;
        let command = def
            .command
            .map(|w| w.to_args())
            .transpose()
            .map_err(|e| FieldError::new("command", e))?;
        let entrypoint = def
            .entrypoint
            .map(|w| w.to_args())
            .transpose()
            .map_err(|e| FieldError::new("entrypoint", e))?;
        let environment = def
            .environment
            .map(|p| {
                p.0.into_iter()
                    .map(|(k, v)| match v {
                        Some(v) => format!("{k}={v}"),
                        None => k,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let labels: BTreeMap<String, String> = def
            .labels
            .map(|p| {
                p.0.into_iter()
                    .map(|(k, v)| (k, v.unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        let network_mode = text(def.network_mode);
        check_mode(
            "network_mode",
            &network_mode,
            &["host", "none", "bridge", "default"],
        )?;
        let pid = text(def.pid);
        check_mode("pid", &pid, &["host", ""])?;
        let ipc = text(def.ipc);
        check_mode("ipc", &ipc, &["host", "private", "shareable", "none", ""])?;
        let uts = text(def.uts);
        check_mode("uts", &uts, &["host", ""])?;
        let devices = list(def.devices);
        for d in &devices {
            if !d.starts_with('/') || d.split(':').count() > 3 {
                return Err(FieldError::new(
                    "devices",
                    format!("{d:?} is not /dev/HOST[:/dev/CONTAINER[:rwm]]"),
                ));
            }
        }
        let volumes = list(def.volumes);
        for v in &volumes {
            let parts: Vec<&str> = v.split(':').collect();
            if parts.iter().any(|p| p.is_empty()) || parts.len() > 3 {
                return Err(FieldError::new(
                    "volumes",
                    format!("{v:?} is not [SOURCE:]TARGET[:MODE]"),
                ));
            }
        }
        let tmpfs = list(def.tmpfs);
        if let Some(t) = tmpfs.iter().find(|t| !t.starts_with('/')) {
            return Err(FieldError::new(
                "tmpfs",
                format!("{t:?} is not an absolute path"),
            ));
        }
        if let Some(c) = def.cpus.filter(|c| c.0 <= 0.0) {
            return Err(FieldError::new(
                "cpus",
                format!("must be more than 0, got {}", c.0),
            ));
        }
        let healthcheck = def
            .healthcheck
            .map(|h| -> Result<Healthcheck, FieldError> {
                let test = if h.disable.is_some_and(|d| d.0) {
                    vec!["NONE".to_string()]
                } else {
                    match h.test {
                        Some(Words::Line(s)) => vec!["CMD-SHELL".to_string(), s],
                        Some(Words::List(l)) => l,
                        None => Vec::new(),
                    }
                };
                Ok(Healthcheck {
                    test,
                    interval: h.interval.map(|n| n.0),
                    timeout: h.timeout.map(|n| n.0),
                    start_period: h.start_period.map(|n| n.0),
                    start_interval: h.start_interval.map(|n| n.0),
                    retries: h.retries.map(|n| n.0),
                })
            })
            .transpose()?;
        let logging = def.logging.map(|l| Logging {
            driver: text(l.driver),
            options: l
                .options
                .map(|p| {
                    p.0.into_iter()
                        .map(|(k, v)| (k, v.unwrap_or_default()))
                        .collect()
                })
                .unwrap_or_default(),
        });
        Ok(Service {
            name: name.to_string(),
            image,
            command,
            entrypoint,
            environment,
            labels,
            volumes,
            volumes_from: list(def.volumes_from),
            devices,
            network_mode: ns_mode(network_mode),
            pid: ns_mode(pid),
            ipc: ns_mode(ipc),
            uts,
            privileged: def.privileged.is_some_and(|f| f.0),
            read_only: def.read_only.is_some_and(|f| f.0),
            tty: def.tty.is_some_and(|f| f.0),
            stdin_open: def.stdin_open.is_some_and(|f| f.0),
            init: def.init.map(|f| f.0),
            cap_add: list(def.cap_add),
            cap_drop: list(def.cap_drop),
            restart: def.restart.map(|r| r.0),
            tmpfs,
            user: text(def.user),
            working_dir: text(def.working_dir),
            hostname: text(def.hostname),
            domainname: text(def.domainname),
            healthcheck,
            mem_limit: def.mem_limit.map(|b| b.0),
            cpus: def.cpus.map(|c| c.0),
            cpu_shares: def.cpu_shares.map(|n| n.0),
            pids_limit: def.pids_limit.map(|n| n.0),
            shm_size: def.shm_size.map(|b| b.0),
            oom_score_adj: def.oom_score_adj.map(|n| n.0),
            logging,
            stop_signal: text(def.stop_signal),
            stop_grace_period: def.stop_grace_period.map(|n| n.0),
            dns: list(def.dns),
            extra_hosts: def.extra_hosts.map(|h| h.0).unwrap_or_default(),
            security_opt: list(def.security_opt),
            cgroup_parent: text(def.cgroup_parent),
        })
    }

    /// sha256 (hex) of the normalized definition: equal hashes mean an equal container.
    pub fn config_hash(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(&json))
    }

    /// A label's value.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }

    fn label_list(&self, key: &str) -> Vec<String> {
        self.label(key)
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    fn label_flag(&self, key: &str) -> Option<bool> {
        self.label(key).and_then(parse_bool)
    }

    /// Services this one starts after (`io.ros.after`).
    pub fn after(&self) -> Vec<String> {
        self.label_list(labels::AFTER)
    }

    /// Services this one starts before (`io.ros.before`).
    pub fn before(&self) -> Vec<String> {
        self.label_list(labels::BEFORE)
    }

    /// False for `io.ros.detach: "false"`: run to completion before dependents start.
    pub fn detach(&self) -> bool {
        self.label_flag(labels::DETACH).unwrap_or(true)
    }

    /// `io.ros.createonly: "true"`: create, never start.
    pub fn createonly(&self) -> bool {
        self.label_flag(labels::CREATEONLY).unwrap_or(false)
    }

    /// `io.ros.persistent: "true"`: keep the container across boots.
    pub fn persistent(&self) -> bool {
        self.label_flag(labels::PERSISTENT).unwrap_or(false)
    }

    /// `io.ros.scope`, `system` when unset.
    pub fn scope(&self) -> &str {
        self.label(labels::SCOPE).unwrap_or("system")
    }

    /// Names of other containers this one needs to exist or run first: `volumes_from` and
    /// `container:NAME` namespace modes. They order starts like `io.ros.after` when they
    /// name services.
    pub fn references(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for v in &self.volumes_from {
            let v = v.strip_prefix("container:").unwrap_or(v);
            let name = v.split(':').next().unwrap_or(v);
            out.insert(name.to_string());
        }
        for m in [&self.network_mode, &self.pid, &self.ipc]
            .into_iter()
            .flatten()
        {
            if let Some(name) = m.strip_prefix("container:") {
                out.insert(name.to_string());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
