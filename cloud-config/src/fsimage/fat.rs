//! FAT12/16/32 with VFAT long names (Microsoft "FAT: General Overview of On-Disk Format").

use std::collections::HashSet;

use super::{corrupt, le16, le32, Entry, FileSystem, FsImageError, Source, MAX_FILE_SIZE};

/// A directory holds at most 65536 entries (the spec's limit), so 2 MiB; a longer chain is
/// a loop or garbage.
const MAX_DIR_BYTES: u64 = 65536 * 32;
/// FAT bytes are read through a cache of this many bytes.
const FAT_CHUNK: u64 = 64 * 1024;

const ATTR_VOLUME_ID: u8 = 0x08;
const ATTR_DIRECTORY: u8 = 0x10;
const ATTR_LONG_NAME: u8 = 0x0F;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Width {
    Fat12,
    Fat16,
    Fat32,
}

#[derive(Clone, Debug)]
pub(crate) enum Node {
    /// The FAT12/16 root directory: a fixed region, not a cluster chain.
    FixedRoot,
    Chain {
        first: u32,
        size: u32,
    },
}

pub(crate) struct Fat {
    width: Width,
    fat_start: u64,
    fat_bytes: u64,
    root_start: u64,
    root_bytes: u64,
    root_cluster: u32,
    data_start: u64,
    cluster_size: u64,
    max_cluster: u32,
    cache: Option<(u64, Vec<u8>)>,
    pub label: String,
}

impl Fat {
    /// `Ok(None)` when sector 0 is not a FAT boot sector.
    pub(crate) fn probe(src: &mut Source) -> Result<Option<Fat>, FsImageError> {
        if src.size() < 512 {
            return Ok(None);
        }
        let bs = src.read_at(0, 512)?;
        let bps = u64::from(le16(&bs, 11));
        let spc = u64::from(bs[13]);
        let reserved = u64::from(le16(&bs, 14));
        let fats = u64::from(bs[16]);
        let root_entries = u64::from(le16(&bs, 17));
        let total = match le16(&bs, 19) {
            0 => u64::from(le32(&bs, 32)),
            n => u64::from(n),
        };
        let fat_sectors = match le16(&bs, 22) {
            0 => u64::from(le32(&bs, 36)),
            n => u64::from(n),
        };
        let media = bs[21];
        let looks_fat = matches!(bs[0], 0xEB | 0xE9)
            && matches!(bps, 512 | 1024 | 2048 | 4096)
            && spc.is_power_of_two()
            && reserved >= 1
            && fats >= 1
            && (media == 0xF0 || media >= 0xF8)
            && total > 0
            && fat_sectors > 0;
        if !looks_fat {
            return Ok(None);
        }
        if total * bps > src.size() {
            return Err(corrupt(format!(
                "truncated: the FAT file system is {} bytes, the image {}",
                total * bps,
                src.size()
            )));
        }
        let root_sectors = (root_entries * 32).div_ceil(bps);
        let meta = reserved + fats * fat_sectors + root_sectors;
        let clusters = match total.checked_sub(meta) {
            Some(data) => data / spc,
            None => {
                return Err(corrupt(format!(
                    "FAT regions of {meta} sectors exceed {total}"
                )))
            }
        };
        // The Microsoft rule: the type is the cluster count, nothing else.
        let width = match clusters {
            0..4085 => Width::Fat12,
            4085..65525 => Width::Fat16,
            _ => Width::Fat32,
        };
        let max_cluster = u32::try_from(clusters + 1)
            .ok()
            .filter(|&c| c < 0x0FFF_FFF7)
            .ok_or_else(|| corrupt(format!("{clusters} clusters")))?;
        let mut active_fat = 0;
        let mut root_cluster = 0;
        let label_at = if width == Width::Fat32 {
            // Mirroring off: only the FAT numbered in the low bits is current.
            let ext_flags = le16(&bs, 40);
            if ext_flags & 0x80 != 0 {
                active_fat = u64::from(ext_flags & 0x0F);
            }
            if active_fat >= fats {
                return Err(corrupt(format!("active FAT {active_fat} of {fats}")));
            }
            root_cluster = le32(&bs, 44);
            66
        } else {
            38
        };
        // Only the extended boot signature 0x29 promises a label field (0x28 has none).
        let boot_label = match bs[label_at] {
            0x29 => label_text(&bs[label_at + 5..label_at + 16]),
            _ => None,
        };
        let mut fat = Fat {
            width,
            fat_start: (reserved + active_fat * fat_sectors) * bps,
            fat_bytes: fat_sectors * bps,
            root_start: (reserved + fats * fat_sectors) * bps,
            root_bytes: root_entries * 32,
            root_cluster,
            data_start: meta * bps,
            cluster_size: spc * bps,
            max_cluster,
            cache: None,
            label: String::new(),
        };
        let root = fat.root();
        let root_label = fat.scan(src, &root)?.1;
        // As blkid: the root directory's volume-label entry wins over the boot sector.
        fat.label = root_label.or(boot_label).unwrap_or_default();
        Ok(Some(fat))
    }

