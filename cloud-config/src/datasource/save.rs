//! `ros cloud-init save`: ask the sources in order until one answers, check its userdata and
//! keep what is good for the apply step.
//!
//! What is kept, under the root:
//! - `var/lib/ros/conf/cloud-config.d/userdata.yml` (0600): the userdata's cloud-config. One
//!   `#cloud-config` part is kept verbatim (comments and all, so errors point at the user's
//!   lines); several parts (MIME multipart) are merged in order with [`crate::merge::merge`]
//!   (maps merge, later scalars and lists replace — cloud-init's default merge) into one
//!   document.
//! - `var/lib/ros/conf/scripts/NN` (0700, `01`, `02`, … in userdata order): `#!` scripts.
//! - `var/lib/ros/conf/metadata.json` ([`crate::instance`]) and `status.json`
//!   ([`crate::edit::SaveStatus`]).
//!
//! The userdata is all or nothing: when it cannot be classified or any cloud-config part
//! fails to validate, nothing of it is written — the previously saved `userdata.yml` and
//! scripts stay byte-identical, so a bad re-fetch never replaces the last good config — and
//! each failure is recorded in `status.json` with its located error. Metadata (keys,
//! hostname) is saved either way. A source that answers without userdata (or with empty
//! userdata) removes the previously saved userdata: that is its answer.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Context, Phase, Spec};
use crate::edit::{self, EditError, Rejected, SaveStatus};
use crate::instance::{self, Metadata};
use crate::userdata::{classify, Part};
use crate::{merge, parse_document, Warning};

/// How `save` asks.
#[derive(Clone, Debug)]
pub struct SaveOptions {
    /// The deadline for all sources together.
    pub timeout: Duration,
    pub allow_imdsv1: bool,
}

impl Default for SaveOptions {
    fn default() -> Self {
        SaveOptions {
            timeout: Duration::from_secs(60),
            allow_imdsv1: false,
        }
    }
}

/// A source that did not answer: `error` is `None` when it is simply not present.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub spec: String,
    pub error: Option<String>,
}

/// What was saved from the source that answered.
#[derive(Clone, Debug, Default)]
pub struct Answer {
    /// The spec as configured (`nocloud:/seed.iso`).
    pub spec: String,
    /// The datasource name (`nocloud`).
    pub datasource: &'static str,
    pub metadata: Metadata,
    /// Whether the source had (non-empty) userdata.
    pub had_userdata: bool,
    /// The cloud-config written, if any.
    pub cloud_config: Option<PathBuf>,
    /// The scripts written.
    pub scripts: Vec<PathBuf>,
    /// Previously saved userdata files removed because the source now has none.
    pub removed: Vec<PathBuf>,
    /// What was refused; when not empty, the previous userdata was kept.
    pub rejected: Vec<Rejected>,
    pub warnings: Vec<Warning>,
}

/// What `save` did.
#[derive(Clone, Debug, Default)]
pub struct SaveOutcome {
    /// Sources of the phase that did not answer, in order.
    pub tried: Vec<Attempt>,
    /// Sources left out because they belong to the other phase.
    pub other_phase: Vec<String>,
    pub answered: Option<Answer>,
}

#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Status(#[from] EditError),
}

fn write_err(path: &Path) -> impl FnOnce(io::Error) -> SaveError + '_ {
    move |source| SaveError::Write {
        path: path.to_owned(),
        source,
    }
}

pub fn userdata_path(root: &Path) -> PathBuf {
    crate::load::ConfigPaths::new(root)
        .dropins()
        .join("userdata.yml")
}

pub fn scripts_dir(root: &Path) -> PathBuf {
    root.join("var/lib/ros/conf/scripts")
}

/// Tries `sources` of `phase` (all of them when `None`) in order until one answers, then
/// saves what it gave. Failing sources are logged and listed in the outcome; nothing
/// answering is not an error (`answered` is `None`).
pub fn save(
    root: &Path,
    sources: &[Spec],
    phase: Option<Phase>,
    opts: &SaveOptions,
) -> Result<SaveOutcome, SaveError> {
    let ctx = Context {
        root: root.to_owned(),
        deadline: Instant::now() + opts.timeout,
        allow_imdsv1: opts.allow_imdsv1,
    };
    let mut out = SaveOutcome::default();
    for spec in sources {
        let provider = spec.provider(root);
        if phase.is_some_and(|p| p != provider.phase()) {
            out.other_phase.push(spec.to_string());
            continue;
        }
        match provider.fetch(&ctx) {
            Ok(Some(fetched)) => {
                log::info!("{spec}: answered");
                let mut answer = keep(root, provider.name(), fetched.userdata, fetched.metadata)?;
                answer.spec = spec.to_string();
                out.answered = Some(answer);
                break;
            }
            Ok(None) => {
                log::info!("{spec}: not present");
                out.tried.push(Attempt {
                    spec: spec.to_string(),
                    error: None,
                });
            }
            Err(e) => {
                log::warn!("{spec}: {e}");
                out.tried.push(Attempt {
                    spec: spec.to_string(),
                    error: Some(e.to_string()),
                });
            }
        }
    }
    Ok(out)
}

