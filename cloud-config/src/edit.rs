//! Changing and showing config documents: what `ros config` does, without the CLI.
//!
//! Owns: dotted key paths (`ros.state.dev`, `rancher.` accepted), reading the user's
//! `cloud-config.yml` as a raw document and rewriting it checked and atomically, a YAML
//! emitter whose output reads back through [`crate::node::parse`] as the same value, the rule
//! for what counts as a secret in an export, per-layer status records and the
//! `status.json` that `ros cloud-init save` leaves behind.
//!
//! The user file is edited as its raw tree ([`crate::node::Node::to_json`]), not as the typed
//! config: keys the schema does not know survive an edit (they stay warnings), and values
//! keep the spelling the user gave them (`UMASK: 022` stays `022`).

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::load::{ConfigPaths, Loaded};
use crate::{cmdline, node, parse_document, ConfigError, Validated, Warning};

/// The header every cloud-config written by ros starts with.
pub const HEADER: &str = "#cloud-config\n";

/// Maps whose keys may themselves contain dots (`net.ipv4.ip_forward`): below them the rest
/// of a dotted key is one key.
const FLAT_MAPS: &[&str] = &["ros.sysctl", "ros.environment"];

/// Why an edit or a status file operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("{0:?} is not a key (use dotted names such as ros.state.dev)")]
    BadKey(String),
    #[error("cannot set {key}: {at} is {what}, not a map")]
    NotAMap {
        key: String,
        at: String,
        what: &'static str,
    },
    #[error("cannot edit {}: it does not parse ({error}); fix it first", file.display())]
    Unparsable { file: PathBuf, error: ConfigError },
    #[error("{0}")]
    Syntax(ConfigError),
    #[error("the result is invalid, nothing was written: {0}")]
    Invalid(ConfigError),
    #[error("cannot read {}: {source}", file.display())]
    Read { file: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}", file.display())]
    Write { file: PathBuf, source: io::Error },
    #[error("{}: {source}", file.display())]
    Json {
        file: PathBuf,
        source: serde_json::Error,
    },
}

// ---------------------------------------------------------------------------------------------
// Keys

/// The segments of a dotted key; a leading `rancher` becomes `ros` (DESIGN.md §4 alias).
pub fn key_segments(key: &str) -> Result<Vec<String>, EditError> {
    let segs: Vec<String> = key.split('.').map(str::to_owned).collect();
    if segs.iter().any(String::is_empty) {
        return Err(EditError::BadKey(key.to_owned()));
    }
    let mut segs = segs;
    if segs[0] == "rancher" {
        segs[0] = "ros".to_owned();
    }
    Ok(segs)
}

/// Moves a top-level `rancher:` section into `ros:` (what `ros:` says wins), so a document
/// has one spelling of the namespace. Both at once would be a duplicate key to the checker.
pub fn normalize_alias(doc: &mut Value) {
    let Some(map) = doc.as_object_mut() else {
        return;
    };
    if let Some(rancher) = map.remove("rancher") {
        let mut merged = rancher;
        if let Some(ros) = map.remove("ros") {
            crate::merge::merge(&mut merged, ros);
        }
        map.insert("ros".to_owned(), merged);
    }
}

/// The value at a dotted `key` in `doc`, if set (null counts as not set). A segment matches a
/// map key exactly; several segments joined by dots may match one key (`ros.sysctl.net.ipv4.
/// ip_forward`); a number indexes a list (`users.0.name`).
pub fn get<'a>(doc: &'a Value, key: &str) -> Result<Option<&'a Value>, EditError> {
    let segs = key_segments(key)?;
    Ok(find(doc, &segs).filter(|v| !v.is_null()))
}

fn find<'a>(v: &'a Value, segs: &[String]) -> Option<&'a Value> {
    if segs.is_empty() {
        return Some(v);
    }
    match v {
        Value::Object(map) => (1..=segs.len()).rev().find_map(|n| {
            map.get(&segs[..n].join("."))
                .and_then(|child| find(child, &segs[n..]))
        }),
        Value::Array(items) => segs[0]
            .parse::<usize>()
            .ok()
            .and_then(|i| items.get(i))
            .and_then(|child| find(child, &segs[1..])),
        _ => None,
    }
}

