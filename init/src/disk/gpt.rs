//! GUID partition tables: reading the partition names (for `PARTLABEL=`), writing a table
//! (the ros disk layout of [`super::layout`], or the one-partition table
//! `ros.state.autoformat` puts on a blank disk), and growing the last partition of an
//! enlarged disk (UEFI spec 2.10 §5.3).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::Path;

use super::probe::read_at;
use super::{is_blank_file, DiskError};

/// "Linux filesystem data", 0FC63DAF-8483-4772-8E79-3D69D8477DE4, in the order it is written.
pub const LINUX_FS_TYPE: [u8; 16] = [
    0x0F, 0xC6, 0x3D, 0xAF, 0x84, 0x83, 0x47, 0x72, 0x8E, 0x79, 0x3D, 0x69, 0xD8, 0x47, 0x7D, 0xE4,
];

const SIGNATURE: &[u8; 8] = b"EFI PART";
const HEADER_SIZE: u32 = 92;
const ENTRY_COUNT: u32 = 128;
const ENTRY_SIZE: u32 = 128;
const ENTRIES_BYTES: u64 = ENTRY_COUNT as u64 * ENTRY_SIZE as u64;
/// Partitions start and end on 1 MiB boundaries, as every partitioning tool does today.
const ALIGN: u64 = 1 << 20;

/// A GUID as the [u8; 16] of its text form (`0FC63DAF-8483-…` → `[0x0F, 0xC6, …]`).
/// GPT stores the first three fields little-endian; these convert between the two.
pub fn guid_to_disk(g: &[u8; 16]) -> [u8; 16] {
    let mut d = *g;
    d[0..4].reverse();
    d[4..6].reverse();
    d[6..8].reverse();
    d
}

/// The inverse of [`guid_to_disk`] (the swap is its own inverse).
pub fn guid_from_disk(d: &[u8; 16]) -> [u8; 16] {
    guid_to_disk(d)
}

/// A GUID in text form, lowercase, as blkid prints PARTUUIDs.
pub fn format_guid(g: &[u8; 16]) -> String {
    let h = |r: std::ops::Range<usize>| g[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!(
        "{}-{}-{}-{}-{}",
        h(0..4),
        h(4..6),
        h(6..8),
        h(8..10),
        h(10..16)
    )
}

/// One used entry of a GPT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptPartition {
    /// 1-based, as in the device name (`vda1`).
    pub index: u32,
    pub name: String,
    /// Text-form byte order (see [`guid_to_disk`]).
    pub type_guid: [u8; 16],
    /// Text-form byte order; this is the PARTUUID.
    pub part_guid: [u8; 16],
    pub first_lba: u64,
    pub last_lba: u64,
}

/// The used entries of the primary GPT in `r`, or nothing when there is no valid one
/// (missing signature or a CRC that does not match). Tries 512- and 4096-byte sectors.
pub fn gpt_partitions<R: Read + Seek>(r: &mut R) -> Vec<GptPartition> {
    [512u64, 4096]
        .into_iter()
        .find_map(|sector| read_gpt(r, sector))
        .unwrap_or_default()
}

