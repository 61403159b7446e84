//! Unpacking one layer blob (gzip, zstd or plain tar) into a directory in overlayfs form,
//! while hashing both the blob (its digest) and the uncompressed tar (its diff id).
//!
//! The layer comes from an archive or a registry and is hostile until its digests are checked,
//! and those are known only at the end of the stream, so every entry is written defensively:
//! names are relative and never contain `..`; no entry is created through a symlink (each
//! parent component must be a real directory); hard links point inside the layer; the final
//! component is never followed (existing entries are removed first, files are created with
//! `O_EXCL`). Symlinks themselves may point anywhere: they are only data in a lower dir.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use flate2::bufread::MultiGzDecoder;
use nix::fcntl::AtFlags;
use nix::sys::stat::{makedev, mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, Gid, Uid};
use sha2::{Digest, Sha256};

use super::store::{io_err, ImageError};

const WHITEOUT_PREFIX: &str = ".wh.";
const WHITEOUT_META_PREFIX: &str = ".wh..wh.";
const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";
const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// Overlayfs interprets its own xattrs in lower dirs (redirects, metacopy): a layer must not
/// be able to set them; only the opaque marker made from `.wh..wh..opq` is ours.
const OVERLAY_XATTR_PREFIX: &str = "trusted.overlay.";

/// What unpacking a layer blob found.
#[derive(Debug)]
pub(super) struct Unpacked {
    /// `sha256:<hex>` of the blob as read (compressed).
    pub blob_digest: String,
    /// `sha256:<hex>` of the uncompressed tar stream.
    pub diff_id: String,
    /// Bytes of regular file contents.
    pub size: u64,
}

/// A reader that hashes what passes through it.
pub(super) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Reads the rest of the stream, then returns `sha256:<hex>` and the byte count.
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((
            format!("sha256:{}", hex::encode(self.hasher.finalize())),
            self.count,
        ))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Compression {
    None,
    Gzip,
    Zstd,
    Bzip2,
    Xz,
}

impl Compression {
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else if head.starts_with(b"BZh") {
            Compression::Bzip2
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Compression::Xz
        } else {
            Compression::None
        }
    }
}

/// A zstd stream of one or more frames (skippable frames are skipped), as `zstd` and
/// `pzstd` write them; ruzstd's decoder reads one frame.
pub(super) struct ZstdFrames<R: BufRead> {
    source: Option<R>,
    frame: Option<ruzstd::decoding::StreamingDecoder<R, ruzstd::decoding::FrameDecoder>>,
}

impl<R: BufRead> ZstdFrames<R> {
    pub fn new(source: R) -> Self {
        ZstdFrames {
            source: Some(source),
            frame: None,
        }
    }
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(f) = &mut self.frame {
                let n = f.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                self.source = self.frame.take().map(|f| f.into_inner());
            }
            let Some(src) = &mut self.source else {
                return Ok(0);
            };
            let head = src.fill_buf()?;
            if head.is_empty() {
                return Ok(0);
            }
            if head.len() >= 4 && head[1..4] == [0x2a, 0x4d, 0x18] && head[0] & 0xf0 == 0x50 {
                let mut hdr = [0u8; 8];
                src.read_exact(&mut hdr)?;
                let len = u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
                let skipped = io::copy(&mut src.take(u64::from(len)), &mut io::sink())?;
                if skipped != u64::from(len) {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "truncated zstd skippable frame",
                    ));
                }
                continue;
            }
            let src = self
                .source
                .take()
                .ok_or_else(|| io::Error::other("no source"))?;
            let f = ruzstd::decoding::StreamingDecoder::new(src)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            self.frame = Some(f);
        }
    }
}

