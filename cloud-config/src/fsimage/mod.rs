//! Reading files from ISO 9660 and FAT file system images in userspace.
//!
//! Datasource media (NoCloud `cidata` seeds, OpenStack `config-2` drives) are ISO 9660 or
//! FAT. The build machine's kernel has neither driver, and untrusted media should not be
//! mounted anyway, so they are parsed here from a block device or an image file.
//!
//! Everything read from an image is untrusted: offsets and lengths are checked against the
//! image size before anything is allocated or read, FAT chains are checked for loops, and
//! files and directories are capped at [`MAX_FILE_SIZE`]. Malformed input is an error
//! ([`FsImageError::Corrupt`]), never a panic.
//!
//! Supported: ISO 9660 with Rock Ridge (`NM`, SUSP `CE`/`SP`) and Joliet names, single-extent
//! files; FAT12/16/32 with VFAT long names. Not supported: multi-extent ISO files (refused),
//! Rock Ridge directory relocation (`CL`/`RE`: the relocated directory shows under
//! `rr_moved`), exFAT, partition tables (give the partition, not the disk).

mod fat;
mod iso9660;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::{self, SeekFrom};
use std::path::Path;

use thiserror::Error;

/// A file (or directory) larger than this is not read: a hostile image must not exhaust
/// memory. Seed files are a few KiB; userdata is capped at the same size elsewhere.
pub const MAX_FILE_SIZE: u64 = 16 << 20;

/// Anything an image can be read from.
pub trait ReadSeek: io::Read + io::Seek + Send {}
impl<T: io::Read + io::Seek + Send> ReadSeek for T {}

/// Why an image or a file in it could not be read.
#[derive(Debug, Error)]
pub enum FsImageError {
    /// Opening or reading the device or file failed.
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    /// Neither ISO 9660 nor FAT; `found` says what the image looks like instead.
    #[error("not an ISO 9660 or FAT file system: {found}")]
    NotRecognized { found: String },
    /// A structure is inconsistent, truncated, loops or is not supported (multi-extent).
    #[error("corrupt file system image: {what}")]
    Corrupt { what: String },
    /// A file above [`MAX_FILE_SIZE`].
    #[error("{path}: {size} bytes, more than the limit of {limit}")]
    TooLarge { path: String, size: u64, limit: u64 },
}

pub(crate) fn corrupt(what: impl Into<String>) -> FsImageError {
    FsImageError::Corrupt { what: what.into() }
}

/// The image's bytes, every read checked against its size.
pub(crate) struct Source {
    r: Box<dyn ReadSeek>,
    size: u64,
    name: String,
}

impl Source {
    fn new(mut r: Box<dyn ReadSeek>, name: String) -> Result<Source, FsImageError> {
        let size = r
            .seek(SeekFrom::End(0))
            .map_err(|source| FsImageError::Io {
                what: format!("finding the size of {name}"),
                source,
            })?;
        Ok(Source { r, size, name })
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Reads `len` bytes at `offset`; a range past the end of the image is corruption
    /// (a truncated image or a bogus pointer), not an I/O error.
    pub(crate) fn read_at(&mut self, offset: u64, len: u64) -> Result<Vec<u8>, FsImageError> {
        let end = offset.checked_add(len);
        if end.is_none_or(|end| end > self.size) {
            return Err(corrupt(format!(
                "{len} bytes at offset {offset} lie past the end of the image ({} bytes)",
                self.size
            )));
        }
        let io_err = |source| FsImageError::Io {
            what: format!("reading {len} bytes at offset {offset} of {}", self.name),
            source,
        };
        // The range is inside the image, so the length fits the image's (real) size.
        let mut buf = vec![0; usize::try_from(len).map_err(|_| corrupt("length overflows"))?];
        self.r.seek(SeekFrom::Start(offset)).map_err(io_err)?;
        self.r.read_exact(&mut buf).map_err(io_err)?;
        Ok(buf)
    }
}

/// One name in a directory, with what a file system needs to find its contents.
pub(crate) struct Entry<N> {
    pub name: String,
    pub is_dir: bool,
    pub node: N,
}

/// What [`Image`] needs from a file system to walk paths.
pub(crate) trait FileSystem {
    type Node: Clone;
    fn root(&self) -> Self::Node;
    fn read_dir(
        &mut self,
        src: &mut Source,
        dir: &Self::Node,
    ) -> Result<Vec<Entry<Self::Node>>, FsImageError>;
    fn read_file(
        &mut self,
        src: &mut Source,
        file: &Self::Node,
        path: &str,
    ) -> Result<Vec<u8>, FsImageError>;
    /// A last-resort match after exact and case-insensitive ones fail.
    fn loose_match(&self, _name: &str, _query: &str) -> bool {
        false
    }
}

enum Kind {
    Iso(iso9660::Iso),
    Fat(fat::Fat),
}

/// A read-only file system image: ISO 9660 (with Rock Ridge and Joliet names) or
/// FAT12/16/32 (with long names).
pub struct Image {
    src: Source,
    kind: Kind,
    label: String,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.debug_struct("Image")
            .field("source", &self.src.name)
            .field("fs_type", &self.fs_type())
            .field("label", &self.label)
            .finish()
    }
}