    fn fat_byte(&mut self, src: &mut Source, off: u64) -> Result<u8, FsImageError> {
        if off >= self.fat_bytes {
            return Err(corrupt(format!("FAT entry at byte {off} past the FAT")));
        }
        let chunk = off / FAT_CHUNK;
        if self.cache.as_ref().is_none_or(|(c, _)| *c != chunk) {
            let len = FAT_CHUNK.min(self.fat_bytes - chunk * FAT_CHUNK);
            let data = src.read_at(self.fat_start + chunk * FAT_CHUNK, len)?;
            self.cache = Some((chunk, data));
        }
        let at = (off % FAT_CHUNK) as usize;
        self.cache
            .as_ref()
            .and_then(|(_, d)| d.get(at).copied())
            .ok_or_else(|| corrupt("FAT cache"))
    }

    /// `Ok(None)` at the end of the chain.
    fn next(&mut self, src: &mut Source, cluster: u32) -> Result<Option<u32>, FsImageError> {
        let c = u64::from(cluster);
        let (value, end) = match self.width {
            Width::Fat12 => {
                let off = c + c / 2;
                let v =
                    u16::from_le_bytes([self.fat_byte(src, off)?, self.fat_byte(src, off + 1)?]);
                let v = if cluster % 2 == 1 { v >> 4 } else { v & 0x0FFF };
                (u32::from(v), 0xFF8)
            }
            Width::Fat16 => {
                let off = c * 2;
                let v =
                    u16::from_le_bytes([self.fat_byte(src, off)?, self.fat_byte(src, off + 1)?]);
                (u32::from(v), 0xFFF8)
            }
            Width::Fat32 => {
                let off = c * 4;
                let mut b = [0; 4];
                for (i, byte) in b.iter_mut().enumerate() {
                    *byte = self.fat_byte(src, off + i as u64)?;
                }
                (u32::from_le_bytes(b) & 0x0FFF_FFFF, 0x0FFF_FFF8)
            }
        };
        if value >= end {
            return Ok(None);
        }
        self.check_cluster(value).map(Some)
    }

    fn check_cluster(&self, c: u32) -> Result<u32, FsImageError> {
        if c < 2 || c > self.max_cluster {
            return Err(corrupt(format!(
                "cluster {c} in a FAT chain (valid: 2–{})",
                self.max_cluster
            )));
        }
        Ok(c)
    }

    /// Reads up to `limit` bytes of the chain from `first`; fewer if the chain ends first.
    fn read_chain(
        &mut self,
        src: &mut Source,
        first: u32,
        limit: u64,
    ) -> Result<Vec<u8>, FsImageError> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut cluster = Some(self.check_cluster(first)?);
        // Runs of consecutive clusters are read at once.
        let mut run: Option<(u32, u64)> = None;
        while let Some(c) = cluster {
            if (out.len() as u64) + run.map_or(0, |r| r.1) * self.cluster_size >= limit {
                break;
            }
            if !seen.insert(c) {
                return Err(corrupt(format!(
                    "FAT chain from cluster {first} loops at {c}"
                )));
            }
            run = match run {
                Some((start, n)) if u64::from(start) + n == u64::from(c) => Some((start, n + 1)),
                Some((start, n)) => {
                    self.read_run(src, start, n, &mut out)?;
                    Some((c, 1))
                }
                None => Some((c, 1)),
            };
            cluster = self.next(src, c)?;
        }
        if let Some((start, n)) = run {
            self.read_run(src, start, n, &mut out)?;
        }
        out.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(out)
    }

    fn read_run(
        &mut self,
        src: &mut Source,
        start: u32,
        n: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), FsImageError> {
        let at = self.data_start + u64::from(start - 2) * self.cluster_size;
        out.extend(src.read_at(at, n * self.cluster_size)?);
        Ok(())
    }

    /// The entries of a directory, and the volume label entry if it has one.
    fn scan(
        &mut self,
        src: &mut Source,
        dir: &Node,
    ) -> Result<(Vec<Entry<Node>>, Option<String>), FsImageError> {
        let buf = match *dir {
            Node::FixedRoot => src.read_at(self.root_start, self.root_bytes)?,
            Node::Chain { first: 0, .. } => return Err(corrupt("directory without clusters")),
            Node::Chain { first, .. } => {
                let data = self.read_chain(src, first, MAX_DIR_BYTES + 1)?;
                if data.len() as u64 > MAX_DIR_BYTES {
                    return Err(corrupt(format!(
                        "directory at cluster {first} exceeds 65536 entries"
                    )));
                }
                data
            }
        };
        let mut entries = Vec::new();
        let mut label = None;
        let mut lfn: Option<LongName> = None;
        for e in buf.chunks_exact(32) {
            let attr = e[11];
            match e[0] {
                0x00 => break,
                0xE5 => {
                    lfn = None;
                    continue;
                }
                _ => {}
            }
            if attr & 0x3F == ATTR_LONG_NAME {
                lfn = LongName::add(lfn.take(), e);
                continue;
            }
            let long = lfn.take();
            if attr & (ATTR_VOLUME_ID | ATTR_DIRECTORY) == ATTR_VOLUME_ID {
                label = label_text(&e[..11]);
                continue;
            }
            if attr & ATTR_VOLUME_ID != 0 || e[0] == b'.' {
                continue;
            }
            let name = long
                .and_then(|l| l.finish(checksum(&e[..11])))
                .unwrap_or_else(|| short_name(e));
            let first = (if self.width == Width::Fat32 {
                u32::from(le16(e, 20)) << 16
            } else {
                0
            }) | u32::from(le16(e, 26));
            let is_dir = attr & ATTR_DIRECTORY != 0;
            // A subdirectory pointing at cluster 0 means the root (as ".." does).
            let node = if is_dir && first == 0 {
                self.root()
            } else {
                Node::Chain {
                    first,
                    size: le32(e, 28),
                }
            };
            entries.push(Entry { name, is_dir, node });
        }
        Ok((entries, label))
    }
}