/// Unpacks the layer blob read from `blob` into the empty directory `dest`. `what` names the
/// blob in errors. The caller checks the digests it returns.
pub(super) fn unpack_layer(
    blob: impl Read,
    dest: &Path,
    what: &str,
) -> Result<Unpacked, ImageError> {
    let corrupt = |e: io::Error| ImageError::InvalidArchive(format!("{what}: {e}"));
    let mut raw = BufReader::with_capacity(1 << 16, HashingReader::new(blob));
    let kind = Compression::detect(raw.fill_buf().map_err(corrupt)?);
    let (diff_id, size) = {
        let decoder: Box<dyn Read + '_> = match kind {
            Compression::None => Box::new(&mut raw),
            Compression::Gzip => Box::new(MultiGzDecoder::new(&mut raw)),
            Compression::Zstd => Box::new(ZstdFrames::new(&mut raw)),
            Compression::Bzip2 | Compression::Xz => {
                return Err(ImageError::InvalidArchive(format!(
                    "{what}: {kind:?} compressed layers are not supported"
                )))
            }
        };
        let mut tar = HashingReader::new(decoder);
        let size = unpack_tar(&mut tar, dest, what)?;
        // The diff id covers the whole stream, padding after the end-of-archive included.
        let (diff_id, _) = tar.finish().map_err(corrupt)?;
        (diff_id, size)
    };
    let (blob_digest, _) = raw.into_inner().finish().map_err(corrupt)?;
    Ok(Unpacked {
        blob_digest,
        diff_id,
        size,
    })
}

/// Entry names as components relative to the layer root; `..` and absolute names are refused.
fn components<'a>(raw: &'a [u8], entry: &str) -> Result<Vec<&'a OsStr>, ImageError> {
    if raw.first() == Some(&b'/') {
        return Err(ImageError::UnsafePath {
            entry: entry.to_string(),
            reason: "absolute path".to_string(),
        });
    }
    let mut out = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                return Err(ImageError::UnsafePath {
                    entry: entry.to_string(),
                    reason: "path contains a `..` component".to_string(),
                })
            }
            c => out.push(OsStr::from_bytes(c)),
        }
    }
    Ok(out)
}

/// Walks `comps` below `root`, each a real directory (created 0755 if `create` and missing).
/// A symlink anywhere on the way is refused: writing through it could land outside the layer.
fn walk_dirs(
    root: &Path,
    comps: &[&OsStr],
    entry: &str,
    what: &str,
    create: bool,
) -> Result<PathBuf, ImageError> {
    let mut p = root.to_path_buf();
    for (i, c) in comps.iter().enumerate() {
        p.push(c);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(ImageError::UnsafePath {
                    entry: entry.to_string(),
                    reason: format!("parent {} is a symlink", rel(&comps[..=i])),
                })
            }
            Ok(_) => {
                return Err(ImageError::InvalidArchive(format!(
                    "{what}: {entry}: parent {} is not a directory",
                    rel(&comps[..=i])
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                fs::DirBuilder::new()
                    .mode(0o755)
                    .create(&p)
                    .map_err(io_err(&p))?;
                fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).map_err(io_err(&p))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ImageError::InvalidArchive(format!(
                    "{what}: {entry}: {} does not exist",
                    rel(&comps[..=i])
                )))
            }
            Err(e) => return Err(io_err(&p)(e)),
        }
    }
    Ok(p)
}

fn rel(comps: &[&OsStr]) -> String {
    let v: Vec<_> = comps.iter().map(|c| c.to_string_lossy()).collect();
    v.join("/")
}

/// Removes whatever is at `path` (never following a symlink), except a directory when
/// `keep_dir`. Returns whether a directory was kept.
fn clear(path: &Path, keep_dir: bool) -> Result<bool, ImageError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_dir() => {
            if keep_dir {
                return Ok(true);
            }
            fs::remove_dir_all(path).map_err(io_err(path))?;
        }
        Ok(_) => fs::remove_file(path).map_err(io_err(path))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(path)(e)),
    }
    Ok(false)
}

/// Ownership, mode, times and xattrs of one entry.
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: TimeSpec,
    xattrs: Vec<(OsString, Vec<u8>)>,
}

fn parse_pax_time(v: &str) -> Option<TimeSpec> {
    let (s, frac) = v.split_once('.').unwrap_or((v, ""));
    let secs: i64 = s.parse().ok()?;
    let mut nanos: i64 = 0;
    for (i, c) in frac.chars().take(9).enumerate() {
        nanos += i64::from(c.to_digit(10)?) * 10i64.pow(8 - i as u32);
    }
    if secs < 0 && nanos > 0 {
        return Some(TimeSpec::new(secs - 1, 1_000_000_000 - nanos));
    }
    Some(TimeSpec::new(secs, nanos))
}