/// `(index, name)` of every used entry of the primary GPT in `r`; see [`gpt_partitions`].
pub fn gpt_partition_names<R: Read + Seek>(r: &mut R) -> Vec<(u32, String)> {
    gpt_partitions(r)
        .into_iter()
        .map(|p| (p.index, p.name))
        .collect()
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// A primary GPT whose header and entries CRCs check out.
struct Primary {
    /// The header sector's first 512 bytes (a header is at most that long here).
    hdr: [u8; 512],
    header_size: usize,
    entry_size: usize,
    /// All `count * entry_size` bytes of the entries array.
    table: Vec<u8>,
}

fn read_primary<R: Read + Seek>(r: &mut R, sector: u64) -> Option<Primary> {
    let hdr: [u8; 512] = read_at(r, sector)?;
    if &hdr[0..8] != SIGNATURE {
        return None;
    }
    let header_size = u32_at(&hdr, 12) as usize;
    if !(92..=512).contains(&header_size) {
        return None;
    }
    let mut zeroed = hdr[..header_size].to_vec();
    zeroed[16..20].fill(0);
    if crc32fast::hash(&zeroed) != u32_at(&hdr, 16) {
        return None;
    }
    let entries_lba = u64_at(&hdr, 72);
    let count = u32_at(&hdr, 80);
    let size = u32_at(&hdr, 84);
    // Bound what a corrupt or hostile header can make PID 1 allocate.
    if count == 0 || count > 4096 || !(128..=4096).contains(&size) || !size.is_multiple_of(8) {
        return None;
    }
    let mut table = vec![0u8; count as usize * size as usize];
    r.seek(SeekFrom::Start(entries_lba.checked_mul(sector)?))
        .ok()?;
    r.read_exact(&mut table).ok()?;
    if crc32fast::hash(&table) != u32_at(&hdr, 88) {
        return None;
    }
    Some(Primary {
        hdr,
        header_size,
        entry_size: size as usize,
        table,
    })
}

fn read_gpt<R: Read + Seek>(r: &mut R, sector: u64) -> Option<Vec<GptPartition>> {
    read_primary(r, sector).map(|p| parse_entries(&p.table, p.entry_size))
}

fn parse_entries(table: &[u8], size: usize) -> Vec<GptPartition> {
    table
        .chunks_exact(size)
        .zip(1u32..)
        .filter(|(e, _)| e[0..16].iter().any(|&b| b != 0))
        .map(|(e, index)| {
            let mut type_guid = [0u8; 16];
            type_guid.copy_from_slice(&e[0..16]);
            let mut part_guid = [0u8; 16];
            part_guid.copy_from_slice(&e[16..32]);
            let units: Vec<u16> = e[56..128]
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .take_while(|&u| u != 0)
                .collect();
            GptPartition {
                index,
                name: String::from_utf16_lossy(&units),
                type_guid: guid_from_disk(&type_guid),
                part_guid: guid_from_disk(&part_guid),
                first_lba: u64_at(e, 32),
                last_lba: u64_at(e, 40),
            }
        })
        .collect()
}

/// Where the tables of a GPT go on a disk of `sectors` sectors of `ss` bytes, and the
/// usable sectors between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geometry {
    ss: u64,
    sectors: u64,
    entry_sectors: u64,
    first_usable: u64,
    last_usable: u64,
}

impl Geometry {
    fn new(ss: u64, size: u64) -> Option<Geometry> {
        let sectors = size / ss;
        let entry_sectors = ENTRIES_BYTES.div_ceil(ss);
        let first_usable = 2 + entry_sectors;
        let last_usable = sectors.checked_sub(2 + entry_sectors)?;
        (last_usable > first_usable).then_some(Geometry {
            ss,
            sectors,
            entry_sectors,
            first_usable,
            last_usable,
        })
    }

    /// The sectors per 1 MiB alignment unit.
    fn align(&self) -> u64 {
        (ALIGN / self.ss).max(1)
    }

    /// One partition from the first 1 MiB boundary to the last one that fits (or to the
    /// last usable sector on a disk too small to align both ends).
    fn whole_disk(&self) -> Option<(u64, u64)> {
        let align = self.align();
        let first = align.max(self.first_usable.next_multiple_of(align));
        let aligned_end = ((self.last_usable + 1) / align * align).checked_sub(1)?;
        let last = if aligned_end > first {
            aligned_end
        } else {
            self.last_usable
        };
        (last > first).then_some((first, last))
    }
}

/// A partition for [`write_table`]. GUIDs in text-form byte order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPartition {
    pub name: String,
    pub type_guid: [u8; 16],
    pub part_guid: [u8; 16],
    pub first_lba: u64,
    pub last_lba: u64,
}

