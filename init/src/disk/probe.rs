//! Recognising a filesystem from its first bytes, and reading its label and UUID the way
//! blkid reports them, so `LABEL=` and `UUID=` specs match what users see on other systems.

use std::io::{Read, Seek, SeekFrom};

/// The filesystems ros boots from, mounts, or formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsType {
    /// ext2, ext3 or ext4: one superblock format, one kernel driver.
    Ext4,
    Squashfs,
    Erofs,
    Iso9660,
    Vfat,
    Swap,
}

impl FsType {
    /// The name mount(2) takes.
    pub fn as_str(self) -> &'static str {
        match self {
            FsType::Ext4 => "ext4",
            FsType::Squashfs => "squashfs",
            FsType::Erofs => "erofs",
            FsType::Iso9660 => "iso9660",
            FsType::Vfat => "vfat",
            FsType::Swap => "swap",
        }
    }
}

impl std::fmt::Display for FsType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`probe`] found on a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub fs: FsType,
    pub label: Option<String>,
    pub uuid: Option<String>,
}

/// Recognises the filesystem in `r` (a device or image, read from offset 0). `None` when none
/// of [`FsType`]'s formats is there or the device cannot be read.
pub fn probe<R: Read + Seek>(r: &mut R) -> Option<Probe> {
    // Order matters only where formats could overlap: a FAT boot sector is the most
    // permissive test, so the formats with strong magic numbers go first.
    probe_squashfs(r)
        .or_else(|| probe_ext(r))
        .or_else(|| probe_erofs(r))
        .or_else(|| probe_iso9660(r))
        .or_else(|| probe_swap(r))
        .or_else(|| probe_vfat(r))
}

/// Reads exactly `N` bytes at `offset`; `None` when the device is shorter or unreadable.
pub(crate) fn read_at<R: Read + Seek, const N: usize>(r: &mut R, offset: u64) -> Option<[u8; N]> {
    let mut buf = [0u8; N];
    r.seek(SeekFrom::Start(offset)).ok()?;
    r.read_exact(&mut buf).ok()?;
    Some(buf)
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A NUL-terminated (or NUL-padded) label; `None` when empty.
fn c_label(bytes: &[u8]) -> Option<String> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let s = String::from_utf8_lossy(&bytes[..end])
        .trim_end()
        .to_string();
    (!s.is_empty()).then_some(s)
}

/// A space-padded label (ISO 9660, FAT); `None` when empty.
fn padded_label(bytes: &[u8]) -> Option<String> {
    let s = String::from_utf8_lossy(bytes);
    let s = s.trim_end_matches([' ', '\0']).to_string();
    (!s.is_empty()).then_some(s)
}

/// A UUID in the byte order it is stored (ext4, erofs, swap), as 8-4-4-4-12 lowercase hex;
/// `None` for the all-zero UUID.
pub fn format_uuid(b: &[u8; 16]) -> Option<String> {
    if b.iter().all(|&x| x == 0) {
        return None;
    }
    let hex =
        |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
    Some(format!(
        "{}-{}-{}-{}-{}",
        hex(0..4),
        hex(4..6),
        hex(6..8),
        hex(8..10),
        hex(10..16)
    ))
}

fn probe_squashfs<R: Read + Seek>(r: &mut R) -> Option<Probe> {
    let magic: [u8; 4] = read_at(r, 0)?;
    (&magic == b"hsqs").then_some(Probe {
        fs: FsType::Squashfs,
        label: None,
        uuid: None,
    })
}

fn probe_ext<R: Read + Seek>(r: &mut R) -> Option<Probe> {
    // The superblock starts 1024 bytes in; s_magic at 0x38, s_uuid at 0x68,
    // s_volume_name at 0x78.
    let sb: [u8; 256] = read_at(r, 1024)?;
    if le16(&sb, 0x38) != 0xEF53 {
        return None;
    }
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&sb[0x68..0x78]);
    Some(Probe {
        fs: FsType::Ext4,
        label: c_label(&sb[0x78..0x88]),
        uuid: format_uuid(&uuid),
    })
}

