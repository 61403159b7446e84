//! The "newc" cpio format (magic `070701`), the one the kernel unpacks an initramfs from
//! (Documentation/driver-api/early-userspace/buffer-format.rst): a 110-byte header of
//! ASCII hex fields, the NUL-terminated name, padding to 4 bytes, the data, padding to
//! 4 bytes; the archive ends with an entry named `TRAILER!!!`.
//!
//! Written reproducibly: entries in the order given (callers sort them), one mtime,
//! inode numbers counted from 1, every regular file with one link (the kernel treats a
//! regular file with nlink ≥ 2 as a member of a hard link set, keyed by its inode).

use std::io::{self, Write};

const MAGIC: &[u8; 6] = b"070701";
const HEADER_LEN: usize = 110;
const TRAILER: &str = "TRAILER!!!";

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFMT: u32 = 0o170_000;

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
    /// A character device (major, minor).
    CharDev(u32, u32),
}

/// One member of the archive. `path` has no leading `/` (`usr/bin/ros`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub kind: Kind,
    /// Permission bits with setuid/setgid/sticky (no file type).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Set by the writer; what the reader found.
    pub ino: u32,
    pub mtime: u32,
    pub nlink: u32,
}

impl Entry {
    pub fn new(path: &str, kind: Kind, mode: u32, uid: u32, gid: u32) -> Entry {
        Entry {
            path: path.to_string(),
            kind,
            mode,
            uid,
            gid,
            ino: 0,
            mtime: 0,
            nlink: 0,
        }
    }

