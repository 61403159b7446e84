//! `docker load`: `docker save` tarballs (the legacy `<id>/layer.tar` form and the docker 25+
//! form with OCI blobs, both described by `manifest.json`) and OCI image archives or layout
//! directories (`oci-layout` + `index.json`). The outer archive may itself be gzip or zstd
//! compressed.
//!
//! A tar archive is indexed once (names → offsets) and its members are then read in place, so
//! nothing is copied but the unpacked layers. Every blob is checked against its digest, every
//! layer against the config's diff ids, before anything is committed.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::commit::{NewImage, Staging};
use super::extract::{self, Compression};
use super::reference::{Reference, DEFAULT_TAG};
use super::store::{config_diff_ids, io_err, sha256_hex, ImageError, ImageStore};

/// Manifests and configs are small; anything bigger is not one.
const JSON_LIMIT: u64 = 64 << 20;
const MAX_LINK_DEPTH: usize = 16;
const MAX_INDEX_DEPTH: usize = 4;

pub(super) const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(super) const MEDIA_DOCKER_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";

enum Node {
    File { offset: u64, size: u64 },
    Link(String),
}

/// The members of an archive, read in place.
enum Source {
    Tar {
        file: File,
        nodes: HashMap<String, Node>,
    },
    Dir(PathBuf),
}

/// A member of a tar file, read with `pread` so several can be open at once.
struct Section<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for Section<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.end - self.pos).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive is truncated",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// `a/./b/../c` → `a/c`; `None` when it climbs above the root.
fn normalize(name: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(out.join("/"))
}

fn invalid(archive: &Path, msg: impl std::fmt::Display) -> ImageError {
    ImageError::InvalidArchive(format!("{}: {msg}", archive.display()))
}

impl Source {
    /// Opens `path`: a directory (OCI layout), or a tar archive, decompressed into
    /// `staging` first when gzip or zstd compressed.
    fn open(path: &Path, staging: &mut Staging) -> Result<Source, ImageError> {
        if path.is_dir() {
            return Ok(Source::Dir(path.to_path_buf()));
        }
        let f = File::open(path).map_err(io_err(path))?;
        let mut head = BufReader::new(f);
        let kind = Compression::detect(head.fill_buf().map_err(io_err(path))?);
        let file = match kind {
            Compression::None => {
                // fill_buf moved the file position; the tar index must start at 0.
                let mut f = head.into_inner();
                io::Seek::seek(&mut f, io::SeekFrom::Start(0)).map_err(io_err(path))?;
                f
            }
            Compression::Gzip | Compression::Zstd => {
                let plain = staging.dir().join("archive.tar");
                let mut out = File::create(&plain).map_err(io_err(&plain))?;
                let mut dec: Box<dyn Read> = if kind == Compression::Gzip {
                    Box::new(flate2::bufread::MultiGzDecoder::new(head))
                } else {
                    Box::new(extract::ZstdFrames::new(head))
                };
                io::copy(&mut dec, &mut out)
                    .map_err(|e| invalid(path, format!("decompressing: {e}")))?;
                File::open(&plain).map_err(io_err(&plain))?
            }
            other => {
                return Err(invalid(
                    path,
                    format!("{other:?} compressed archives are not supported"),
                ))
            }
        };
        let len = file.metadata().map_err(io_err(path))?.len();
        let mut nodes = HashMap::new();
        {
            let mut ar = tar::Archive::new(&file);
            let entries = ar
                .entries_with_seek()
                .map_err(|e| invalid(path, format!("not a tar archive: {e}")))?;
            for e in entries {
                let e = e.map_err(|e| invalid(path, format!("truncated or corrupt tar: {e}")))?;
                let raw = e.path_bytes();
                let name = String::from_utf8_lossy(&raw).into_owned();
                let Some(key) = normalize(&name) else {
                    return Err(ImageError::UnsafePath {
                        entry: name,
                        reason: "archive member climbs out of the archive".to_string(),
                    });
                };
                let target = || {
                    e.link_name_bytes()
                        .map(|t| String::from_utf8_lossy(&t).into_owned())
                        .unwrap_or_default()
                };
                let node = match e.header().entry_type() {
                    tar::EntryType::Regular | tar::EntryType::Continuous => {
                        let (offset, size) = (e.raw_file_position(), e.size());
                        if offset.saturating_add(size) > len {
                            return Err(invalid(
                                path,
                                format!("truncated tar: {name} is cut short"),
                            ));
                        }
                        Node::File { offset, size }
                    }
                    tar::EntryType::Link => Node::Link(target()),
                    tar::EntryType::Symlink => {
                        let t = target();
                        if t.starts_with('/') {
                            continue;
                        }
                        let dir = key.rsplit_once('/').map_or("", |(d, _)| d);
                        Node::Link(format!("{dir}/{t}"))
                    }
                    _ => continue,
                };
                nodes.insert(key, node);
            }
        }
        Ok(Source::Tar { file, nodes })
    }