fn probe_erofs<R: Read + Seek>(r: &mut R) -> Option<Probe> {
    // The superblock starts 1024 bytes in: magic at 0, uuid at 48, volume_name at 64.
    let sb: [u8; 80] = read_at(r, 1024)?;
    if le32(&sb, 0) != 0xE0F5_E1E2 {
        return None;
    }
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&sb[48..64]);
    Some(Probe {
        fs: FsType::Erofs,
        label: c_label(&sb[64..80]),
        uuid: format_uuid(&uuid),
    })
}

fn probe_iso9660<R: Read + Seek>(r: &mut R) -> Option<Probe> {
    // The primary volume descriptor is sector 16 of 2048 bytes: type 1, "CD001", version 1.
    let pvd: [u8; 2048] = read_at(r, 16 * 2048)?;
    if pvd[0] != 1 || &pvd[1..6] != b"CD001" {
        return None;
    }
    // blkid reports the volume creation time ("YYYYMMDDHHMMSScc" at 813) as the UUID,
    // which is what `UUID=` on an ISO refers to.
    let created = &pvd[813..829];
    let uuid =
        (created.iter().all(u8::is_ascii_digit) && created.iter().any(|&c| c != b'0')).then(|| {
            let s = String::from_utf8_lossy(created);
            format!(
                "{}-{}-{}-{}-{}-{}-{}",
                &s[0..4],
                &s[4..6],
                &s[6..8],
                &s[8..10],
                &s[10..12],
                &s[12..14],
                &s[14..16]
            )
        });
    Some(Probe {
        fs: FsType::Iso9660,
        label: padded_label(&pvd[40..72]),
        uuid,
    })
}

fn probe_swap<R: Read + Seek>(r: &mut R) -> Option<Probe> {
    // The signature ends the first page, whose size depends on the architecture that ran
    // mkswap. The header after the 1024 boot bytes: version, last_page, nr_badpages, uuid
    // (at 1036), volume_name (at 1052).
    for page in [4096u64, 8192, 16384, 65536] {
        let Some(sig) = read_at::<_, 10>(r, page - 10) else {
            continue;
        };
        if &sig != b"SWAPSPACE2" && &sig != b"SWAP-SPACE" {
            continue;
        }
        let hdr: [u8; 44] = read_at(r, 1024)?;
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&hdr[12..28]);
        return Some(Probe {
            fs: FsType::Swap,
            label: c_label(&hdr[28..44]),
            uuid: format_uuid(&uuid),
        });
    }
    None
}

fn probe_vfat<R: Read + Seek>(r: &mut R) -> Option<Probe> {
    let bs: [u8; 512] = read_at(r, 0)?;
    if bs[510] != 0x55 || bs[511] != 0xAA {
        return None;
    }
    // The extended BIOS parameter block sits at 0x24 on FAT12/16 and at 0x40 on FAT32;
    // the fs type string says which ("FAT12   ", "FAT16   ", "FAT32   ").
    let ebpb = if bs[0x52..0x57] == *b"FAT32" {
        0x40
    } else if bs[0x36..0x39] == *b"FAT" {
        0x24
    } else {
        return None;
    };
    // A sector size that is not a power of two from 512 to 4096 means this is not FAT.
    let sector = le16(&bs, 0x0B);
    if !(512..=4096).contains(&sector) || !sector.is_power_of_two() {
        return None;
    }
    // Boot signature 0x29: the serial number and label fields are present.
    if bs[ebpb + 2] != 0x29 {
        return Some(Probe {
            fs: FsType::Vfat,
            label: None,
            uuid: None,
        });
    }
    let serial = le32(&bs, ebpb + 3);
    let label = padded_label(&bs[ebpb + 7..ebpb + 18]).filter(|l| l != "NO NAME");
    Some(Probe {
        fs: FsType::Vfat,
        label,
        uuid: Some(format!("{:04X}-{:04X}", serial >> 16, serial & 0xFFFF)),
    })
}
