//! The ros disk (DESIGN.md §8): a GPT with
//!
//! | # | name        | type        | size                   | holds                                   |
//! |---|-------------|-------------|------------------------|-----------------------------------------|
//! | 1 | `BIOS-boot` | BIOS boot   | 1 MiB                  | GRUB's core image (BIOS)                |
//! | 2 | `ROS_EFI`   | EFI system  | 62 MiB                 | FAT: `EFI/BOOT/BOOTX64.EFI`, `boot/grub/{grub.cfg,grubenv}` |
//! | 3 | `ROS_A`     | Linux fs    | [`SLOT_BYTES`]         | ext4: `vmlinuz`, `initrd`, `images.sqfs` |
//! | 4 | `ROS_B`     | Linux fs    | [`SLOT_BYTES`]         | the same, written by an upgrade          |
//! | 5 | `ROS_STATE` | Linux fs    | the rest (grown at boot) | ext4: the state partition              |
//!
//! GRUB boots the slot grubenv's `ros_slot` names (`A` when unset). The partitions' file
//! system labels equal their names. Image-build writes this layout into disk images and
//! `ros install` onto disks; both use [`plan`].

use super::gpt::{NewPartition, LINUX_FS_TYPE};

/// 21686148-6449-6E6F-744E-656564454649 ("Hah!IdontNeedEFI").
pub const BIOS_BOOT_TYPE: [u8; 16] = [
    0x21, 0x68, 0x61, 0x48, 0x64, 0x49, 0x6E, 0x6F, 0x74, 0x4E, 0x65, 0x65, 0x64, 0x45, 0x46, 0x49,
];
/// C12A7328-F81F-11D2-BA4B-00A0C93EC93B, the EFI system partition.
pub const ESP_TYPE: [u8; 16] = [
    0xC1, 0x2A, 0x73, 0x28, 0xF8, 0x1F, 0x11, 0xD2, 0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B,
];

const MIB: u64 = 1 << 20;
/// The first partition starts at 1 MiB, as every partitioning tool does.
const START: u64 = MIB;
pub const BIOS_BOOT_BYTES: u64 = MIB;
pub const EFI_BYTES: u64 = 62 * MIB;
/// One boot slot: a kernel (~8 MiB), an initrd (~20 MiB) and the system images (~75 MiB),
/// with room for an upgrade to grow.
pub const SLOT_BYTES: u64 = 512 * MIB;
/// The smallest state partition worth making.
pub const MIN_STATE_BYTES: u64 = 64 * MIB;
/// What the layout needs at least: the partitions up to `ROS_B`, a minimal state partition,
/// and 1 MiB for the backup GPT.
pub const MIN_DISK_BYTES: u64 =
    START + BIOS_BOOT_BYTES + EFI_BYTES + 2 * SLOT_BYTES + MIN_STATE_BYTES + MIB;

/// The partition names, in table order (the index in the table is the position + 1).
pub const NAMES: [&str; 5] = ["BIOS-boot", "ROS_EFI", "ROS_A", "ROS_B", "ROS_STATE"];

/// The 1-based index of a partition of the layout by name.
pub fn index_of(name: &str) -> Option<u32> {
    NAMES
        .iter()
        .position(|n| *n == name)
        .and_then(|i| u32::try_from(i + 1).ok())
}

/// The partitions of the ros layout on a disk of `disk_bytes` with 512-byte sectors, with
/// partition GUIDs from `guid(index)`. `None` when the disk is smaller than
/// [`MIN_DISK_BYTES`]. The state partition ends on the last 1 MiB boundary before the
/// backup GPT.
pub fn plan(disk_bytes: u64, guid: impl Fn(u32) -> [u8; 16]) -> Option<Vec<NewPartition>> {
    const SS: u64 = 512;
    if disk_bytes < MIN_DISK_BYTES {
        return None;
    }
    // The backup GPT takes the last 33 sectors; the state partition stops at the MiB before.
    let end = (disk_bytes - 33 * SS) / MIB * MIB;
    let sizes = [
        BIOS_BOOT_BYTES,
        EFI_BYTES,
        SLOT_BYTES,
        SLOT_BYTES,
        end - (START + BIOS_BOOT_BYTES + EFI_BYTES + 2 * SLOT_BYTES),
    ];
    let types = [
        BIOS_BOOT_TYPE,
        ESP_TYPE,
        LINUX_FS_TYPE,
        LINUX_FS_TYPE,
        LINUX_FS_TYPE,
    ];
    let mut at = START;
    let mut parts = Vec::new();
    for (i, ((name, size), type_guid)) in NAMES.iter().zip(sizes).zip(types).enumerate() {
        let index = u32::try_from(i + 1).ok()?;
        parts.push(NewPartition {
            name: (*name).to_string(),
            type_guid,
            part_guid: guid(index),
            first_lba: at / SS,
            last_lba: (at + size) / SS - 1,
        });
        at += size;
    }
    Some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_of_two_gib() {
        let parts = plan(2 << 30, |i| [i as u8; 16]).unwrap();
        let spans: Vec<(&str, u64, u64)> = parts
            .iter()
            .map(|p| (p.name.as_str(), p.first_lba, p.last_lba))
            .collect();
        assert_eq!(
            spans,
            [
                ("BIOS-boot", 2048, 4095),
                ("ROS_EFI", 4096, 131071),
                ("ROS_A", 131072, 1179647),
                ("ROS_B", 1179648, 2228223),
                // 2 GiB is 4194304 sectors; the backup GPT ends it, the state stops at the MiB.
                ("ROS_STATE", 2228224, 4192255),
            ]
        );
        assert_eq!(parts[4].part_guid, [5; 16]);
        assert_eq!(index_of("ROS_B"), Some(4));
        assert_eq!(index_of("nope"), None);
    }

    #[test]
    fn plan_refuses_small_disks() {
        assert!(plan(MIN_DISK_BYTES - 1, |_| [0; 16]).is_none());
        let p = plan(MIN_DISK_BYTES, |_| [0; 16]).unwrap();
        assert!(p[4].last_lba >= p[4].first_lba + MIN_STATE_BYTES / 512 - 1 - 2048);
    }
}
