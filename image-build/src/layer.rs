//! Building one layer: its packages unpacked (`dpkg-deb --fsys-tarfile`, no maintainer
//! scripts), the spec's files, directories, symlinks and contents on top, minus what the
//! layers below already have — written as a gzip'd reproducible tar into the cache, keyed by
//! everything that goes into it.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::apt::Package;
use crate::pattern::Pattern;
use crate::spec;
use crate::tree::{Entry, Index, Node, Tree, TreeError};

/// Bump when the bytes a layer is built into change for the same inputs.
const LAYER_FORMAT: &str = "ros-image-build layer v1";

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
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
    #[error("layer {layer}: {source}")]
    Tree { layer: String, source: TreeError },
    #[error("layer {layer}: {message}")]
    Invalid { layer: String, message: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LayerError + '_ {
    move |source| LayerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A package going into a layer.
#[derive(Debug, Clone)]
pub struct LayerPackage {
    pub package: Package,
    /// Some: only these paths of it.
    pub only: Option<Vec<Pattern>>,
    pub deb: PathBuf,
}

/// A built layer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Built {
    pub name: String,
    /// The cache key (a digest of every input, the layers below included).
    pub key: String,
    /// `sha256:` of the uncompressed tar.
    pub diff_id: String,
    /// `sha256:` of the gzip'd tar.
    pub blob_digest: String,
    pub blob_size: u64,
    pub tar_size: u64,
    /// Bytes of the files this layer adds.
    pub unpacked: u64,
    /// The packages unpacked in full, with versions.
    pub packages: Vec<Package>,
    /// The packages taken in part.
    pub partial: Vec<Package>,
    #[serde(skip)]
    pub blob: PathBuf,
    /// The merged view of this layer and those below.
    #[serde(skip)]
    pub index: Arc<Index>,
}

/// Everything a layer is made of, canonically: its digest is the cache key.
#[derive(Serialize)]
struct KeyInput<'a> {
    format: &'a str,
    parent: Option<&'a str>,
    epoch: u64,
    name: &'a str,
    packages: Vec<(String, String, String, Option<Vec<String>>)>,
    drop: Vec<&'a str>,
    files: Option<String>,
    dirs: &'a BTreeMap<String, u32>,
    symlinks: &'a BTreeMap<String, String>,
    contents: &'a BTreeMap<String, String>,
    attrs: &'a BTreeMap<String, spec::Attr>,
    busybox_applets: bool,
    ca_bundle: bool,
}

