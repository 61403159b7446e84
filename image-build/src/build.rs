//! The build: spec → resolved packages → downloaded packages → layers (in parallel where
//! they do not depend on each other) → image archives → the read-only store → the boot
//! artifacts (kernel, initrd, images.sqfs) → `manifest.json`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use crate::apt::{Apt, AptError, Package};
use crate::archive::{self, ArchiveError, Written};
use crate::boot::{self, Artifact, BootError, BootReport};
use crate::disk;
use crate::layer::{self, Built, LayerError, LayerPackage};
use crate::spec::{self, Plan, SpecError};
use crate::store::{self, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Apt(#[from] AptError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Boot(#[from] BootError),
    #[error(transparent)]
    Disk(#[from] crate::disk::DiskError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("cannot lock {path}: {source}")]
    Lock { path: PathBuf, source: nix::Error },
    #[error("SOURCE_DATE_EPOCH {0:?} is not a number of seconds")]
    Epoch(String),
    #[error("a layer build thread panicked")]
    Panicked,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What to build, where.
#[derive(Debug, Clone)]
pub struct Options {
    pub spec: PathBuf,
    /// `dist/`: archives go to `<out>/images/`, the store to `<out>/images/store`.
    pub out: PathBuf,
    /// Package downloads, resolutions, built layers.
    pub cache: PathBuf,
    /// Overrides the spec's version.
    pub version: Option<String>,
    /// Build the read-only store (needs root; skipped with a warning without it).
    pub store: bool,
    /// Build the boot artifacts (`vmlinuz`, `initrd`, `images.sqfs`).
    pub boot: bool,
    /// Build the disk images and the ISO from them (needs the boot artifacts).
    pub disks: bool,
    /// Where the initrd's binaries (`ros`, `system-docker-shim`) are.
    pub bin_dir: PathBuf,
    /// The service catalog shipped in the initrd (`services/catalog`).
    pub catalog: PathBuf,
}

/// One image built.
#[derive(Debug, Clone)]
pub struct ImageReport {
    pub name: String,
    pub tag: String,
    pub archive: Written,
    /// Bytes of files, all layers.
    pub unpacked: u64,
    /// Layer names, bottom first, with the bytes each adds.
    pub layers: Vec<(String, u64)>,
    pub packages: Vec<Package>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub version: String,
    pub images: Vec<ImageReport>,
    /// Every layer once, with the bytes it adds and its gzip'd size.
    pub layers: Vec<(String, u64, u64)>,
    /// The store directory and its size on disk, when built.
    pub store: Option<(PathBuf, u64, store::Outcome)>,
    /// Why the store was not built, when it was not.
    pub store_skipped: Option<String>,
    pub boot: Option<BootReport>,
    /// Why the boot artifacts were not built, when they were not.
    pub boot_skipped: Option<String>,
    /// The disk images and the ISO by manifest kind (`raw`, `qcow2`, `iso`).
    pub disks: Vec<(&'static str, Artifact)>,
    /// Why there are no disk images, when there are none.
    pub disks_skipped: Option<String>,
    pub elapsed: Duration,
}

/// Runs the whole build.
pub fn build(opts: &Options) -> Result<Report, BuildError> {
    let start = Instant::now();
    let plan = spec::load(&opts.spec, opts.version.as_deref())?;
    let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) if !s.is_empty() => s.parse::<u64>().map_err(|_| BuildError::Epoch(s))?,
        _ => plan.source_date_epoch as u64,
    };
    fs::create_dir_all(&opts.cache).map_err(io_err(&opts.cache))?;
    // One build at a time per cache: apt's private cache and the layer cache are shared.
    let lock_path = opts.cache.join("lock");
    let lock_file = fs::File::create(&lock_path).map_err(io_err(&lock_path))?;
    let _lock = Flock::lock(lock_file, FlockArg::LockExclusive).map_err(|(_, source)| {
        BuildError::Lock {
            path: lock_path.clone(),
            source,
        }
    })?;
    log::info!(
        "building {} image(s) of version {} from {}",
        plan.images.len(),
        plan.version,
        opts.spec.display()
    );

    let packages = resolve(&plan, &opts.cache)?;
    let layers = build_layers(&plan, &packages, epoch, &opts.cache)?;

    let images_dir = opts.out.join("images");
    fs::create_dir_all(&images_dir).map_err(io_err(&images_dir))?;
    let created = chrono::DateTime::from_timestamp(epoch as i64, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let mut reports = Vec::new();
    for image in &plan.images {
        let chain: Vec<&Built> = plan
            .chain(image.layer)
            .iter()
            .map(|&i| &layers[i])
            .collect();
        let cfg = archive::config(image, &chain, &created, &plan.version);
        let path = images_dir.join(format!("{}.tar", image.name));
        let written = archive::write(&path, image, &cfg, &chain, epoch)?;
        log::info!(
            "image {}: {} ({})",
            image.tag,
            path.display(),
            crate::human(written.size)
        );
        reports.push(ImageReport {
            name: image.name.clone(),
            tag: image.tag.clone(),
            unpacked: chain.iter().map(|l| l.unpacked).sum(),
            layers: chain.iter().map(|l| (l.name.clone(), l.unpacked)).collect(),
            packages: chain
                .iter()
                .flat_map(|l| l.packages.iter().chain(&l.partial).cloned())
                .collect(),
            archive: written,
        });
    }
    write_package_lists(&images_dir, &reports)?;

    let store_dir = images_dir.join("store");
    let (store, store_skipped) = if !opts.store {
        (None, Some("--no-store".to_string()))
    } else if !nix::unistd::geteuid().is_root() {
        let why = "not root: the store keeps owners, device nodes and trusted.* xattrs; \
                   run as root to build it"
            .to_string();
        log::warn!("store {} not built: {why}", store_dir.display());
        (None, Some(why))
    } else {
        let archives: Vec<Written> = reports.iter().map(|r| r.archive.clone()).collect();
        let outcome = store::build(&store_dir, &archives)?;
        let size = store::disk_usage(&store_dir);
        (Some((store_dir, size, outcome)), None)
    };

    let (boot, boot_skipped) = match (&plan.boot, opts.boot) {
        (_, false) => (None, Some("--no-boot".to_string())),
        (None, true) => {
            let why = "the spec has no boot section".to_string();
            log::warn!("boot artifacts not built: {why}");
            (None, Some(why))
        }
        (Some(b), true) => {
            let stamp_path = images_dir.join("store.stamp");
            let store_input = match &store {
                Some((dir, _, _)) => {
                    let stamp = fs::read_to_string(&stamp_path).map_err(io_err(&stamp_path))?;
                    Some((dir.as_path(), stamp))
                }
                None => None,
            };
            let report = boot::build(&boot::Inputs {
                plan: &plan,
                boot: b,
                layers: &layers,
                epoch,
                cache: &opts.cache,
                out: &opts.out,
                bin_dir: &opts.bin_dir,
                catalog: &opts.catalog,
                store: store_input,
                store_skipped: store_skipped.as_deref(),
            })?;
            (Some(report), None)
        }
    };

    let (disks, disks_skipped) = match &boot {
        _ if !opts.disks => (Vec::new(), Some("--no-disks".to_string())),
        Some(b) if b.images_fs.is_some() => {
            let made = disk::build(&disk::Inputs {
                version: &plan.version,
                epoch,
                out: &opts.out,
                work: &opts.cache.join("disk"),
                preload: plan.boot.as_ref().map_or(&[][..], |b| &b.preload[..]),
            })?;
            let mut disks = Vec::new();
            for (kind, file) in [
                ("raw", &made.raw),
                ("qcow2", &made.qcow2),
                ("iso", &made.iso),
            ] {
                disks.push((kind, Artifact::of(&opts.out, file)?));
            }
            (disks, None)
        }
        _ => {
            let why = "no boot artifacts with images.sqfs".to_string();
            log::warn!("disk images not built: {why}");
            (Vec::new(), Some(why))
        }
    };

    write_manifest(&opts.out, &plan, &reports, boot.as_ref(), &disks)?;
    Ok(Report {
        version: plan.version.clone(),
        images: reports,
        layers: layers
            .iter()
            .map(|l| (l.name.clone(), l.unpacked, l.blob_size))
            .collect(),
        store,
        store_skipped,
        boot,
        boot_skipped,
        disks,
        disks_skipped,
        elapsed: start.elapsed(),
    })
}

/// Each layer's packages, resolved over the layers below it and downloaded.
fn resolve(plan: &Plan, cache: &Path) -> Result<Vec<Vec<LayerPackage>>, BuildError> {
    let mut apt = Apt::new(cache, "amd64")?;
    let mut full: Vec<Vec<Package>> = Vec::new();
    let mut out: Vec<Vec<(Package, Option<Vec<crate::pattern::Pattern>>)>> = Vec::new();
    for layer in &plan.layers {
        let mut installed: Vec<Package> = Vec::new();
        let mut at = layer.parent;
        while let Some(p) = at {
            installed.extend(full[p].iter().cloned());
            at = plan.layers[p].parent;
        }
        installed.sort();
        let wanted: Vec<String> = layer
            .packages
            .iter()
            .filter(|p| p.only.is_none())
            .map(|p| p.name.clone())
            .collect();
        let added = apt.resolve(&wanted, &installed, &layer.ignore)?;
        if !wanted.is_empty() {
            log::info!(
                "layer {}: {} package(s): {}",
                layer.name,
                added.len(),
                added
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
        let mut pkgs: Vec<(Package, Option<Vec<crate::pattern::Pattern>>)> =
            added.iter().map(|p| (p.clone(), None)).collect();
        for req in layer.packages.iter().filter(|p| p.only.is_some()) {
            pkgs.push((apt.candidate(&req.name)?, req.only.clone()));
        }
        pkgs.sort_by(|a, b| a.0.cmp(&b.0));
        full.push(added);
        out.push(pkgs);
    }
    let all: BTreeSet<Package> = out.iter().flatten().map(|(p, _)| p.clone()).collect();
    let all: Vec<Package> = all.into_iter().collect();
    let n = apt.download(&all)?;
    log::info!(
        "{} package(s) in all, {n} downloaded, {} from the cache",
        all.len(),
        all.len() - n
    );
    Ok(out
        .into_iter()
        .map(|pkgs| {
            pkgs.into_iter()
                .map(|(package, only)| LayerPackage {
                    deb: apt.deb_path(&package),
                    package,
                    only,
                })
                .collect()
        })
        .collect())
}

/// Builds the layers, those of one depth in parallel (each needs only its parent).
fn build_layers(
    plan: &Plan,
    packages: &[Vec<LayerPackage>],
    epoch: u64,
    cache: &Path,
) -> Result<Vec<Built>, BuildError> {
    let n = plan.layers.len();
    let mut built: Vec<Option<Built>> = vec![None; n];
    let max_depth = (0..n).map(|i| plan.depth(i)).max().unwrap_or(0);
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    for depth in 0..=max_depth {
        let todo: Vec<usize> = (0..n).filter(|&i| plan.depth(i) == depth).collect();
        for chunk in todo.chunks(workers) {
            let results: Vec<(usize, Result<Built, LayerError>)> = std::thread::scope(|s| {
                let handles: Vec<_> = chunk
                    .iter()
                    .map(|&i| {
                        let parent = plan.layers[i].parent.and_then(|p| built[p].as_ref());
                        let layer = &plan.layers[i];
                        let pkgs = &packages[i];
                        (
                            i,
                            s.spawn(move || layer::build(layer, pkgs, parent, epoch, cache)),
                        )
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|(i, h)| {
                        (
                            i,
                            h.join().unwrap_or_else(|_| {
                                Err(LayerError::Invalid {
                                    layer: plan.layers[i].name.clone(),
                                    message: "build thread panicked".into(),
                                })
                            }),
                        )
                    })
                    .collect()
            });
            for (i, r) in results {
                built[i] = Some(r?);
            }
        }
    }
    built
        .into_iter()
        .map(|b| b.ok_or(BuildError::Panicked))
        .collect()
}

/// `images/<name>.packages`: `layer package version` per line, for audits and scanners.
fn write_package_lists(dir: &Path, reports: &[ImageReport]) -> Result<(), BuildError> {
    for r in reports {
        let mut text = String::new();
        for p in &r.packages {
            text.push_str(&format!("{} {} {}\n", p.name, p.version, p.arch));
        }
        let path = dir.join(format!("{}.packages", r.name));
        fs::write(&path, text).map_err(io_err(&path))?;
    }
    Ok(())
}

/// `dist/manifest.json` (DESIGN.md §8): `version`, `artifacts` (`kernel`, `initrd`,
/// `images_fs`, `raw`, `qcow2` and `iso` when this build made them; the others kept from an earlier build of the same
/// version: other steps write those), `images`.
fn write_manifest(
    out: &Path,
    plan: &Plan,
    reports: &[ImageReport],
    boot: Option<&BootReport>,
    disks: &[(&'static str, Artifact)],
) -> Result<(), BuildError> {
    let path = out.join("manifest.json");
    let mut artifacts = serde_json::Value::Object(Default::default());
    if let Ok(old) = fs::read(&path) {
        if let Ok(old) = serde_json::from_slice::<serde_json::Value>(&old) {
            if old["version"] == serde_json::json!(plan.version) {
                artifacts = old["artifacts"].clone();
            }
        }
    }
    if !artifacts.is_object() {
        artifacts = serde_json::json!({});
    }
    if let (Some(b), Some(a)) = (boot, artifacts.as_object_mut()) {
        a.insert("kernel".into(), b.kernel.json());
        a.insert("initrd".into(), b.initrd.json());
        match &b.images_fs {
            Some((fs, _)) => a.insert("images_fs".into(), fs.json()),
            None => a.remove("images_fs"),
        };
    }
    if let Some(a) = artifacts.as_object_mut() {
        for (kind, artifact) in disks {
            a.insert((*kind).into(), artifact.json());
        }
    }
    let images: BTreeMap<&str, serde_json::Value> = reports
        .iter()
        .map(|r| {
            (
                r.name.as_str(),
                serde_json::json!({
                    "file": format!("images/{}.tar", r.name),
                    "size": r.archive.size,
                    "sha256": r.archive.sha256,
                }),
            )
        })
        .collect();
    let m = serde_json::json!({
        "version": plan.version,
        "artifacts": artifacts,
        "images": images,
    });
    let tmp = path.with_extension("json.tmp");
    let mut text = serde_json::to_string_pretty(&m).unwrap_or_default();
    text.push('\n');
    fs::write(&tmp, text).map_err(io_err(&tmp))?;
    fs::rename(&tmp, &path).map_err(io_err(&path))
}
