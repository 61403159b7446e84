//! The running config of a host: every layer read from its usual place under a root and
//! merged with the precedence of DESIGN.md §7 — shipped defaults
//! (`usr/share/ros/os-config.yml`), `var/lib/ros/conf/cloud-config.d/*.yml` by name, the
//! user's `var/lib/ros/conf/cloud-config.yml`, the kernel command line (`proc/cmdline`).
//!
//! A file that fails to parse or validate is left out as a whole and recorded with its
//! located error; the others still apply, so a typo never takes the rest of the config down.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::merge::Layers;
use crate::{cmdline, parse_document, to_json, ConfigError, Warning};

/// Where each layer lives under a root (`/` on a booted host, a tempdir in tests).
#[derive(Clone, Debug)]
pub struct ConfigPaths {
    pub root: PathBuf,
}

impl ConfigPaths {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ConfigPaths { root: root.into() }
    }

    pub fn defaults(&self) -> PathBuf {
        self.root.join("usr/share/ros/os-config.yml")
    }

    pub fn dropins(&self) -> PathBuf {
        self.root.join("var/lib/ros/conf/cloud-config.d")
    }

    pub fn user(&self) -> PathBuf {
        self.root.join("var/lib/ros/conf/cloud-config.yml")
    }

    pub fn cmdline(&self) -> PathBuf {
        self.root.join("proc/cmdline")
    }
}

/// The merged config and what was said about its layers.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    /// The merged document (normalized JSON).
    pub value: Value,
    /// Files (and command line overrides) read and applied.
    pub applied: Vec<String>,
    /// What was left out, and why.
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<Warning>,
}

impl Loaded {
    /// The value at a dotted path under `ros` (`state.dev`), if set.
    pub fn ros(&self, path: &str) -> Option<&Value> {
        path.split('.')
            .try_fold(self.value.get("ros")?, |v, k| v.get(k))
    }

    /// A string under `ros`.
    pub fn ros_str(&self, path: &str) -> Option<&str> {
        self.ros(path).and_then(Value::as_str)
    }

    /// A whole number under `ros`.
    pub fn ros_u64(&self, path: &str) -> Option<u64> {
        self.ros(path).and_then(Value::as_u64)
    }

    /// A list of strings under `ros` (a single string counts as a list of one).
    pub fn ros_strings(&self, path: &str) -> Vec<String> {
        match self.ros(path) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        }
    }

    /// A flag under `ros` (absent → false).
    pub fn ros_flag(&self, path: &str) -> bool {
        self.ros(path).and_then(Value::as_bool).unwrap_or(false)
    }
}

/// Reads one document; `None` when the file is absent, recorded when it is bad.
fn read(file: &Path, out: &mut Loaded) -> Option<Value> {
    let text = match fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            out.errors.push(ConfigError {
                source: file.display().to_string(),
                line: 0,
                column: 0,
                path: String::new(),
                message: format!("cannot read: {e}"),
            });
            return None;
        }
    };
    match parse_document(&file.display().to_string(), &text) {
        Ok(v) => {
            out.warnings.extend(v.warnings);
            out.applied.push(file.display().to_string());
            Some(to_json(&v.config))
        }
        Err(e) => {
            out.errors.push(e);
            None
        }
    }
}

/// Loads and merges every layer under `paths`. Never fails: what cannot be used is in
/// `errors`.
pub fn load(paths: &ConfigPaths) -> Loaded {
    let mut out = Loaded::default();
    let mut layers = Layers {
        defaults: read(&paths.defaults(), &mut out),
        ..Layers::default()
    };
    let mut names: Vec<PathBuf> = fs::read_dir(paths.dropins())
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    for file in names {
        if let Some(v) = read(&file, &mut out) {
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            layers.dropins.push((name, v));
        }
    }
    layers.user = read(&paths.user(), &mut out);
    if let Ok(text) = fs::read_to_string(paths.cmdline()) {
        let c = cmdline::parse(&text);
        out.warnings.extend(c.warnings);
        out.errors.extend(c.errors);
        if c.value.as_object().is_some_and(|m| !m.is_empty()) {
            out.applied.push(cmdline::SOURCE.to_owned());
            layers.cmdline = Some(c.value);
        }
    }
    out.value = layers.merged();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    #[test]
    fn layers_merge_and_bad_files_are_left_out() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(
            r,
            "usr/share/ros/os-config.yml",
            "#cloud-config\nros:\n  boot_timeout: 300\n  state:\n    dev: LABEL=ROS_STATE\n",
        );
        write(
            r,
            "var/lib/ros/conf/cloud-config.d/a.yml",
            "#cloud-config\nhostname: from-a\nros:\n  modules: [kvm]\n",
        );
        write(
            r,
            "var/lib/ros/conf/cloud-config.d/b.yml",
            "#cloud-config\nwrite_files:\n- path: /x\n  permissions: rwx\n",
        );
        write(
            r,
            "var/lib/ros/conf/cloud-config.yml",
            "#cloud-config\nhostname: user\n",
        );
        write(
            r,
            "proc/cmdline",
            "console=ttyS0 ros.state.autoformat=[/dev/vda] ros.boot_timeout=60\n",
        );
        let l = load(&ConfigPaths::new(r));
        assert_eq!(l.value["hostname"], "user");
        assert_eq!(l.ros_u64("boot_timeout"), Some(60));
        assert_eq!(l.ros_str("state.dev"), Some("LABEL=ROS_STATE"));
        assert_eq!(l.ros_strings("state.autoformat"), vec!["/dev/vda"]);
        assert_eq!(l.ros_strings("modules"), vec!["kvm"]);
        assert_eq!(l.errors.len(), 1, "{:?}", l.errors);
        assert!(l.errors[0].source.ends_with("b.yml"));
        assert!(l.applied.iter().any(|a| a == "cmdline"));
        assert!(!l.ros_flag("debug"));
    }

    #[test]
    fn nothing_there_is_an_empty_config() {
        let t = tempfile::tempdir().unwrap();
        let l = load(&ConfigPaths::new(t.path()));
        assert!(l.errors.is_empty());
        assert_eq!(l.ros("state"), None);
    }
}
