//! GRUB for the ros disk and the live ISO: the core images (`grub-mkimage`, BIOS and UEFI),
//! the boot sector and core image patched as `grub-bios-setup` would for a BIOS-boot
//! partition, `grub.cfg` for the disk and for the ISO, and the grubenv block.
//!
//! One `grub.cfg` on `ROS_EFI` serves BIOS and UEFI. It reads `ros_slot` (`A` or `B`) and
//! `ros_cmdline` (extra kernel arguments) from the grubenv beside it and boots that slot of
//! the disk GRUB itself came from.

use std::path::Path;
use std::process::Command;

use super::{tool, DiskError};

/// What the core images embed: every command the configs use, the file systems they read,
/// so no module directory is needed on disk.
const MODULES: &[&str] = &[
    "part_gpt",
    "part_msdos",
    "fat",
    "ext2",
    "iso9660",
    "normal",
    "configfile",
    "loadenv",
    "search",
    "search_label",
    "search_fs_uuid",
    "regexp",
    "linux",
    "echo",
    "test",
    "serial",
    "terminal",
    "gzio",
    "sleep",
    "reboot",
    "halt",
    "true",
];
const BIOS_MODULES: &[&str] = &["biosdisk"];
const EFI_MODULES: &[&str] = &["efi_gop", "all_video"];

/// Where GRUB's i386-pc files are (grub-pc-bin).
pub const I386_PC: &str = "/usr/lib/grub/i386-pc";
/// Where GRUB's x86_64-efi files are (grub-efi-amd64-bin).
pub const X86_64_EFI: &str = "/usr/lib/grub/x86_64-efi";

/// The config both core images embed: find `ROS_EFI` and read its `grub.cfg`.
pub const EARLY_CFG: &str = "\
search --no-floppy --label ROS_EFI --set root
set prefix=($root)/boot/grub
configfile $prefix/grub.cfg
";

/// The serial console and the first screen both show GRUB, as they show the kernel.
const CONSOLES: &str = "\
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
";

/// The kernel arguments every boot gets; `extra` follows them.
pub fn kernel_args(images: &str, extra: &str) -> String {
    let mut a = format!("ros.images={images} console=tty0 console=ttyS0,115200n8 quiet panic=10");
    if !extra.is_empty() {
        a.push(' ');
        a.push_str(extra);
    }
    a
}

/// `grub.cfg` of `ROS_EFI`.
pub fn disk_cfg(version: &str) -> String {
    format!(
        "# ros {version}: boots the slot grubenv names (ros_slot=A|B) with ros_cmdline added.
{CONSOLES}set timeout_style=menu
set timeout=1
load_env -f $prefix/grubenv
if [ \"$ros_slot\" != B ]; then set ros_slot=A; fi
if [ \"$ros_slot\" = A ]; then set other=B; else set other=A; fi
# The slots are on the disk GRUB came from: ROS_A is its 3rd partition, ROS_B its 4th.
regexp --set=1:ros_disk '^([^,]+),' \"$root\"
function ros_boot {{
  if [ \"$1\" = A ]; then set part=gpt3; else set part=gpt4; fi
  linux ($ros_disk,$part)/vmlinuz {args}
  initrd ($ros_disk,$part)/initrd
}}
menuentry \"ros {version} (slot $ros_slot)\" {{
  ros_boot $ros_slot
}}
menuentry \"ros (slot $other)\" {{
  ros_boot $other
}}
",
        args = kernel_args("LABEL=ROS_$1", "$ros_cmdline"),
    )
}

/// `grub.cfg` of the live ISO: a root shell on the local consoles (physical access), so
/// `ros install` can be run; it runs from RAM and leaves every disk's state partition alone
/// (`ros install` may be about to overwrite it).
pub fn live_cfg(version: &str, label: &str) -> String {
    format!(
        "# ros {version}, live
{CONSOLES}set timeout_style=menu
set timeout=1
menuentry \"ros {version} live\" {{
  linux /vmlinuz {args}
  initrd /initrd
}}
",
        args = kernel_args(
            &format!("LABEL={label}"),
            "ros.autologin=ttyS0,tty1 ros.state.dev=none"
        ),
    )
}

/// A grubenv block: 1024 bytes, `#` padded, as `grub-editenv` writes it.
pub fn grubenv(vars: &[(&str, &str)]) -> Vec<u8> {
    let mut b = b"# GRUB Environment Block\n".to_vec();
    for (k, v) in vars {
        b.extend_from_slice(format!("{k}={v}\n").as_bytes());
    }
    b.resize(1024.max(b.len()), b'#');
    b
}

