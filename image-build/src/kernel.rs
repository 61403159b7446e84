//! The kernel package (`linux-image-<release>`): its `vmlinuz`, its config, the index of
//! its modules and the module files the initrd ships, read out of the `.deb` once and
//! kept in the cache (`<cache>/kernel/<package file>/`), so a rebuild does not decompress
//! the package (70 MB of xz) again. Module files are kept as they are asked for; a module
//! not kept yet costs one more pass over the package.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::apt::Package;
use crate::kmod::{self, Module, ModuleError, Modules};

/// Bump when what is kept in the cache changes.
const KERNEL_FORMAT: &str = "ros-image-build kernel v1";

/// Index files of the package's module directory kept (when present); the others
/// (`modules.dep`, `modules.alias`, `modules.softdep`) are made from the modules.
pub const INDEX_FILES: [&str; 4] = [
    "modules.builtin",
    "modules.builtin.modinfo",
    "modules.order",
    "modules.symbols",
];

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("cannot run {cmd}: {source}")]
    Spawn { cmd: String, source: io::Error },
    #[error("{cmd} failed ({status}): {stderr}")]
    Failed {
        cmd: String,
        status: String,
        stderr: String,
    },
    #[error("kernel package {package}: {message}")]
    Invalid { package: String, message: String },
    #[error(transparent)]
    Module(#[from] ModuleError),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> KernelError + '_ {
    move |source| KernelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What is kept of a kernel package besides files.
#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    format: String,
    release: String,
    modules: Vec<Module>,
    /// Index files present in the package (names in [`INDEX_FILES`]).
    index_files: Vec<String>,
}

/// A kernel package, read.
pub struct Kernel {
    pub package: Package,
    /// `6.1.0-56-amd64`: the name of `/lib/modules/<release>`.
    pub release: String,
    /// `/boot/vmlinuz-<release>` of the package, in the cache.
    pub vmlinuz: PathBuf,
    /// `/boot/config-<release>`.
    pub config: String,
    pub modules: Modules,
    /// Index files of the package by name.
    pub index_files: BTreeMap<String, Vec<u8>>,
    deb: PathBuf,
    dir: PathBuf,
    /// Every module's bytes, when the package was just read (the first build).
    loaded: BTreeMap<String, Vec<u8>>,
}