fn label_text(b: &[u8]) -> Option<String> {
    if b == b"NO NAME    " {
        return None;
    }
    let mut bytes = b.to_vec();
    if bytes.first() == Some(&0x05) {
        bytes[0] = 0xE5;
    }
    let s: String = bytes.iter().map(|&c| char::from(c)).collect();
    let s = s.trim_end();
    (!s.is_empty()).then(|| s.to_owned())
}

/// The 8.3 name, lower-cased where the Windows NT case bits (byte 12) say so.
fn short_name(e: &[u8]) -> String {
    let text = |b: &[u8], lower: bool| -> String {
        let s: String = b.iter().map(|&c| char::from(c)).collect();
        let s = s.trim_end().to_owned();
        if lower {
            s.to_ascii_lowercase()
        } else {
            s
        }
    };
    let mut base_bytes = e[..8].to_vec();
    if base_bytes[0] == 0x05 {
        base_bytes[0] = 0xE5;
    }
    let base = text(&base_bytes, e[12] & 0x08 != 0);
    let ext = text(&e[8..11], e[12] & 0x10 != 0);
    if ext.is_empty() {
        base
    } else {
        format!("{base}.{ext}")
    }
}

fn checksum(short: &[u8]) -> u8 {
    short
        .iter()
        .fold(0u8, |sum, &b| sum.rotate_right(1).wrapping_add(b))
}

/// A long name being gathered: its entries come last part first, numbered down to 1.
struct LongName {
    parts: Vec<[u16; 13]>,
    next: usize,
    checksum: u8,
}

impl LongName {
    fn add(current: Option<LongName>, e: &[u8]) -> Option<LongName> {
        let seq = usize::from(e[0] & 0x1F);
        let mut l = if e[0] & 0x40 != 0 {
            // 20 parts × 13 = 260 characters, past the 255 allowed.
            if seq == 0 || seq > 20 {
                return None;
            }
            LongName {
                parts: vec![[0; 13]; seq],
                next: seq,
                checksum: e[13],
            }
        } else {
            current?
        };
        if seq == 0 || seq != l.next || e[13] != l.checksum {
            return None;
        }
        let offsets = (1..11)
            .step_by(2)
            .chain((14..26).step_by(2))
            .chain((28..32).step_by(2));
        for (i, at) in offsets.enumerate() {
            l.parts[seq - 1][i] = le16(e, at);
        }
        l.next -= 1;
        Some(l)
    }

    /// The name, if every part arrived and it belongs to the short entry that follows.
    fn finish(self, checksum: u8) -> Option<String> {
        if self.next != 0 || self.checksum != checksum {
            return None;
        }
        let units = self.parts.iter().flatten().copied().take_while(|&u| u != 0);
        let name: String = char::decode_utf16(units)
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect();
        (!name.is_empty()).then_some(name)
    }
}

impl FileSystem for Fat {
    type Node = Node;

    fn root(&self) -> Node {
        match self.width {
            Width::Fat32 => Node::Chain {
                first: self.root_cluster,
                size: 0,
            },
            _ => Node::FixedRoot,
        }
    }

    fn read_dir(&mut self, src: &mut Source, dir: &Node) -> Result<Vec<Entry<Node>>, FsImageError> {
        Ok(self.scan(src, dir)?.0)
    }

    fn read_file(
        &mut self,
        src: &mut Source,
        file: &Node,
        path: &str,
    ) -> Result<Vec<u8>, FsImageError> {
        let Node::Chain { first, size } = *file else {
            return Ok(Vec::new());
        };
        let size = u64::from(size);
        if size > MAX_FILE_SIZE {
            return Err(FsImageError::TooLarge {
                path: path.to_owned(),
                size,
                limit: MAX_FILE_SIZE,
            });
        }
        if size == 0 {
            return Ok(Vec::new());
        }
        let data = self.read_chain(src, first, size)?;
        if (data.len() as u64) < size {
            return Err(corrupt(format!(
                "{path}: FAT chain holds {} of {size} bytes",
                data.len()
            )));
        }
        Ok(data)
    }
}
