//! The state partition: what a host keeps across reboots (DESIGN.md §4).
//!
//! Found by `ros.state.dev` (default `LABEL=ROS_STATE`), waiting up to `ros.state.wait`
//! seconds for the device to appear. `ros.state.autoformat: [/dev/vda]` formats a listed
//! device only when its first MiB is zeros — never a disk with data — with a GPT holding
//! one ext4 partition, label `ROS_STATE`, spanning the disk. Mounted at [`STATE_MOUNT`],
//! its directories are bound over the persistent paths. With no state partition ros runs
//! from RAM and says so on the console.

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
    let sys = Path::new("/sys");
    let dev = Path::new("/dev");
    let deadline = Instant::now() + cfg.wait;
    let found = loop {
        if let Ok(d) = disk::find(&cfg.dev, sys, dev, Instant::now()) {
            break Some((d, false));
        }
        if let Some(d) = autoformat(cfg) {
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
    if let Err(e) = mount_state(&dev, &cfg.fstype) {
        return State::Ram(format!(
            "cannot mount the state partition {}: {e}",
            dev.display()
        ));
    }
    bind_persistent(Path::new(STATE_MOUNT));
    State::Mounted { dev, formatted }
}

/// Formats the first listed device that exists and is blank; its new partition.
fn autoformat(cfg: &StateConfig) -> Option<PathBuf> {
    for d in &cfg.autoformat {
        let path = Path::new(d);
        if !path.exists() {
            continue;
        }
        match disk::is_blank(path) {
            Ok(true) => {}
            Ok(false) => {
                log::warn!(
                    "{d}: listed in ros.state.autoformat but not blank (its first MiB holds \
                     data): left alone"
                );
                continue;
            }
            Err(e) => {
                log::error!("{d}: cannot read it: {e}");
                continue;
            }
        }
        log::info!("{d}: blank and listed in ros.state.autoformat: formatting as {STATE_LABEL}");
        match format(path) {
            Ok(part) => return Some(part),
            Err(e) => log::error!("{d}: formatting failed: {e}"),
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
    let out = Command::new("mkfs.ext4")
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

fn mount_state(dev: &Path, fstype: &str) -> io::Result<()> {
    if fstype.starts_with("ext") {
        // Preen: fixes what is safe to fix unattended, after a power cut say.
        match Command::new("e2fsck").arg("-p").arg(dev).status() {
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