    /// The bytes of a regular file or a symlink's target; empty for the others.
    pub fn data(&self) -> &[u8] {
        match &self.kind {
            Kind::File(d) => d,
            Kind::Symlink(t) => t.as_bytes(),
            Kind::Dir | Kind::CharDev(..) => &[],
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CpioError {
    #[error("cpio: {0}")]
    Io(#[from] io::Error),
    #[error("cpio: {what} at byte {offset}")]
    Malformed { what: String, offset: usize },
}

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

fn header<W: Write>(w: &mut W, fields: [u32; 13], name: &str) -> io::Result<u64> {
    let mut h = Vec::with_capacity(HEADER_LEN + name.len() + 4);
    h.extend_from_slice(MAGIC);
    for f in fields {
        h.extend_from_slice(format!("{f:08X}").as_bytes());
    }
    h.extend_from_slice(name.as_bytes());
    h.push(0);
    h.resize(h.len() + pad4(h.len()), 0);
    w.write_all(&h)?;
    Ok(h.len() as u64)
}

/// Writes `entries` in the order given, then the trailer, every mtime `mtime`. Returns the
/// writer and the number of bytes written.
pub fn write<W: Write>(mut w: W, entries: &[Entry], mtime: u32) -> io::Result<(W, u64)> {
    let mut total = 0u64;
    for (i, e) in entries.iter().enumerate() {
        let (ftype, nlink, rdev) = match e.kind {
            Kind::Dir => (S_IFDIR, 2, (0, 0)),
            Kind::File(_) => (S_IFREG, 1, (0, 0)),
            Kind::Symlink(_) => (S_IFLNK, 1, (0, 0)),
            Kind::CharDev(major, minor) => (S_IFCHR, 1, (major, minor)),
        };
        let data = e.data();
        let size = u32::try_from(data.len()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is too big", e.path),
            )
        })?;
        let name_len = e.path.len() as u32 + 1;
        let fields = [
            i as u32 + 1,
            ftype | (e.mode & 0o7777),
            e.uid,
            e.gid,
            nlink,
            mtime,
            size,
            0,
            0,
            rdev.0,
            rdev.1,
            name_len,
            0,
        ];
        total += header(&mut w, fields, &e.path)?;
        w.write_all(data)?;
        let pad = pad4(data.len());
        w.write_all(&[0u8; 3][..pad])?;
        total += (data.len() + pad) as u64;
    }
    let fields = [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, TRAILER.len() as u32 + 1, 0];
    total += header(&mut w, fields, TRAILER)?;
    Ok((w, total))
}

/// Reads a newc archive back (up to its trailer), checking the magic, the padding and that
/// nothing but the trailer's zero padding follows it.
pub fn parse(buf: &[u8]) -> Result<Vec<Entry>, CpioError> {
    let bad = |what: &str, offset: usize| CpioError::Malformed {
        what: what.to_string(),
        offset,
    };
    let mut out = Vec::new();
    let mut at = 0usize;
    loop {
        let h = buf
            .get(at..at + HEADER_LEN)
            .ok_or_else(|| bad("truncated header", at))?;
        if &h[..6] != MAGIC {
            return Err(bad("bad magic", at));
        }
        let mut f = [0u32; 13];
        for (i, v) in f.iter_mut().enumerate() {
            let s = std::str::from_utf8(&h[6 + i * 8..14 + i * 8])
                .map_err(|_| bad("non-ASCII header field", at))?;
            *v = u32::from_str_radix(s, 16).map_err(|_| bad("bad hex header field", at))?;
        }
        let name_len = f[11] as usize;
        let name_at = at + HEADER_LEN;
        let name = buf
            .get(name_at..name_at + name_len)
            .ok_or_else(|| bad("truncated name", name_at))?;
        if name.last() != Some(&0) {
            return Err(bad("name without NUL", name_at));
        }
        let name = String::from_utf8(name[..name_len - 1].to_vec())
            .map_err(|_| bad("non-UTF-8 name", name_at))?;
        let mut data_at = name_at + name_len;
        let pad = pad4(data_at);
        if buf
            .get(data_at..data_at + pad)
            .is_none_or(|p| p.iter().any(|b| *b != 0))
        {
            return Err(bad("bad name padding", data_at));
        }
        data_at += pad;
        if name == TRAILER {
            if buf[data_at.min(buf.len())..].iter().any(|b| *b != 0) {
                return Err(bad("data after the trailer", data_at));
            }
            return Ok(out);
        }
        let size = f[6] as usize;
        let data = buf
            .get(data_at..data_at + size)
            .ok_or_else(|| bad("truncated data", data_at))?;
        let end = data_at + size;
        let pad = pad4(end);
        if buf
            .get(end..end + pad)
            .is_none_or(|p| p.iter().any(|b| *b != 0))
        {
            return Err(bad("bad data padding", end));
        }
        let mode = f[1];
        let kind = match mode & S_IFMT {
            S_IFDIR => Kind::Dir,
            S_IFREG => Kind::File(data.to_vec()),
            S_IFLNK => Kind::Symlink(
                String::from_utf8(data.to_vec()).map_err(|_| bad("non-UTF-8 link", data_at))?,
            ),
            S_IFCHR => Kind::CharDev(f[9], f[10]),
            _ => return Err(bad("unsupported file type", at)),
        };
        out.push(Entry {
            path: name,
            kind,
            mode: mode & 0o7777,
            uid: f[2],
            gid: f[3],
            ino: f[0],
            mtime: f[5],
            nlink: f[4],
        });
        at = end + pad;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Entry> {
        vec![
            Entry::new("dev", Kind::Dir, 0o755, 0, 0),
            Entry::new("dev/console", Kind::CharDev(5, 1), 0o600, 0, 0),
            Entry::new("etc", Kind::Dir, 0o755, 0, 0),
            Entry::new(
                "etc/shadow",
                Kind::File(b"root:*:1::::::\n".to_vec()),
                0o640,
                0,
                42,
            ),
            Entry::new("init", Kind::Symlink("usr/bin/ros".into()), 0o777, 0, 0),
            Entry::new("x", Kind::File(Vec::new()), 0o644, 101, 102),
            Entry::new("xyz", Kind::File(vec![7; 5]), 0o4755, 0, 0),
        ]
    }

    #[test]
    fn writes_what_it_reads_back() {
        let entries = sample();
        let (buf, n) = write(Vec::new(), &entries, 1_704_067_200).unwrap();
        assert_eq!(n as usize, buf.len());
        assert_eq!(buf.len() % 4, 0);
        assert_eq!(&buf[..6], b"070701");
        let back = parse(&buf).unwrap();
        assert_eq!(back.len(), entries.len());
        for (i, (a, b)) in entries.iter().zip(&back).enumerate() {
            assert_eq!(a.path, b.path);
            assert_eq!(a.kind, b.kind);
            assert_eq!(a.mode, b.mode, "{}", a.path);
            assert_eq!((a.uid, a.gid), (b.uid, b.gid));
            assert_eq!(b.ino, i as u32 + 1);
            assert_eq!(b.mtime, 1_704_067_200);
            let want_links = if a.kind == Kind::Dir { 2 } else { 1 };
            assert_eq!(b.nlink, want_links);
        }
        // Same input, same bytes.
        assert_eq!(write(Vec::new(), &entries, 1_704_067_200).unwrap().0, buf);
    }

    #[test]
    fn header_fields_padding_and_trailer_are_as_the_kernel_reads_them() {
        let e = [Entry::new("ab", Kind::File(b"hello".to_vec()), 0o644, 0, 0)];
        let (buf, _) = write(Vec::new(), &e, 0).unwrap();
        let h = std::str::from_utf8(&buf[..HEADER_LEN]).unwrap();
        assert_eq!(&h[6..14], "00000001"); // ino
        assert_eq!(&h[14..22], "000081A4"); // S_IFREG | 0644
        assert_eq!(&h[54..62], "00000005"); // filesize
        assert_eq!(&h[94..102], "00000003"); // namesize: "ab\0"
                                             // 110 + 3 = 113 → name padded to 116; data 5 → padded to 8.
        assert_eq!(&buf[110..116], b"ab\0\0\0\0");
        assert_eq!(&buf[116..124], b"hello\0\0\0");
        let trailer = std::str::from_utf8(&buf[124..124 + HEADER_LEN]).unwrap();
        assert!(trailer.starts_with("070701"));
        assert_eq!(
            &buf[124 + HEADER_LEN..124 + HEADER_LEN + 11],
            b"TRAILER!!!\0"
        );
        assert_eq!(buf.len(), 124 + 124);
    }

    #[test]
    fn refuses_damaged_archives() {
        let (buf, _) = write(Vec::new(), &sample(), 0).unwrap();
        let err = parse(&buf[..buf.len() - 20]).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
        let mut bad = buf.clone();
        bad[0] = b'1';
        assert!(parse(&bad).unwrap_err().to_string().contains("magic"));
        let mut extra = buf.clone();
        extra.extend_from_slice(b"junk");
        assert!(parse(&extra).unwrap_err().to_string().contains("after"));
    }
}
