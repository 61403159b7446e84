//! The state partition: what a host keeps across reboots (DESIGN.md §4).
//!
//! Found by `ros.state.dev` (default `LABEL=ROS_STATE`; `none`: run from RAM, as the live ISO
//! does), waiting up to `ros.state.wait`
//! seconds for the device to appear. `ros.state.autoformat: [/dev/vda]` formats a listed
//! device only when its first MiB is zeros — never a disk with data — with a GPT holding
//! one ext4 partition, label `ROS_STATE`, spanning the disk. Mounted at [`STATE_MOUNT`],
//! its directories are bound over the persistent paths. With no state partition ros runs
//! from RAM and says so on the console.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::disk;

/// Where the state partition is mounted.
pub const STATE_MOUNT: &str = "/run/ros/state";
/// The persistent paths, bound from the same paths on the state partition.
pub const PERSISTENT: [&str; 6] = [
    "home",
    "opt",
    "var/lib/docker",
    "var/lib/ros",
    "var/log",
    "var/lib/system-docker",
];
/// The label of a state partition ros makes.
pub const STATE_LABEL: &str = "ROS_STATE";

/// `ros.state.*`.
#[derive(Clone, Debug)]
pub struct StateConfig {
    pub dev: String,
    pub wait: Duration,
    pub autoformat: Vec<String>,
    pub fstype: String,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            dev: format!("LABEL={STATE_LABEL}"),
            wait: Duration::from_secs(3),
            autoformat: Vec::new(),
            fstype: "ext4".into(),
        }
    }
}

/// What became of the state partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    Mounted {
        dev: PathBuf,
        formatted: bool,
    },
    /// Running from RAM; why.
    Ram(String),
}

fn mkdir(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
}