/// Builds `layer` over `parent` (or finds it in `cache_dir`).
pub fn build(
    layer: &spec::Layer,
    packages: &[LayerPackage],
    parent: Option<&Built>,
    epoch: u64,
    cache_dir: &Path,
) -> Result<Built, LayerError> {
    let files_digest = match &layer.files {
        Some(dir) => Some(dir_digest(dir)?),
        None => None,
    };
    let key_input = KeyInput {
        format: LAYER_FORMAT,
        parent: parent.map(|p| p.key.as_str()),
        epoch,
        name: &layer.name,
        packages: packages
            .iter()
            .map(|p| {
                (
                    p.package.name.clone(),
                    p.package.version.clone(),
                    p.package.arch.clone(),
                    p.only
                        .as_ref()
                        .map(|o| o.iter().map(|x| x.as_str().to_string()).collect()),
                )
            })
            .collect(),
        drop: layer.drop.iter().map(Pattern::as_str).collect(),
        files: files_digest,
        dirs: &layer.dirs,
        symlinks: &layer.symlinks,
        contents: &layer.contents,
        attrs: &layer.attrs,
        busybox_applets: layer.busybox_applets,
        ca_bundle: layer.ca_bundle,
    };
    let key = hex::encode(Sha256::digest(
        serde_json::to_vec(&key_input).unwrap_or_default(),
    ));
    let dir = cache_dir.join("layers").join(&key);
    if let Some(built) = load_cached(&dir) {
        log::info!("layer {}: cached ({})", layer.name, short(&built.diff_id));
        return Ok(built);
    }

    log::info!(
        "layer {}: building from {} package(s)",
        layer.name,
        packages.len()
    );
    let lower: Arc<Index> = parent.map(|p| p.index.clone()).unwrap_or_default();
    let tree = fill(layer, packages, &lower, cache_dir)?;
    let tree_err = |source| LayerError::Tree {
        layer: layer.name.clone(),
        source,
    };
    let diff = tree.diff(&lower).map_err(tree_err)?;
    let index = diff.merged_index(&lower);

    let tmp = cache_dir
        .join("layers")
        .join(format!(".tmp-{key}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
    let blob = tmp.join("layer.tar.gz");
    let f = fs::File::create(&blob).map_err(io_err(&blob))?;
    let gz_hash = HashWriter::new(BufWriter::with_capacity(1 << 20, f));
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(gz_hash, flate2::Compression::default());
    let tar_hash = HashWriter::new(gz);
    let tar_hash = diff.write_tar(tar_hash, epoch).map_err(io_err(&blob))?;
    let (gz, diff_id, tar_size) = tar_hash.finish();
    let gz_hash = gz.finish().map_err(io_err(&blob))?;
    let (mut buf, blob_digest, blob_size) = gz_hash.finish();
    buf.flush().map_err(io_err(&blob))?;

    let mut partial: Vec<Package> = Vec::new();
    let mut full: Vec<Package> = Vec::new();
    for p in packages {
        if p.only.is_some() {
            partial.push(p.package.clone());
        } else {
            full.push(p.package.clone());
        }
    }
    let built = Built {
        name: layer.name.clone(),
        key: key.clone(),
        diff_id: format!("sha256:{diff_id}"),
        blob_digest: format!("sha256:{blob_digest}"),
        blob_size,
        tar_size,
        unpacked: diff.file_bytes(),
        packages: full,
        partial,
        blob: dir.join("layer.tar.gz"),
        index: Arc::new(index),
    };
    let meta = tmp.join("meta.json");
    fs::write(&meta, serde_json::to_vec_pretty(&built).unwrap_or_default())
        .map_err(io_err(&meta))?;
    let idx = tmp.join("index.json");
    fs::write(&idx, serde_json::to_vec(&*built.index).unwrap_or_default()).map_err(io_err(&idx))?;
    let _ = fs::remove_dir_all(&dir);
    fs::rename(&tmp, &dir).map_err(io_err(&dir))?;
    log::info!(
        "layer {}: built ({}, {} unpacked, {} gzip'd)",
        layer.name,
        short(&built.diff_id),
        crate::human(built.unpacked),
        crate::human(built.blob_size)
    );
    Ok(built)
}

fn short(digest: &str) -> &str {
    let hex = digest.trim_start_matches("sha256:");
    &hex[..hex.len().min(12)]
}

fn load_cached(dir: &Path) -> Option<Built> {
    let mut built: Built = serde_json::from_slice(&fs::read(dir.join("meta.json")).ok()?).ok()?;
    let index: Index = serde_json::from_slice(&fs::read(dir.join("index.json")).ok()?).ok()?;
    built.blob = dir.join("layer.tar.gz");
    if fs::metadata(&built.blob).ok()?.len() != built.blob_size {
        return None;
    }
    built.index = Arc::new(index);
    Some(built)
}

/// The layer's whole tree (before leaving out what the layers below have).
fn fill(
    layer: &spec::Layer,
    packages: &[LayerPackage],
    lower: &Index,
    cache_dir: &Path,
) -> Result<Tree, LayerError> {
    let invalid = |message: String| LayerError::Invalid {
        layer: layer.name.clone(),
        message,
    };
    let tree_err = |source| LayerError::Tree {
        layer: layer.name.clone(),
        source,
    };
    let mut tree = Tree::default();
    for p in packages {
        unpack(&mut tree, p, &layer.drop).map_err(|e| match e {
            LayerError::Tree { source, .. } => tree_err(source),
            e => e,
        })?;
        if p.only.is_none() {
            // What dpkg would know of it, where image scanners look for it in images without
            // a dpkg database (one file per package, as distroless images have).
            let control = run_output(Command::new("dpkg-deb").arg("-f").arg(&p.deb))?;
            tree.insert(
                &format!("var/lib/dpkg/status.d/{}", p.package.name),
                Entry::file(control, 0o644),
            );
        }
    }
    if let Some(dir) = &layer.files {
        tree.add_dir(dir).map_err(tree_err)?;
    }
    for (path, mode) in &layer.dirs {
        match tree.entries.get_mut(path) {
            Some(e) if e.node == Node::Dir => e.mode = *mode,
            Some(_) => return Err(invalid(format!("dirs: /{path} is not a directory"))),
            None => tree.insert(path, Entry::dir(*mode)),
        }
    }
    for (path, target) in &layer.symlinks {
        tree.insert(path, Entry::symlink(target));
    }
    for (path, text) in &layer.contents {
        tree.insert(path, Entry::file(text.as_bytes().to_vec(), 0o644));
    }
    if layer.busybox_applets {
        busybox_applets(&mut tree, lower, cache_dir).map_err(|e| match e {
            LayerError::Invalid { message, .. } => invalid(message),
            e => e,
        })?;
    }
    if layer.ca_bundle {
        let mut bundle = Vec::new();
        for (path, e) in &tree.entries {
            if let (true, Node::File(d)) = (
                path.starts_with("usr/share/ca-certificates/") && path.ends_with(".crt"),
                &e.node,
            ) {
                bundle.extend_from_slice(d);
                if !bundle.ends_with(b"\n") {
                    bundle.push(b'\n');
                }
            }
        }
        if bundle.is_empty() {
            return Err(invalid(
                "ca_bundle: no certificates under /usr/share/ca-certificates in this layer".into(),
            ));
        }
        tree.insert(
            "etc/ssl/certs/ca-certificates.crt",
            Entry::file(bundle, 0o644),
        );
    }
    for (path, attr) in &layer.attrs {
        if !tree.entries.contains_key(path) {
            match lower.get(path) {
                Some(l) if l.kind == 'd' => tree.insert(
                    path,
                    Entry {
                        node: Node::Dir,
                        mode: l.mode,
                        uid: l.uid,
                        gid: l.gid,
                    },
                ),
                _ => {
                    return Err(invalid(format!(
                        "attrs: /{path} is not in this layer (nor a directory below it)"
                    )))
                }
            }
        }
        if let Some(e) = tree.entries.get_mut(path) {
            if let Some(m) = attr.mode {
                e.mode = m;
            }
            if let Some(u) = attr.uid {
                e.uid = u;
            }
            if let Some(g) = attr.gid {
                e.gid = g;
            }
        }
    }
    Ok(tree)
}

/// Adds a package's files (those `drop` leaves and, for a partial package, `only` names).
pub(crate) fn unpack(
    tree: &mut Tree,
    p: &LayerPackage,
    drop: &[Pattern],
) -> Result<(), LayerError> {
    let cmd = format!("dpkg-deb --fsys-tarfile {}", p.deb.display());
    let mut child = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(&p.deb)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| LayerError::Spawn {
            cmd: cmd.clone(),
            source,
        })?;
    let keep = |path: &str| {
        !drop.iter().any(|d| d.matches(path))
            && p.only
                .as_ref()
                .is_none_or(|o| o.iter().any(|x| x.matches(path) || x.leads_to(path)))
    };
    let stdout = child.stdout.take();
    let result = match stdout {
        Some(out) => tree.add_tar(out, &p.package.name, &keep),
        None => Ok(()),
    };
    let out = child
        .wait_with_output()
        .map_err(|source| LayerError::Spawn {
            cmd: cmd.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(LayerError::Failed {
            cmd,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    result.map_err(|source| LayerError::Tree {
        layer: p.package.name.clone(),
        source,
    })?;
    if let Some(only) = &p.only {
        for o in only {
            if !tree.entries.keys().any(|k| o.matches(k)) {
                return Err(LayerError::Invalid {
                    layer: p.package.name.clone(),
                    message: format!("`only` path {} is not in the package", o.as_str()),
                });
            }
        }
    }
    Ok(())
}

/// A symlink to /bin/busybox for every applet path nothing else provides, from the list the
/// layer's own busybox prints (`busybox --list-full`).
fn busybox_applets(tree: &mut Tree, lower: &Index, cache_dir: &Path) -> Result<(), LayerError> {
    let Some(Node::File(bin)) = tree.entries.get("bin/busybox").map(|e| e.node.clone()) else {
        return Err(LayerError::Invalid {
            layer: String::new(),
            message: "busybox_applets: no /bin/busybox in this layer (package busybox-static)"
                .into(),
        });
    };
    // Named `busybox`: busybox dispatches on the name it is run as.
    let dir = cache_dir.join(format!(".busybox-{}", std::process::id()));
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let tmp = dir.join("busybox");
    fs::write(&tmp, bin.as_slice()).map_err(io_err(&tmp))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).map_err(io_err(&tmp))?;
    let out = run_output(Command::new(&tmp).arg("--list-full"));
    let _ = fs::remove_dir_all(&dir);
    let list = String::from_utf8_lossy(&out?).into_owned();
    let mut added = 0;
    for applet in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Some(path) = crate::tree::normalize(applet) else {
            continue;
        };
        if path == "bin/busybox" || tree.entries.contains_key(&path) || lower.contains_key(&path) {
            continue;
        }
        tree.insert(&path, Entry::symlink("/bin/busybox"));
        added += 1;
    }
    log::debug!("busybox: {added} applet links");
    Ok(())
}

fn run_output(cmd: &mut Command) -> Result<Vec<u8>, LayerError> {
    let rendered = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LayerError::Spawn {
            cmd: rendered.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(LayerError::Failed {
            cmd: rendered,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(out.stdout)
}

/// A digest of a source directory: paths, kinds, executable bits and contents.
fn dir_digest(dir: &Path) -> Result<String, LayerError> {
    let mut t = Tree::default();
    t.add_dir(dir).map_err(|source| LayerError::Tree {
        layer: dir.display().to_string(),
        source,
    })?;
    let mut h = Sha256::new();
    for (p, e) in &t.entries {
        let i = e.index();
        h.update(format!("{p}\0{}\0{:o}\0{}\n", i.kind, i.mode, i.digest));
    }
    Ok(hex::encode(h.finalize()))
}

/// Passes writes through, hashing and counting them.
struct HashWriter<W> {
    inner: W,
    hash: Sha256,
    n: u64,
}

impl<W: Write> HashWriter<W> {
    fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hash: Sha256::new(),
            n: 0,
        }
    }

    /// The writer, the hex sha256 and the byte count.
    fn finish(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hash.finalize()), self.n)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
