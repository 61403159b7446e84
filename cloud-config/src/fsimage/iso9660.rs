//! ISO 9660 (ECMA-119) with Rock Ridge (IEEE P1282, over SUSP P1281) and Joliet names.

use super::MAX_FILE_SIZE;
use super::{corrupt, le16, le32, strip_version, Entry, FileSystem, FsImageError, Source};

/// Volume descriptors and directory records are laid out in 2048-byte logical sectors.
const SECTOR: u64 = 2048;
/// The volume descriptor set starts at sector 16; a real set has a handful of descriptors.
const FIRST_DESCRIPTOR: u64 = 16;
const MAX_DESCRIPTORS: u64 = 64;
/// SUSP continuation areas followed per record: real images use one at most.
const MAX_CONTINUATIONS: usize = 8;

const FLAG_DIRECTORY: u8 = 0x02;
const FLAG_ASSOCIATED: u8 = 0x04;
const FLAG_MULTI_EXTENT: u8 = 0x80;

/// Where names come from in the hierarchy that is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Names {
    /// d-characters, `NAME.EXT;1`: shown with the version and an empty extension's dot
    /// stripped.
    Plain,
    /// UCS-2 big-endian in the supplementary descriptor's own hierarchy.
    Joliet,
    /// `NM` entries in the primary hierarchy's System Use areas; `skip` is the `SP` skip
    /// length before each area's first entry.
    RockRidge { skip: usize },
}

#[derive(Clone, Debug)]
pub(crate) struct Node {
    /// Byte offset of the extent.
    start: u64,
    size: u64,
    multi_extent: bool,
}

pub(crate) struct Iso {
    root: Node,
    block_size: u64,
    names: Names,
    pub label: String,
}

impl Iso {
    /// `Ok(None)` when there is no ISO 9660 descriptor at sector 16.
    pub(crate) fn probe(src: &mut Source) -> Result<Option<Iso>, FsImageError> {
        if src.size() < (FIRST_DESCRIPTOR + 1) * SECTOR {
            return Ok(None);
        }
        let first = src.read_at(FIRST_DESCRIPTOR * SECTOR, SECTOR)?;
        if &first[1..6] != b"CD001" {
            return Ok(None);
        }
        let mut primary = None;
        let mut joliet = None;
        for n in 0..MAX_DESCRIPTORS {
            let sector = FIRST_DESCRIPTOR + n;
            let d = src.read_at(sector * SECTOR, SECTOR)?;
            if &d[1..6] != b"CD001" {
                return Err(corrupt(format!("volume descriptor {sector} lacks CD001")));
            }
            match d[0] {
                1 if primary.is_none() => primary = Some(d),
                // Escape sequences %/@, %/C, %/E: Joliet UCS-2 levels 1–3.
                2 if joliet.is_none()
                    && d[88] == b'%'
                    && d[89] == b'/'
                    && matches!(d[90], b'@' | b'C' | b'E') =>
                {
                    joliet = Some(d)
                }
                255 => break,
                _ => {}
            }
        }
        let Some(pvd) = primary else {
            return Err(corrupt("no primary volume descriptor"));
        };
        let block_size = u64::from(le16(&pvd, 128));
        if !matches!(block_size, 512 | 1024 | 2048) {
            return Err(corrupt(format!("logical block size {block_size}")));
        }
        let volume = u64::from(le32(&pvd, 80)) * block_size;
        if volume > src.size() {
            return Err(corrupt(format!(
                "truncated: the volume is {volume} bytes, the image {}",
                src.size()
            )));
        }
        let label = String::from_utf8_lossy(&pvd[40..72]).trim_end().to_owned();
        let root = root_node(&pvd, block_size)?;

        // Rock Ridge wins over Joliet, as in Linux: its names are unlimited in length and
        // exactly what the tools were given, Joliet's are cut at 64 characters.
        let dot = src.read_at(root.start, root.size.min(SECTOR))?;
        let mut iso = Iso {
            root,
            block_size,
            names: Names::Plain,
            label,
        };
        if let Some(skip) = sp_skip(&dot) {
            iso.names = Names::RockRidge { skip };
        } else if let Some(svd) = joliet {
            iso.root = root_node(&svd, block_size)?;
            iso.names = Names::Joliet;
        }
        Ok(Some(iso))
    }

