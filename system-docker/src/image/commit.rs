//! Making a load or pull visible: layers unpacked in a staging area under `tmp/` are renamed
//! into the store, configs and references written, all under the store lock and undone if any
//! step fails, so an import is all or nothing.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::reference::Reference;
use super::store::{
    io_err, random_hex, ref_key, sha256_hex, ImageError, ImageStore, LayerRecord, Repositories,
};
use crate::fsutil::{write_atomic, write_json_atomic};

/// An image ready to be committed by [`ImageStore::commit`].
pub(super) struct NewImage {
    pub config: Vec<u8>,
    pub id_hex: String,
    /// `sha256:<hex>` each.
    pub diff_ids: Vec<String>,
    pub tags: Vec<Reference>,
    pub digests: Vec<Reference>,
}

/// Layers unpacked under `tmp/` but not yet in the store, and store layers the import relies
/// on (pinned against removal meanwhile). Removed and unpinned on drop.
pub(super) struct Staging {
    store: ImageStore,
    dir: PathBuf,
    layers: HashMap<String, (PathBuf, u64)>,
    pinned: Vec<String>,
    next: usize,
}

impl Staging {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A new empty directory inside the staging area.
    pub fn new_dir(&mut self, prefix: &str) -> Result<PathBuf, ImageError> {
        self.next += 1;
        let p = self.dir.join(format!("{prefix}-{}", self.next));
        fs::create_dir(&p).map_err(io_err(&p))?;
        Ok(p)
    }

    pub fn has_layer(&self, hex: &str) -> bool {
        self.layers.contains_key(hex)
    }

    /// Whether layer `hex` is staged already or present in a store; a present one stays
    /// present until this staging area is dropped, so the import may skip unpacking it.
    pub fn layer_available(&mut self, hex: &str) -> bool {
        if self.has_layer(hex) {
            return true;
        }
        self.pinned.push(hex.to_string());
        self.store.pin_layer(hex)
    }

    pub fn add_layer(&mut self, hex: &str, dir: PathBuf, size: u64) {
        self.layers.insert(hex.to_string(), (dir, size));
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        for hex in &self.pinned {
            self.store.unpin_layer(hex);
        }
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            if e.kind() != io::ErrorKind::NotFound {
                log::warn!("cannot clean {}: {e}", self.dir.display());
            }
        }
    }
}

impl ImageStore {
    /// A fresh staging area under `tmp/`.
    pub(super) fn staging(&self, kind: &str) -> Result<Staging, ImageError> {
        let dir = self
            .root()
            .join("tmp")
            .join(format!("{kind}-{}", random_hex()));
        fs::create_dir(&dir).map_err(io_err(&dir))?;
        Ok(Staging {
            store: self.clone(),
            dir,
            layers: HashMap::new(),
            pinned: Vec::new(),
            next: 0,
        })
    }

    /// Makes staged layers, configs and references of `images` part of the store, all or
    /// nothing. Returns, per image and per tag, the id the tag pointed to before (if another).
    pub(super) fn commit(
        &self,
        staging: &mut Staging,
        images: &[NewImage],
    ) -> Result<Vec<Vec<Option<String>>>, ImageError> {
        let mut repos = self.lock();
        for img in images {
            for d in &img.diff_ids {
                let hex = sha256_hex(d).unwrap_or_default();
                if !staging.has_layer(hex) && self.layer_dir(hex).is_none() {
                    return Err(ImageError::Conflict(format!(
                        "layer {d} of image sha256:{} was removed during the import; try again",
                        img.id_hex
                    )));
                }
            }
        }
        let mut created = Vec::new();
        let mut new = repos.clone();
        match self.commit_files(staging, images, &mut new, &mut created) {
            Ok(moved) => {
                *repos = new;
                Ok(moved)
            }
            Err(e) => {
                for p in created.iter().rev() {
                    let r = if p.is_dir() {
                        fs::remove_dir_all(p)
                    } else {
                        fs::remove_file(p)
                    };
                    if let Err(e) = r {
                        log::warn!("cannot undo {}: {e}", p.display());
                    }
                }
                Err(e)
            }
        }
    }

    fn commit_files(
        &self,
        staging: &mut Staging,
        images: &[NewImage],
        repos: &mut Repositories,
        created: &mut Vec<PathBuf>,
    ) -> Result<Vec<Vec<Option<String>>>, ImageError> {
        let layers = Self::layers_dir(self.root());
        for (hex, (dir, size)) in staging.layers.drain() {
            if self.layer_dir(&hex).is_some() {
                continue;
            }
            let dst = layers.join(&hex);
            fs::rename(&dir, &dst).map_err(io_err(&dst))?;
            created.push(dst.clone());
            let record = dst.with_extension("json");
            let rec = LayerRecord {
                diff_id: format!("sha256:{hex}"),
                size,
            };
            write_json_atomic(&record, &rec).map_err(io_err(&record))?;
            created.push(record);
        }
        let configs = Self::configs_dir(self.root());
        for img in images {
            if self.config_path(&img.id_hex).is_none() {
                let p = configs.join(format!("{}.json", img.id_hex));
                write_atomic(&p, &img.config).map_err(io_err(&p))?;
                created.push(p);
            }
        }
        let mut moved = Vec::new();
        for img in images {
            let id = format!("sha256:{}", img.id_hex);
            let refs = self.refs(repos);
            let mut per = Vec::new();
            for t in &img.tags {
                let before = refs.get(&ref_key(t)).map(|(i, _)| i.clone());
                repos.set(t, &id);
                per.push(before.filter(|b| *b != id && self.exists(b)));
            }
            for d in &img.digests {
                repos.set(d, &id);
            }
            moved.push(per);
        }
        self.save(repos)?;
        Ok(moved)
    }
}
