//! Compressed swap in RAM: a zram device used as swap, sized by `ros.zram`
//! ([`ZramSize`]: by default half the memory on a machine with less than 512 MiB).
//!
//! On a small machine the engines' programs, heaps and the tmpfs root do not all fit in
//! memory at once, and without swap the kernel can only drop program pages and read them
//! in again (from the images, over and over) or kill. Swapped to zram, the cold pages of
//! every process and of the tmpfs root are kept compressed (2.2:1 measured at `-m 160`).
//! Set up by PID 1 once the system modules are loaded, before any service starts.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use ros_cloud_config::load::Loaded;
use ros_cloud_config::types::ZramSize;

const DEVICE: &str = "/dev/zram0";
const SYSFS: &str = "/sys/block/zram0";
/// Above a swap on a disk (`mounts:`) given no `pri=`, which the kernel makes negative.
const PRIORITY: u16 = 100;

/// The setting in the config: `ros.zram` (validated config holds it as text).
pub fn setting(loaded: &Loaded) -> Result<ZramSize, String> {
    loaded
        .ros_str("zram")
        .map_or(Ok(ZramSize::Auto), ZramSize::parse)
}

/// Sets up the swap `ros.zram` asks for on a machine with `mem_bytes` of memory; says on
/// the console why not when the setting is bad (it falls back to `auto`) or, unless it
/// was `auto`, when the swap cannot be made.
pub fn setup(loaded: &Loaded, mem_bytes: u64, load_module: impl FnOnce()) {
    let mut size = setting(loaded).unwrap_or_else(|e| {
        crate::boot::console(&format!("ros: ros.zram: {e}; using auto"));
        ZramSize::Auto
    });
    let bytes = size.checked_bytes(mem_bytes).unwrap_or_else(|e| {
        crate::boot::console(&format!("ros: ros.zram: {e}; using auto"));
        size = ZramSize::Auto;
        size.bytes(mem_bytes)
    });
    let mem_mib = mem_bytes >> 20;
    let Some(bytes) = bytes else {
        log::info!("zram swap: none ({mem_mib} MiB of memory, ros.zram {size:?})");
        return;
    };
    if swaps().iter().any(|s| s == DEVICE) {
        log::info!("zram swap: {DEVICE} is in use already");
        return;
    }
    if !Path::new(SYSFS).exists() {
        load_module();
    }
    match enable(bytes) {
        Ok(()) => log::info!(
            "zram swap: {} MiB on {DEVICE} ({mem_mib} MiB of memory)",
            bytes >> 20
        ),
        Err(e) => {
            let line = format!("ros: ros.zram: a swap of {} MiB: {e}", bytes >> 20);
            if size == ZramSize::Auto {
                log::warn!("{line}");
            } else {
                crate::boot::console(&line);
            }
        }
    }
}

/// The devices and files in use as swap (`/proc/swaps`).
fn swaps() -> Vec<String> {
    fs::read_to_string("/proc/swaps")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

fn enable(bytes: u64) -> Result<(), String> {
    if !Path::new(SYSFS).exists() {
        return Err(format!("no {SYSFS} (the zram module did not load)"));
    }
    // /dev/urandom: the label's UUID is no secret, and this never waits for entropy.
    let mut uuid = [0u8; 16];
    if let Ok(mut f) = fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut uuid);
    }
    let header = swap_header(bytes, page_size(), uuid).ok_or("fewer than ten pages")?;
    // A device set up before (and not swap, see the caller) is reset to take a new size.
    let disksize = format!("{SYSFS}/disksize");
    if fs::read_to_string(&disksize).is_ok_and(|s| s.trim() != "0") {
        fs::write(format!("{SYSFS}/reset"), "1").map_err(|e| {
            format!("{DEVICE} is set up already and cannot be reset ({SYSFS}/reset: {e})")
        })?;
    }
    fs::write(&disksize, bytes.to_string()).map_err(|e| format!("{disksize}: {e}"))?;
    fs::OpenOptions::new()
        .write(true)
        .open(DEVICE)
        .and_then(|mut f| f.write_all(&header).and_then(|()| f.sync_all()))
        .map_err(|e| format!("{DEVICE}: {e}"))?;
    crate::sys::swapon(c"/dev/zram0", PRIORITY).map_err(|e| format!("swapon {DEVICE}: {e}"))
}

fn page_size() -> usize {
    use nix::unistd::{sysconf, SysconfVar};
    match sysconf(SysconfVar::PAGE_SIZE) {
        Ok(Some(n)) if n > 0 => n as usize,
        _ => 4096,
    }
}

/// The first page of a swap area of `bytes` (what mkswap writes): the version-1 header after
/// 1024 bytes of boot block, and the `SWAPSPACE2` signature ending the page. `None` when
/// the area holds fewer than ten pages.
pub fn swap_header(bytes: u64, page: usize, uuid: [u8; 16]) -> Option<Vec<u8>> {
    let pages = bytes / page as u64;
    if pages < 10 {
        return None;
    }
    let last_page = u32::try_from(pages - 1).unwrap_or(u32::MAX);
    let mut h = vec![0u8; page];
    h[1024..1028].copy_from_slice(&1u32.to_ne_bytes()); // version
    h[1028..1032].copy_from_slice(&last_page.to_ne_bytes());
    // nr_badpages stays 0
    let mut uuid = uuid;
    uuid[6] = (uuid[6] & 0x0f) | 0x40; // version 4 (random)
    uuid[8] = (uuid[8] & 0x3f) | 0x80; // RFC 4122 variant
    h[1036..1052].copy_from_slice(&uuid);
    h[1052..1056].copy_from_slice(b"zram"); // volume label
    h[page - 10..].copy_from_slice(b"SWAPSPACE2");
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_swap_header_is_mkswaps() {
        let h = swap_header(64 << 20, 4096, [0xff; 16]).unwrap();
        assert_eq!(h.len(), 4096);
        assert_eq!(&h[4086..], b"SWAPSPACE2");
        assert_eq!(u32::from_ne_bytes(h[1024..1028].try_into().unwrap()), 1);
        assert_eq!(
            u32::from_ne_bytes(h[1028..1032].try_into().unwrap()),
            (64 << 20) / 4096 - 1
        );
        assert_eq!(&h[1032..1036], &[0; 4]);
        assert_eq!(h[1042], 0x4f);
        assert_eq!(h[1044], 0xbf);
        assert_eq!(&h[1052..1056], b"zram");
        assert!(h[..1024].iter().all(|&b| b == 0));
        assert!(swap_header(9 * 4096, 4096, [0; 16]).is_none());
    }

    #[test]
    fn the_setting_is_the_validated_text() {
        let loaded = |v: &str| Loaded {
            value: serde_json::json!({"ros": {"zram": v}}),
            ..Loaded::default()
        };
        assert_eq!(setting(&Loaded::default()), Ok(ZramSize::Auto));
        assert_eq!(setting(&loaded("64M")), Ok(ZramSize::Bytes(64 << 20)));
        assert_eq!(setting(&loaded("false")), Ok(ZramSize::Off));
        assert_eq!(setting(&loaded("true")), Ok(ZramSize::Percent(50)));
        assert!(setting(&loaded("lots")).is_err());
    }
}
