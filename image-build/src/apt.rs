//! Debian packages through apt, without installing anything on the build machine.
//!
//! - **Resolving** a layer's packages uses apt's own solver in a private apt root: the
//!   build machine's sources and package lists, but a dpkg status file of our own listing
//!   what the layers below have (and the ignored packages) as installed. `apt-get -s install`
//!   then prints exactly the packages the layer adds — Depends and Pre-Depends only (no
//!   Recommends, no Suggests), alternatives chosen as apt chooses them. The status entries
//!   carry no dependencies of their own, so an ignored package pulls nothing in.
//! - **Downloading** is `apt-get download name=version` (signatures and hashes checked by
//!   apt) into a cache keyed by package, version and architecture.
//!
//! Both are cached: a resolution under a key made of the package lists' fingerprint and the
//! request, a package file forever (a Debian archive never reuses name + version + arch).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

/// A concrete package.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub arch: String,
}

impl Package {
    /// The file name apt gives its download (`:` of an epoch escaped as `%3a`).
    pub fn deb_file_name(&self) -> String {
        format!(
            "{}_{}_{}.deb",
            self.name,
            self.version.replace(':', "%3a"),
            self.arch
        )
    }

    pub fn spec(&self) -> String {
        format!("{}={}", self.name, self.version)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AptError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("cannot run {cmd}: {source}")]
    Spawn { cmd: String, source: io::Error },
    #[error("{cmd} failed ({status}):\n{stderr}")]
    Failed {
        cmd: String,
        status: String,
        stderr: String,
    },
    #[error("no package lists in {0}: run `apt-get update` first")]
    NoLists(PathBuf),
    #[error(
        "apt knows no package {0:?} (is it in the build machine's sources? run `apt-get update`)"
    )]
    Unknown(String),
    #[error("apt-get download did not produce {0}")]
    Missing(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> AptError + '_ {
    move |source| AptError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Bump when the meaning of a cached resolution changes.
const RESOLVE_FORMAT: &str = "ros-image-build resolve v3";
const LISTS_DIR: &str = "/var/lib/apt/lists";

pub struct Apt {
    /// `<cache>/apt`: the private apt root's cache and state, and cached resolutions.
    dir: PathBuf,
    /// `<cache>/debs`
    debs: PathBuf,
    arch: String,
    fingerprint: String,
    /// Control fields from `apt-cache show`, by name and version (`None`: the candidate).
    stanzas: BTreeMap<(String, Option<String>), BTreeMap<String, String>>,
}

impl Apt {
    /// Opens the cache under `cache` for packages of `arch` (amd64).
    pub fn new(cache: &Path, arch: &str) -> Result<Apt, AptError> {
        let dir = cache.join("apt");
        let debs = cache.join("debs");
        for d in [dir.join("cache"), dir.join("resolved"), debs.clone()] {
            fs::create_dir_all(&d).map_err(io_err(&d))?;
        }
        let fingerprint = lists_fingerprint(Path::new(LISTS_DIR))?;
        Ok(Apt {
            dir,
            debs,
            arch: arch.to_string(),
            fingerprint,
            stanzas: BTreeMap::new(),
        })
    }

    /// Where a downloaded package is kept.
    pub fn deb_path(&self, p: &Package) -> PathBuf {
        self.debs.join(p.deb_file_name())
    }

    /// The packages `apt-get install wanted` would add to a system that has `installed`,
    /// treating `ignore` as installed too; sorted by name. Cached.
    pub fn resolve(
        &mut self,
        wanted: &[String],
        installed: &[Package],
        ignore: &[String],
    ) -> Result<Vec<Package>, AptError> {
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let mut h = Sha256::new();
        h.update(RESOLVE_FORMAT);
        h.update(&self.fingerprint);
        h.update(&self.arch);
        for w in wanted {
            h.update(format!("\nwant {w}"));
        }
        for p in installed {
            h.update(format!("\nhave {} {} {}", p.name, p.version, p.arch));
        }
        for i in ignore {
            h.update(format!("\nignore {i}"));
        }
        let key = hex::encode(h.finalize());
        let cached = self.dir.join("resolved").join(format!("{key}.txt"));
        if let Ok(text) = fs::read_to_string(&cached) {
            if let Some(pkgs) = parse_resolved(&text) {
                return Ok(pkgs);
            }
        }

        let work = self.dir.join(format!("state-{}", std::process::id()));
        fs::create_dir_all(&work).map_err(io_err(&work))?;
        let result = self.resolve_uncached(wanted, installed, ignore, &work);
        let _ = fs::remove_dir_all(&work);
        let pkgs = result?;
        let text: String = pkgs
            .iter()
            .map(|p| format!("{} {} {}\n", p.name, p.version, p.arch))
            .collect();
        write_atomic(&cached, text.as_bytes())?;
        Ok(pkgs)
    }

    fn resolve_uncached(
        &mut self,
        wanted: &[String],
        installed: &[Package],
        ignore: &[String],
        work: &Path,
    ) -> Result<Vec<Package>, AptError> {
        // The status file. The packages of the layers below get their archive records in
        // full: apt tells versions apart by a hash of their dependency fields, and a record
        // that differs from the archive's is "another" version of the same number, which apt
        // would reinstall. Their dependencies are all there (the layers below are closed
        // under them) but for ignored packages, whose entries carry no dependencies at all.
        let mut queries: Vec<(String, Option<String>)> = installed
            .iter()
            .map(|p| (p.name.clone(), Some(p.version.clone())))
            .collect();
        queries.extend(
            ignore
                .iter()
                .filter(|n| !installed.iter().any(|p| &p.name == *n))
                .map(|n| (n.clone(), None)),
        );
        self.load_stanzas(&queries)?;
        let mut status = String::new();
        for q in &queries {
            let fields = &self.stanzas[q];
            let full = q.1.is_some();
            status.push_str(&format!("Package: {}\nStatus: install ok installed\n", q.0));
            for (k, v) in fields {
                let minimal = ["Version", "Architecture", "Multi-Arch", "Provides"];
                if k != "Package" && (full || minimal.contains(&k.as_str())) {
                    status.push_str(&format!("{k}: {v}\n"));
                }
            }
            status.push('\n');
        }
        let status_path = work.join("status");
        fs::write(&status_path, status).map_err(io_err(&status_path))?;
        let ext = work.join("extended_states");
        fs::write(&ext, "").map_err(io_err(&ext))?;

        let mut cmd = Command::new("apt-get");
        self.private_root(&mut cmd, &status_path, &ext);
        cmd.args(["-s", "-q", "install"]).args(wanted);
        let out = run(&mut cmd)?;
        let mut pkgs = Vec::new();
        for line in out.lines() {
            // Inst udev (252.39-1~deb12u2 Debian:12.15/oldstable [amd64])
            let Some(rest) = line.strip_prefix("Inst ") else {
                continue;
            };
            let Some((name, rest)) = rest.split_once(" (") else {
                continue;
            };
            if name.contains(' ') {
                // `Inst name [installed] (…)`: apt replacing what a lower layer has.
                return Err(AptError::Failed {
                    cmd: "apt-get -s install".into(),
                    status: "unexpected".into(),
                    stderr: format!("apt would replace a package of a lower layer: {line}"),
                });
            }
            // A trailing ` []` may follow (apt's marker of a dependency loop).
            let rest = rest.split_once(')').map_or(rest, |(r, _)| r);
            let version = rest.split_whitespace().next().unwrap_or_default();
            let arch = rest
                .rsplit_once('[')
                .and_then(|(_, a)| a.split_once(']'))
                .map(|(a, _)| a)
                .unwrap_or(&self.arch);
            pkgs.push(Package {
                name: name.to_string(),
                version: version.to_string(),
                arch: arch.to_string(),
            });
        }
        pkgs.sort();
        Ok(pkgs)
    }

    fn private_root(&self, cmd: &mut Command, status: &Path, ext: &Path) {
        let cache = self.dir.join("cache");
        let opt = |k: &str, v: &str| format!("{k}={v}");
        cmd.env("LC_ALL", "C.UTF-8")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .arg("-o")
            .arg(opt("Dir::State::status", &status.to_string_lossy()))
            .arg("-o")
            .arg(opt("Dir::State::extended_states", &ext.to_string_lossy()))
            .arg("-o")
            .arg(opt("Dir::Cache", &cache.to_string_lossy()))
            .arg("-o")
            .arg(opt(
                "Dir::Cache::pkgcache",
                &cache.join("pkgcache.bin").to_string_lossy(),
            ))
            .arg("-o")
            .arg(opt(
                "Dir::Cache::srcpkgcache",
                &cache.join("srcpkgcache.bin").to_string_lossy(),
            ))
            .arg("-o")
            .arg("Debug::NoLocking=1")
            .arg("-o")
            .arg("APT::Install-Recommends=false")
            .arg("-o")
            .arg("APT::Install-Suggests=false")
            .arg("-o")
            .arg(opt("APT::Architecture", &self.arch))
            .arg("-o")
            .arg(opt("APT::Architectures::", &self.arch));
    }

    /// Reads the control fields of the queried packages not read yet, in one `apt-cache
    /// show`: a version, or the candidate when none is given.
    fn load_stanzas(&mut self, queries: &[(String, Option<String>)]) -> Result<(), AptError> {
        let missing: Vec<&(String, Option<String>)> = queries
            .iter()
            .filter(|q| !self.stanzas.contains_key(*q))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let mut cmd = Command::new("apt-cache");
        cmd.env("LC_ALL", "C.UTF-8")
            .args(["show", "--no-all-versions"])
            .args(missing.iter().map(|(n, v)| match v {
                Some(v) => format!("{n}={v}"),
                None => n.clone(),
            }));
        let out = run(&mut cmd)?;
        let mut found: BTreeMap<(String, String), BTreeMap<String, String>> = BTreeMap::new();
        for stanza in out.split("\n\n") {
            let fields = parse_stanza(stanza);
            if let (Some(n), Some(v)) = (fields.get("Package"), fields.get("Version")) {
                found.entry((n.clone(), v.clone())).or_insert(fields);
            }
        }
        for q in missing {
            let hit = found
                .iter()
                .find(|((n, v), _)| *n == q.0 && q.1.as_ref().is_none_or(|want| want == v))
                .map(|(_, f)| f.clone())
                .ok_or_else(|| AptError::Unknown(q.0.clone()))?;
            self.stanzas.insert(q.clone(), hit);
        }
        Ok(())
    }

    /// The candidate version of `name` (for packages taken in part, without dependencies).
    pub fn candidate(&mut self, name: &str) -> Result<Package, AptError> {
        let key = hex::encode(Sha256::digest(format!(
            "{RESOLVE_FORMAT}\n{}\n{}\ncandidate {name}",
            self.fingerprint, self.arch
        )));
        let cached = self.dir.join("resolved").join(format!("{key}.txt"));
        if let Some(p) = fs::read_to_string(&cached)
            .ok()
            .and_then(|t| parse_resolved(&t))
            .and_then(|v| v.into_iter().next())
        {
            return Ok(p);
        }
        let q = (name.to_string(), None);
        self.load_stanzas(std::slice::from_ref(&q))?;
        let f = &self.stanzas[&q];
        let p = Package {
            name: name.to_string(),
            version: f.get("Version").cloned().unwrap_or_default(),
            arch: f
                .get("Architecture")
                .cloned()
                .unwrap_or_else(|| self.arch.clone()),
        };
        write_atomic(
            &cached,
            format!("{} {} {}\n", p.name, p.version, p.arch).as_bytes(),
        )?;
        Ok(p)
    }

    /// The packages the candidate version of `name` depends on (the first of each set of
    /// alternatives, without version constraints).
    pub fn depends(&mut self, name: &str) -> Result<Vec<String>, AptError> {
        let q = (name.to_string(), None);
        self.load_stanzas(std::slice::from_ref(&q))?;
        Ok(self.stanzas[&q]
            .get("Depends")
            .map(|d| parse_depends(d))
            .unwrap_or_default())
    }

    /// Downloads the packages not in the cache yet, in one `apt-get download`. Returns how
    /// many were downloaded.
    pub fn download(&self, pkgs: &[Package]) -> Result<usize, AptError> {
        let missing: Vec<&Package> = pkgs
            .iter()
            .filter(|p| !self.deb_path(p).is_file())
            .collect();
        if missing.is_empty() {
            return Ok(0);
        }
        log::info!(
            "downloading {} package(s): {}",
            missing.len(),
            missing
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let partial = self.debs.join(format!(".partial-{}", std::process::id()));
        let _ = fs::remove_dir_all(&partial);
        fs::create_dir_all(&partial).map_err(io_err(&partial))?;
        let mut cmd = Command::new("apt-get");
        cmd.current_dir(&partial)
            .env("LC_ALL", "C.UTF-8")
            // As root apt drops to `_apt` to download, which may not write here.
            .args(["-o", "APT::Sandbox::User=root", "-q", "download"])
            .args(missing.iter().map(|p| p.spec()));
        let result = run(&mut cmd).and_then(|_| {
            for p in &missing {
                let f = partial.join(p.deb_file_name());
                if !f.is_file() {
                    return Err(AptError::Missing(p.deb_file_name()));
                }
                let dest = self.deb_path(p);
                fs::rename(&f, &dest).map_err(io_err(&dest))?;
            }
            Ok(missing.len())
        });
        let _ = fs::remove_dir_all(&partial);
        result
    }
}

/// Runs `cmd`, returning its stdout; its stderr is in the error.
fn run(cmd: &mut Command) -> Result<String, AptError> {
    let rendered = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .filter(|a| !a.starts_with("Dir::") && !a.starts_with("APT::") && a != "-o")
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| AptError::Spawn {
            cmd: rendered.clone(),
            source,
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if let Some(name) = stderr
            .lines()
            .find_map(|l| l.strip_prefix("E: Unable to locate package "))
        {
            return Err(AptError::Unknown(name.trim().to_string()));
        }
        return Err(AptError::Failed {
            cmd: rendered,
            status: out.status.to_string(),
            stderr,
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `Key: value` fields of a control stanza (continuation lines folded in).
pub fn parse_stanza(text: &str) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some(k) = &last {
                if let Some(v) = fields.get_mut(k) {
                    let v: &mut String = v;
                    v.push('\n');
                    v.push_str(line);
                }
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            fields.insert(k.trim().to_string(), v.trim().to_string());
            last = Some(k.trim().to_string());
        }
    }
    fields
}

/// `a (>= 1), b | c, d:any` → `a b d`.
fn parse_depends(field: &str) -> Vec<String> {
    field
        .split(',')
        .filter_map(|alts| {
            let first = alts.split('|').next()?.trim();
            let name = first.split([' ', '(', ':']).next()?.trim();
            (!name.is_empty()).then(|| name.to_string())
        })
        .collect()
}

fn parse_resolved(text: &str) -> Option<Vec<Package>> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut it = l.split(' ');
            Some(Package {
                name: it.next()?.to_string(),
                version: it.next()?.to_string(),
                arch: it.next()?.to_string(),
            })
        })
        .collect()
}

/// A digest of the package lists apt reads (their signed Release files name the hashes of
/// every Packages file), so a cached resolution is reused until `apt-get update` changes them.
fn lists_fingerprint(lists: &Path) -> Result<String, AptError> {
    let rd = fs::read_dir(lists).map_err(|_| AptError::NoLists(lists.to_path_buf()))?;
    let mut files: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with("InRelease") || n.ends_with("_Release"))
        })
        .collect();
    if files.is_empty() {
        return Err(AptError::NoLists(lists.to_path_buf()));
    }
    files.sort();
    let mut h = Sha256::new();
    for f in files {
        h.update(f.to_string_lossy().as_bytes());
        h.update(fs::read(&f).map_err(io_err(&f))?);
    }
    Ok(hex::encode(h.finalize()))
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<(), AptError> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    fs::write(&tmp, data).map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb_file_names_escape_epochs() {
        let p = Package {
            name: "busybox-static".into(),
            version: "1:1.35.0-4+deb12u1+b1".into(),
            arch: "amd64".into(),
        };
        assert_eq!(
            p.deb_file_name(),
            "busybox-static_1%3a1.35.0-4+deb12u1+b1_amd64.deb"
        );
    }

    #[test]
    fn parses_stanzas_and_resolutions() {
        let f = parse_stanza("Package: a\nProvides: x, y\nDescription: d\n more\n");
        assert_eq!(f["Provides"], "x, y");
        assert_eq!(f["Description"], "d\n more");
        let r = parse_resolved("a 1 amd64\nb 2:3 all\n").unwrap();
        assert_eq!(r[1].version, "2:3");
        assert!(parse_resolved("a 1\n").is_none());
        assert_eq!(
            parse_depends("linux-image-6.1.0-56-amd64 (= 6.1.192-2), b | c, d:any"),
            ["linux-image-6.1.0-56-amd64", "b", "d"]
        );
    }
}
