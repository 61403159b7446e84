//! `ros service enable|disable NAME`: sets `ros.services_include.NAME` in the user's
//! `cloud-config.yml`, read-modify-write, written atomically.
//!
//! The file is the user's: the edit is made in its text, so comments, order and the rest of
//! its content stay as they were. The result is parsed back and must equal the old content
//! plus the one change; when the text cannot be edited that way (flow style, say), the
//! file is rewritten from its parsed content instead, and the caller is told that comments
//! and formatting were not kept.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::config::{parse_yaml, Paths, ServicesConfig};

/// Why `enable`/`disable` refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("no catalog service named {name:?} in {dir} (available: {available})")]
    UnknownEntry {
        name: String,
        dir: PathBuf,
        available: String,
    },
    #[error("{name:?} is not an optional catalog service: it is defined by {defined_in} and always enabled")]
    NotOptional { name: String, defined_in: String },
    #[error("cannot edit {file}: it does not parse ({message}); fix it first")]
    Unparsable { file: PathBuf, message: String },
    #[error("cannot edit {file}: {message}")]
    Unrepresentable { file: PathBuf, message: String },
    #[error("cannot read {file}: {source}")]
    Read { file: PathBuf, source: io::Error },
    #[error("cannot write {file}: {source}")]
    Write { file: PathBuf, source: io::Error },
}

/// What an edit did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncludeChange {
    pub file: PathBuf,
    /// False when the file already said so.
    pub changed: bool,
    /// True when the file had to be rewritten from its parsed content (comments lost).
    pub reformatted: bool,
}

/// Sets `ros.services_include.<name>: <on>` in the user config. `name` must be a catalog
/// entry of `cfg`.
pub fn set_include(
    paths: &Paths,
    cfg: &ServicesConfig,
    name: &str,
    on: bool,
) -> Result<IncludeChange, EditError> {
    if !cfg.catalog.contains_key(name) {
        if let Some(e) = cfg.services.get(name) {
            let defined_in = e
                .sources
                .last()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "the config".into());
            return Err(EditError::NotOptional {
                name: name.into(),
                defined_in,
            });
        }
        let available: Vec<&str> = cfg.catalog.keys().map(String::as_str).collect();
        return Err(EditError::UnknownEntry {
            name: name.into(),
            dir: paths.catalog_dir(),
            available: if available.is_empty() {
                "none".into()
            } else {
                available.join(", ")
            },
        });
    }
    let file = paths.user_config();
    let old = match fs::read_to_string(&file) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(source) => return Err(EditError::Read { file, source }),
    };
    let (text, reformatted) = edit_include(old.as_deref(), name, on).map_err(|e| match e {
        EditFailure::Unparsable(message) => EditError::Unparsable {
            file: file.clone(),
            message,
        },
        EditFailure::Unrepresentable(message) => EditError::Unrepresentable {
            file: file.clone(),
            message,
        },
    })?;
    if old.as_deref() == Some(text.as_str()) {
        return Ok(IncludeChange {
            file,
            changed: false,
            reformatted: false,
        });
    }
    write_atomic(&file, text.as_bytes()).map_err(|source| EditError::Write {
        file: file.clone(),
        source,
    })?;
    Ok(IncludeChange {
        file,
        changed: true,
        reformatted,
    })
}

/// Why a text could not be edited.
#[derive(Debug, PartialEq, Eq)]
pub enum EditFailure {
    Unparsable(String),
    Unrepresentable(String),
}

