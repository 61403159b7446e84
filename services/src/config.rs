//! The services' view of the config: where service definitions come from and how they merge.
//! (The cloud-config crate, when it lands, owns the whole schema; this module reads only
//! `ros.services` and `ros.services_include`, with `rancher:` as an alias of `ros:`.)
//!
//! Precedence, low → high: `<root>/usr/share/ros/os-config.yml` (shipped defaults), the
//! enabled catalog entries `<root>/usr/share/ros/catalog/<name>.yml`, then
//! `<root>/var/lib/ros/conf/cloud-config.d/*.yml` by name, then the user's
//! `<root>/var/lib/ros/conf/cloud-config.yml`, then the kernel command line
//! (`<root>/proc/cmdline`: `ros.services.ntp.environment.X=y`,
//! `ros.services_include.docker=false`). Maps merge, scalars and lists replace
//! (`environment` and `labels` are maps whichever way they are written).
//!
//! `services_include.<name>: false` turns off a service of any layer, a default one
//! included (a host that needs no user engine boots with `ros.services_include.docker=false`).
//!
//! Nothing here fails as a whole: a file that does not parse is reported with its line and
//! column and left out; one file's definition of a service with an unknown field or a value
//! of the wrong type is reported (file, service, field) and left out, so the service runs
//! on what the other files say — or, when no file defines it validly, is reported as
//! invalid and not started, while every other service still is.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::fields::Flag;
use crate::model::{valid_name, Service, ServiceDef};

/// Where ros keeps what this crate reads and writes, under a root (`/` on a booted host,
/// a tempdir in tests: `ros --root DIR`).
#[derive(Clone, Debug)]
pub struct Paths {
    root: PathBuf,
}

impl Paths {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Paths { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Shipped defaults.
    pub fn os_config(&self) -> PathBuf {
        self.root.join("usr/share/ros/os-config.yml")
    }

    /// Optional services, one file per entry (`ros service enable NAME`).
    pub fn catalog_dir(&self) -> PathBuf {
        self.root.join("usr/share/ros/catalog")
    }

    /// Datasource output, applied by file name.
    pub fn cloud_config_d(&self) -> PathBuf {
        self.root.join("var/lib/ros/conf/cloud-config.d")
    }

    /// The user's edits (and `enable`/`disable`).
    pub fn user_config(&self) -> PathBuf {
        self.root.join("var/lib/ros/conf/cloud-config.yml")
    }

    /// The kernel command line (`ros.<key>=<yaml>` overrides, the highest layer).
    pub fn cmdline(&self) -> PathBuf {
        self.root.join("proc/cmdline")
    }

    /// The system engine's socket under this root, as a `-H` value.
    pub fn default_host(&self) -> String {
        let sock = Path::new(system_docker::DEFAULT_SOCKET);
        let rel = sock.strip_prefix("/").unwrap_or(sock);
        format!("unix://{}", self.root.join(rel).display())
    }
}

/// Something wrong in the config, located as precisely as known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    pub file: Option<PathBuf>,
    pub line: Option<u64>,
    pub column: Option<u64>,
    pub service: Option<String>,
    pub field: Option<String>,
    pub message: String,
}

impl Issue {
    fn in_file(file: &Path, message: impl Into<String>) -> Self {
        Issue {
            file: Some(file.to_path_buf()),
            line: None,
            column: None,
            service: None,
            field: None,
            message: message.into(),
        }
    }

    fn about_service(name: &str, message: impl Into<String>) -> Self {
        Issue {
            file: None,
            line: None,
            column: None,
            service: Some(name.to_string()),
            field: None,
            message: message.into(),
        }
    }

    fn service(mut self, name: &str) -> Self {
        self.service = Some(name.to_string());
        self
    }