fn header(
    g: &Geometry,
    disk_guid: &[u8; 16],
    entries_crc: u32,
    this_lba: u64,
    other_lba: u64,
    entries_lba: u64,
) -> Vec<u8> {
    let mut h = vec![0u8; g.ss as usize];
    h[0..8].copy_from_slice(SIGNATURE);
    h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
    h[12..16].copy_from_slice(&HEADER_SIZE.to_le_bytes());
    h[24..32].copy_from_slice(&this_lba.to_le_bytes());
    h[32..40].copy_from_slice(&other_lba.to_le_bytes());
    h[40..48].copy_from_slice(&g.first_usable.to_le_bytes());
    h[48..56].copy_from_slice(&g.last_usable.to_le_bytes());
    h[56..72].copy_from_slice(&guid_to_disk(disk_guid));
    h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
    h[80..84].copy_from_slice(&ENTRY_COUNT.to_le_bytes());
    h[84..88].copy_from_slice(&ENTRY_SIZE.to_le_bytes());
    h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
    let crc = crc32fast::hash(&h[..HEADER_SIZE as usize]);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The protective MBR, with `boot_code` (at most 440 bytes: GRUB's boot.img) in front.
fn protective_mbr(g: &Geometry, boot_code: &[u8]) -> Vec<u8> {
    let mut m = vec![0u8; g.ss as usize];
    let n = boot_code.len().min(440);
    m[..n].copy_from_slice(&boot_code[..n]);
    let p = &mut m[446..462];
    // CHS fields as every tool writes them for a protective MBR: start 0/0/2, end maxed.
    p[1..4].copy_from_slice(&[0x00, 0x02, 0x00]);
    p[4] = 0xEE;
    p[5..8].copy_from_slice(&[0xFF, 0xFF, 0xFF]);
    p[8..12].copy_from_slice(&1u32.to_le_bytes());
    let covered = u32::try_from(g.sectors - 1).unwrap_or(u32::MAX);
    p[12..16].copy_from_slice(&covered.to_le_bytes());
    m[510] = 0x55;
    m[511] = 0xAA;
    m
}

fn entries(g: &Geometry, parts: &[NewPartition]) -> Vec<u8> {
    let mut t = vec![0u8; (g.entry_sectors * g.ss) as usize];
    for (p, e) in parts.iter().zip(t.chunks_exact_mut(ENTRY_SIZE as usize)) {
        e[0..16].copy_from_slice(&guid_to_disk(&p.type_guid));
        e[16..32].copy_from_slice(&guid_to_disk(&p.part_guid));
        e[32..40].copy_from_slice(&p.first_lba.to_le_bytes());
        e[40..48].copy_from_slice(&p.last_lba.to_le_bytes());
        // The name field holds 36 UTF-16 code units; longer names are cut.
        for (i, unit) in p.name.encode_utf16().take(36).enumerate() {
            e[56 + 2 * i..58 + 2 * i].copy_from_slice(&unit.to_le_bytes());
        }
    }
    t
}

/// Writes a GPT holding `parts` to the device or image `path`: protective MBR (with
/// `boot_code` in its first 440 bytes), primary header and entries, backup entries and
/// header, then fsync. Partitions must lie in the usable sectors, in order, without
/// overlapping; at most 128. With `require_blank`, refuses a device that is not blank
/// (see [`super::is_blank`]).
pub fn write_table(
    path: &Path,
    disk_guid: [u8; 16],
    parts: &[NewPartition],
    boot_code: &[u8],
    require_blank: bool,
) -> io::Result<()> {
    let io_err = |op: &'static str| {
        move |source: io::Error| DiskError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    };
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err("opening"))?;
    let size = f
        .seek(SeekFrom::End(0))
        .map_err(io_err("finding the size of"))?;
    let ss = sector_size(&f).map_err(io_err("reading the sector size of"))?;
    let too_small = || DiskError::TooSmall {
        path: path.to_path_buf(),
        size,
    };
    let g = Geometry::new(ss, size).ok_or_else(too_small)?;
    let mut next = g.first_usable;
    for p in parts {
        if p.first_lba < next || p.last_lba < p.first_lba || p.last_lba > g.last_usable {
            return Err(too_small().into());
        }
        next = p.last_lba + 1;
    }
    if parts.len() > ENTRY_COUNT as usize {
        return Err(too_small().into());
    }
    if require_blank && !is_blank_file(&mut f, size).map_err(io_err("reading"))? {
        return Err(DiskError::NotBlank {
            path: path.to_path_buf(),
        }
        .into());
    }
    let table = entries(&g, parts);
    let entries_crc = crc32fast::hash(&table[..ENTRIES_BYTES as usize]);
    let last = g.sectors - 1;
    let backup_entries = last - g.entry_sectors;
    let primary = header(&g, &disk_guid, entries_crc, 1, last, 2);
    let backup = header(&g, &disk_guid, entries_crc, last, 1, backup_entries);
    // Backup first: until the primary header lands, nothing reads this as a GPT.
    let writes: [(u64, &[u8]); 5] = [
        (backup_entries, &table),
        (last, &backup),
        (2, &table),
        (1, &primary),
        (0, &protective_mbr(&g, boot_code)),
    ];
    for (lba, bytes) in writes {
        f.write_all_at(bytes, lba * ss)
            .map_err(io_err("writing the partition table to"))?;
    }
    f.sync_all().map_err(io_err("syncing"))?;
    Ok(())
}