/// Sets a dotted `key` in `doc` to `value`, creating the maps on the way. An existing list
/// can be indexed into (`users.0.shell`); any other scalar on the way is an error rather than
/// silently replaced by a map.
pub fn set(doc: &mut Value, key: &str, value: Value) -> Result<(), EditError> {
    let segs = key_segments(key)?;
    normalize_alias(doc);
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    set_in(doc, &segs, String::new(), key, value)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

fn set_in(
    v: &mut Value,
    segs: &[String],
    path: String,
    key: &str,
    value: Value,
) -> Result<(), EditError> {
    let join = |path: &str, seg: &str| {
        if path.is_empty() {
            seg.to_owned()
        } else {
            format!("{path}.{seg}")
        }
    };
    match v {
        Value::Object(map) => {
            // The longest run of segments that names an existing key, else one new key (or,
            // below a flat map, all of them).
            let n = (1..=segs.len())
                .rev()
                .find(|n| map.contains_key(&segs[..*n].join(".")))
                .unwrap_or(if FLAT_MAPS.contains(&path.as_str()) {
                    segs.len()
                } else {
                    1
                });
            let name = segs[..n].join(".");
            let rest = &segs[n..];
            if rest.is_empty() {
                map.insert(name, value);
                return Ok(());
            }
            let child = map
                .entry(name.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if child.is_null() {
                *child = Value::Object(Map::new());
            }
            set_in(child, rest, join(&path, &name), key, value)
        }
        Value::Array(items) => {
            let i = segs[0].parse::<usize>().ok().filter(|i| *i < items.len());
            let Some(i) = i else {
                return Err(EditError::NotAMap {
                    key: key.to_owned(),
                    at: path,
                    what: "a list without that index",
                });
            };
            let rest = &segs[1..];
            let at = format!("{path}.{i}");
            if rest.is_empty() {
                items[i] = value;
                return Ok(());
            }
            set_in(&mut items[i], rest, at, key, value)
        }
        other => Err(EditError::NotAMap {
            key: key.to_owned(),
            at: path,
            what: kind(other),
        }),
    }
}

/// A value as given on a command line: YAML (`[/dev/vda]`, `true`, `{a: 1}`), an empty
/// argument being the empty string.
pub fn parse_value(text: &str) -> Result<Value, ConfigError> {
    if text.trim().is_empty() {
        return Ok(Value::String(text.to_owned()));
    }
    node::parse(text)
        .map(|n| n.to_json())
        .map_err(|e| ConfigError {
            source: "value".to_owned(),
            line: e.pos.line,
            column: e.pos.column,
            path: String::new(),
            message: e.message,
        })
}

// ---------------------------------------------------------------------------------------------
// The user's document

/// The user's `cloud-config.yml` as read for an edit.
#[derive(Clone, Debug)]
pub struct UserDoc {
    pub file: PathBuf,
    /// The file's text; `None` when there is no file yet.
    pub text: Option<String>,
    /// Its raw content, `rancher:` folded into `ros:`.
    pub value: Value,
}

impl UserDoc {
    /// Reads `file`; an absent file is an empty document. A file that is not YAML cannot be
    /// edited (its content would be lost); one that is YAML but invalid can, since the result
    /// is checked as a whole.
    pub fn read(file: &Path) -> Result<UserDoc, EditError> {
        let text = match fs::read_to_string(file) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(EditError::Read {
                    file: file.to_owned(),
                    source,
                })
            }
        };
        let mut value = match &text {
            None => Value::Object(Map::new()),
            Some(t) => parse_raw(&file.display().to_string(), t).map_err(|error| {
                EditError::Unparsable {
                    file: file.to_owned(),
                    error,
                }
            })?,
        };
        if !value.is_object() {
            return Err(EditError::Unparsable {
                file: file.to_owned(),
                error: ConfigError {
                    source: file.display().to_string(),
                    line: 1,
                    column: 1,
                    path: String::new(),
                    message: format!("expected a map, got {}", kind(&value)),
                },
            });
        }
        normalize_alias(&mut value);
        Ok(UserDoc {
            file: file.to_owned(),
            text,
            value,
        })
    }

    /// Whether the old text had comments besides the header, which a rewrite does not keep.
    pub fn had_comments(&self) -> bool {
        self.text.as_deref().is_some_and(has_comments)
    }

    /// Renders `self.value`, checks it as a whole and writes it atomically (mode kept, 0600
    /// for a new file). Returns the check's warnings and whether the file changed.
    pub fn save(&self) -> Result<(Validated, bool), EditError> {
        let text = to_document(&self.value);
        // Positions point into the content that would have been written, not the old file.
        let source = format!("{} (new content)", self.file.display());
        let checked = parse_document(&source, &text).map_err(EditError::Invalid)?;
        if self.text.as_deref() == Some(text.as_str()) {
            return Ok((checked, false));
        }
        let mode = existing_mode(&self.file).unwrap_or(0o600);
        write_atomic(&self.file, text.as_bytes(), mode).map_err(|source| EditError::Write {
            file: self.file.clone(),
            source,
        })?;
        Ok((checked, true))
    }
}

