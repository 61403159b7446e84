//! The boot artifacts of `dist/`: `vmlinuz` (the spec's kernel package), `initrd` (the
//! `base` layer, the boot packages, the kernel modules, our binaries and config; see
//! [`crate::initrd`]) and `images.sqfs` (the read-only image store, see
//! [`crate::imagesfs`]).

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::apt::{Apt, AptError, Package};
use crate::archive::{self, ArchiveError};
use crate::imagesfs::{self, ImagesFsError};
use crate::initrd::{self, Compression, InitrdError};
use crate::kernel::{Kernel, KernelError};
use crate::kmod::ModuleError;
use crate::layer::{self, Built, LayerError, LayerPackage};
use crate::spec::{Boot, Plan, BOOT_BASE_LAYER};
use crate::store::Outcome;
use crate::tree::{Entry, Tree};
use sha2::{Digest, Sha256};
use system_docker::image::ImageStore;

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error(transparent)]
    Apt(#[from] AptError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error(transparent)]
    Module(#[from] ModuleError),
    #[error(transparent)]
    Initrd(#[from] InitrdError),
    #[error(transparent)]
    ImagesFs(#[from] ImagesFsError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{0}")]
    Unsupported(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BootError + '_ {
    move |source| BootError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A file of `dist/` as the manifest names it.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// Relative to `dist/`.
    pub file: String,
    pub size: u64,
    pub sha256: String,
}

impl Artifact {
    pub fn of(out: &Path, file: &str) -> Result<Artifact, BootError> {
        let (size, sha256) = archive::file_digest(&out.join(file))?;
        Ok(Artifact {
            file: file.to_string(),
            size,
            sha256,
        })
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({"file": self.file, "size": self.size, "sha256": self.sha256})
    }
}

/// What the boot build made.
#[derive(Debug, Clone)]
pub struct BootReport {
    pub kernel_package: Package,
    /// `6.1.0-56-amd64`
    pub kernel_release: String,
    /// `.ko`, `.ko.xz`, …
    pub module_suffix: String,
    /// Module files shipped.
    pub modules: usize,
    /// Listed modules the kernel has built in.
    pub builtin: Vec<String>,
    pub boot_packages: Vec<Package>,
    pub compression: Compression,
    /// Bytes of the cpio before compression.
    pub initrd_cpio: u64,
    pub initrd_entries: usize,
    pub kernel: Artifact,
    pub initrd: Artifact,
    pub images_fs: Option<(Artifact, Outcome)>,
    /// Why there is no images.sqfs, when there is none.
    pub images_fs_skipped: Option<String>,
}

/// Where the boot build reads from and writes to.
pub struct Inputs<'a> {
    pub plan: &'a Plan,
    pub boot: &'a Boot,
    /// The built layers, in the plan's order.
    pub layers: &'a [Built],
    pub epoch: u64,
    pub cache: &'a Path,
    pub out: &'a Path,
    /// Where `ros` and `system-docker-shim` are.
    pub bin_dir: &'a Path,
    /// `services/catalog`.
    pub catalog: &'a Path,
    /// The read-only store and the text of its stamp, when it was built.
    pub store: Option<(&'a Path, String)>,
    /// Why the store was not built, when it was not.
    pub store_skipped: Option<&'a str>,
}

/// The paths (relative to the store's root, as init sees it mounted) of the files `wanted`
/// names (`(image, /path)`): each in the top-most layer of its image that has it.
fn prefetch_list(
    store: &Path,
    scratch: &Path,
    plan: &Plan,
    wanted: &[(String, String)],
) -> Result<Vec<String>, BootError> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    // The built store is read-only from here: opened as a read-only store beside an empty
    // writable one, as system-docker opens it on a host.
    let own = scratch.join(format!("prefetch-store-{}", std::process::id()));
    let _ = fs::remove_dir_all(&own);
    let unsupported = |m: String| BootError::Unsupported(format!("boot: prefetch: {m}"));
    let result = (|| {
        let images = ImageStore::open(&own, &[store.to_path_buf()])
            .map_err(|e| unsupported(format!("{}: {e}", store.display())))?;
        let mut out = Vec::new();
        for (name, path) in wanted {
            let tag = plan
                .images
                .iter()
                .find(|i| &i.name == name)
                .map(|i| i.tag.clone())
                .ok_or_else(|| unsupported(format!("{name} is not an image of the spec")))?;
            let image = images
                .get(&tag)
                .map_err(|e| unsupported(format!("{tag}: {e}")))?;
            let layers = images
                .layer_paths(&image)
                .map_err(|e| unsupported(format!("{tag}: {e}")))?;
            let rel = path.trim_start_matches('/');
            let found = layers
                .iter()
                .map(|l| l.join(rel))
                .find(|f| f.symlink_metadata().is_ok())
                .ok_or_else(|| unsupported(format!("{tag} has no {path}")))?;
            if !found.symlink_metadata().is_ok_and(|m| m.is_file()) {
                return Err(unsupported(format!("{tag}: {path} is not a regular file")));
            }
            let in_store = found
                .strip_prefix(store)
                .map_err(|_| unsupported(format!("{tag}: {path} is not in {}", store.display())))?;
            out.push(in_store.to_string_lossy().into_owned());
        }
        Ok(out)
    })();
    let _ = fs::remove_dir_all(&own);
    result
}

/// The files of a module directory shipping `shipped`: the module files, and the index
/// files (`modules.dep`, `.alias`, `.softdep`, `.order` written for that set; the kernel's
/// `modules.builtin*` as they are), as paths relative to `/lib/modules/<release>`.
fn module_tree(
    kernel: &mut Kernel,
    shipped: &BTreeSet<String>,
) -> Result<Vec<(String, Vec<u8>)>, BootError> {
    let paths: BTreeSet<String> = shipped
        .iter()
        .map(|n| kernel.modules.by_name[n].path.clone())
        .collect();
    let mut files: Vec<(String, Vec<u8>)> = kernel.module_files(&paths)?.into_iter().collect();
    let m = &kernel.modules;
    files.push(("modules.dep".into(), m.render_dep(shipped).into()));
    files.push(("modules.alias".into(), m.render_alias(shipped).into()));
    files.push(("modules.softdep".into(), m.render_softdep(shipped).into()));
    for (name, data) in &kernel.index_files {
        let data = if name == "modules.order" {
            m.filter_order(&String::from_utf8_lossy(data), shipped)
                .into_bytes()
        } else {
            data.clone()
        };
        files.push((name.clone(), data));
    }
    Ok(files)
}

/// Writes `files` under `root/release` (`root` emptied first: nothing of an earlier build
/// stays), directories 0755 and files 0644 whatever the umask; returns the sha256 of their
/// paths and bytes, which names the staged tree in the images file's stamp.
fn stage_modules(
    root: &Path,
    release: &str,
    mut files: Vec<(String, Vec<u8>)>,
) -> Result<String, BootError> {
    use std::os::unix::fs::PermissionsExt;
    files.sort();
    if root.exists() {
        fs::remove_dir_all(root).map_err(io_err(root))?;
    }
    let dir = root.join(release);
    let mut h = Sha256::new();
    h.update(format!("{release}\0"));
    for (rel, data) in &files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        fs::write(&path, data).map_err(io_err(&path))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).map_err(io_err(&path))?;
        h.update(format!("{rel}\0{}\0", data.len()));
        h.update(data);
    }
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).map_err(io_err(&d))?;
        for e in fs::read_dir(&d).map_err(io_err(&d))? {
            let path = e.map_err(io_err(&d))?.path();
            if path.is_dir() {
                dirs.push(path);
            }
        }
    }
    Ok(hex::encode(h.finalize()))
}