    fn field(mut self, field: &str) -> Self {
        if !field.is_empty() {
            self.field = Some(field.to_string());
        }
        self
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            if let (Some(l), Some(c)) = (self.line, self.column) {
                write!(f, ":{l}:{c}")?;
            }
            f.write_str(": ")?;
        }
        if let Some(s) = &self.service {
            write!(f, "service {s:?}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "field {field:?}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// A YAML syntax error with its position.
#[derive(Clone, Debug)]
pub struct YamlError {
    pub line: Option<u64>,
    pub column: Option<u64>,
    pub message: String,
}

/// Parses YAML into a tree. Scalars keep their spelling where YAML 1.2 and 1.1 disagree
/// (`yes`, `0644`, `1_000` stay strings): the typed layer ([`crate::fields`]) reads them
/// as what the field needs, so `privileged: yes` is true while `hostname: yes` stays text.
pub fn parse_yaml(text: &str) -> Result<Value, YamlError> {
    let options = serde_saphyr::options! {
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        underscored_numbers_as_strings: true,
    };
    serde_saphyr::from_str_with_options::<Value>(text, options).map_err(|e| {
        let loc = e.location();
        let line = loc.as_ref().map(|l| l.line());
        let column = loc.as_ref().map(|l| l.column());
        let mut message = e.without_snippet().to_string();
        // The position is shown as file:line:col; do not repeat it.
        if let (Some(l), Some(c)) = (line, column) {
            let suffix = format!(" at line {l}, column {c}");
            if let Some(m) = message.strip_suffix(&suffix) {
                message = m.to_string();
            }
        }
        YamlError {
            line,
            column,
            message,
        }
    })
}

/// Deep merge: maps merge key by key, anything else in `over` replaces (the config's one
/// merge rule, owned by the cloud-config crate).
pub use ros_cloud_config::merge::merge;

/// One file of the catalog of optional services.
#[derive(Clone, Debug)]
pub struct CatalogEntry {
    pub name: String,
    pub file: PathBuf,
    /// The services it defines (empty when it does not parse).
    pub services: Vec<String>,
    pub enabled: bool,
    /// Whether the file parsed.
    pub valid: bool,
}

/// A service the config enables.
#[derive(Clone, Debug)]
pub struct ServiceEntry {
    pub name: String,
    /// The merged service, or why it cannot run.
    pub service: Result<Service, String>,
    /// Files that define it, low → high precedence (when no file defines it validly: the
    /// files whose definitions were left out).
    pub sources: Vec<PathBuf>,
    /// The catalog entry it comes from, if any.
    pub catalog: Option<String>,
}

/// What the config says about services.
#[derive(Clone, Debug, Default)]
pub struct ServicesConfig {
    /// Enabled services by name.
    pub services: BTreeMap<String, ServiceEntry>,
    /// Every catalog entry, enabled or not.
    pub catalog: BTreeMap<String, CatalogEntry>,
    /// `ros.services_include` as merged.
    pub include: BTreeMap<String, bool>,
    /// Everything reported while loading.
    pub issues: Vec<Issue>,
}

/// A parsed config file: its `ros:` namespace (with `rancher:` merged under it).
struct Layer {
    file: PathBuf,
    ns: Map<String, Value>,
}

/// Reads and parses a YAML file; `Ok(None)` when it does not exist.
fn read_doc(file: &Path) -> Result<Option<Value>, Box<Issue>> {
    let text = match fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Box::new(Issue::in_file(file, format!("cannot read: {e}")))),
    };
    match parse_yaml(&text) {
        Ok(Value::Null) => Ok(Some(Value::Object(Map::new()))),
        Ok(v) => Ok(Some(v)),
        Err(e) => Err(Box::new(Issue {
            line: e.line,
            column: e.column,
            ..Issue::in_file(file, format!("{} (file left out)", e.message))
        })),
    }
}

/// The `ros.`/`rancher.` overrides of the kernel command line as a layer; `None` when the
/// file is absent (a `--root` without `proc/`) or names none. Overrides that fail the
/// schema are reported and left out, the others apply.
fn cmdline_layer(file: &Path, issues: &mut Vec<Issue>) -> Option<Layer> {
    let text = fs::read_to_string(file).ok()?;
    let parsed = ros_cloud_config::cmdline::parse(&text);
    for e in &parsed.errors {
        issues.push(Issue::in_file(file, format!("{e} (override left out)")));
    }
    let ns = parsed.value.get("ros")?.as_object()?.clone();
    Some(Layer {
        file: file.to_path_buf(),
        ns,
    })
}

/// The `ros:` namespace of a document, `rancher:` merged under it (`ros:` wins).
fn namespace(file: &Path, doc: &Value, issues: &mut Vec<Issue>) -> Option<Map<String, Value>> {
    let Some(top) = doc.as_object() else {
        issues.push(Issue::in_file(
            file,
            "expected a mapping at the top level (file left out)",
        ));
        return None;
    };
    let mut ns = Value::Object(Map::new());
    for key in ["rancher", "ros"] {
        match top.get(key) {
            None | Some(Value::Null) => {}
            Some(v @ Value::Object(_)) => merge(&mut ns, v.clone()),
            Some(_) => issues.push(Issue::in_file(file, "expected a mapping").field(key)),
        }
    }
    match ns {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

impl ServicesConfig {
    /// Loads everything under `paths`. Never fails: problems land in `issues`.
    pub fn load(paths: &Paths) -> ServicesConfig {
        let mut cfg = ServicesConfig::default();
        let mut layers = Vec::new();
        let mut files = vec![paths.os_config()];
        files.extend(yaml_files(&paths.cloud_config_d(), &mut cfg.issues));
        files.push(paths.user_config());
        for file in files {
            match read_doc(&file) {
                Ok(Some(doc)) => {
                    if let Some(ns) = namespace(&file, &doc, &mut cfg.issues) {
                        layers.push(Layer { file, ns });
                    }
                }
                Ok(None) => {}
                Err(issue) => cfg.issues.push(*issue),
            }
        }
        if let Some(layer) = cmdline_layer(&paths.cmdline(), &mut cfg.issues) {
            layers.push(layer);
        }
        for layer in &layers {
            cfg.read_include(layer);
        }
        let catalog_services = cfg.load_catalog(&paths.catalog_dir());

        let mut builder = Builder::default();
        // Shipped defaults first, then the enabled catalog entries, then the rest.
        let os_config = paths.os_config();
        let (defaults, rest): (Vec<Layer>, Vec<Layer>) =
            layers.into_iter().partition(|l| l.file == os_config);
        for layer in &defaults {
            builder.add_layer(&layer.file, layer.ns.get("services"), None, &mut cfg.issues);
        }
        for (entry, file, services) in &catalog_services {
            builder.add_layer(file, Some(services), Some(entry), &mut cfg.issues);
        }
        for layer in &rest {
            builder.add_layer(&layer.file, layer.ns.get("services"), None, &mut cfg.issues);
        }
        cfg.services = builder.finish(&mut cfg.issues);
        let off: Vec<String> = cfg
            .services
            .keys()
            .filter(|n| cfg.include.get(*n) == Some(&false))
            .cloned()
            .collect();
        for name in off {
            log::info!("{name}: turned off by services_include.{name}=false");
            cfg.services.remove(&name);
        }
        cfg
    }

    fn read_include(&mut self, layer: &Layer) {
        let Some(inc) = layer.ns.get("services_include") else {
            return;
        };
        let Some(map) = inc.as_object() else {
            if !inc.is_null() {
                self.issues.push(
                    Issue::in_file(&layer.file, "expected a mapping of NAME: true|false")
                        .field("services_include"),
                );
            }
            return;
        };
        for (name, v) in map {
            match Flag::deserialize(v) {
                Ok(Flag(on)) => {
                    self.include.insert(name.clone(), on);
                }
                Err(e) => self.issues.push(
                    Issue::in_file(&layer.file, e.to_string())
                        .field(&format!("services_include.{name}")),
                ),
            }
        }
    }

    /// Reads every catalog entry; returns the services maps of the enabled ones.
    fn load_catalog(&mut self, dir: &Path) -> Vec<(String, PathBuf, Value)> {
        let mut enabled = Vec::new();
        for file in yaml_files(dir, &mut self.issues) {
            let Some(name) = file
                .file_stem()
                .and_then(|s| s.to_str())
                .map(str::to_string)
            else {
                continue;
            };
            let on = self.include.get(&name).copied().unwrap_or(false);
            let services = match read_doc(&file) {
                Ok(Some(doc)) => catalog_services(&file, &doc, &mut self.issues),
                Ok(None) => None,
                Err(issue) => {
                    self.issues.push(*issue);
                    None
                }
            };
            let names = services
                .as_ref()
                .and_then(Value::as_object)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            self.catalog.insert(
                name.clone(),
                CatalogEntry {
                    name: name.clone(),
                    file: file.clone(),
                    services: names,
                    enabled: on,
                    valid: services.is_some(),
                },
            );
            if let (true, Some(services)) = (on, services) {
                enabled.push((name, file, services));
            }
        }
        for (name, on) in &self.include {
            if *on && !self.catalog.contains_key(name) {
                let available: Vec<&str> = self.catalog.keys().map(String::as_str).collect();
                self.issues.push(Issue {
                    field: Some(format!("services_include.{name}")),
                    message: format!(
                        "no catalog entry named {name:?} in {} (available: {})",
                        dir.display(),
                        if available.is_empty() {
                            "none".to_string()
                        } else {
                            available.join(", ")
                        }
                    ),
                    ..Issue::in_file(dir, "")
                });
            }
        }
        enabled
    }

    /// Services defined by catalog entries that are not enabled (and not defined elsewhere):
    /// a dependency on one of them is ignored rather than an error.
    pub fn optional_disabled(&self) -> BTreeSet<String> {
        self.catalog
            .values()
            .filter(|e| !e.enabled)
            .flat_map(|e| e.services.iter().cloned())
            .filter(|s| !self.services.contains_key(s))
            .collect()
    }
}

/// The services map of a catalog file: `services:` (compose v2/v3), a full `ros:` (or
/// `rancher:`) document, or a top-level map of services (compose v1, RancherOS's
/// os-services).
fn catalog_services(file: &Path, doc: &Value, issues: &mut Vec<Issue>) -> Option<Value> {
    let top = doc.as_object()?;
    if top.contains_key("ros") || top.contains_key("rancher") {
        let ns = namespace(file, doc, issues)?;
        return Some(
            ns.get("services")
                .cloned()
                .unwrap_or(Value::Object(Map::new())),
        );
    }
    if let Some(s) = top.get("services").filter(|s| s.is_object()) {
        return Some(s.clone());
    }
    Some(doc.clone())
}

/// `dir/*.yml` and `*.yaml`, sorted by name; nothing when `dir` does not exist.
fn yaml_files(dir: &Path, issues: &mut Vec<Issue>) -> Vec<PathBuf> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            issues.push(Issue::in_file(dir, format!("cannot list: {e}")));
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    files.sort();
    files
}

/// Collects each file's valid definitions per service, then merges them.
#[derive(Default)]
struct Builder {
    /// Per service: (file, canonical definition), low → high precedence.
    parts: BTreeMap<String, Vec<(PathBuf, Value)>>,
    /// Per service: why a file's definition was left out, and which file.
    rejected: BTreeMap<String, Vec<(PathBuf, String)>>,
    catalog: BTreeMap<String, String>,
}

impl Builder {
    fn add_layer(
        &mut self,
        file: &Path,
        services: Option<&Value>,
        catalog: Option<&str>,
        issues: &mut Vec<Issue>,
    ) {
        let Some(services) = services.filter(|s| !s.is_null()) else {
            return;
        };
        let Some(map) = services.as_object() else {
            issues.push(
                Issue::in_file(file, "expected a mapping of service name: definition")
                    .field("services"),
            );
            return;
        };
        for (name, def) in map {
            if !valid_name(name) {
                let issue = Issue::in_file(
                    file,
                    "not a valid service name: letters, digits, '_', '.' and '-', starting \
                     with a letter or digit, at least 2 characters",
                )
                .service(name);
                self.rejected
                    .entry(name.clone())
                    .or_default()
                    .push((file.to_path_buf(), issue.to_string()));
                issues.push(issue);
                continue;
            }
            if let Some(entry) = catalog {
                self.catalog.insert(name.clone(), entry.to_string());
            }
            match ServiceDef::parse(def) {
                Ok(d) => self
                    .parts
                    .entry(name.clone())
                    .or_default()
                    .push((file.to_path_buf(), d.to_value())),
                Err(errors) => {
                    for e in errors {
                        let issue = Issue::in_file(file, e.message.clone())
                            .service(name)
                            .field(&e.field);
                        self.rejected
                            .entry(name.clone())
                            .or_default()
                            .push((file.to_path_buf(), issue.to_string()));
                        issues.push(issue);
                    }
                }
            }
        }
    }

    fn finish(self, issues: &mut Vec<Issue>) -> BTreeMap<String, ServiceEntry> {
        let names: BTreeSet<&String> = self.parts.keys().chain(self.rejected.keys()).collect();
        let mut out = BTreeMap::new();
        for name in names {
            let parts = self.parts.get(name).cloned().unwrap_or_default();
            let rejected = self.rejected.get(name).cloned().unwrap_or_default();
            // Where it is defined: the parts that merged, or else the files that failed.
            let mut sources: Vec<PathBuf> = parts.iter().map(|(f, _)| f.clone()).collect();
            let service = if parts.is_empty() {
                let why: Vec<&str> = rejected.iter().map(|(_, why)| why.as_str()).collect();
                Err(format!("invalid definition: {}", why.join("; ")))
            } else {
                let mut merged = Value::Object(Map::new());
                for (_, v) in parts {
                    merge(&mut merged, v);
                }
                build(name, &merged, &sources).inspect_err(|e| {
                    // A merged definition has no single file: the message names them all.
                    issues.push(Issue::about_service(name, e.clone()))
                })
            };
            if sources.is_empty() {
                sources = rejected.into_iter().map(|(f, _)| f).collect();
                sources.dedup();
            }
            out.insert(
                name.clone(),
                ServiceEntry {
                    name: name.clone(),
                    service,
                    sources,
                    catalog: self.catalog.get(name).cloned(),
                },
            );
        }
        out
    }
}

/// The service from its merged definition; `Err` says why not, naming the field and the
/// files that define the service.
fn build(name: &str, merged: &Value, sources: &[PathBuf]) -> Result<Service, String> {
    let from = sources
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let def = ServiceDef::parse(merged).map_err(|errors| {
        let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        format!("{} (defined in {from})", shown.join("; "))
    })?;
    Service::from_def(name, def).map_err(|e| format!("{e} (defined in {from})"))
}

#[cfg(test)]
mod tests;