/// The checked userdata: the cloud-config to write (if any) and the scripts.
struct Checked {
    cloud_config: Option<String>,
    scripts: Vec<Vec<u8>>,
}

fn check(data: &[u8], answer: &mut Answer) -> Option<Checked> {
    let parts = match classify(data) {
        Ok(p) => p,
        Err(e) => {
            answer.rejected.push(Rejected {
                source: "user-data".into(),
                error: e.to_string(),
            });
            return None;
        }
    };
    answer.had_userdata = !parts.is_empty();
    let mut docs = Vec::new();
    let mut scripts = Vec::new();
    for part in parts {
        match part {
            Part::CloudConfig { name, text } => match parse_document(&name, &text) {
                Ok(v) => {
                    answer.warnings.extend(v.warnings);
                    docs.push((name, text));
                }
                Err(e) => answer.rejected.push(Rejected {
                    source: name,
                    error: e.to_string(),
                }),
            },
            Part::Script { body, .. } => scripts.push(body),
        }
    }
    if !answer.rejected.is_empty() {
        return None;
    }
    let cloud_config = match docs.len() {
        0 => None,
        1 => {
            let mut text = docs.remove(0).1;
            if !text.ends_with('\n') {
                text.push('\n');
            }
            Some(text)
        }
        _ => {
            let mut merged = Value::Object(Default::default());
            for (name, text) in &docs {
                // Validated above, so the raw tree parses too.
                let Ok(mut v) = edit::parse_raw(name, text) else {
                    continue;
                };
                edit::normalize_alias(&mut v);
                merge::merge(&mut merged, v);
            }
            let doc = edit::to_document(&merged);
            if let Err(e) = parse_document("user-data (merged)", &doc) {
                answer.rejected.push(Rejected {
                    source: "user-data (merged)".into(),
                    error: e.to_string(),
                });
                return None;
            }
            Some(doc)
        }
    };
    Some(Checked {
        cloud_config,
        scripts,
    })
}

fn remove(path: &Path, answer: &mut Answer) -> Result<(), SaveError> {
    match fs::remove_file(path) {
        Ok(()) => {
            answer.removed.push(path.to_owned());
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(write_err(path)(e)),
    }
}

fn write(root: &Path, checked: Checked, answer: &mut Answer) -> Result<(), SaveError> {
    let file = userdata_path(root);
    match checked.cloud_config {
        Some(text) => {
            edit::write_atomic(&file, text.as_bytes(), 0o600).map_err(write_err(&file))?;
            answer.cloud_config = Some(file);
        }
        None => remove(&file, answer)?,
    }
    let dir = scripts_dir(root);
    let old: Vec<PathBuf> = match fs::read_dir(&dir) {
        Ok(rd) => rd.filter_map(Result::ok).map(|e| e.path()).collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(write_err(&dir)(e)),
    };
    let mut keep = Vec::new();
    for (i, body) in checked.scripts.iter().enumerate() {
        let path = dir.join(format!("{:02}", i + 1));
        edit::write_atomic(&path, body, 0o700).map_err(write_err(&path))?;
        keep.push(path);
    }
    for path in old.into_iter().filter(|p| !keep.contains(p)) {
        remove(&path, answer)?;
    }
    answer.scripts = keep;
    Ok(())
}

/// Saves what a source answered (see the module doc).
fn keep(
    root: &Path,
    name: &'static str,
    userdata: Option<Vec<u8>>,
    mut metadata: Metadata,
) -> Result<Answer, SaveError> {
    let fetched_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut answer = Answer {
        datasource: name,
        ..Answer::default()
    };
    let checked = match &userdata {
        Some(data) => check(data, &mut answer),
        None => Some(Checked {
            cloud_config: None,
            scripts: Vec::new(),
        }),
    };
    if let Some(checked) = checked {
        write(root, checked, &mut answer)?;
    }
    metadata.datasource = name.to_owned();
    let meta_file = instance::metadata_path(root);
    instance::write(root, &metadata).map_err(write_err(&meta_file))?;
    answer.metadata = metadata;
    edit::write_status(
        root,
        &SaveStatus {
            datasource: name.to_owned(),
            fetched_at,
            rejected: answer.rejected.clone(),
        },
    )?;
    Ok(answer)
}

#[cfg(test)]
pub(super) fn keep_for_test(
    root: &Path,
    userdata: Option<&[u8]>,
    metadata: Metadata,
) -> Result<Answer, SaveError> {
    keep(root, "file", userdata.map(<[u8]>::to_vec), metadata)
}