impl Image {
    /// Opens a block device or image file and recognizes its file system.
    pub fn open(path: &Path) -> Result<Image, FsImageError> {
        let file = File::open(path).map_err(|source| FsImageError::Io {
            what: format!("opening {}", path.display()),
            source,
        })?;
        Image::with_source(Source::new(Box::new(file), path.display().to_string())?)
    }

    /// From any Read+Seek (tests, in-memory images).
    pub fn from_reader(r: Box<dyn ReadSeek>) -> Result<Image, FsImageError> {
        Image::with_source(Source::new(r, "image".to_owned())?)
    }

    fn with_source(mut src: Source) -> Result<Image, FsImageError> {
        // ISO first: a hybrid ISO carries an MBR (never a FAT boot sector) in sector 0.
        if let Some(iso) = iso9660::Iso::probe(&mut src)? {
            let label = iso.label.clone();
            return Ok(Image {
                src,
                kind: Kind::Iso(iso),
                label,
            });
        }
        if let Some(fat) = fat::Fat::probe(&mut src)? {
            let label = fat.label.clone();
            return Ok(Image {
                src,
                kind: Kind::Fat(fat),
                label,
            });
        }
        Err(FsImageError::NotRecognized {
            found: describe(&mut src),
        })
    }

    /// "iso9660" or "vfat".
    pub fn fs_type(&self) -> &'static str {
        match self.kind {
            Kind::Iso(_) => "iso9660",
            Kind::Fat(_) => "vfat",
        }
    }

    /// The volume label as blkid shows it: the ISO volume identifier, or the FAT root
    /// directory's volume-label entry; trailing spaces trimmed. Without a root entry, the
    /// FAT boot sector's label (unless `NO NAME`) is used, where blkid reports it only as
    /// `LABEL_FATBOOT`: a seed labelled only there is still found.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Reads a whole regular file by its path (`openstack/latest/meta_data.json`,
    /// `/user-data`). Each component matches exactly, else ASCII case-insensitively, else
    /// with ISO `;1` versions and a trailing dot stripped. `Ok(None)` when the file or a
    /// directory on the way is missing, or the path names a directory.
    pub fn read(&mut self, path: &str) -> Result<Option<Vec<u8>>, FsImageError> {
        match &mut self.kind {
            Kind::Iso(fs) => read_path(fs, &mut self.src, path),
            Kind::Fat(fs) => read_path(fs, &mut self.src, path),
        }
    }

    /// Names in a directory (`""` or `"/"` is the root), in the names [`Image::read`]
    /// accepts. `Ok(None)` when the directory is missing or is a file.
    pub fn list(&mut self, dir: &str) -> Result<Option<Vec<String>>, FsImageError> {
        match &mut self.kind {
            Kind::Iso(fs) => list_path(fs, &mut self.src, dir),
            Kind::Fat(fs) => list_path(fs, &mut self.src, dir),
        }
    }
}

