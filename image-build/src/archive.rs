//! Image archives in the form `docker save` writes since Docker 25: an OCI image layout
//! (`oci-layout`, `index.json`, `blobs/sha256/…`) that also carries the `manifest.json` older
//! `docker load`s read, so system-docker, dockerd 20.10 and the docker CLI of today load it.
//! Layers are gzip'd. Reproducible: sorted entries, one mtime, numeric owners.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::layer::Built;
use crate::spec::Image;

const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MEDIA_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An archive written.
#[derive(Debug, Clone)]
pub struct Written {
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
    /// The image id: `sha256:` of the config.
    pub id: String,
}

/// The image config (`docker inspect`'s `.Config`, the rootfs and the history).
pub fn config(image: &Image, layers: &[&Built], created: &str, version: &str) -> Vec<u8> {
    let mut env = vec![PATH_ENV.to_string()];
    env.extend(
        image
            .env
            .iter()
            .filter(|(k, _)| k.as_str() != "PATH")
            .map(|(k, v)| format!("{k}={v}")),
    );
    let mut labels: BTreeMap<String, String> = image.labels.clone();
    labels.insert("org.opencontainers.image.title".into(), image.tag.clone());
    labels.insert("org.opencontainers.image.version".into(), version.into());
    let mut cfg = json!({
        "Env": env,
        "Entrypoint": image.entrypoint,
        "Cmd": image.cmd,
        "Labels": labels,
        "WorkingDir": image.workdir.clone().unwrap_or_else(|| "/".into()),
        "User": image.user.clone().unwrap_or_default(),
    });
    if let Some(s) = &image.stop_signal {
        cfg["StopSignal"] = json!(s);
    }
    let history: Vec<Value> = layers
        .iter()
        .map(|l| {
            let mut pkgs: Vec<String> = l.packages.iter().map(|p| p.spec()).collect();
            pkgs.extend(l.partial.iter().map(|p| format!("{} (part)", p.spec())));
            json!({
                "created": created,
                "created_by": format!("ros-image-build: layer {}: {}", l.name,
                    if pkgs.is_empty() { "files".to_string() } else { pkgs.join(" ") }),
            })
        })
        .collect();
    let v = json!({
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "author": "ros-image-build",
        "config": cfg,
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
        },
        "history": history,
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Writes the archive of `image` to `path` (through a temporary file).
pub fn write(
    path: &Path,
    image: &Image,
    config: &[u8],
    layers: &[&Built],
    mtime: u64,
) -> Result<Written, ArchiveError> {
    let config_hex = hex::encode(Sha256::digest(config));
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": format!("sha256:{config_hex}"),
                   "size": config.len()},
        "layers": layers.iter().map(|l| json!({
            "mediaType": MEDIA_LAYER, "digest": l.blob_digest, "size": l.blob_size,
        })).collect::<Vec<_>>(),
    });
    let manifest = serde_json::to_vec(&manifest).unwrap_or_default();
    let manifest_hex = hex::encode(Sha256::digest(&manifest));
    let (_, tag) = image.tag.rsplit_once(':').unwrap_or((&image.tag, "latest"));
    let index = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [{
            "mediaType": MEDIA_MANIFEST,
            "digest": format!("sha256:{manifest_hex}"),
            "size": manifest.len(),
            "annotations": {
                "io.containerd.image.name": format!("docker.io/{}", image.tag),
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    });
    let blob = |hex: &str| format!("blobs/sha256/{hex}");
    let docker_manifest = json!([{
        "Config": blob(&config_hex),
        "RepoTags": [image.tag],
        "Layers": layers.iter().map(|l| blob(l.blob_digest.trim_start_matches("sha256:")))
            .collect::<Vec<_>>(),
    }]);

    enum Member<'a> {
        Dir,
        Bytes(Vec<u8>),
        File(&'a Path, u64),
    }
    let mut members: BTreeMap<String, Member> = BTreeMap::new();
    members.insert("blobs/".into(), Member::Dir);
    members.insert("blobs/sha256/".into(), Member::Dir);
    members.insert(blob(&config_hex), Member::Bytes(config.to_vec()));
    members.insert(blob(&manifest_hex), Member::Bytes(manifest));
    for l in layers {
        members.insert(
            blob(l.blob_digest.trim_start_matches("sha256:")),
            Member::File(&l.blob, l.blob_size),
        );
    }
    members.insert(
        "index.json".into(),
        Member::Bytes(serde_json::to_vec(&index).unwrap_or_default()),
    );
    members.insert(
        "manifest.json".into(),
        Member::Bytes(serde_json::to_vec(&docker_manifest).unwrap_or_default()),
    );
    members.insert(
        "oci-layout".into(),
        Member::Bytes(br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
    );

    let tmp = path.with_extension(format!("tar.tmp-{}", std::process::id()));
    let f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
    let mut b = tar::Builder::new(BufWriter::with_capacity(1 << 20, f));
    for (name, m) in &members {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(mtime);
        h.set_uid(0);
        h.set_gid(0);
        match m {
            Member::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, name, io::empty())
            }
            Member::Bytes(d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(d.len() as u64);
                b.append_data(&mut h, name, d.as_slice())
            }
            Member::File(p, size) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(*size);
                let f = fs::File::open(p).map_err(io_err(p))?;
                b.append_data(&mut h, name, f.take(*size))
            }
        }
        .map_err(io_err(&tmp))?;
    }
    let mut w = b.into_inner().map_err(io_err(&tmp))?;
    w.flush().map_err(io_err(&tmp))?;
    drop(w);
    let (size, sha256) = file_digest(&tmp)?;
    fs::rename(&tmp, path).map_err(io_err(path))?;
    Ok(Written {
        path: path.to_path_buf(),
        size,
        sha256,
        id: format!("sha256:{config_hex}"),
    })
}

/// Size and hex sha256 of a file.
pub fn file_digest(path: &Path) -> Result<(u64, String), ArchiveError> {
    let mut f = fs::File::open(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    let n = io::copy(&mut f, &mut h).map_err(io_err(path))?;
    Ok((n, hex::encode(h.finalize())))
}
