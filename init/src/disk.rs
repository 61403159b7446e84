//! Block devices as PID 1 sees them before udev: listing them from sysfs, recognising
//! filesystems and GPT partitions from raw bytes, waiting for `LABEL=`/`UUID=`/`PARTLABEL=`
//! specs, writing GPTs (the ros disk layout, the one-partition GPT of
//! `ros.state.autoformat`), growing the last GPT
//! partition of an enlarged disk and telling the kernel, and loop devices.
//!
//! Not here: mounting, mkfs, growing filesystems. Every root (`/sys`, `/dev`) is a parameter
//! so the logic is tested on image files in a tempdir.

mod gpt;
pub mod layout;
mod loopdev;
mod probe;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use gpt::{
    format_guid, gpt_partition_names, gpt_partitions, grow_last_partition, guid_from_disk,
    guid_to_disk, write_single_partition_gpt, write_table, GptPartition, NewPartition,
    LINUX_FS_TYPE,
};
pub use loopdev::{loop_attach, LoopDevice};
pub use probe::{format_uuid, probe, FsType, Probe};

/// How often [`find`] looks again while it waits for a device.
const POLL: Duration = Duration::from_millis(50);
/// How much of each end of a device must be zeros for it to count as blank.
const BLANK_SPAN: u64 = 1 << 20;

/// What went wrong on a device. The `io::Result`s of this module carry one of these inside
/// (see [`disk_error`]), so their messages name the device.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("{op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is not blank (its first or last MiB holds data); refusing to overwrite it", path.display())]
    NotBlank { path: PathBuf },
    #[error("{} is too small for a partition table and a partition ({size} bytes)", path.display())]
    TooSmall { path: PathBuf, size: u64 },
    #[error("{} has no valid primary GPT", path.display())]
    NoGpt { path: PathBuf },
    #[error("{} has no partition {index}", path.display())]
    NoPartition { path: PathBuf, index: u32 },
}

impl From<DiskError> for io::Error {
    fn from(e: DiskError) -> io::Error {
        let kind = match &e {
            DiskError::Io { source, .. } => source.kind(),
            DiskError::NotBlank { .. }
            | DiskError::TooSmall { .. }
            | DiskError::NoPartition { .. } => io::ErrorKind::InvalidInput,
            DiskError::NoGpt { .. } => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}

/// The [`DiskError`] inside an error returned by this module, if there is one.
pub fn disk_error(e: &io::Error) -> Option<&DiskError> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<DiskError>())
}

/// Why [`find`] gave up.
#[derive(Debug, thiserror::Error)]
pub enum FindError {
    #[error(
        "device spec {spec:?} not understood (use LABEL=, UUID=, PARTLABEL=, PARTUUID= or /dev/…)"
    )]
    BadSpec { spec: String },
    #[error("no device matching {spec} appeared within {:.1}s; seen: {}", waited.as_secs_f64(), if seen.is_empty() { "no block devices".to_string() } else { seen.join(", ") })]
    Timeout {
        spec: String,
        waited: Duration,
        seen: Vec<String>,
    },
}

/// One entry of `/sys/class/block`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDev {
    /// `vda`, `vda1`, `nvme0n1p1`.
    pub name: String,
    /// `/dev/vda`.
    pub path: PathBuf,
    pub size_bytes: u64,
    pub partition: bool,
    pub removable: bool,
    pub read_only: bool,
}

fn read_sys(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file))
        .ok()
        .map(|s| s.trim().to_string())
}

/// The block devices under `<sys>/class/block`, sorted by name, with their nodes under
/// `dev`. Leaves out RAM disks, zram and unbound (zero-size) loop devices.
pub fn list_block_devices(sys: &Path, dev: &Path) -> Vec<BlockDev> {
    let class = sys.join("class/block");
    let entries = match std::fs::read_dir(&class) {
        Ok(entries) => entries,
        Err(e) => {
            log::debug!("reading {}: {e}", class.display());
            return Vec::new();
        }
    };
    let mut devs: Vec<BlockDev> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let dir = entry.path();
            let sectors: u64 = read_sys(&dir, "size")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let skip = name.starts_with("ram")
                || name.starts_with("zram")
                || (name.starts_with("loop") && sectors == 0);
            (!skip).then(|| BlockDev {
                // sysfs spells a `/` in a device name (cciss/c0d0) as `!`.
                path: dev.join(name.replace('!', "/")),
                size_bytes: sectors.saturating_mul(512),
                partition: dir.join("partition").exists(),
                removable: read_sys(&dir, "removable").as_deref() == Some("1"),
                read_only: read_sys(&dir, "ro").as_deref() == Some("1"),
                name,
            })
        })
        .collect();
    devs.sort_by(|a, b| a.name.cmp(&b.name));
    devs
}