    fn has(&self, name: &str) -> bool {
        match self {
            Source::Tar { nodes, .. } => nodes.contains_key(name),
            Source::Dir(root) => root.join(name).is_file(),
        }
    }

    /// A reader over member `name` and its size.
    fn open_member(
        &self,
        archive: &Path,
        name: &str,
    ) -> Result<(Box<dyn Read + '_>, u64), ImageError> {
        let missing = || invalid(archive, format!("{name} is missing"));
        let mut key = normalize(name).ok_or_else(missing)?;
        match self {
            Source::Dir(root) => {
                let p = root.join(&key);
                let f = File::open(&p).map_err(|_| missing())?;
                let size = f.metadata().map_err(io_err(&p))?.len();
                Ok((Box::new(f), size))
            }
            Source::Tar { file, nodes } => {
                for _ in 0..MAX_LINK_DEPTH {
                    match nodes.get(&key).ok_or_else(missing)? {
                        Node::File { offset, size } => {
                            let r = Section {
                                file,
                                pos: *offset,
                                end: offset + size,
                            };
                            return Ok((Box::new(r), *size));
                        }
                        Node::Link(t) => key = normalize(t).ok_or_else(missing)?,
                    }
                }
                Err(invalid(
                    archive,
                    format!("{name}: too many levels of links"),
                ))
            }
        }
    }

    fn read(&self, archive: &Path, name: &str) -> Result<Vec<u8>, ImageError> {
        let (r, size) = self.open_member(archive, name)?;
        if size > JSON_LIMIT {
            return Err(invalid(
                archive,
                format!("{name} is too large ({size} bytes)"),
            ));
        }
        let mut buf = Vec::with_capacity(size as usize);
        r.take(JSON_LIMIT)
            .read_to_end(&mut buf)
            .map_err(|e| invalid(archive, format!("reading {name}: {e}")))?;
        Ok(buf)
    }

    fn read_json(&self, archive: &Path, name: &str) -> Result<Value, ImageError> {
        let b = self.read(archive, name)?;
        serde_json::from_slice(&b).map_err(|e| invalid(archive, format!("{name}: bad JSON: {e}")))
    }

    /// Blob `digest` (`sha256:<hex>`), checked against it.
    fn read_blob(&self, archive: &Path, digest: &str) -> Result<Vec<u8>, ImageError> {
        let name = blob_name(archive, digest)?;
        let b = self.read(archive, &name)?;
        verify(&name, digest, &b)?;
        Ok(b)
    }
}

fn blob_name(archive: &Path, digest: &str) -> Result<String, ImageError> {
    let hex = sha256_hex(digest)
        .ok_or_else(|| invalid(archive, format!("unsupported or invalid digest {digest:?}")))?;
    Ok(format!("blobs/sha256/{hex}"))
}