/// A YAML document's raw value (no schema check), syntax errors located under `source`.
pub fn parse_raw(source: &str, text: &str) -> Result<Value, ConfigError> {
    node::parse(text)
        .map(|n| n.to_json())
        .map_err(|e| ConfigError {
            source: source.to_owned(),
            line: e.pos.line,
            column: e.pos.column,
            path: String::new(),
            message: e.message,
        })
}

/// Whether `text` has a comment other than a leading `#cloud-config` line. Approximate on
/// purpose: a `#` after a space inside a quoted string counts too, which at worst adds a
/// note that comments may be lost.
pub fn has_comments(text: &str) -> bool {
    text.lines().enumerate().any(|(i, l)| {
        let t = l.trim_start();
        if i == 0 && t.trim_end() == "#cloud-config" {
            return false;
        }
        t.starts_with('#') || l.contains(" #") || l.contains("\t#")
    })
}

fn existing_mode(file: &Path) -> Option<u32> {
    fs::metadata(file)
        .ok()
        .map(|m| m.permissions().mode() & 0o7777)
}

/// Writes `data` to `path` so that a reader sees the old or the new content, never a part:
/// a temporary file in the same directory, fsync, rename over `path`, fsync of the directory.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    // A leftover of a crashed writer with the same pid would keep its own mode: start anew.
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        // The umask may have narrowed the mode asked for at creation.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        // The rename is durable once the directory entry is.
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

// ---------------------------------------------------------------------------------------------
// YAML out

/// `value` as a cloud-config document: the header, then block-style YAML.
pub fn to_document(value: &Value) -> String {
    let mut out = String::from(HEADER);
    if value.as_object().is_some_and(Map::is_empty) {
        return out;
    }
    out.push_str(&to_yaml(value));
    out
}

/// `value` as block-style YAML that [`crate::node::parse`] reads back as the same value.
/// A scalar is one line (or a `|` block); a map or list is one entry per line.
pub fn to_yaml(value: &Value) -> String {
    let mut lines = Vec::new();
    emit(value, &mut lines);
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// Appends the lines of `v` at indent 0. Collections take one or more lines; a scalar takes
/// one line, or a block header plus its content lines.
fn emit(v: &Value, lines: &mut Vec<String>) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, child) in map {
                let key = scalar_str(k);
                match child {
                    Value::Object(m) if !m.is_empty() => {
                        lines.push(format!("{key}:"));
                        nested(child, "  ", "  ", lines);
                    }
                    Value::Array(a) if !a.is_empty() => {
                        lines.push(format!("{key}:"));
                        nested(child, "  ", "  ", lines);
                    }
                    _ => {
                        let s = scalar_lines(child);
                        lines.push(format!("{key}: {}", s[0]));
                        lines.extend(s[1..].iter().cloned());
                    }
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                nested(item, "- ", "  ", lines);
            }
        }
        scalar => lines.extend(scalar_lines(scalar)),
    }
}

/// Emits `v` with `first` before its first line and `rest` before the others.
fn nested(v: &Value, first: &str, rest: &str, lines: &mut Vec<String>) {
    let mut inner = Vec::new();
    emit(v, &mut inner);
    for (i, l) in inner.iter().enumerate() {
        lines.push(indent(if i == 0 { first } else { rest }, l));
    }
}

fn indent(prefix: &str, line: &str) -> String {
    if line.is_empty() {
        // Empty lines inside a `|` block: no trailing spaces.
        String::new()
    } else {
        format!("{prefix}{line}")
    }
}