/// Finds (or makes, when allowed) the state partition, mounts it and binds the persistent
/// paths. Never fails: the worst case is running from RAM, said on the console.
pub fn setup(cfg: &StateConfig) -> State {
    // The live ISO: a disk's state partition is left alone (`ros install` may overwrite it).
    if cfg.dev == "none" {
        return State::Ram("ros.state.dev=none".into());
    }
    let sys = Path::new("/sys");
    let dev = Path::new("/dev");
    let deadline = Instant::now() + cfg.wait;
    let mut refused = BTreeSet::new();
    let found = loop {
        if let Ok(d) = disk::find(&cfg.dev, sys, dev, Instant::now()) {
            break Some((d, false));
        }
        if let Some(d) = autoformat(cfg, &mut refused) {
            break Some((d, true));
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let Some((dev, formatted)) = found else {
        let why = format!("no state partition ({}) within {:?}", cfg.dev, cfg.wait);
        return State::Ram(why);
    };
    // A fresh one spans its disk already; an old one may sit on a disk enlarged since.
    let grown = if formatted {
        None
    } else {
        grow_partition(sys, Path::new("/dev"), &dev)
    };
    if let Err(e) = mount_state(&dev, &cfg.fstype) {
        return State::Ram(format!(
            "cannot mount the state partition {}: {e}",
            dev.display()
        ));
    }
    // Also when an earlier boot grew the partition but not the file system (cut off).
    if grown.is_some() || ext4_smaller_than_device(&dev) {
        grow_filesystem(&dev, &cfg.fstype);
    }
    bind_persistent(Path::new(STATE_MOUNT));
    State::Mounted { dev, formatted }
}

/// Formats the first listed device that exists and is blank; its new partition. A device
/// found holding data (or unreadable) goes into `refused`: said once, not looked at again.
fn autoformat(cfg: &StateConfig, refused: &mut BTreeSet<String>) -> Option<PathBuf> {
    for d in &cfg.autoformat {
        let path = Path::new(d);
        if !path.exists() || refused.contains(d) {
            continue;
        }
        match disk::is_blank(path) {
            Ok(true) => {}
            Ok(false) => {
                refused.insert(d.clone());
                log::warn!(
                    "{d}: listed in ros.state.autoformat but not blank (its first MiB holds \
                     data): left alone"
                );
                continue;
            }
            Err(e) => {
                refused.insert(d.clone());
                log::error!("{d}: cannot read it: {e}");
                continue;
            }
        }
        log::info!("{d}: blank and listed in ros.state.autoformat: formatting as {STATE_LABEL}");
        match format(path) {
            Ok(part) => return Some(part),
            Err(e) => {
                refused.insert(d.clone());
                log::error!("{d}: formatting failed: {e}");
            }
        }
    }
    None
}

/// Writes the GPT with one partition spanning `disk` and makes the ext4 file system.
fn format(disk_path: &Path) -> io::Result<PathBuf> {
    disk::write_single_partition_gpt(
        disk_path,
        STATE_LABEL,
        disk::random_guid(),
        disk::random_guid(),
    )?;
    disk::reread_partitions(disk_path)?;
    let part = disk::partition_path(disk_path, 1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !part.exists() {
        if Instant::now() >= deadline {
            return Err(io::Error::other(format!(
                "{} did not appear after the partition table was written",
                part.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = tool("mkfs.ext4")
        .args(["-q", "-F", "-L", STATE_LABEL])
        .arg(&part)
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "mkfs.ext4 {}: {}",
            part.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(part)
}

/// Whether the ext file system on `dev` ends more than 1 MiB before the device does.
fn ext4_smaller_than_device(dev: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = fs::File::open(dev) else {
        return false;
    };
    let mut sb = [0u8; 1024];
    if f.seek(SeekFrom::Start(1024)).is_err() || f.read_exact(&mut sb).is_err() {
        return false;
    }
    let le32 = |o: usize| u64::from(u32::from_le_bytes([sb[o], sb[o + 1], sb[o + 2], sb[o + 3]]));
    if u16::from_le_bytes([sb[0x38], sb[0x39]]) != 0xEF53 {
        return false;
    }
    // s_blocks_count_hi counts only with the 64bit incompat feature.
    let hi = if le32(0x60) & 0x80 != 0 {
        le32(0x150)
    } else {
        0
    };
    let blocks = (hi << 32) | le32(0x04);
    let block_size = 1024u64 << le32(0x18).min(16);
    let Ok(dev_bytes) = f.seek(SeekFrom::End(0)) else {
        return false;
    };
    dev_bytes > blocks.saturating_mul(block_size) + (1 << 20)
}

/// Where a partition sits, as sysfs tells.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PartitionOf {
    /// The whole disk's node: `/dev/vda` for `/dev/vda1`.
    disk: PathBuf,
    /// 1-based, as in the GPT.
    index: u32,
    /// In 512-byte units whatever the disk's sector size, as sysfs counts.
    start_512: u64,
}

/// The disk `part` is a partition of, or `None` when it is a whole disk (or a device
/// mapper target, or unknown to sysfs). The node may be a symlink (`/dev/disk/by-label/…`).
fn partition_of(sys: &Path, dev: &Path, part: &Path) -> Option<PartitionOf> {
    let real = fs::canonicalize(part).unwrap_or_else(|_| part.to_path_buf());
    // sysfs spells a `/` in a device name (cciss/c0d0p1) as `!`.
    let name = real
        .strip_prefix(dev)
        .unwrap_or(&real)
        .to_string_lossy()
        .replace('/', "!");
    let class = sys.join("class/block").join(&name);
    let read = |file: &str| -> Option<u64> {
        fs::read_to_string(class.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let index = u32::try_from(read("partition")?).ok()?;
    let start_512 = read("start")?;
    // `class/block/vda1` links to `devices/…/vda/vda1`: its parent is the disk.
    let disk_dir = fs::canonicalize(class.join("..")).ok()?;
    let disk_name = disk_dir.file_name()?.to_string_lossy().replace('!', "/");
    Some(PartitionOf {
        disk: dev.join(disk_name),
        index,
        start_512,
    })
}

/// The old and new size in bytes of a state partition [`grow_partition`] grew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Grown {
    old: u64,
    new: u64,
}

/// On the first boot of a disk image on a bigger disk: grows the state partition `part`
/// to the end of its disk when it is the last partition there, and tells the kernel.
/// `Some` only when both happened, so the file system can follow. Failures are logged;
/// the partition keeps its size then.
fn grow_partition(sys: &Path, dev: &Path, part: &Path) -> Option<Grown> {
    let Some(p) = partition_of(sys, dev, part) else {
        log::debug!("{}: not a partition; not grown", part.display());
        return None;
    };
    let (old_last, new_last) = match disk::grow_last_partition(&p.disk, p.index) {
        Ok(Some(lbas)) => lbas,
        Ok(None) => return None,
        Err(e) => {
            log::warn!("state partition {} not grown: {e}", part.display());
            return None;
        }
    };
    let ss = match disk::logical_sector_size(&p.disk) {
        Ok(ss) => ss,
        Err(e) => {
            log::warn!("state partition grown on disk, but {e}; the kernel sees it after a reboot");
            return None;
        }
    };
    let start = p.start_512.saturating_mul(512) / ss;
    let bytes = |last: u64| (last + 1).saturating_sub(start).saturating_mul(ss);
    let grown = Grown {
        old: bytes(old_last),
        new: bytes(new_last),
    };
    let sectors = (new_last + 1).saturating_sub(start);
    if let Err(e) = disk::resize_partition_in_kernel(&p.disk, p.index, start, sectors, ss) {
        log::warn!(
            "state partition grown on disk to {} MiB, but the kernel keeps the old size until \
             a reboot: {e}",
            grown.new >> 20
        );
        return None;
    }
    log::info!(
        "state partition grown from {} MiB to {} MiB",
        grown.old >> 20,
        grown.new >> 20
    );
    Some(grown)
}

/// Grows the mounted state file system to fill its grown partition. Online (resize2fs on
/// the mounted ext4, the kernel's EXT4_IOC_RESIZE_FS) rather than offline: offline
/// resize2fs demands a forced `e2fsck -f` first, a full metadata read that delays the
/// boot, while online the kernel adds block groups in journaled transactions, so a cut-off
/// leaves a consistent file system, and it is in use meanwhile. cloud-init grows root the
/// same way.
fn grow_filesystem(part: &Path, fstype: &str) {
    if !fstype.starts_with("ext") {
        log::warn!(
            "{fstype} on {}: ros grows only ext4; file system left as it is",
            part.display()
        );
        return;
    }
    match tool("resize2fs").arg(part).output() {
        Ok(out) if out.status.success() => {
            log::info!("state file system grown to fill its partition");
        }
        Ok(out) => log::warn!(
            "resize2fs {}: {}: {}; the file system keeps its size",
            part.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => log::warn!("resize2fs not run: {e}; the file system keeps its size"),
    }
}

fn mount_state(dev: &Path, fstype: &str) -> io::Result<()> {
    if fstype.starts_with("ext") {
        // Preen: fixes what is safe to fix unattended, after a power cut say.
        match tool("e2fsck").arg("-p").arg(dev).status() {
            Ok(s) if s.code().is_some_and(|c| c <= 1) => {}
            Ok(s) => log::warn!("e2fsck -p {}: {s}; mounting anyway", dev.display()),
            Err(e) => log::warn!("e2fsck not run: {e}"),
        }
    }
    let target = Path::new(STATE_MOUNT);
    mkdir(target)?;
    mount(
        Some(dev),
        target,
        Some(fstype),
        MsFlags::MS_NOATIME,
        None::<&str>,
    )
    .map_err(io::Error::from)
}

fn bind_persistent(state: &Path) {
    for rel in PERSISTENT {
        let from = state.join(rel);
        let to = Path::new("/").join(rel);
        if let Err(e) = mkdir(&from).and_then(|_| mkdir(&to)) {
            log::error!("{}: {e}", to.display());
            continue;
        }
        if let Err(e) = mount(
            Some(&from),
            &to,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        ) {
            log::error!("bind {} on {}: {e}", from.display(), to.display());
        }
    }
}

/// At shutdown: unbinds the persistent paths and unmounts the state partition, or at least
/// remounts it read-only, so nothing written before is lost.
pub fn teardown() {
    let mounted = crate::early::mount_points();
    if !mounted.iter().any(|(p, _)| p == STATE_MOUNT) {
        return;
    }
    // Everything under the state mount or bound from it, deepest first.
    let mut points: Vec<String> = mounted
        .iter()
        .map(|(p, _)| p.clone())
        .filter(|p| {
            p == STATE_MOUNT
                || PERSISTENT
                    .iter()
                    .any(|r| p == &format!("/{r}") || p.starts_with(&format!("/{r}/")))
        })
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    points.dedup();
    // Read-only first: whatever still holds a file open, nothing more is written.
    let flags = MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    if let Err(e) = mount(None::<&str>, STATE_MOUNT, None::<&str>, flags, None::<&str>) {
        log::warn!("remount {STATE_MOUNT} read-only: {e}");
    }
    let mut busy = Vec::new();
    for p in &points {
        if let Err(e) = umount2(p.as_str(), MntFlags::empty()) {
            busy.push(format!("{p} ({e})"));
            let _ = umount2(p.as_str(), MntFlags::MNT_DETACH);
        }
    }
    nix::unistd::sync();
    if busy.is_empty() {
        log::info!("state partition unmounted");
    } else {
        log::warn!(
            "state partition read-only, still busy: {}; detached",
            busy.join(", ")
        );
    }
}

/// A file system tool run from PID 1, without PID 1's blocked signals.
fn tool(name: &str) -> Command {
    let mut cmd = Command::new(name);
    crate::sys::unblock_signals_in_child(&mut cmd);
    cmd
}

#[cfg(test)]
mod size_tests {
    use super::*;

    #[test]
    fn a_file_system_smaller_than_its_device_is_noticed() {
        let t = tempfile::tempdir().unwrap();
        let img = t.path().join("fs.img");
        let ok = Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(&img)
            .arg("16M")
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIP: mkfs.ext4 unavailable");
            return;
        }
        assert!(!ext4_smaller_than_device(&img));
        fs::OpenOptions::new()
            .write(true)
            .open(&img)
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        assert!(ext4_smaller_than_device(&img));
        assert!(!ext4_smaller_than_device(&t.path().join("absent")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sys/devices/virtual/block/<disk>/<part>/{partition,start}`, linked from
    /// `sys/class/block`, as the kernel lays them out; and `dev/<part>`.
    fn fake_partition(root: &Path, disk: &str, part: &str, index: u32, start: u64) {
        let disk_dir = root.join("sys/devices/virtual/block").join(disk);
        let part_dir = disk_dir.join(part);
        fs::create_dir_all(&part_dir).unwrap();
        fs::write(part_dir.join("partition"), format!("{index}\n")).unwrap();
        fs::write(part_dir.join("start"), format!("{start}\n")).unwrap();
        let class = root.join("sys/class/block");
        fs::create_dir_all(&class).unwrap();
        let rel = |name: &str| Path::new("../../devices/virtual/block").join(name);
        std::os::unix::fs::symlink(rel(&format!("{disk}/{part}")), class.join(part)).unwrap();
        if !class.join(disk).exists() {
            std::os::unix::fs::symlink(rel(disk), class.join(disk)).unwrap();
        }
        fs::create_dir_all(root.join("dev")).unwrap();
        fs::write(root.join("dev").join(part), "").unwrap();
    }

    #[test]
    fn partition_of_finds_the_disk_index_and_start() {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        let (sys, dev) = (root.join("sys"), root.join("dev"));
        fake_partition(&root, "vda", "vda5", 5, 1_067_008);
        fake_partition(&root, "nvme0n1", "nvme0n1p2", 2, 2048);
        assert_eq!(
            partition_of(&sys, &dev, &dev.join("vda5")),
            Some(PartitionOf {
                disk: dev.join("vda"),
                index: 5,
                start_512: 1_067_008
            })
        );
        assert_eq!(
            partition_of(&sys, &dev, &dev.join("nvme0n1p2")).map(|p| (p.disk, p.index)),
            Some((dev.join("nvme0n1"), 2))
        );
        // Through a by-label link, as `ros.state.dev=/dev/disk/by-label/…` names it.
        fs::create_dir_all(dev.join("disk/by-label")).unwrap();
        std::os::unix::fs::symlink("../../vda5", dev.join("disk/by-label/ROS_STATE")).unwrap();
        assert_eq!(
            partition_of(&sys, &dev, &dev.join("disk/by-label/ROS_STATE")).map(|p| p.index),
            Some(5)
        );
        // A whole disk has no `partition` file; an unknown device no sysfs entry.
        assert_eq!(partition_of(&sys, &dev, &dev.join("vda")), None);
        assert_eq!(partition_of(&sys, &dev, &dev.join("sdz1")), None);
    }
}