impl Kernel {
    /// Reads the kernel package `deb` (or what the cache kept of it).
    pub fn open(deb: &Path, package: &Package, cache: &Path) -> Result<Kernel, KernelError> {
        let dir = cache
            .join("kernel")
            .join(package.deb_file_name().trim_end_matches(".deb"));
        let meta_path = dir.join("meta.json");
        if let Some(meta) = fs::read(&meta_path)
            .ok()
            .and_then(|m| serde_json::from_slice::<Meta>(&m).ok())
            .filter(|m| m.format == KERNEL_FORMAT)
        {
            return Kernel::from_meta(meta, deb, package, dir, BTreeMap::new());
        }

        log::info!("kernel: reading {}", deb.display());
        let mut release: Option<String> = None;
        let mut config: Option<Vec<u8>> = None;
        let mut vmlinuz: Option<Vec<u8>> = None;
        let mut index_files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut kos: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        read_deb(deb, &mut |path, data| {
            if let Some(r) = path.strip_prefix("boot/vmlinuz-") {
                release = Some(r.to_string());
                vmlinuz = Some(data()?);
            } else if path.starts_with("boot/config-") {
                config = Some(data()?);
            } else if let Some(rest) = path.strip_prefix("lib/modules/") {
                let Some((_, rel)) = rest.split_once('/') else {
                    return Ok(());
                };
                if kmod::name_of_path(rel).is_some() {
                    kos.insert(rel.to_string(), data()?);
                } else if INDEX_FILES.contains(&rel) {
                    index_files.insert(rel.to_string(), data()?);
                }
            }
            Ok(())
        })?;
        let invalid = |message: &str| KernelError::Invalid {
            package: package.name.clone(),
            message: message.to_string(),
        };
        let release = release.ok_or_else(|| invalid("no /boot/vmlinuz-<release>"))?;
        let config = config.ok_or_else(|| invalid("no /boot/config-<release>"))?;
        let vmlinuz = vmlinuz.unwrap_or_default();
        let mut modules = Vec::new();
        for (path, elf) in &kos {
            modules.push(kmod::read_module(path, elf)?);
        }
        let meta = Meta {
            format: KERNEL_FORMAT.to_string(),
            release,
            modules,
            index_files: index_files.keys().cloned().collect(),
        };

        let tmp = dir.with_extension(format!("tmp-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(tmp.join("index")).map_err(io_err(&tmp))?;
        let write = |name: &str, data: &[u8]| {
            let p = tmp.join(name);
            fs::write(&p, data).map_err(io_err(&p))
        };
        write("vmlinuz", &vmlinuz)?;
        write("config", &config)?;
        for (name, data) in &index_files {
            write(&format!("index/{name}"), data)?;
        }
        write("meta.json", &serde_json::to_vec(&meta).unwrap_or_default())?;
        let _ = fs::remove_dir_all(&dir);
        fs::rename(&tmp, &dir).map_err(io_err(&dir))?;
        Kernel::from_meta(meta, deb, package, dir, kos)
    }

    fn from_meta(
        meta: Meta,
        deb: &Path,
        package: &Package,
        dir: PathBuf,
        loaded: BTreeMap<String, Vec<u8>>,
    ) -> Result<Kernel, KernelError> {
        let config_path = dir.join("config");
        let config = fs::read_to_string(&config_path).map_err(io_err(&config_path))?;
        let mut index_files = BTreeMap::new();
        for name in &meta.index_files {
            let p = dir.join("index").join(name);
            index_files.insert(name.clone(), fs::read(&p).map_err(io_err(&p))?);
        }
        let builtin = index_files
            .get("modules.builtin")
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        Ok(Kernel {
            package: package.clone(),
            release: meta.release,
            vmlinuz: dir.join("vmlinuz"),
            config,
            modules: Modules::new(meta.modules, &builtin),
            index_files,
            deb: deb.to_path_buf(),
            dir,
            loaded,
        })
    }

    /// Whether the kernel's config sets `option` to `y` (`CONFIG_RD_ZSTD`).
    pub fn config_enabled(&self, option: &str) -> bool {
        self.config
            .lines()
            .any(|l| l.strip_prefix(option).is_some_and(|r| r == "=y"))
    }

    /// The suffix of the module files (`.ko`, `.ko.xz`, …).
    pub fn module_suffix(&self) -> String {
        let mut suffixes: BTreeSet<&str> = BTreeSet::new();
        for m in self.modules.by_name.values() {
            if let Some(i) = m.path.rfind(".ko") {
                suffixes.insert(&m.path[i..]);
            }
        }
        suffixes.into_iter().collect::<Vec<_>>().join(" ")
    }

    /// The bytes of the module files at `paths` (relative to the module directory), from
    /// the cache; those not kept yet are read out of the package and kept.
    pub fn module_files(
        &mut self,
        paths: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, Vec<u8>>, KernelError> {
        let files = self.dir.join("files");
        let mut out = BTreeMap::new();
        let mut missing: BTreeSet<String> = BTreeSet::new();
        for p in paths {
            if let Some(d) = self.loaded.get(p) {
                out.insert(p.clone(), d.clone());
            } else if let Ok(d) = fs::read(files.join(p)) {
                out.insert(p.clone(), d);
            } else {
                missing.insert(p.clone());
            }
        }
        if !missing.is_empty() {
            log::info!(
                "kernel: reading {} module(s) out of {}",
                missing.len(),
                self.deb.display()
            );
            read_deb(&self.deb, &mut |path, data| {
                let rel = path
                    .strip_prefix("lib/modules/")
                    .and_then(|r| r.split_once('/'))
                    .map(|(_, rel)| rel);
                if let Some(rel) = rel.filter(|r| missing.contains(*r)) {
                    out.insert(rel.to_string(), data()?);
                }
                Ok(())
            })?;
        }
        for p in paths {
            let Some(d) = out.get(p) else {
                return Err(KernelError::Invalid {
                    package: self.package.name.clone(),
                    message: format!("no module file {p}"),
                });
            };
            let dest = files.join(p);
            if !dest.is_file() {
                if let Some(parent) = dest.parent() {
                    fs::create_dir_all(parent).map_err(io_err(parent))?;
                }
                let tmp = dest.with_extension(format!("tmp-{}", std::process::id()));
                fs::write(&tmp, d).map_err(io_err(&tmp))?;
                fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
            }
        }
        self.loaded.clear();
        Ok(out)
    }
}

/// Calls `f` with the path (normalized) of every regular file of the package `deb` and a
/// function reading its bytes.
type ReadData<'a> = &'a mut dyn FnMut() -> Result<Vec<u8>, KernelError>;

fn read_deb(
    deb: &Path,
    f: &mut dyn FnMut(&str, ReadData) -> Result<(), KernelError>,
) -> Result<(), KernelError> {
    let cmd = format!("dpkg-deb --fsys-tarfile {}", deb.display());
    let mut child = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| KernelError::Spawn {
            cmd: cmd.clone(),
            source,
        })?;
    let bad = |e: io::Error| KernelError::Io {
        path: deb.to_path_buf(),
        source: e,
    };
    let result = (|| -> Result<(), KernelError> {
        let Some(stdout) = child.stdout.take() else {
            return Ok(());
        };
        let mut ar = tar::Archive::new(io::BufReader::with_capacity(1 << 20, stdout));
        for entry in ar.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let raw = entry.path().map_err(bad)?.to_string_lossy().into_owned();
            let Some(path) = crate::tree::normalize(&raw) else {
                continue;
            };
            let mut read = || {
                let mut d = Vec::with_capacity(entry.size() as usize);
                entry.read_to_end(&mut d).map_err(bad)?;
                Ok(d)
            };
            f(&path, &mut read)?;
        }
        Ok(())
    })();
    let out = child
        .wait_with_output()
        .map_err(|source| KernelError::Spawn {
            cmd: cmd.clone(),
            source,
        })?;
    result?;
    if !out.status.success() {
        return Err(KernelError::Failed {
            cmd,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(())
}