pub(super) fn sha256_digest(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

pub(super) fn verify(what: &str, expected: &str, bytes: &[u8]) -> Result<(), ImageError> {
    let actual = sha256_digest(bytes);
    if actual != expected {
        return Err(ImageError::DigestMismatch {
            blob: what.to_string(),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(())
}

/// A layer to unpack: the archive member, and the blob digest it must have when known.
struct LayerSource {
    member: String,
    digest: Option<String>,
}

struct Plan {
    image: NewImage,
    layers: Vec<LayerSource>,
}

/// The digest a member name like `blobs/sha256/<hex>` or `<hex>.json` promises.
fn digest_in_name(name: &str) -> Option<String> {
    let n = normalize(name)?;
    let hex = n
        .strip_prefix("blobs/sha256/")
        .or_else(|| n.strip_suffix(".json"))?;
    sha256_hex(&format!("sha256:{hex}")).map(|h| format!("sha256:{h}"))
}

fn plan_image(
    archive: &Path,
    config: Vec<u8>,
    layers: Vec<LayerSource>,
    tags: Vec<Reference>,
) -> Result<Plan, ImageError> {
    let id = sha256_digest(&config);
    let value: Value = serde_json::from_slice(&config)
        .map_err(|e| invalid(archive, format!("image config {id}: bad JSON: {e}")))?;
    let diff_ids = config_diff_ids(&value, &format!("{}: image config {id}", archive.display()))?;
    if diff_ids.len() != layers.len() {
        return Err(invalid(
            archive,
            format!(
                "image {id} has {} layers but its config lists {} diff ids",
                layers.len(),
                diff_ids.len()
            ),
        ));
    }
    Ok(Plan {
        image: NewImage {
            config,
            id_hex: id["sha256:".len()..].to_string(),
            diff_ids,
            tags,
            digests: Vec::new(),
        },
        layers,
    })
}

/// `manifest.json` of `docker save`.
fn docker_plans(archive: &Path, src: &Source) -> Result<Vec<Plan>, ImageError> {
    let manifest = src.read_json(archive, "manifest.json")?;
    let items = manifest
        .as_array()
        .ok_or_else(|| invalid(archive, "manifest.json is not a list"))?;
    let mut plans = Vec::new();
    for item in items {
        let cfg_name = item
            .get("Config")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(archive, "manifest.json: an entry has no Config"))?;
        let config = src.read(archive, cfg_name)?;
        if let Some(d) = digest_in_name(cfg_name) {
            verify(cfg_name, &d, &config)?;
        }
        let mut layers = Vec::new();
        for l in item
            .get("Layers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let member = l
                .as_str()
                .ok_or_else(|| invalid(archive, "manifest.json: a layer is not a path"))?;
            let digest = member
                .starts_with("blobs/")
                .then(|| digest_in_name(member))
                .flatten();
            layers.push(LayerSource {
                member: member.to_string(),
                digest,
            });
        }
        let mut tags = Vec::new();
        for t in item
            .get("RepoTags")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let t = t.as_str().unwrap_or_default();
            let r = Reference::parse(t)
                .map_err(|e| invalid(archive, format!("manifest.json: tag {t:?}: {e}")))?;
            tags.push(r.with_default_tag());
        }
        plans.push(plan_image(archive, config, layers, tags)?);
    }
    Ok(plans)
}

pub(super) fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        a => a,
    };
    ("linux", arch)
}

/// Whether a descriptor's platform (if any) is this host's.
pub(super) fn platform_matches(desc: &Value) -> bool {
    let Some(p) = desc.get("platform") else {
        return true;
    };
    let (os, arch) = host_platform();
    p.get("os").and_then(Value::as_str) == Some(os)
        && p.get("architecture").and_then(Value::as_str) == Some(arch)
}

/// Picks this host's manifest from an index or manifest list.
pub(super) fn pick_platform<'a>(index: &'a Value, what: &str) -> Result<&'a Value, ImageError> {
    let manifests = index
        .get("manifests")
        .and_then(Value::as_array)
        .ok_or_else(|| ImageError::InvalidArchive(format!("{what}: index has no manifests")))?;
    let (os, arch) = host_platform();
    // Attestation manifests (buildkit) carry platform unknown/unknown and never match.
    manifests
        .iter()
        .find(|m| m.get("platform").is_some() && platform_matches(m))
        .or_else(|| manifests.iter().find(|m| m.get("platform").is_none()))
        .ok_or_else(|| {
            ImageError::InvalidArchive(format!("{what}: no manifest for platform {os}/{arch}"))
        })
}

pub(super) fn is_index(media_type: &str, doc: &Value) -> bool {
    media_type == MEDIA_OCI_INDEX
        || media_type == MEDIA_DOCKER_LIST
        || (media_type.is_empty() && doc.get("manifests").is_some())
}

/// The tag an OCI index descriptor names: `io.containerd.image.name` (a full reference), or
/// `org.opencontainers.image.ref.name` when that is a reference rather than a bare tag.
fn oci_tag(archive: &Path, desc: &Value) -> Result<Option<Reference>, ImageError> {
    let ann = |k: &str| {
        desc.get("annotations")
            .and_then(|a| a.get(k))
            .and_then(Value::as_str)
    };
    let name = match (
        ann("io.containerd.image.name"),
        ann("org.opencontainers.image.ref.name"),
    ) {
        (Some(n), _) => n,
        (None, Some(r)) if r.contains([':', '/', '@']) => r,
        _ => return Ok(None),
    };
    let r = Reference::parse(name)
        .map_err(|e| invalid(archive, format!("index.json: image name {name:?}: {e}")))?;
    if r.digest().is_some() && r.tag().is_none() {
        return Ok(None);
    }
    Ok(Some(r.with_tag(r.tag().unwrap_or(DEFAULT_TAG))))
}