/// The user config `old` (`None`: no file yet) with `services_include.<name>: <on>` set;
/// and whether it had to be rewritten rather than edited in place.
pub fn edit_include(
    old: Option<&str>,
    name: &str,
    on: bool,
) -> Result<(String, bool), EditFailure> {
    let Some(old) = old else {
        return Ok((
            format!("#cloud-config\nros:\n  services_include:\n    {name}: {on}\n"),
            false,
        ));
    };
    let parsed = parse_yaml(old).map_err(|e| {
        EditFailure::Unparsable(match (e.line, e.column) {
            (Some(l), Some(c)) => format!("line {l}, column {c}: {}", e.message),
            _ => e.message,
        })
    })?;
    let mut top = match parsed {
        Value::Null => Map::new(),
        Value::Object(m) => m,
        _ => {
            return Err(EditFailure::Unparsable(
                "the top level is not a mapping".into(),
            ))
        }
    };
    let ns = if top.contains_key("ros") || !top.get("rancher").is_some_and(Value::is_object) {
        "ros"
    } else {
        "rancher"
    };
    let old_top = Value::Object(top.clone());
    let ns_map = top.entry(ns).or_insert_with(|| Value::Object(Map::new()));
    if ns_map.is_null() {
        *ns_map = Value::Object(Map::new());
    }
    let Some(ns_obj) = ns_map.as_object_mut() else {
        return Err(EditFailure::Unrepresentable(format!(
            "{ns}: is not a mapping"
        )));
    };
    let inc = ns_obj
        .entry("services_include")
        .or_insert_with(|| Value::Object(Map::new()));
    if inc.is_null() {
        *inc = Value::Object(Map::new());
    }
    let Some(inc_obj) = inc.as_object_mut() else {
        return Err(EditFailure::Unrepresentable(format!(
            "{ns}.services_include is not a mapping"
        )));
    };
    inc_obj.insert(name.to_string(), Value::Bool(on));
    let expected = Value::Object(top);
    if expected == old_top {
        return Ok((old.to_string(), false));
    }
    if let Some(text) = edit_text(old, ns, name, on) {
        if parse_yaml(&text).ok().as_ref() == Some(&expected) {
            return Ok((text, false));
        }
    }
    let body = serde_saphyr::to_string(&expected)
        .map_err(|e| EditFailure::Unrepresentable(e.to_string()))?;
    let text = if old.starts_with("#cloud-config") {
        format!("#cloud-config\n{body}")
    } else {
        body
    };
    if parse_yaml(&text).ok().as_ref() != Some(&expected) {
        return Err(EditFailure::Unrepresentable(
            "its content does not survive being rewritten".into(),
        ));
    }
    Ok((text, true))
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_content(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && !t.starts_with('#')
}

/// A block-mapping key line: (key, what follows the colon).
fn key_of(line: &str) -> Option<(String, &str)> {
    let t = line.trim_start_matches(' ');
    if t.starts_with('-') || t.starts_with('#') {
        return None;
    }
    let (k, rest) = if let Some(q) = t.strip_prefix('"').or_else(|| t.strip_prefix('\'')) {
        let quote = &t[..1];
        let end = q.find(quote)?;
        (q[..end].to_string(), q[end + 1..].strip_prefix(':')?)
    } else {
        let colon = t
            .find(": ")
            .or_else(|| t.strip_suffix(':').map(|s| s.len()))?;
        (t[..colon].trim_end().to_string(), &t[colon + 1..])
    };
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    Some((k, rest.trim()))
}

/// Whether what follows a key's colon opens a block (nothing, or a comment).
fn opens_block(rest: &str) -> bool {
    rest.is_empty() || rest.starts_with('#')
}

/// Edits the text in place (see the module doc); `None` when its shape is not the plain
/// block style this handles.
fn edit_text(old: &str, ns: &str, name: &str, on: bool) -> Option<String> {
    let mut lines: Vec<String> = old.lines().map(str::to_string).collect();
    let find = |lines: &[String], from: usize, to: usize, indent: usize, key: &str| {
        (from..to).find(|&i| {
            indent_of(&lines[i]) == indent
                && is_content(&lines[i])
                && key_of(&lines[i]).is_some_and(|(k, _)| k == key)
        })
    };
    // The end of the block that starts after `from` and holds lines indented past `indent`.
    let block_end = |lines: &[String], from: usize, indent: usize| {
        (from..lines.len())
            .find(|&i| is_content(&lines[i]) && indent_of(&lines[i]) <= indent)
            .unwrap_or(lines.len())
    };
    let first_indent = |lines: &[String], from: usize, to: usize| {
        (from..to)
            .find(|&i| is_content(&lines[i]))
            .map(|i| indent_of(&lines[i]))
    };

    let Some(ns_at) = find(&lines, 0, lines.len(), 0, ns) else {
        let mut text = old.to_string();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("{ns}:\n  services_include:\n    {name}: {on}\n"));
        return Some(text);
    };
    if !opens_block(key_of(&lines[ns_at])?.1) {
        return None;
    }
    let ns_end = block_end(&lines, ns_at + 1, 0);
    let ci = first_indent(&lines, ns_at + 1, ns_end).unwrap_or(2);
    if ci == 0 {
        return None;
    }
    match find(&lines, ns_at + 1, ns_end, ci, "services_include") {
        None => {
            lines.insert(ns_at + 1, format!("{}services_include:", " ".repeat(ci)));
            lines.insert(ns_at + 2, format!("{}{name}: {on}", " ".repeat(2 * ci)));
        }
        Some(si) => {
            if !opens_block(key_of(&lines[si])?.1) {
                return None;
            }
            let si_end = block_end(&lines, si + 1, ci);
            let gi = first_indent(&lines, si + 1, si_end).unwrap_or(2 * ci);
            if gi <= ci {
                return None;
            }
            match find(&lines, si + 1, si_end, gi, name) {
                Some(at) => {
                    let (_, rest) = key_of(&lines[at])?;
                    let comment = rest
                        .find(" #")
                        .map(|c| rest[c..].to_string())
                        .or_else(|| rest.starts_with('#').then(|| format!(" {rest}")))
                        .unwrap_or_default();
                    let t = lines[at].trim_start();
                    let key_end = t.find(':')?;
                    lines[at] = format!("{}{}: {on}{comment}", " ".repeat(gi), &t[..key_end]);
                }
                None => lines.insert(si + 1, format!("{}{name}: {on}", " ".repeat(gi))),
            }
        }
    }
    let mut text = lines.join("\n");
    if old.ends_with('\n') || old.is_empty() {
        text.push('\n');
    }
    Some(text)
}