/// Writes a GPT with one "Linux filesystem" partition named `part_name` spanning the blank
/// device or image `path` (see [`write_table`]). The partition starts at 1 MiB and ends on
/// the last 1 MiB boundary that fits. GUIDs are in text-form byte order (see
/// [`super::random_guid`]). Refuses a device that is not blank (see [`super::is_blank`]).
/// Returns the partition's first LBA.
pub fn write_single_partition_gpt(
    path: &Path,
    part_name: &str,
    disk_guid: [u8; 16],
    part_guid: [u8; 16],
) -> io::Result<u64> {
    let io_err = |op: &'static str| {
        move |source: io::Error| DiskError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    };
    let f = File::open(path).map_err(io_err("opening"))?;
    let size = disk_size(&f).map_err(io_err("finding the size of"))?;
    let ss = sector_size(&f).map_err(io_err("reading the sector size of"))?;
    let (first_lba, last_lba) = Geometry::new(ss, size)
        .and_then(|g| g.whole_disk())
        .ok_or_else(|| DiskError::TooSmall {
            path: path.to_path_buf(),
            size,
        })?;
    drop(f);
    let part = NewPartition {
        name: part_name.to_string(),
        type_guid: LINUX_FS_TYPE,
        part_guid,
        first_lba,
        last_lba,
    };
    write_table(path, disk_guid, &[part], &[], true)?;
    Ok(first_lba)
}

fn disk_size(f: &File) -> io::Result<u64> {
    let mut f = f;
    f.seek(SeekFrom::End(0))
}

/// The logical sector size: what the kernel says for a block device, 512 for a file.
pub(super) fn sector_size(f: &File) -> io::Result<u64> {
    if f.metadata()?.file_type().is_block_device() {
        Ok(u64::from(crate::sys::blksszget(f)?))
    } else {
        Ok(512)
    }
}