/// `index.json` of an OCI layout.
fn oci_plans(archive: &Path, src: &Source) -> Result<Vec<Plan>, ImageError> {
    let index = src.read_json(archive, "index.json")?;
    let descs = index
        .get("manifests")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid(archive, "index.json has no manifests"))?;
    // Several platforms of one image side by side: keep this host's.
    let with_platform: Vec<&Value> = descs
        .iter()
        .filter(|d| d.get("platform").is_some())
        .collect();
    let keep_all = with_platform.is_empty() || !with_platform.iter().any(|d| platform_matches(d));
    let mut plans = Vec::new();
    for desc in descs {
        if !keep_all && !platform_matches(desc) {
            continue;
        }
        let tag = oci_tag(archive, desc)?;
        let mut d = desc.clone();
        let mut depth = 0;
        let manifest = loop {
            let digest = d
                .get("digest")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(archive, "a descriptor has no digest"))?;
            let bytes = src.read_blob(archive, digest)?;
            let doc: Value = serde_json::from_slice(&bytes)
                .map_err(|e| invalid(archive, format!("manifest {digest}: bad JSON: {e}")))?;
            let mt = d
                .get("mediaType")
                .and_then(Value::as_str)
                .or_else(|| doc.get("mediaType").and_then(Value::as_str))
                .unwrap_or("");
            if !is_index(mt, &doc) {
                break doc;
            }
            depth += 1;
            if depth > MAX_INDEX_DEPTH {
                return Err(invalid(archive, "indexes nested too deep"));
            }
            let what = format!("{}: {digest}", archive.display());
            d = pick_platform(&doc, &what)?.clone();
        };
        plans.push(plan_from_manifest(archive, src, &manifest, tag)?);
    }
    Ok(plans)
}

fn plan_from_manifest(
    archive: &Path,
    src: &Source,
    manifest: &Value,
    tag: Option<Reference>,
) -> Result<Plan, ImageError> {
    let cfg_digest = manifest
        .get("config")
        .and_then(|c| c.get("digest"))
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(archive, "a manifest has no config"))?;
    let config = src.read_blob(archive, cfg_digest)?;
    let mut layers = Vec::new();
    for l in manifest
        .get("layers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let digest = l
            .get("digest")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(archive, "a layer descriptor has no digest"))?;
        let mt = l.get("mediaType").and_then(Value::as_str).unwrap_or("");
        if mt.contains("encrypted") {
            return Err(invalid(
                archive,
                format!("layer {digest}: encrypted layers are not supported"),
            ));
        }
        layers.push(LayerSource {
            member: blob_name(archive, digest)?,
            digest: Some(digest.to_string()),
        });
    }
    plan_image(archive, config, layers, tag.into_iter().collect())
}

/// Unpacks the layers of `plans` that no store has yet into `staging`.
fn unpack_layers(
    archive: &Path,
    src: &Source,
    plans: &[Plan],
    staging: &mut Staging,
) -> Result<(), ImageError> {
    for plan in plans {
        for (l, diff_id) in plan.layers.iter().zip(&plan.image.diff_ids) {
            let hex = sha256_hex(diff_id).unwrap_or_default();
            if staging.layer_available(hex) {
                continue;
            }
            let (reader, _) = src.open_member(archive, &l.member)?;
            let dir = staging.new_dir("layer")?;
            let what = format!("{}: {}", archive.display(), l.member);
            let u = extract::unpack_layer(reader, &dir, &what)?;
            if let Some(d) = &l.digest {
                if u.blob_digest != *d {
                    return Err(ImageError::DigestMismatch {
                        blob: l.member.clone(),
                        expected: d.clone(),
                        actual: u.blob_digest,
                    });
                }
            }
            if u.diff_id != *diff_id {
                return Err(ImageError::DigestMismatch {
                    blob: format!("{} (uncompressed)", l.member),
                    expected: diff_id.clone(),
                    actual: u.diff_id,
                });
            }
            staging.add_layer(hex, dir, u.size);
        }
    }
    Ok(())
}

pub(super) fn load(store: &ImageStore, archive: &Path) -> Result<Vec<String>, ImageError> {
    let mut staging = store.staging("load")?;
    let src = Source::open(archive, &mut staging)?;
    let plans = if src.has("manifest.json") {
        docker_plans(archive, &src)?
    } else if src.has("index.json") {
        oci_plans(archive, &src)?
    } else {
        return Err(invalid(
            archive,
            "neither manifest.json nor index.json found",
        ));
    };
    unpack_layers(archive, &src, &plans, &mut staging)?;
    let images: Vec<NewImage> = plans.into_iter().map(|p| p.image).collect();
    let moved = store.commit(&mut staging, &images)?;
    let mut lines = Vec::new();
    for (img, moved) in images.iter().zip(moved) {
        if img.tags.is_empty() {
            lines.push(format!("Loaded image ID: sha256:{}", img.id_hex));
        }
        for (t, old) in img.tags.iter().zip(moved) {
            let t = t.familiar();
            if let Some(old) = old {
                lines.push(format!(
                    "The image {t} already exists, renaming the old one with ID {old} to empty string"
                ));
            }
            lines.push(format!("Loaded image: {t}"));
        }
    }
    Ok(lines)
}