/// Whether `path` reads as zeros in its first MiB and its last MiB (all of it when smaller).
/// The end counts because it holds the backup GPT, from which tools restore a table whose
/// primary copy was wiped.
pub fn is_blank(path: &Path) -> io::Result<bool> {
    let err = |op| {
        move |source| {
            io::Error::from(DiskError::Io {
                op,
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let mut f = File::open(path).map_err(err("opening"))?;
    let size = f
        .seek(SeekFrom::End(0))
        .map_err(err("finding the size of"))?;
    is_blank_file(&mut f, size).map_err(err("reading"))
}

fn is_blank_file(f: &mut File, size: u64) -> io::Result<bool> {
    let head = size.min(BLANK_SPAN);
    let tail_start = size.saturating_sub(BLANK_SPAN).max(head);
    Ok(is_zero(f, 0, head)? && is_zero(f, tail_start, size - tail_start)?)
}

fn is_zero(f: &mut File, offset: u64, len: u64) -> io::Result<bool> {
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        f.read_exact(&mut buf[..want])?;
        if buf[..want].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        left -= want as u64;
    }
    Ok(true)
}

/// A random (version 4) GUID in text-form byte order, for [`write_single_partition_gpt`].
/// Reads `/dev/urandom`, or getrandom(2) when there is no `/dev` yet.
pub fn random_guid() -> [u8; 16] {
    let mut g = [0u8; 16];
    let filled = File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut g))
        .or_else(|_| crate::sys::getrandom(&mut g));
    if let Err(e) = filled {
        // Not reachable on a kernel ros runs on; still, PID 1 does not stop here. A GUID
        // only has to be unique among this machine's disks.
        log::warn!("no random bytes for a GUID ({e}); deriving one from the clock");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        g = (nanos ^ (u128::from(std::process::id()) << 96)).to_le_bytes();
    }
    g[6] = (g[6] & 0x0F) | 0x40;
    g[8] = (g[8] & 0x3F) | 0x80;
    g
}

/// The node of partition `n` of `disk`: `vda` → `vda1`; a name ending in a digit takes a
/// `p` (`nvme0n1p1`, `mmcblk0p1`, `loop0p1`).
pub fn partition_path(disk: &Path, n: u32) -> PathBuf {
    let name = disk
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sep = if name.ends_with(|c: char| c.is_ascii_digit()) {
        "p"
    } else {
        ""
    };
    disk.with_file_name(format!("{name}{sep}{n}"))
}

/// Asks the kernel to re-read the partition table of the whole disk `path` (`BLKRRPART`),
/// so the partition nodes of a table just written appear.
pub fn reread_partitions(path: &Path) -> io::Result<()> {
    let err = |op| {
        move |source| {
            io::Error::from(DiskError::Io {
                op,
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let f = File::open(path).map_err(err("opening"))?;
    crate::sys::blkrrpart(&f).map_err(err("re-reading the partition table of"))
}

/// Tells the kernel that partition `index` of the whole disk `disk` now spans `sectors`
/// sectors of `sector_size` bytes from `start_lba` (where it already starts), after
/// [`grow_last_partition`]. Uses `BLKPG_RESIZE_PARTITION`, which works while other
/// partitions of the disk are mounted; falls back to `BLKRRPART` (which fails with EBUSY
/// then) on a kernel or driver that answers ENOTTY or EINVAL.
pub fn resize_partition_in_kernel(
    disk: &Path,
    index: u32,
    start_lba: u64,
    sectors: u64,
    sector_size: u64,
) -> io::Result<()> {
    let err = |op| {
        move |source| {
            io::Error::from(DiskError::Io {
                op,
                path: disk.to_path_buf(),
                source,
            })
        }
    };
    let bytes = |n: u64| {
        n.checked_mul(sector_size)
            .and_then(|b| i64::try_from(b).ok())
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))
    };
    let op = "resizing a partition of";
    let pno = i32::try_from(index).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput));
    let (pno, start, length) = match (pno, bytes(start_lba), bytes(sectors)) {
        (Ok(p), Ok(s), Ok(l)) => (p, s, l),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return Err(err(op)(e)),
    };
    let f = File::open(disk).map_err(err("opening"))?;
    match crate::sys::blkpg_resize_partition(&f, pno, start, length) {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTTY | libc::EINVAL)) => {
            log::debug!("BLKPG on {}: {e}; re-reading the table", disk.display());
            crate::sys::blkrrpart(&f).map_err(err("re-reading the partition table of"))
        }
        Err(e) => Err(err(op)(e)),
    }
}

/// The logical sector size of `path`: what the kernel says for a block device, 512 for an
/// image file.
pub fn logical_sector_size(path: &Path) -> io::Result<u64> {
    let f = File::open(path).map_err(|source| DiskError::Io {
        op: "opening",
        path: path.to_path_buf(),
        source,
    })?;
    gpt::sector_size(&f).map_err(|source| {
        DiskError::Io {
            op: "reading the sector size of",
            path: path.to_path_buf(),
            source,
        }
        .into()
    })
}

/// What a device spec asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Spec {
    Path(PathBuf),
    Label(String),
    Uuid(String),
    PartLabel(String),
    PartUuid(String),
}