/// Grows partition `index` (1-based) of the GPT disk or image `disk` to the end of a disk
/// that was enlarged since the table was written, as a cloud does with an image: the
/// partition's last LBA becomes the last usable LBA that ends a 1 MiB boundary
/// (`(lba + 1) % (1 MiB / sector) == 0`), as its start and the other partitions are
/// aligned by every partitioning tool. The header's last usable LBA follows the disk, and the backup entries and
/// header move to its end. Other entries are left as they are.
///
/// `Ok(None)` when there is nothing to do: `index` is not the partition that ends last, or
/// it would gain less than 1 MiB. Returns the partition's old and new last LBA otherwise.
/// Fails on a disk without a valid primary GPT (the backup alone is not trusted here) and
/// on an `index` that names no used entry.
///
/// The backup goes first, then the primary entries and header, each step synced: cut off
/// anywhere, the disk still holds one valid table, old or new.
pub fn grow_last_partition(disk: &Path, index: u32) -> io::Result<Option<(u64, u64)>> {
    let io_err = |op: &'static str| {
        move |source: io::Error| DiskError::Io {
            op,
            path: disk.to_path_buf(),
            source,
        }
    };
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(disk)
        .map_err(io_err("opening"))?;
    let size = f
        .seek(SeekFrom::End(0))
        .map_err(io_err("finding the size of"))?;
    let ss = sector_size(&f).map_err(io_err("reading the sector size of"))?;
    let no_gpt = || DiskError::NoGpt {
        path: disk.to_path_buf(),
    };
    let Primary {
        hdr,
        header_size,
        entry_size,
        mut table,
    } = read_primary(&mut f, ss).ok_or_else(no_gpt)?;
    let parts = parse_entries(&table, entry_size);
    let Some(part) = parts.iter().find(|p| p.index == index) else {
        return Err(DiskError::NoPartition {
            path: disk.to_path_buf(),
            index,
        }
        .into());
    };
    if parts
        .iter()
        .any(|p| p.index != index && p.last_lba >= part.last_lba)
    {
        return Ok(None);
    }
    let Some(plan) = GrowPlan::new(ss, size / ss, table.len() as u64, part.last_lba) else {
        return Ok(None);
    };
    let old_last_usable = u64_at(&hdr, 48);
    if plan.last_usable < old_last_usable || u64_at(&hdr, 40) > plan.part_last {
        // The disk shrank, or the header is nonsense for this disk; not ours to fix.
        return Ok(None);
    }

    let at = (index as usize - 1) * entry_size;
    table[at + 40..at + 48].copy_from_slice(&plan.part_last.to_le_bytes());
    let entries_crc = crc32fast::hash(&table);
    let last = plan.sectors - 1;
    let backup_entries = last - plan.entry_sectors;
    let sector = |fields: &[(usize, u64)]| {
        let mut h = vec![0u8; ss as usize];
        h[..header_size].copy_from_slice(&hdr[..header_size]);
        for &(at, v) in fields {
            h[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
        h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
        h[16..20].fill(0);
        let crc = crc32fast::hash(&h[..header_size]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    };
    // Offsets 24 (this header), 32 (the other one), 48 (last usable), 72 (entries).
    let primary = sector(&[(32, last), (48, plan.last_usable)]);
    let primary_entries = u64_at(&hdr, 72);
    let backup = sector(&[
        (24, last),
        (32, 1),
        (48, plan.last_usable),
        (72, backup_entries),
    ]);
    let write = |f: &File, bytes: &[u8], lba: u64| {
        f.write_all_at(bytes, lba * ss)
            .map_err(io_err("writing the partition table to"))
    };
    let sync = |f: &File| f.sync_all().map_err(io_err("syncing"));
    write(&f, &table, backup_entries)?;
    write(&f, &backup, last)?;
    sync(&f)?;
    write(&f, &table, primary_entries)?;
    write(&f, &primary, 1)?;
    if let Some(mbr) = grown_protective_mbr(&mut f, plan.sectors) {
        write(&f, &mbr, 0)?;
    }
    sync(&f)?;
    Ok(Some((part.last_lba, plan.part_last)))
}

/// Where [`grow_last_partition`] puts things on a disk of `sectors` sectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct GrowPlan {
    sectors: u64,
    entry_sectors: u64,
    last_usable: u64,
    part_last: u64,
}

impl GrowPlan {
    /// `None` when the partition ending at `part_last` would gain less than 1 MiB.
    fn new(ss: u64, sectors: u64, entries_bytes: u64, part_last: u64) -> Option<GrowPlan> {
        let entry_sectors = entries_bytes.div_ceil(ss);
        let last_usable = sectors.checked_sub(2 + entry_sectors)?;
        let align = (ALIGN / ss).max(1);
        // Gaining a whole MiB means a boundary lies beyond the old end, so there is always
        // one to end on.
        let aligned = ((last_usable + 1) / align * align).checked_sub(1)?;
        (aligned >= part_last.checked_add(align)?).then_some(GrowPlan {
            sectors,
            entry_sectors,
            last_usable,
            part_last: aligned,
        })
    }
}

/// The protective MBR at LBA 0 with its 0xEE entry covering the grown disk, when LBA 0 is
/// a plain protective MBR (that one entry, from LBA 1); a hybrid MBR is left alone.
fn grown_protective_mbr(f: &mut File, sectors: u64) -> Option<Vec<u8>> {
    let mut m: [u8; 512] = read_at(f, 0)?;
    if m[510..512] != [0x55, 0xAA] {
        return None;
    }
    let used: Vec<usize> = (0..4)
        .map(|i| 446 + 16 * i)
        .filter(|&at| m[at + 4] != 0)
        .collect();
    let [at] = used[..] else { return None };
    if m[at + 4] != 0xEE || u32_at(&m, at + 8) != 1 {
        return None;
    }
    let covered = u32::try_from(sectors - 1).unwrap_or(u32::MAX);
    m[at + 12..at + 16].copy_from_slice(&covered.to_le_bytes());
    Some(m.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_of_64_mib() {
        let g = Geometry::new(512, 64 << 20).unwrap();
        assert_eq!(g.first_usable, 34);
        assert_eq!(g.last_usable, 131072 - 34);
        assert_eq!(g.whole_disk(), Some((2048, 63 * 2048 - 1)));
        let g4k = Geometry::new(4096, 64 << 20).unwrap();
        assert_eq!(g4k.first_usable, 6);
        assert_eq!(g4k.whole_disk(), Some((256, 63 * 256 - 1)));
    }

    #[test]
    fn layout_refuses_tiny_disks() {
        assert_eq!(
            Geometry::new(512, 1 << 20).and_then(|g| g.whole_disk()),
            None
        );
        assert_eq!(Geometry::new(512, 0), None);
        // 1 MiB + 40 KiB: no whole aligned MiB, so the partition ends at the last usable LBA.
        let g = Geometry::new(512, (1 << 20) + 40 * 1024).unwrap();
        assert_eq!(g.whole_disk().map(|w| w.1), Some(g.last_usable));
    }

    #[test]
    fn grow_plan_aligns_the_end_to_a_mib() {
        // 512-byte sectors, 128 entries of 128 bytes: 32 sectors of entries.
        let p = GrowPlan::new(512, 256 << 11, 16384, 51199).unwrap();
        assert_eq!((p.entry_sectors, p.last_usable), (32, (256 << 11) - 34));
        assert_eq!(p.part_last, 255 * 2048 - 1);
        // 4096-byte sectors: a MiB is 256 of them, and 4 sectors of entries.
        let p = GrowPlan::new(4096, 256 << 8, 16384, 16 * 256 - 1).unwrap();
        assert_eq!((p.entry_sectors, p.last_usable), (4, (256 << 8) - 6));
        assert_eq!(p.part_last, 255 * 256 - 1);
    }

    #[test]
    fn grow_plan_wants_a_whole_mib_more() {
        let sectors = 64 << 11;
        let at_end = 63 * 2048 - 1;
        assert_eq!(GrowPlan::new(512, sectors, 16384, at_end), None);
        // 32 sectors more leave the partition 2047 short of a MiB more: not worth a new
        // table. One more, and the 64th MiB fits before the backup entries.
        assert_eq!(GrowPlan::new(512, sectors + 32, 16384, at_end), None);
        assert_eq!(
            GrowPlan::new(512, sectors + 33, 16384, at_end).map(|p| p.part_last),
            Some(64 * 2048 - 1)
        );
        // An end past the last boundary (a table that used the last usable LBA) only ever
        // gains less than a MiB.
        assert_eq!(GrowPlan::new(512, sectors, 16384, at_end + 100), None);
        assert_eq!(GrowPlan::new(512, 10, 16384, 5), None);
    }

    #[test]
    fn guid_byte_order() {
        assert_eq!(
            guid_to_disk(&LINUX_FS_TYPE),
            [
                0xAF, 0x3D, 0xC6, 0x0F, 0x83, 0x84, 0x72, 0x47, 0x8E, 0x79, 0x3D, 0x69, 0xD8, 0x47,
                0x7D, 0xE4
            ]
        );
        assert_eq!(
            format_guid(&LINUX_FS_TYPE),
            "0fc63daf-8483-4772-8e79-3d69d8477de4"
        );
    }
}