/// Builds a core image with `grub-mkimage` (deterministic: same modules, same bytes).
pub fn mkimage(format: &str, dir: &str, out: &Path, early_cfg: &Path) -> Result<(), DiskError> {
    let extra = if format == "i386-pc" {
        BIOS_MODULES
    } else {
        EFI_MODULES
    };
    let mut cmd = Command::new("grub-mkimage");
    cmd.args(["-O", format, "-d", dir, "-p", "/boot/grub", "-c"])
        .arg(early_cfg)
        .arg("-o")
        .arg(out)
        .args(MODULES)
        .args(extra);
    tool::run(&mut cmd, "grub-mkimage (grub-pc-bin, grub-efi-amd64-bin)")
}

/// Offsets in `boot.img` (grub-core/boot/i386/pc/boot.S).
const KERNEL_SECTOR: usize = 0x5c;
const BOOT_DRIVE_CHECK: usize = 0x66;
/// The blocklist at the end of `diskboot.img`, the core image's first sector: a u64 start
/// sector and a u16 sector count.
const BLOCKLIST: usize = 0x200 - 12;

/// The 440 bytes of boot code for the protective MBR: `boot.img` loading the core image
/// from `core_lba`, with the boot-drive check off (BIOSes that pass a wrong drive number),
/// as `grub-bios-setup` does for a hard disk.
pub fn mbr_boot_code(boot_img: &[u8], core_lba: u64) -> Result<Vec<u8>, DiskError> {
    if boot_img.len() != 512 {
        return Err(DiskError::Grub(format!(
            "boot.img is {} bytes, not 512",
            boot_img.len()
        )));
    }
    let mut b = boot_img[..440].to_vec();
    b[KERNEL_SECTOR..KERNEL_SECTOR + 8].copy_from_slice(&core_lba.to_le_bytes());
    b[BOOT_DRIVE_CHECK] = 0x90;
    b[BOOT_DRIVE_CHECK + 1] = 0x90;
    Ok(b)
}

/// The core image padded to whole sectors, its blocklist pointing at the sectors after
/// the first, which is at `core_lba`.
pub fn place_core(core: &[u8], core_lba: u64, room: u64) -> Result<Vec<u8>, DiskError> {
    let sectors = core.len().div_ceil(512);
    if sectors < 2 || sectors as u64 * 512 > room {
        return Err(DiskError::Grub(format!(
            "the core image ({} bytes) does not fit its {room}-byte partition",
            core.len()
        )));
    }
    let mut c = core.to_vec();
    c.resize(sectors * 512, 0);
    c[BLOCKLIST..BLOCKLIST + 8].copy_from_slice(&(core_lba + 1).to_le_bytes());
    let rest = u16::try_from(sectors - 1)
        .map_err(|_| DiskError::Grub("the core image is too large".into()))?;
    c[BLOCKLIST + 8..BLOCKLIST + 10].copy_from_slice(&rest.to_le_bytes());
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grubenv_is_one_padded_kib() {
        let e = grubenv(&[("ros_slot", "A")]);
        assert_eq!(e.len(), 1024);
        assert!(e.starts_with(b"# GRUB Environment Block\nros_slot=A\n#"));
        assert!(e[40..].iter().all(|&b| b == b'#'));
    }

    #[test]
    fn boot_code_points_at_the_core() {
        let mut img = vec![0u8; 512];
        img[BOOT_DRIVE_CHECK] = 0x74;
        let b = mbr_boot_code(&img, 2048).unwrap();
        assert_eq!(b.len(), 440);
        assert_eq!(&b[0x5c..0x64], &2048u64.to_le_bytes());
        assert_eq!(&b[0x66..0x68], &[0x90, 0x90]);
        assert!(mbr_boot_code(&img[..100], 2048).is_err());
    }

    #[test]
    fn core_blocklist_covers_the_rest() {
        let core = vec![1u8; 3 * 512 + 7];
        let c = place_core(&core, 2048, 1 << 20).unwrap();
        assert_eq!(c.len(), 4 * 512);
        assert_eq!(&c[500..508], &2049u64.to_le_bytes());
        assert_eq!(&c[508..510], &3u16.to_le_bytes());
        assert!(place_core(&core, 2048, 1024).is_err());
    }

    #[test]
    fn configs_name_the_slots() {
        let d = disk_cfg("1.2.3");
        assert!(d.contains("load_env -f $prefix/grubenv"));
        assert!(d.contains("linux ($ros_disk,$part)/vmlinuz ros.images=LABEL=ROS_$1 "));
        assert!(d.contains("panic=10 $ros_cmdline"));
        let l = live_cfg("1.2.3", "ROS_LIVE");
        assert!(l.contains("ros.images=LABEL=ROS_LIVE"));
        assert!(l.contains("ros.autologin=ttyS0,tty1"));
    }
}