/// Directory nesting deeper than this is refused (ISO 9660 allows 8 levels).
const MAX_DEPTH: usize = 64;

/// Finds the node at `path`: `Some((node, is_dir))`.
fn walk<F: FileSystem>(
    fs: &mut F,
    src: &mut Source,
    path: &str,
) -> Result<Option<(F::Node, bool)>, FsImageError> {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.len() > MAX_DEPTH {
        return Ok(None);
    }
    let mut node = fs.root();
    let mut is_dir = true;
    for part in parts {
        if !is_dir {
            return Ok(None);
        }
        let entries = fs.read_dir(src, &node)?;
        let Some(entry) = find(fs, &entries, part) else {
            return Ok(None);
        };
        node = entry.node.clone();
        is_dir = entry.is_dir;
    }
    Ok(Some((node, is_dir)))
}

fn find<'a, F: FileSystem>(
    fs: &F,
    entries: &'a [Entry<F::Node>],
    query: &str,
) -> Option<&'a Entry<F::Node>> {
    let normal = strip_version(query);
    entries
        .iter()
        .find(|e| e.name == query)
        .or_else(|| entries.iter().find(|e| e.name.eq_ignore_ascii_case(query)))
        .or_else(|| {
            entries
                .iter()
                .find(|e| strip_version(&e.name).eq_ignore_ascii_case(normal))
        })
        .or_else(|| entries.iter().find(|e| fs.loose_match(&e.name, query)))
}

/// `USER_DAT.;1` → `USER_DAT`: ISO 9660 file version and the dot of an empty extension.
pub(crate) fn strip_version(name: &str) -> &str {
    let name = match name.rsplit_once(';') {
        Some((base, v)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => name,
    };
    match name.strip_suffix('.') {
        Some(base) if !base.is_empty() => base,
        _ => name,
    }
}

fn read_path<F: FileSystem>(
    fs: &mut F,
    src: &mut Source,
    path: &str,
) -> Result<Option<Vec<u8>>, FsImageError> {
    match walk(fs, src, path)? {
        Some((node, false)) => fs.read_file(src, &node, path).map(Some),
        _ => Ok(None),
    }
}

fn list_path<F: FileSystem>(
    fs: &mut F,
    src: &mut Source,
    path: &str,
) -> Result<Option<Vec<String>>, FsImageError> {
    match walk(fs, src, path)? {
        Some((node, true)) => {
            let entries = fs.read_dir(src, &node)?;
            Ok(Some(entries.into_iter().map(|e| e.name).collect()))
        }
        _ => Ok(None),
    }
}

/// What an unrecognized image looks like, for the error message.
fn describe(src: &mut Source) -> String {
    let size = src.size();
    if size < 512 {
        return format!("{size} bytes, too small for any file system");
    }
    let peek = |src: &mut Source, off: u64, len: u64| src.read_at(off, len).ok();
    if peek(src, 1080, 2).is_some_and(|m| m == [0x53, 0xEF]) {
        return "an ext2/3/4 file system".to_owned();
    }
    if peek(src, 512, 8).is_some_and(|m| m == b"EFI PART") {
        return "a GPT partition table (give a partition, not the disk)".to_owned();
    }
    if peek(src, 3, 8).is_some_and(|m| m == b"EXFAT   ") {
        return "an exFAT file system".to_owned();
    }
    if peek(src, 510, 2).is_some_and(|m| m == [0x55, 0xAA]) {
        return "an MBR partition table or boot sector (give a partition, not the disk)".to_owned();
    }
    if size < 17 * 2048 {
        return format!("{size} bytes, no FAT boot sector, too small for ISO 9660");
    }
    "no ISO 9660 descriptor at sector 16 and no FAT boot sector".to_owned()
}

pub(crate) fn le16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(s) => u16::from_le_bytes([s[0], s[1]]),
        None => 0,
    }
}

pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(s) => u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}