fn entry_meta<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    name: &str,
    what: &str,
) -> Result<Meta, ImageError> {
    let bad = |e: io::Error| ImageError::InvalidArchive(format!("{what}: {name}: {e}"));
    let h = entry.header();
    // An empty numeric field reads as 0, as Go's archive/tar (which wrote most layers) has it.
    let num = |field: &[u8], v: io::Result<u64>| match v {
        Ok(v) => Ok(v),
        Err(_) if field.iter().all(|b| *b == 0 || *b == b' ') => Ok(0),
        Err(e) => Err(bad(e)),
    };
    let old = h.as_old();
    let mut uid = num(&old.uid, h.uid())?;
    let mut gid = num(&old.gid, h.gid())?;
    let mode = num(&old.mode, h.mode().map(u64::from))? as u32 & 0o7777;
    let mut mtime = TimeSpec::new(num(&old.mtime, h.mtime())? as i64, 0);
    let mut xattrs = Vec::new();
    if let Some(exts) = entry.pax_extensions().map_err(bad)? {
        for ext in exts {
            let ext = ext.map_err(bad)?;
            let Ok(key) = ext.key() else { continue };
            let value = ext.value_bytes();
            let text = std::str::from_utf8(value).unwrap_or("");
            match key {
                "uid" => uid = text.parse().unwrap_or(uid),
                "gid" => gid = text.parse().unwrap_or(gid),
                "mtime" => mtime = parse_pax_time(text).unwrap_or(mtime),
                k => {
                    if let Some(x) = k.strip_prefix("SCHILY.xattr.") {
                        if !x.starts_with(OVERLAY_XATTR_PREFIX) {
                            xattrs.push((OsString::from(x), value.to_vec()));
                        }
                    }
                }
            }
        }
    }
    let id = |v: u64| {
        u32::try_from(v)
            .map_err(|_| ImageError::InvalidArchive(format!("{what}: {name}: id {v} out of range")))
    };
    Ok(Meta {
        uid: id(uid)?,
        gid: id(gid)?,
        mode,
        mtime,
        xattrs,
    })
}

fn apply_meta(path: &Path, meta: &Meta, symlink: bool) -> Result<(), ImageError> {
    let errno = |e: nix::errno::Errno| io_err(path)(io::Error::from(e));
    fchownat(
        None,
        path,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(errno)?;
    // After chown, which clears set-id bits.
    if !symlink {
        fs::set_permissions(path, fs::Permissions::from_mode(meta.mode)).map_err(io_err(path))?;
    }
    for (k, v) in &meta.xattrs {
        if let Err(e) = xattr::set(path, k, v) {
            log::warn!(
                "cannot set xattr {} on {}: {e}",
                k.to_string_lossy(),
                path.display()
            );
        }
    }
    Ok(())
}

fn set_mtime(path: &Path, t: &TimeSpec) -> Result<(), ImageError> {
    utimensat(None, path, t, t, UtimensatFlags::NoFollowSymlink)
        .map_err(|e| io_err(path)(io::Error::from(e)))
}

fn copy_contents<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    path: &Path,
    name: &str,
    what: &str,
) -> Result<u64, ImageError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    let expected = entry.size();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let r = entry.read(&mut buf).map_err(|e| {
            ImageError::InvalidArchive(format!("{what}: {name}: reading contents: {e}"))
        })?;
        if r == 0 {
            break;
        }
        f.write_all(&buf[..r]).map_err(io_err(path))?;
        n += r as u64;
    }
    if n != expected {
        return Err(ImageError::InvalidArchive(format!(
            "{what}: truncated tar: {name} has {n} of {expected} bytes"
        )));
    }
    Ok(n)
}