impl Spec {
    fn parse(spec: &str, dev: &Path) -> Option<Spec> {
        let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string());
        if let Some(rest) = spec.strip_prefix("LABEL=") {
            nonempty(rest).map(Spec::Label)
        } else if let Some(rest) = spec.strip_prefix("UUID=") {
            nonempty(rest).map(Spec::Uuid)
        } else if let Some(rest) = spec.strip_prefix("PARTLABEL=") {
            nonempty(rest).map(Spec::PartLabel)
        } else if let Some(rest) = spec.strip_prefix("PARTUUID=") {
            nonempty(rest).map(Spec::PartUuid)
        } else if let Some(rest) = spec.strip_prefix("/dev/") {
            // Relative to `dev`, so a test tree stands in for /dev.
            nonempty(rest).map(|r| Spec::Path(dev.join(r)))
        } else {
            None
        }
    }
}

/// Waits until the device named by `spec` appears and returns its node: `LABEL=X` and
/// `UUID=X` match filesystems (see [`probe`]), `PARTLABEL=X` and `PARTUUID=X` match GPT
/// entries of whole disks, `/dev/…` waits for that node. Looks every 50 ms; after `deadline`
/// the error names the spec and every device seen.
pub fn find(spec: &str, sys: &Path, dev: &Path, deadline: Instant) -> Result<PathBuf, FindError> {
    let parsed = Spec::parse(spec, dev).ok_or_else(|| FindError::BadSpec {
        spec: spec.to_string(),
    })?;
    wait_for(spec, &parsed, sys, dev, deadline)
}

/// [`find`] for `LABEL=<label>`.
pub fn find_by_label(
    label: &str,
    sys: &Path,
    dev: &Path,
    deadline: Instant,
) -> Result<PathBuf, FindError> {
    let spec = format!("LABEL={label}");
    wait_for(&spec, &Spec::Label(label.to_string()), sys, dev, deadline)
}

fn wait_for(
    text: &str,
    spec: &Spec,
    sys: &Path,
    dev: &Path,
    deadline: Instant,
) -> Result<PathBuf, FindError> {
    let start = Instant::now();
    loop {
        let (found, seen) = scan(spec, sys, dev);
        if let Some(path) = found {
            return Ok(path);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(FindError::Timeout {
                spec: text.to_string(),
                waited: now - start,
                seen,
            });
        }
        std::thread::sleep(POLL.min(deadline - now));
    }
}

/// One look at the devices: the match, if any, and a description of each device seen.
fn scan(spec: &Spec, sys: &Path, dev: &Path) -> (Option<PathBuf>, Vec<String>) {
    let devs = list_block_devices(sys, dev);
    if let Spec::Path(path) = spec {
        let seen = devs.iter().map(|d| d.name.clone()).collect();
        return (path.exists().then(|| path.clone()), seen);
    }
    let mut seen = Vec::new();
    for d in &devs {
        let mut f = match File::open(&d.path) {
            Ok(f) => f,
            Err(e) => {
                seen.push(format!("{} (unreadable: {e})", d.name));
                continue;
            }
        };
        let found = probe(&mut f);
        let parts = if d.partition {
            Vec::new()
        } else {
            gpt_partitions(&mut f)
        };
        seen.push(describe(&d.name, found.as_ref(), &parts));
        let hit = match spec {
            Spec::Label(l) => found.as_ref().and_then(|p| p.label.as_ref()) == Some(l),
            Spec::Uuid(u) => found
                .as_ref()
                .and_then(|p| p.uuid.as_ref())
                .is_some_and(|x| x.eq_ignore_ascii_case(u)),
            Spec::PartLabel(_) | Spec::PartUuid(_) | Spec::Path(_) => false,
        };
        if hit {
            return (Some(d.path.clone()), seen);
        }
        let entry = parts.iter().find(|p| match spec {
            Spec::PartLabel(l) => &p.name == l,
            Spec::PartUuid(u) => format_guid(&p.part_guid).eq_ignore_ascii_case(u),
            _ => false,
        });
        if let Some(p) = entry {
            // The table names it; the partition counts once the kernel has its node.
            let node = partition_path(&d.path, p.index);
            if devs.iter().any(|other| other.path == node) {
                return (Some(node), seen);
            }
        }
    }
    (None, seen)
}

fn describe(name: &str, probe: Option<&Probe>, parts: &[GptPartition]) -> String {
    let mut what = match probe {
        Some(p) => {
            let mut s = p.fs.to_string();
            if let Some(l) = &p.label {
                s.push_str(&format!(" LABEL={l}"));
            }
            if let Some(u) = &p.uuid {
                s.push_str(&format!(" UUID={u}"));
            }
            s
        }
        None if parts.is_empty() => "no filesystem".to_string(),
        None => "GPT".to_string(),
    };
    for p in parts {
        what.push_str(&format!(" {}:PARTLABEL={}", p.index, p.name));
    }
    format!("{name} ({what})")
}