    fn node(&self, rec: &[u8]) -> Result<Node, FsImageError> {
        let block = u64::from(le32(rec, 2)) + u64::from(rec[1]);
        Ok(Node {
            start: block * self.block_size,
            size: u64::from(le32(rec, 10)),
            multi_extent: rec[25] & FLAG_MULTI_EXTENT != 0,
        })
    }

    /// The Rock Ridge name in a record's System Use area, following `CE` continuations.
    fn rock_ridge_name(
        &self,
        src: &mut Source,
        su: &[u8],
        skip: usize,
    ) -> Result<Option<Vec<u8>>, FsImageError> {
        let mut area = su.get(skip..).unwrap_or_default().to_vec();
        let mut name = Vec::new();
        let mut found = false;
        let mut complete = false;
        for _ in 0..=MAX_CONTINUATIONS {
            let mut continuation = None;
            let mut pos = 0;
            while pos + 4 <= area.len() {
                let len = usize::from(area[pos + 2]);
                // Padding or garbage ends the area; SUSP has no other way to say so.
                if len < 4 || pos + len > area.len() {
                    break;
                }
                let e = &area[pos..pos + len];
                match &e[..2] {
                    b"NM" if len >= 5 && !complete => {
                        let flags = e[4];
                        found = true;
                        // CURRENT / PARENT: "." and "..", which are skipped anyway.
                        if flags & 0x06 == 0 {
                            name.extend_from_slice(&e[5..]);
                        }
                        complete = flags & 0x01 == 0;
                    }
                    b"CE" if len >= 28 => {
                        continuation = Some((le32(e, 4), le32(e, 12), le32(e, 20)));
                    }
                    b"ST" => break,
                    _ => {}
                }
                pos += len;
            }
            let Some((block, offset, len)) = continuation else {
                break;
            };
            if u64::from(len) > self.block_size || u64::from(offset) >= self.block_size {
                return Err(corrupt(format!(
                    "SUSP continuation area of {len} bytes at offset {offset}"
                )));
            }
            let at = u64::from(block) * self.block_size + u64::from(offset);
            area = src.read_at(at, u64::from(len))?;
        }
        Ok(found.then_some(name))
    }
}

fn root_node(desc: &[u8], block_size: u64) -> Result<Node, FsImageError> {
    let rec = &desc[156..190];
    if rec[0] < 34 || rec[25] & FLAG_DIRECTORY == 0 {
        return Err(corrupt("root directory record"));
    }
    let block = u64::from(le32(rec, 2)) + u64::from(rec[1]);
    Ok(Node {
        start: block * block_size,
        size: u64::from(le32(rec, 10)),
        multi_extent: false,
    })
}

/// The System Use area of a directory record: after the name and its padding byte.
fn system_use(rec: &[u8]) -> &[u8] {
    let name_len = usize::from(rec[32]);
    let start = 33 + name_len + usize::from(name_len % 2 == 0);
    rec.get(start..).unwrap_or_default()
}

/// Rock Ridge is in use when the root's "." record starts its System Use area with an `SP`
/// entry (SUSP 5.3); its last byte is the skip length for every other area.
fn sp_skip(dir: &[u8]) -> Option<usize> {
    let len = usize::from(*dir.first()?);
    if len < 34 || len > dir.len() {
        return None;
    }
    let su = system_use(&dir[..len]);
    (su.len() >= 7 && su[..4] == *b"SP\x07\x01" && su[4..6] == [0xBE, 0xEF])
        .then(|| usize::from(su[6]))
}