/// Writes `data` to `path` atomically (temp file in the same dir, fsync, rename, fsync the
/// dir), keeping the old file's mode (0600 for a new one: configs may hold secrets).
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let mode = fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o600);
    ros_cloud_config::edit::write_atomic(path, data, mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(old: &str, name: &str, on: bool) -> (String, bool) {
        edit_include(Some(old), name, on).unwrap()
    }

    #[test]
    fn new_file() {
        let (t, re) = edit_include(None, "agent", true).unwrap();
        assert_eq!(
            t,
            "#cloud-config\nros:\n  services_include:\n    agent: true\n"
        );
        assert!(!re);
    }

    #[test]
    fn keeps_comments_and_other_keys() {
        let old = "#cloud-config\n# my host\nhostname: box # the name\nros:\n  # services\n  services:\n    web:\n      image: nginx\nssh_authorized_keys:\n- ssh-ed25519 AAA\n";
        let (t, re) = edit(old, "agent", true);
        assert!(!re);
        assert_eq!(
            t,
            "#cloud-config\n# my host\nhostname: box # the name\nros:\n  services_include:\n    agent: true\n  # services\n  services:\n    web:\n      image: nginx\nssh_authorized_keys:\n- ssh-ed25519 AAA\n"
        );
        // Flipping it edits that line only, keeping its comment.
        let t2 = t.replace("agent: true", "agent: true # on");
        let (t3, _) = edit(&t2, "agent", false);
        assert_eq!(t3, t2.replace("agent: true # on", "agent: false # on"));
        // Another entry joins the same map.
        let (t4, _) = edit(&t3, "vm", true);
        assert!(
            t4.contains("  services_include:\n    vm: true\n    agent: false # on\n"),
            "{t4}"
        );
    }

    #[test]
    fn four_space_indent_and_rancher_alias() {
        let old = "rancher:\n    services_include:\n        kernel-headers: true\n";
        let (t, re) = edit(old, "agent", true);
        assert!(!re);
        assert_eq!(
            t,
            "rancher:\n    services_include:\n        agent: true\n        kernel-headers: true\n"
        );
    }

    #[test]
    fn appends_a_namespace() {
        let (t, _) = edit("hostname: h", "agent", false);
        assert_eq!(
            t,
            "hostname: h\nros:\n  services_include:\n    agent: false\n"
        );
        let (t, _) = edit("# only a comment\n", "agent", true);
        assert_eq!(
            t,
            "# only a comment\nros:\n  services_include:\n    agent: true\n"
        );
    }

    #[test]
    fn unchanged_when_already_set() {
        let old = "ros:\n  services_include:\n    agent: yes\n";
        assert_eq!(edit(old, "agent", true).0, old.replace("yes", "true"));
        let old = "ros:\n  services_include:\n    agent: true\n";
        assert_eq!(edit(old, "agent", true).0, old);
    }

    #[test]
    fn flow_style_is_rewritten() {
        let (t, re) = edit(
            "#cloud-config\nros: {services_include: {vm: true}}\n",
            "agent",
            true,
        );
        assert!(re);
        let v = parse_yaml(&t).unwrap();
        assert_eq!(v["ros"]["services_include"]["agent"], true);
        assert_eq!(v["ros"]["services_include"]["vm"], true);
        assert!(t.starts_with("#cloud-config\n"));
    }

    #[test]
    fn refuses_broken_files() {
        let e = edit_include(Some("ros: [\n"), "agent", true).unwrap_err();
        assert!(matches!(e, EditFailure::Unparsable(m) if m.contains("line")));
    }

    #[test]
    fn atomic_write_keeps_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/c.yml");
        write_atomic(&p, b"a").unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&p, b"b").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "b");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert_eq!(fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }
}