/// Unpacks a tar stream into `dest`; returns the bytes of regular file contents.
pub(super) fn unpack_tar<R: Read>(reader: R, dest: &Path, what: &str) -> Result<u64, ImageError> {
    let mut archive = tar::Archive::new(reader);
    let mut size = 0u64;
    // Directory times are set last: creating entries inside a directory changes its mtime.
    let mut dir_times: HashMap<PathBuf, TimeSpec> = HashMap::new();
    let mut dir_order: Vec<PathBuf> = Vec::new();
    let entries = archive
        .entries()
        .map_err(|e| ImageError::InvalidArchive(format!("{what}: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| {
            ImageError::InvalidArchive(format!("{what}: truncated or corrupt tar: {e}"))
        })?;
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
        ) {
            continue;
        }
        let raw_name = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw_name).into_owned();
        let comps = components(&raw_name, &name)?;
        let meta = entry_meta(&mut entry, &name, what)?;

        let Some((last, parents)) = comps.split_last() else {
            // The layer root itself.
            if !kind.is_dir() {
                return Err(ImageError::InvalidArchive(format!(
                    "{what}: {name}: the layer root must be a directory"
                )));
            }
            apply_meta(dest, &meta, false)?;
            if !dir_times.contains_key(dest) {
                dir_order.push(dest.to_path_buf());
            }
            dir_times.insert(dest.to_path_buf(), meta.mtime);
            continue;
        };
        let base = last.to_string_lossy();
        if let Some(hidden) = base.strip_prefix(WHITEOUT_PREFIX) {
            let parent = walk_dirs(dest, parents, &name, what, true)?;
            if base == WHITEOUT_OPAQUE {
                xattr::set(&parent, OVERLAY_OPAQUE_XATTR, b"y").map_err(io_err(&parent))?;
            } else if base.starts_with(WHITEOUT_META_PREFIX) {
                // aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not part of the filesystem.
            } else if hidden.is_empty() {
                return Err(ImageError::InvalidArchive(format!(
                    "{what}: {name}: empty whiteout"
                )));
            } else if hidden == "." || hidden == ".." {
                return Err(ImageError::UnsafePath {
                    entry: name,
                    reason: "whiteout of `.` or `..`".to_string(),
                });
            } else {
                let path =
                    parent.join(OsStr::from_bytes(&last.as_bytes()[WHITEOUT_PREFIX.len()..]));
                clear(&path, false)?;
                mknod(&path, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
                    .map_err(|e| io_err(&path)(io::Error::from(e)))?;
                let wh = Meta {
                    mode: 0,
                    xattrs: Vec::new(),
                    ..meta
                };
                apply_meta(&path, &wh, false)?;
                set_mtime(&path, &wh.mtime)?;
            }
            continue;
        }
        let parent = walk_dirs(dest, parents, &name, what, true)?;
        let path = parent.join(last);
        match kind {
            tar::EntryType::Directory => {
                if !clear(&path, true)? {
                    fs::DirBuilder::new()
                        .mode(0o700)
                        .create(&path)
                        .map_err(io_err(&path))?;
                }
                apply_meta(&path, &meta, false)?;
                if !dir_times.contains_key(&path) {
                    dir_order.push(path.clone());
                }
                dir_times.insert(path, meta.mtime);
                continue;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                clear(&path, false)?;
                size += copy_contents(&mut entry, &path, &name, what)?;
                apply_meta(&path, &meta, false)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| {
                        ImageError::InvalidArchive(format!(
                            "{what}: {name}: symlink without target"
                        ))
                    })?
                    .into_owned();
                clear(&path, false)?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path)
                    .map_err(io_err(&path))?;
                apply_meta(&path, &meta, true)?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| {
                        ImageError::InvalidArchive(format!(
                            "{what}: {name}: hard link without target"
                        ))
                    })?
                    .into_owned();
                let tname = String::from_utf8_lossy(&target).into_owned();
                let tcomps = components(&target, &name).map_err(|_| ImageError::UnsafePath {
                    entry: name.clone(),
                    reason: format!("hard link target {tname} is outside the layer"),
                })?;
                let Some((tlast, tparents)) = tcomps.split_last() else {
                    return Err(ImageError::UnsafePath {
                        entry: name.clone(),
                        reason: "hard link to the layer root".to_string(),
                    });
                };
                let tparent =
                    walk_dirs(dest, tparents, &name, what, false).map_err(|e| match e {
                        ImageError::UnsafePath { entry, .. } => ImageError::UnsafePath {
                            entry,
                            reason: format!("hard link target {tname} passes through a symlink"),
                        },
                        e => e,
                    })?;
                let tpath = tparent.join(tlast);
                match fs::symlink_metadata(&tpath) {
                    Ok(m) if !m.file_type().is_dir() => {}
                    _ => {
                        return Err(ImageError::InvalidArchive(format!(
                            "{what}: {name}: hard link target {tname} is not a file of this layer"
                        )))
                    }
                }
                if tpath != path {
                    clear(&path, false)?;
                    fs::hard_link(&tpath, &path).map_err(io_err(&path))?;
                }
                // A hard link shares the target's inode, metadata included.
                continue;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let bad = |e: io::Error| ImageError::InvalidArchive(format!("{what}: {name}: {e}"));
                let major = entry.header().device_major().map_err(bad)?.unwrap_or(0);
                let minor = entry.header().device_minor().map_err(bad)?.unwrap_or(0);
                let sflag = match kind {
                    tar::EntryType::Char => SFlag::S_IFCHR,
                    tar::EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                clear(&path, false)?;
                mknod(
                    &path,
                    sflag,
                    Mode::from_bits_truncate(meta.mode),
                    makedev(u64::from(major), u64::from(minor)),
                )
                .map_err(|e| io_err(&path)(io::Error::from(e)))?;
                apply_meta(&path, &meta, false)?;
            }
            other => {
                log::warn!("{what}: skipping {name}: unsupported tar entry type {other:?}");
                continue;
            }
        }
        set_mtime(&path, &meta.mtime)?;
    }
    for d in &dir_order {
        if let Some(t) = dir_times.get(d) {
            set_mtime(d, t)?;
        }
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for i in 0..20 {
            let data = vec![i as u8; 3000 + i];
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, format!("f{i}"), &data[..]).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn digest(b: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(b)))
    }

    #[test]
    fn zstd_streams_of_several_frames_and_skippable_frames() {
        let l = layer();
        let (a, b) = l.split_at(10_000);
        let level = ruzstd::encoding::CompressionLevel::Fastest;
        let mut blob = ruzstd::encoding::compress_to_vec(a, level);
        // A skippable frame (magic 0x184D2A53, 3 bytes of payload).
        blob.extend_from_slice(&[0x53, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 9, 9, 9]);
        blob.extend_from_slice(&ruzstd::encoding::compress_to_vec(b, level));
        let mut out = Vec::new();
        ZstdFrames::new(&blob[..]).read_to_end(&mut out).unwrap();
        assert_eq!(out, l);
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED: unpacking needs root (chown)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let u = unpack_layer(&blob[..], dir.path(), "test").unwrap();
        assert_eq!(u.diff_id, digest(&l));
        assert_eq!(u.blob_digest, digest(&blob));
        assert_eq!(u.size, (0..20).map(|i| 3000 + i as u64).sum::<u64>());
        assert_eq!(fs::read(dir.path().join("f3")).unwrap(), vec![3u8; 3003]);
    }

    #[test]
    fn compression_by_magic() {
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(b"BZh9"), Compression::Bzip2);
        assert_eq!(Compression::detect(b"\xfd7zXZ\0"), Compression::Xz);
        assert_eq!(Compression::detect(b"bin/"), Compression::None);
        let dir = tempfile::tempdir().unwrap();
        let e = unpack_layer(&b"BZh91AY&SY"[..], dir.path(), "l").unwrap_err();
        assert!(e.to_string().contains("not supported"), "{e}");
    }

    #[test]
    fn pax_times() {
        let t = parse_pax_time("1700000000.5").unwrap();
        assert_eq!((t.tv_sec(), t.tv_nsec()), (1_700_000_000, 500_000_000));
        let t = parse_pax_time("12").unwrap();
        assert_eq!((t.tv_sec(), t.tv_nsec()), (12, 0));
        assert!(parse_pax_time("x").is_none());
    }
}
