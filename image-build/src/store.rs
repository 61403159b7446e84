//! The read-only pre-unpacked image store (`dist/images/store`): the engine's own store
//! format (documented in `system-docker/src/image/mod.rs`), made by the engine's own
//! [`ImageStore`] loading each archive into an empty directory, so what boots is exactly what
//! `system-docker load` would have made. Device nodes (overlayfs whiteouts), owners and
//! `trusted.*` xattrs need root.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use system_docker::image::{ImageError, ImageStore};

use crate::archive::Written;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("loading {archive} into the store: {source}")]
    Load {
        archive: PathBuf,
        source: ImageError,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether the store was rebuilt or was already up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Built,
    UpToDate,
}

/// Makes `dir` the store of exactly `archives`. Skipped when the stamp beside it
/// (`<dir>.stamp`) shows it was made from the same archives by the same build of this tool
/// (which links the engine's store code: a new format means a new store).
pub fn build(dir: &Path, archives: &[Written]) -> Result<Outcome, StoreError> {
    let stamp_path = dir.with_extension("stamp");
    let exe = Path::new("/proc/self/exe");
    let (_, tool) = crate::archive::file_digest(exe).map_err(|e| StoreError::Io {
        path: exe.to_path_buf(),
        source: io::Error::other(e.to_string()),
    })?;
    let mut stamp = format!("tool {tool}\n");
    for a in archives {
        stamp.push_str(&format!("{} {}\n", a.sha256, a.path.display()));
    }
    if dir.join("repositories.json").is_file()
        && fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp)
    {
        return Ok(Outcome::UpToDate);
    }
    let _ = fs::remove_file(&stamp_path);
    let new = dir.with_extension("new");
    remove(&new)?;
    let store = ImageStore::open(&new, &[]).map_err(|source| StoreError::Load {
        archive: new.clone(),
        source,
    })?;
    for a in archives {
        log::info!("store: loading {}", a.path.display());
        store.load(&a.path).map_err(|source| StoreError::Load {
            archive: a.path.clone(),
            source,
        })?;
    }
    drop(store);
    // Work in progress only; a read-only store has none.
    remove(&new.join("tmp"))?;
    remove(dir)?;
    fs::rename(&new, dir).map_err(io_err(dir))?;
    fs::write(&stamp_path, stamp).map_err(io_err(&stamp_path))?;
    Ok(Outcome::Built)
}

fn remove(p: &Path) -> Result<(), StoreError> {
    match fs::remove_dir_all(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StoreError::Io {
            path: p.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Bytes of the regular files under `dir` (each hard-linked inode once).
pub fn disk_usage(dir: &Path) -> u64 {
    use std::collections::HashSet;
    use std::os::unix::fs::MetadataExt;
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(md) = e.path().symlink_metadata() else {
                continue;
            };
            if md.is_dir() {
                stack.push(e.path());
            } else if md.is_file() && seen.insert((md.dev(), md.ino())) {
                total += md.len();
            }
        }
    }
    total
}