/// The package with the kernel: `name` itself, or the `linux-image-*` a metapackage
/// (`linux-image-amd64`) depends on.
fn kernel_package(apt: &mut Apt, name: &str) -> Result<Package, AptError> {
    let target = apt
        .depends(name)?
        .into_iter()
        .find(|d| d.starts_with("linux-image-"))
        .unwrap_or_else(|| name.to_string());
    apt.candidate(&target)
}

pub fn build(i: &Inputs) -> Result<BootReport, BootError> {
    let plan = i.plan;
    let base = plan
        .layers
        .iter()
        .position(|l| l.name == BOOT_BASE_LAYER)
        .unwrap_or_default();
    let chain = plan.chain(base);
    let base_layer = &plan.layers[base];

    let mut apt = Apt::new(i.cache, "amd64")?;
    let kpkg = kernel_package(&mut apt, &i.boot.kernel)?;
    let mut installed: Vec<Package> = chain
        .iter()
        .flat_map(|&l| i.layers[l].packages.iter().cloned())
        .collect();
    installed.sort();
    let boot_packages = apt.resolve(&i.boot.packages, &installed, &base_layer.ignore)?;
    let mut all = boot_packages.clone();
    all.push(kpkg.clone());
    let n = apt.download(&all)?;
    log::info!(
        "boot: kernel {} {}, {} package(s) for the initrd: {} ({n} downloaded)",
        kpkg.name,
        kpkg.version,
        boot_packages.len(),
        boot_packages
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    );

    // The kernel and its modules.
    let mut kernel = Kernel::open(&apt.deb_path(&kpkg), &kpkg, i.cache)?;
    let compression = if kernel.config_enabled("CONFIG_RD_ZSTD") {
        Compression::Zstd
    } else {
        log::warn!(
            "kernel {}: CONFIG_RD_ZSTD is not set; the initrd is gzip'd",
            kernel.release
        );
        Compression::Gzip
    };
    let closure = kernel.modules.closure(&i.boot.modules)?;
    let mut system_wanted = i.boot.modules.clone();
    system_wanted.extend(i.boot.system_modules.iter().cloned());
    let system_closure = kernel.modules.closure(&system_wanted)?;
    let mut unresolved: BTreeSet<&String> = closure.unresolved_softdeps.iter().collect();
    unresolved.extend(&system_closure.unresolved_softdeps);
    for s in unresolved {
        log::warn!("boot: soft dependency {s} names no module of the kernel; left out");
    }
    if !system_closure.builtin.is_empty() {
        log::info!(
            "boot: built into the kernel (nothing to ship or load): {}",
            system_closure.builtin.join(" ")
        );
    }

    // The tree: the base layer's contents, the boot packages, the modules, ours.
    let mut tree = Tree::default();
    for &l in &chain {
        let blob = &i.layers[l].blob;
        let f = fs::File::open(blob).map_err(io_err(blob))?;
        tree.add_tar(
            flate2::read::GzDecoder::new(io::BufReader::new(f)),
            &blob.to_string_lossy(),
            &|_| true,
        )
        .map_err(|source| LayerError::Tree {
            layer: plan.layers[l].name.clone(),
            source,
        })?;
    }
    initrd::drop_own_applets(&mut tree);
    for p in &boot_packages {
        let lp = LayerPackage {
            deb: apt.deb_path(p),
            package: p.clone(),
            only: None,
        };
        layer::unpack(&mut tree, &lp, &base_layer.drop)?;
    }
    let moddir = format!("lib/modules/{}", kernel.release);
    for (path, data) in module_tree(&mut kernel, &closure.modules)? {
        tree.insert(&format!("{moddir}/{path}"), Entry::file(data, 0o644));
    }
    initrd::add_binaries(&mut tree, i.bin_dir, &i.cache.join("tmp"))?;
    let configs = initrd::add_catalog(&mut tree, i.catalog)?;
    let not_builtin = |list: &[String]| -> Vec<String> {
        list.iter()
            .filter(|m| !system_closure.builtin.contains(m))
            .cloned()
            .collect()
    };
    let load = not_builtin(&i.boot.load);
    let system_load = not_builtin(&i.boot.system_load);
    initrd::add_skeleton(
        &mut tree,
        &plan.version,
        &kernel.release,
        &load,
        &system_load,
    );

    if let Some((store, _)) = &i.store {
        let list = prefetch_list(store, &i.cache.join("tmp"), plan, &i.boot.prefetch)?;
        let mut text = String::from(
            "# Files of images.sqfs init reads ahead at boot (image-build: boot.prefetch)\n",
        );
        for l in &list {
            text.push_str(l);
            text.push('\n');
        }
        tree.insert(initrd::PREFETCH, Entry::file(text.into_bytes(), 0o644));
    }

    fs::create_dir_all(i.out).map_err(io_err(i.out))?;
    let entries = initrd::entries(&tree);
    let cpio_size = initrd::write(&i.out.join("initrd"), &entries, i.epoch, compression)?;
    let initrd_artifact = Artifact::of(i.out, "initrd")?;
    log::info!(
        "initrd: {} entries, {} module(s), {configs} config file(s): {} cpio, {} {}",
        entries.len(),
        closure.modules.len(),
        crate::human(cpio_size),
        crate::human(initrd_artifact.size),
        compression.name()
    );

    let vmlinuz = i.out.join("vmlinuz");
    let tmp = vmlinuz.with_extension(format!("tmp-{}", std::process::id()));
    fs::copy(&kernel.vmlinuz, &tmp).map_err(io_err(&tmp))?;
    fs::rename(&tmp, &vmlinuz).map_err(io_err(&vmlinuz))?;
    let kernel_artifact = Artifact::of(i.out, "vmlinuz")?;

    let (images_fs, images_fs_skipped) = match &i.store {
        Some((store, stamp)) => {
            // The whole module tree (the initrd's and the system's), as `modules/<release>`
            // beside the store: init binds it over /lib/modules.
            if !kernel.config_enabled(&format!(
                "CONFIG_SQUASHFS_{}",
                imagesfs::COMPRESSION.to_uppercase()
            )) {
                return Err(BootError::Unsupported(format!(
                    "kernel {} cannot read {} squashfs (CONFIG_SQUASHFS_{} is not set): \
                     init could not mount images.sqfs",
                    kernel.release,
                    imagesfs::COMPRESSION,
                    imagesfs::COMPRESSION.to_uppercase()
                )));
            }
            let staged = store.with_file_name("modules");
            let files = module_tree(&mut kernel, &system_closure.modules)?;
            let digest = stage_modules(&staged, &kernel.release, files)?;
            let dest = i.out.join("images.sqfs");
            let stamp = format!("{stamp}\nmodules {digest}");
            let outcome = imagesfs::build(store, &stamp, Some(&staged), &dest, i.epoch)?;
            log::info!(
                "images.sqfs: {} kernel module(s) in modules/{}",
                system_closure.modules.len(),
                kernel.release
            );
            (Some((Artifact::of(i.out, "images.sqfs")?, outcome)), None)
        }
        None => {
            let why = format!(
                "no store ({})",
                i.store_skipped.unwrap_or("the store was not built")
            );
            log::warn!("images.sqfs not built: {why}");
            (None, Some(why))
        }
    };

    Ok(BootReport {
        module_suffix: kernel.module_suffix(),
        kernel_release: kernel.release.clone(),
        kernel_package: kpkg,
        modules: closure.modules.len(),
        builtin: system_closure.builtin,
        boot_packages,
        compression,
        initrd_cpio: cpio_size,
        initrd_entries: entries.len(),
        kernel: kernel_artifact,
        initrd: initrd_artifact,
        images_fs,
        images_fs_skipped,
    })
}
