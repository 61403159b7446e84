//! Seed filesystems (NoCloud `cidata`, config drive `config-2`): a directory, an image file
//! or a block device, read in user space with [`crate::fsimage`] so nothing is mounted.

use std::fs;
use std::path::{Path, PathBuf};

use super::{DatasourceError, Seed};
use crate::fsimage::Image;

/// An opened seed.
pub(crate) enum SeedFs {
    Dir(PathBuf),
    Image { image: Image, path: PathBuf },
}

impl SeedFs {
    /// Where the seed is, for messages.
    pub(crate) fn path(&self) -> &Path {
        match self {
            SeedFs::Dir(p) => p,
            SeedFs::Image { path, .. } => path,
        }
    }

    /// Reads `rel` (`user-data`, `openstack/latest/meta_data.json`); `None` when absent.
    pub(crate) fn read(&mut self, rel: &str) -> Result<Option<Vec<u8>>, DatasourceError> {
        match self {
            SeedFs::Dir(dir) => {
                let path = dir.join(rel);
                match fs::read(&path) {
                    Ok(d) => Ok(Some(d)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(DatasourceError::Read { path, source }),
                }
            }
            SeedFs::Image { image, path } => {
                image
                    .read(&format!("/{rel}"))
                    .map_err(|e| DatasourceError::Image {
                        path: path.join(rel),
                        message: chain(&e),
                    })
            }
        }
    }
}

/// Opens the seed: for a label, the first block device (`sys/class/block/*` under `root`,
/// opened as `dev/<name>` under `root`) whose filesystem label matches it, ignoring case as
/// cloud-init does (`cidata`, `CIDATA` on vfat); `None` when there is none. A path that does
/// not exist is an error: the user named it.
pub(crate) fn open(root: &Path, seed: &Seed) -> Result<Option<SeedFs>, DatasourceError> {
    match seed {
        Seed::Path(path) => {
            let meta = fs::metadata(path).map_err(|source| {
                if source.kind() == std::io::ErrorKind::NotFound {
                    DatasourceError::NotFound(path.clone())
                } else {
                    DatasourceError::Read {
                        path: path.clone(),
                        source,
                    }
                }
            })?;
            if meta.is_dir() {
                return Ok(Some(SeedFs::Dir(path.clone())));
            }
            let image = Image::open(path).map_err(|e| DatasourceError::Image {
                path: path.clone(),
                message: chain(&e),
            })?;
            Ok(Some(SeedFs::Image {
                image,
                path: path.clone(),
            }))
        }
        Seed::Label(label) => Ok(find_label(root, label)),
    }
}

fn find_label(root: &Path, label: &str) -> Option<SeedFs> {
    let mut names: Vec<String> = fs::read_dir(root.join("sys/class/block"))
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let path = root.join("dev").join(&name);
        // Most block devices hold no ISO 9660 or FAT filesystem, or are empty drives.
        let image = match Image::open(&path) {
            Ok(i) => i,
            Err(e) => {
                log::debug!("{}: {e}", path.display());
                continue;
            }
        };
        if image.label().trim().eq_ignore_ascii_case(label) {
            log::info!(
                "{}: {} filesystem labelled {:?}",
                path.display(),
                image.fs_type(),
                image.label()
            );
            return Some(SeedFs::Image { image, path });
        }
    }
    None
}

/// An error with its causes ([`crate::fsimage::FsImageError::Io`] keeps the OS error as its
/// source).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