fn ucs2_be(b: &[u8]) -> String {
    let units = b.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]));
    char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

impl FileSystem for Iso {
    type Node = Node;

    fn root(&self) -> Node {
        self.root.clone()
    }

    fn read_dir(&mut self, src: &mut Source, dir: &Node) -> Result<Vec<Entry<Node>>, FsImageError> {
        if dir.size > MAX_FILE_SIZE {
            return Err(corrupt(format!("directory of {} bytes", dir.size)));
        }
        let buf = src.read_at(dir.start, dir.size)?;
        let mut entries = Vec::new();
        let mut pos = 0;
        // The record after one flagged multi-extent continues the same file.
        let mut continues = false;
        while pos < buf.len() {
            let len = usize::from(buf[pos]);
            let sector_end = ((pos / 2048 + 1) * 2048).min(buf.len());
            if len == 0 {
                // Records never span sectors; the rest of this one is padding.
                pos = sector_end;
                continue;
            }
            if len < 34 || pos + len > sector_end {
                return Err(corrupt(format!(
                    "directory record of {len} bytes at offset {} runs past its sector",
                    dir.start + pos as u64
                )));
            }
            let rec = &buf[pos..pos + len];
            pos += len;
            let name_len = usize::from(rec[32]);
            if 33 + name_len > len {
                return Err(corrupt(format!(
                    "directory record name of {name_len} bytes"
                )));
            }
            let raw = &rec[33..33 + name_len];
            let flags = rec[25];
            let continuation = continues;
            continues = flags & FLAG_MULTI_EXTENT != 0;
            if continuation || raw == [0] || raw == [1] || flags & FLAG_ASSOCIATED != 0 {
                continue;
            }
            let name = match self.names {
                Names::Joliet => strip_version(&ucs2_be(raw)).to_owned(),
                Names::RockRidge { skip } => {
                    match self.rock_ridge_name(src, system_use(rec), skip)? {
                        Some(nm) => String::from_utf8_lossy(&nm).into_owned(),
                        None => strip_version(&String::from_utf8_lossy(raw)).to_owned(),
                    }
                }
                Names::Plain => strip_version(&String::from_utf8_lossy(raw)).to_owned(),
            };
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                continue;
            }
            entries.push(Entry {
                name,
                is_dir: flags & FLAG_DIRECTORY != 0,
                node: self.node(rec)?,
            });
        }
        Ok(entries)
    }

    fn read_file(
        &mut self,
        src: &mut Source,
        file: &Node,
        path: &str,
    ) -> Result<Vec<u8>, FsImageError> {
        if file.multi_extent {
            return Err(corrupt(format!(
                "{path}: multi-extent files are not supported"
            )));
        }
        if file.size > MAX_FILE_SIZE {
            return Err(FsImageError::TooLarge {
                path: path.to_owned(),
                size: file.size,
                limit: MAX_FILE_SIZE,
            });
        }
        src.read_at(file.start, file.size)
    }

    /// Plain ISO 9660 names are what mkisofs made of the original: upper case, characters
    /// outside `A-Z0-9_` replaced by `_`, cut to 8.3 at level 1 (`user-data` →
    /// `USER_DAT`). Only plain hierarchies get this; Rock Ridge and Joliet keep names.
    fn loose_match(&self, name: &str, query: &str) -> bool {
        if self.names != Names::Plain {
            return false;
        }
        let mangle = |s: &str| -> String {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '.' {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        let full = mangle(strip_version(query));
        if full == name {
            return true;
        }
        let (base, ext) = full.rsplit_once('.').unwrap_or((&full, ""));
        let base: String = base.replace('.', "_").chars().take(8).collect();
        let short = if ext.is_empty() {
            base
        } else {
            format!("{base}.{}", &ext[..ext.len().min(3)])
        };
        short == name
    }
}