/// A scalar (or an empty collection) as its first line and, for a `|` block, the content
/// lines indented by two.
fn scalar_lines(v: &Value) -> Vec<String> {
    match v {
        Value::Null => vec!["null".into()],
        Value::Bool(b) => vec![b.to_string()],
        Value::Number(n) => vec![n.to_string()],
        Value::String(s) if block_safe(s) => {
            let body = s.strip_suffix('\n').unwrap_or(s);
            // Chomping: `|` keeps exactly one final newline, `|-` none, `|+` all of them.
            let chomp = if !s.ends_with('\n') {
                "-"
            } else if body.ends_with('\n') {
                "+"
            } else {
                ""
            };
            let mut out = vec![format!("|{chomp}")];
            out.extend(body.split('\n').map(|l| indent("  ", l)));
            out
        }
        Value::String(s) => vec![scalar_str(s)],
        Value::Array(_) => vec!["[]".into()],
        Value::Object(_) => vec!["{}".into()],
    }
}

/// Whether a string can be a literal `|` block: several lines of printable text whose first
/// line sets the indentation (no leading blank or empty line).
fn block_safe(s: &str) -> bool {
    s.contains('\n')
        && !s.starts_with([' ', '\t', '\n'])
        && !s.trim().is_empty()
        && s.chars()
            .all(|c| c == '\n' || c == '\t' || !(c.is_control() || c == '\u{feff}'))
}

/// A string as a plain scalar when it reads back as the same string, double-quoted
/// otherwise.
fn scalar_str(s: &str) -> String {
    if plain_safe(s) {
        s.to_owned()
    } else {
        // A JSON string literal is a valid YAML double-quoted scalar with the same escapes.
        serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
    }
}

/// YAML 1.1 words that read as booleans or null (cloud-init reads YAML 1.1).
const RESERVED: &[&str] = &[
    "y", "yes", "n", "no", "true", "false", "on", "off", "null", "~", "=", "<<",
];

fn plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if s.trim() != s
        || RESERVED.contains(&s.to_ascii_lowercase().as_str())
        || "-?:,[]{}#&*!|>'\"%@`".contains(first)
        || s.contains(": ")
        || s.contains(" #")
        || s.ends_with(':')
        || s.chars().any(|c| c.is_control() || "{}[],".contains(c))
        || looks_numeric(s)
    {
        return false;
    }
    // Whatever the rules above miss, the parser catches: the plain form must read back as
    // this very string.
    match node::parse(&format!("k: {s}\n")).map(|n| n.to_json()) {
        Ok(Value::Object(m)) => m.get("k") == Some(&Value::String(s.to_owned())),
        _ => false,
    }
}

/// Numbers in any YAML 1.1 spelling: `0644` (octal), `0x1f`, `1_000`, `1:20` (base 60),
/// `1e3`, `.5`, `.inf`, `.nan`, and dates (`2024-01-01`, timestamps).
fn looks_numeric(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    let unsigned = lower.trim_start_matches(['+', '-']);
    if matches!(unsigned, ".inf" | ".nan") {
        return true;
    }
    let starts_with_digit = unsigned
        .strip_prefix('.')
        .unwrap_or(unsigned)
        .starts_with(|c: char| c.is_ascii_digit());
    starts_with_digit
        && unsigned
            .chars()
            .all(|c| c.is_ascii_hexdigit() || "xo_.:+-t ".contains(c))
}

// ---------------------------------------------------------------------------------------------
// Secrets

/// What `ros config export` leaves out unless asked for `--private`:
///
/// - `ros.ssh.keys` (SSH host private keys), as a whole;
/// - any key, at any depth, named `private_key` or containing `_private`
///   (`ssh_private_key`, `tls_private`);
/// - in each `users` entry: `passwd`, `hashed_passwd`, `plain_text_passwd`;
/// - under `ros.docker`: keys starting with `tls_` that contain `key` (`tls_server_key`,
///   `tls_cakey`).
///
/// Returns the dotted paths removed, in document order.
pub fn strip_secrets(doc: &mut Value) -> Vec<String> {
    let mut removed = Vec::new();
    normalize_alias(doc);
    if let Some(ssh) = doc.pointer_mut("/ros/ssh").and_then(Value::as_object_mut) {
        if ssh.remove("keys").is_some() {
            removed.push("ros.ssh.keys".to_owned());
        }
    }
    if let Some(docker) = doc
        .pointer_mut("/ros/docker")
        .and_then(Value::as_object_mut)
    {
        docker.retain(|k, _| {
            let secret = k.starts_with("tls_") && k.contains("key");
            if secret {
                removed.push(format!("ros.docker.{k}"));
            }
            !secret
        });
    }
    if let Some(users) = doc.get_mut("users").and_then(Value::as_array_mut) {
        for (i, u) in users.iter_mut().enumerate() {
            if let Some(u) = u.as_object_mut() {
                u.retain(|k, _| {
                    let secret =
                        matches!(k.as_str(), "passwd" | "hashed_passwd" | "plain_text_passwd");
                    if secret {
                        removed.push(format!("users[{i}].{k}"));
                    }
                    !secret
                });
            }
        }
    }
    strip_private(doc, "", &mut removed);
    removed
}

