//! Loop devices: how init mounts an image file (the system images' squashfs beside the
//! kernel, an ISO's payload) without copying it into RAM.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::DiskError;
use crate::sys;

/// How often init retries when another process takes the free loop device first.
const ATTACH_ATTEMPTS: u32 = 8;
/// How long a new `/dev/loopN` node may take to appear in devtmpfs.
const NODE_WAIT: Duration = Duration::from_secs(2);

/// A bound loop device. The kernel detaches an AUTOCLEAR device when its last opener goes
/// away, so this holds the device open: mount it (the mount then keeps it), then drop this.
/// Dropping it without mounting detaches the device.
#[derive(Debug)]
pub struct LoopDevice {
    path: PathBuf,
    dev: File,
}

impl LoopDevice {
    /// `/dev/loopN`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Detaches the device now (`LOOP_CLR_FD`); while it is mounted the kernel defers this
    /// to the unmount.
    pub fn detach(self) -> io::Result<()> {
        sys::loop_clr_fd(&self.dev).map_err(|source| {
            DiskError::Io {
                op: "detaching",
                path: self.path.clone(),
                source,
            }
            .into()
        })
    }
}

/// Binds `file` to a free loop device with AUTOCLEAR (and read-only when asked), so the
/// device goes away when the filesystem on it is unmounted. Uses `LOOP_CONFIGURE`, falling
/// back to `LOOP_SET_FD` + `LOOP_SET_STATUS64` on kernels older than 5.8.
pub fn loop_attach(file: &Path, read_only: bool) -> io::Result<LoopDevice> {
    loop_attach_in(Path::new("/dev"), file, read_only)
}

fn loop_attach_in(dev_dir: &Path, file: &Path, read_only: bool) -> io::Result<LoopDevice> {
    let err = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source: io::Error| io::Error::from(DiskError::Io { op, path, source })
    };
    let backing = OpenOptions::new()
        .read(true)
        .write(!read_only)
        .open(file)
        .map_err(err("opening", file))?;
    let control_path = dev_dir.join("loop-control");
    let control = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&control_path)
        .map_err(err("opening", &control_path))?;
    let mut flags = sys::LO_FLAGS_AUTOCLEAR;
    if read_only {
        flags |= sys::LO_FLAGS_READ_ONLY;
    }
    let name = file.as_os_str().as_bytes();
    let mut last_busy = None;
    for _ in 0..ATTACH_ATTEMPTS {
        let n = sys::loop_ctl_get_free(&control)
            .map_err(err("getting a free loop device from", &control_path))?;
        let path = dev_dir.join(format!("loop{n}"));
        let dev = open_node(&path).map_err(err("opening", &path))?;
        let bound = match sys::loop_configure(&dev, &backing, flags, name) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOTTY)) => {
                sys::loop_set_fd_and_status(&dev, &backing, flags, name)
            }
            other => other,
        };
        match bound {
            Ok(()) => return Ok(LoopDevice { path, dev }),
            // Someone bound this device between GET_FREE and our ioctl: take another.
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => last_busy = Some((path, e)),
            Err(e) => return Err(err("binding a file to", &path)(e)),
        }
    }
    let (path, e) =
        last_busy.unwrap_or_else(|| (control_path, io::Error::from_raw_os_error(libc::EBUSY)));
    Err(err("binding a file to", &path)(e))
}

/// Opens a loop device node, giving devtmpfs a moment if the kernel has just created it.
fn open_node(path: &Path) -> io::Result<File> {
    let deadline = Instant::now() + NODE_WAIT;
    loop {
        match OpenOptions::new().read(true).write(true).open(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}