fn strip_private(v: &mut Value, path: &str, removed: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            map.retain(|k, _| {
                let secret = k == "private_key" || k.contains("_private");
                if secret {
                    removed.push(if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    });
                }
                !secret
            });
            for (k, child) in map.iter_mut() {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                strip_private(child, &p, removed);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                strip_private(item, &format!("{path}[{i}]"), removed);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Status

/// What happened to one layer of the running config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerState {
    /// Read and merged.
    Applied,
    /// Left out as a whole; the error says why.
    Rejected(ConfigError),
    /// No such file.
    Absent,
    /// The kernel command line has no `ros.` settings.
    Empty,
    /// In `cloud-config.d` but not read: only `*.yml` and `*.yaml` are.
    Ignored,
}

/// One layer: where it comes from, what became of it, and what was said about it. For the
/// command line, `errors` are the settings left out while the others applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerStatus {
    pub source: String,
    pub state: LayerState,
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<Warning>,
}

/// The layers under `paths` in precedence order (low to high), as `loaded` (from
/// [`crate::load::load`] on the same paths) found them.
pub fn layer_status(paths: &ConfigPaths, loaded: &Loaded) -> Vec<LayerStatus> {
    let mut out = Vec::new();
    let file_layer = |file: &Path| {
        let source = file.display().to_string();
        let mut errors: Vec<ConfigError> = loaded
            .errors
            .iter()
            .filter(|e| e.source == source)
            .cloned()
            .collect();
        let state = if loaded.applied.contains(&source) {
            LayerState::Applied
        } else if !errors.is_empty() {
            LayerState::Rejected(errors.remove(0))
        } else {
            LayerState::Absent
        };
        LayerStatus {
            warnings: warnings_of(loaded, &source),
            source,
            state,
            errors,
        }
    };
    out.push(file_layer(&paths.defaults()));
    let mut dropins: Vec<PathBuf> = fs::read_dir(paths.dropins())
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    dropins.sort();
    for file in dropins {
        if file.extension().is_some_and(|x| x == "yml" || x == "yaml") {
            out.push(file_layer(&file));
        } else {
            out.push(LayerStatus {
                source: file.display().to_string(),
                state: LayerState::Ignored,
                errors: Vec::new(),
                warnings: Vec::new(),
            });
        }
    }
    out.push(file_layer(&paths.user()));
    let source = cmdline::SOURCE.to_owned();
    let errors: Vec<ConfigError> = loaded
        .errors
        .iter()
        .filter(|e| e.source == source)
        .cloned()
        .collect();
    let state = if loaded.applied.contains(&source) {
        LayerState::Applied
    } else if paths.cmdline().exists() {
        LayerState::Empty
    } else {
        LayerState::Absent
    };
    out.push(LayerStatus {
        warnings: warnings_of(loaded, &source),
        source: format!("{source} ({})", paths.cmdline().display()),
        state,
        errors,
    });
    out
}

fn warnings_of(loaded: &Loaded, source: &str) -> Vec<Warning> {
    loaded
        .warnings
        .iter()
        .filter(|w| w.source == source)
        .cloned()
        .collect()
}

/// What the last `ros cloud-init save` did, kept in `var/lib/ros/conf/status.json`:
///
/// ```json
/// {"datasource": "nocloud", "fetched_at": "2026-01-01T10:00:00Z",
///  "rejected": [{"source": "user-data", "error": "user-data:3:1: …"}]}
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaveStatus {
    /// The datasource that answered (`nocloud`, `ec2`, …).
    #[serde(default)]
    pub datasource: String,
    /// When its userdata was fetched (RFC 3339, UTC).
    #[serde(default)]
    pub fetched_at: String,
    /// Parts of the userdata that were not saved, and why.
    #[serde(default)]
    pub rejected: Vec<Rejected>,
}

/// One part of the userdata `ros cloud-init save` refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    pub source: String,
    /// The located error, as printed (`user-data:3:1: path: message`).
    pub error: String,
}

/// Where [`SaveStatus`] lives under `root`.
pub fn status_path(root: &Path) -> PathBuf {
    root.join("var/lib/ros/conf/status.json")
}

/// The last save's status; `None` when no save has recorded one.
pub fn read_status(root: &Path) -> Result<Option<SaveStatus>, EditError> {
    let file = status_path(root);
    let data = match fs::read(&file) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(EditError::Read { file, source }),
    };
    serde_json::from_slice(&data)
        .map(Some)
        .map_err(|source| EditError::Json { file, source })
}

/// Records `status` atomically (mode 0644: it holds no secrets).
pub fn write_status(root: &Path, status: &SaveStatus) -> Result<(), EditError> {
    let file = status_path(root);
    let mut data = serde_json::to_vec_pretty(status).map_err(|source| EditError::Json {
        file: file.clone(),
        source,
    })?;
    data.push(b'\n');
    write_atomic(&file, &data, 0o644).map_err(|source| EditError::Write { file, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn roundtrip(v: &Value) {
        let text = to_document(v);
        let back = node::parse(&text)
            .unwrap_or_else(|e| panic!("{e:?} in\n{text}"))
            .to_json();
        assert_eq!(&back, v, "round trip of\n{text}");
    }

    #[test]
    fn set_creates_maps_and_follows_the_alias() {
        let mut d = json!({});
        set(&mut d, "hostname", json!("h1")).unwrap();
        set(&mut d, "rancher.state.dev", json!("LABEL=ROS_STATE")).unwrap();
        set(&mut d, "ros.state.autoformat", json!(["/dev/vda"])).unwrap();
        assert_eq!(
            d,
            json!({"hostname": "h1", "ros": {"state": {"dev": "LABEL=ROS_STATE", "autoformat": ["/dev/vda"]}}})
        );
        assert_eq!(
            get(&d, "rancher.state.dev").unwrap(),
            Some(&json!("LABEL=ROS_STATE"))
        );
        assert_eq!(get(&d, "ros.state.nope").unwrap(), None);
        assert!(matches!(get(&d, "ros..x"), Err(EditError::BadKey(_))));
    }

    #[test]
    fn set_folds_a_rancher_section_and_refuses_to_replace_scalars() {
        let mut d = json!({"rancher": {"debug": true, "state": {"dev": "/dev/sda"}}, "ros": {"debug": false}});
        set(&mut d, "ros.state.fstype", json!("ext4")).unwrap();
        assert_eq!(
            d,
            json!({"ros": {"debug": false, "state": {"dev": "/dev/sda", "fstype": "ext4"}}})
        );
        let e =
            set(&mut d, "hostname", json!("x")).and_then(|_| set(&mut d, "hostname.a", json!(1)));
        assert!(matches!(e, Err(EditError::NotAMap { .. })), "{e:?}");
    }

    #[test]
    fn dotted_keys_in_flat_maps_and_list_indexes() {
        let mut d = json!({"users": [{"name": "a"}]});
        set(&mut d, "ros.sysctl.net.ipv4.ip_forward", json!("1")).unwrap();
        set(&mut d, "users.0.shell", json!("/bin/sh")).unwrap();
        assert_eq!(
            d,
            json!({"users": [{"name": "a", "shell": "/bin/sh"}], "ros": {"sysctl": {"net.ipv4.ip_forward": "1"}}})
        );
        assert_eq!(
            get(&d, "ros.sysctl.net.ipv4.ip_forward").unwrap(),
            Some(&json!("1"))
        );
        assert_eq!(get(&d, "users.0.name").unwrap(), Some(&json!("a")));
        assert!(set(&mut d, "users.5.shell", json!("x")).is_err());
    }

    #[test]
    fn values_parse_as_yaml() {
        assert_eq!(parse_value("[/dev/vda]").unwrap(), json!(["/dev/vda"]));
        assert_eq!(parse_value("yes").unwrap(), json!(true));
        assert_eq!(parse_value("0644").unwrap(), json!("0644"));
        assert_eq!(
            parse_value("LABEL=ROS_STATE").unwrap(),
            json!("LABEL=ROS_STATE")
        );
        assert_eq!(parse_value("").unwrap(), json!(""));
        assert!(parse_value("[a, b").is_err());
    }

    #[test]
    fn emitter_quotes_what_would_read_as_something_else() {
        for s in [
            "yes",
            "No",
            "on",
            "OFF",
            "true",
            "null",
            "~",
            "",
            " lead",
            "trail ",
            "0644",
            "0x1f",
            "1_000",
            "1:20",
            "12",
            "-3",
            "1.5",
            ".5",
            ".inf",
            "2024-01-01",
            "a: b",
            "a #b",
            "#x",
            "-x",
            "- x",
            "*ref",
            "&a",
            "!tag",
            "|",
            ">",
            "'q'",
            "\"q\"",
            "%x",
            "@x",
            "`x",
            "x:",
            "[a]",
            "{a}",
            "a,b",
            "?x",
            "=",
            "<<",
            "tab\there",
            "cr\r",
        ] {
            let text = to_yaml(&json!({ "k": s }));
            let back = node::parse(&text).unwrap().to_json();
            assert_eq!(back, json!({ "k": s }), "{s:?} emitted as {text}");
        }
        assert_eq!(to_yaml(&json!({"k": "0644"})), "k: \"0644\"\n");
        assert_eq!(to_yaml(&json!({"k": "yes"})), "k: \"yes\"\n");
        // Ordinary values stay plain.
        assert_eq!(
            to_yaml(&json!({"dev": "LABEL=ROS_STATE", "p": "/dev/vda", "ip": "10.0.0.1/24x"})),
            "dev: LABEL=ROS_STATE\nip: 10.0.0.1/24x\np: /dev/vda\n"
        );
    }

    #[test]
    fn emitter_round_trips_documents() {
        roundtrip(&json!({}));
        roundtrip(&json!({
            "hostname": "h",
            "ssh_authorized_keys": ["ssh-ed25519 AAAAC3Nz user@host"],
            "write_files": [
                {"path": "/etc/x", "permissions": "0644", "content": "line 1\nline 2\n"},
                {"path": "/etc/y", "content": "no newline\nat end"},
                {"path": "/etc/z", "content": "two\n\nblank\n\n\n"},
                {"path": "/etc/w", "content": "  indented first\nline\n"},
                {"path": "/etc/v", "content": ""}
            ],
            "runcmd": [["echo", "a b"], "echo hi # not a comment"],
            "ros": {
                "boot_timeout": 300, "debug": false, "ratio": 1.5, "nothing": null,
                "state": {"autoformat": ["/dev/vda"], "dev": "LABEL=ROS_STATE"},
                "environment": {"UMASK": "022"},
                "empty_map": {}, "empty_list": [],
                "nested": [[1, 2], [{"a": [3]}], {"b": {"c": "d"}}]
            },
            "0644": "numeric key", "weird key: x": "v"
        }));
    }

    #[test]
    fn emitted_documents_validate() {
        let v = json!({"hostname": "h", "write_files": [{"path": "/x", "permissions": "0600", "content": "a\nb\n"}], "ros": {"state": {"dev": "LABEL=ROS_STATE"}, "debug": true}});
        let text = to_document(&v);
        assert!(text.starts_with("#cloud-config\n"));
        let normalized = crate::to_json(&parse_document("t", &text).unwrap().config);
        // The normalized form (what `export --full` prints) is a fixed point.
        let again = to_document(&normalized);
        let back = crate::to_json(&parse_document("t", &again).unwrap().config);
        assert_eq!(back, normalized, "{again}");
        assert_eq!(normalized["write_files"][0]["permissions"], "0600");
    }

    #[test]
    fn secrets_are_stripped() {
        let mut d = json!({
            "users": [{"name": "a", "passwd": "x", "hashed_passwd": "y", "plain_text_passwd": "z", "shell": "/bin/sh"}, "b"],
            "rancher": {"ssh": {"keys": {"ssh_host_rsa_key": "PRIVATE"}, "port": 22},
                        "docker": {"tls_server_key": "K", "tls_cakey": "K", "tls": true, "tls_server_cert": "C"}},
            "write_files": [{"path": "/x", "private_key": "P", "ssh_private": "P"}],
            "hostname": "h"
        });
        let removed = strip_secrets(&mut d);
        assert_eq!(
            d,
            json!({
                "users": [{"name": "a", "shell": "/bin/sh"}, "b"],
                "ros": {"ssh": {"port": 22}, "docker": {"tls": true, "tls_server_cert": "C"}},
                "write_files": [{"path": "/x"}],
                "hostname": "h"
            })
        );
        for p in [
            "ros.ssh.keys",
            "ros.docker.tls_server_key",
            "ros.docker.tls_cakey",
            "users[0].passwd",
            "users[0].hashed_passwd",
            "users[0].plain_text_passwd",
            "write_files[0].private_key",
            "write_files[0].ssh_private",
        ] {
            assert!(removed.iter().any(|r| r == p), "{p} not in {removed:?}");
        }
    }

    #[test]
    fn comments_are_noticed() {
        assert!(!has_comments("#cloud-config\nhostname: a\n"));
        assert!(has_comments("#cloud-config\n# mine\nhostname: a\n"));
        assert!(has_comments("#cloud-config\nhostname: a # why\n"));
    }

    #[test]
    fn user_doc_save_is_checked_and_atomic() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("conf/cloud-config.yml");
        let mut doc = UserDoc::read(&file).unwrap();
        assert!(doc.text.is_none());
        set(&mut doc.value, "hostname", json!("one")).unwrap();
        let (_, changed) = doc.save().unwrap();
        assert!(changed);
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            "#cloud-config\nhostname: one\n"
        );
        let mut doc = UserDoc::read(&file).unwrap();
        set(
            &mut doc.value,
            "write_files",
            json!([{"path": "/x", "permissions": "rwx"}]),
        )
        .unwrap();
        let e = doc.save().unwrap_err();
        let EditError::Invalid(e) = e else {
            panic!("{e:?}")
        };
        assert_eq!(e.path, "write_files[0].permissions");
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            "#cloud-config\nhostname: one\n"
        );
        // No temporary file left behind.
        assert_eq!(fs::read_dir(file.parent().unwrap()).unwrap().count(), 1);
        fs::write(&file, "hostname: [a\n").unwrap();
        assert!(matches!(
            UserDoc::read(&file),
            Err(EditError::Unparsable { .. })
        ));
    }

    #[test]
    fn status_file_round_trips() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(read_status(t.path()).unwrap(), None);
        let s = SaveStatus {
            datasource: "nocloud".into(),
            fetched_at: "2026-01-01T10:00:00Z".into(),
            rejected: vec![Rejected {
                source: "user-data".into(),
                error: "user-data:3:1: hostname: bad".into(),
            }],
        };
        write_status(t.path(), &s).unwrap();
        assert_eq!(read_status(t.path()).unwrap(), Some(s));
        let dir = status_path(t.path());
        let names: Vec<_> = fs::read_dir(dir.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("status.json")]);
        fs::write(&dir, "{not json").unwrap();
        assert!(matches!(read_status(t.path()), Err(EditError::Json { .. })));
        // Fields a later ros adds or an older one lacks do not break reading.
        fs::write(&dir, r#"{"datasource": "ec2", "extra": 1}"#).unwrap();
        assert_eq!(read_status(t.path()).unwrap().unwrap().datasource, "ec2");
    }

    #[test]
    fn layer_status_reports_each_layer() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let w = |rel: &str, text: &str| {
            let p = r.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        };
        w(
            "usr/share/ros/os-config.yml",
            "#cloud-config\nros:\n  debugg: true\n",
        );
        w(
            "var/lib/ros/conf/cloud-config.d/10-bad.yml",
            "#cloud-config\nwrite_files:\n- path: /x\n  permissions: rwx\n",
        );
        w("var/lib/ros/conf/cloud-config.d/README", "not read\n");
        w("proc/cmdline", "console=ttyS0\n");
        let paths = ConfigPaths::new(r);
        let st = layer_status(&paths, &crate::load::load(&paths));
        assert_eq!(st.len(), 5, "{st:?}");
        assert_eq!(st[0].state, LayerState::Applied);
        assert_eq!(st[0].warnings.len(), 1);
        let LayerState::Rejected(e) = &st[1].state else {
            panic!("{st:?}")
        };
        assert_eq!(e.path, "write_files[0].permissions");
        assert_eq!(st[2].state, LayerState::Ignored);
        assert_eq!(st[3].state, LayerState::Absent);
        assert_eq!(st[4].state, LayerState::Empty);
    }
}
