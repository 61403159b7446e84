//! The one place PID 1 needs `unsafe`: resetting the signal mask of a child between fork and
//! exec, and the block-device ioctls (loop devices, partition re-read and resize, sector
//! size) and swapon(2) that neither std nor nix wraps. PID 1 blocks the signals it takes through its
//! signalfd, and a blocked mask survives execve(2) (signal(7)), so without the first every
//! service would start deaf to SIGTERM.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::sys::signal::SigSet;

/// Makes `cmd` exec with no signal blocked.
pub fn unblock_signals_in_child(cmd: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec; it only calls
    // sigemptyset(3) and pthread_sigmask(3), which are async-signal-safe, and allocates
    // nothing.
    unsafe {
        cmd.pre_exec(|| {
            SigSet::empty()
                .thread_set_mask()
                .map_err(|e| std::io::Error::from_raw_os_error(e as i32))
        });
    }
}

// Request numbers from <linux/loop.h> and <linux/fs.h>; libc does not carry them. They are
// the same on every architecture Linux supports (`_IO(0x4C, n)` and `_IO(0x12, n)`).
const LOOP_SET_FD: u32 = 0x4C00;
const LOOP_CLR_FD: u32 = 0x4C01;
const LOOP_SET_STATUS64: u32 = 0x4C04;
const LOOP_CONFIGURE: u32 = 0x4C0A;
const LOOP_CTL_GET_FREE: u32 = 0x4C82;
const BLKRRPART: u32 = 0x125F;
const BLKSSZGET: u32 = 0x1268;
/// `_IO(0x12, 105)` of <linux/fs.h>; the argument is a `struct blkpg_ioctl_arg`.
const BLKPG: u32 = 0x1269;
/// `op` of <linux/blkpg.h>: change the size of an existing partition (Linux 3.6+).
const BLKPG_RESIZE_PARTITION: libc::c_int = 3;

/// `lo_flags`: the device refuses writes.
pub const LO_FLAGS_READ_ONLY: u32 = 1;
/// `lo_flags`: the kernel detaches the device when its last opener (a mount) goes away.
pub const LO_FLAGS_AUTOCLEAR: u32 = 4;

/// `struct loop_info64` of <linux/loop.h> (232 bytes, no padding).
#[repr(C)]
#[derive(Clone, Copy)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config` of <linux/loop.h> (304 bytes), the argument of `LOOP_CONFIGURE`.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

const _: () = assert!(std::mem::size_of::<LoopInfo64>() == 232);
const _: () = assert!(std::mem::size_of::<LoopConfig>() == 304);

impl LoopInfo64 {
    fn new(flags: u32, backing_name: &[u8]) -> Self {
        let mut lo_file_name = [0u8; 64];
        // The kernel keeps this name only for display (losetup -l); keep it NUL-terminated.
        let n = backing_name.len().min(63);
        lo_file_name[..n].copy_from_slice(&backing_name[..n]);
        LoopInfo64 {
            lo_device: 0,
            lo_inode: 0,
            lo_rdevice: 0,
            lo_offset: 0,
            lo_sizelimit: 0,
            lo_number: 0,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: flags,
            lo_file_name,
            lo_crypt_name: [0; 64],
            lo_encrypt_key: [0; 32],
            lo_init: [0; 2],
        }
    }
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `LOOP_CTL_GET_FREE` on an open `/dev/loop-control`: the number of a free loop device,
/// which the kernel creates if needed.
pub fn loop_ctl_get_free(control: &File) -> io::Result<u32> {
    // SAFETY: LOOP_CTL_GET_FREE takes no argument; the fd is valid for the borrow.
    let ret = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE as libc::Ioctl) };
    check(ret).map(|n| n.unsigned_abs())
}

/// `LOOP_CONFIGURE`: binds `backing` to the loop device `dev` with `flags` in one call
/// (Linux 5.8+).
pub fn loop_configure(
    dev: &File,
    backing: &File,
    flags: u32,
    backing_name: &[u8],
) -> io::Result<()> {
    let config = LoopConfig {
        fd: backing.as_raw_fd().unsigned_abs(),
        block_size: 0,
        info: LoopInfo64::new(flags, backing_name),
        reserved: [0; 8],
    };
    // SAFETY: `config` is a fully initialised `struct loop_config` that outlives the call;
    // the kernel only reads it. Both fds are valid for the borrows.
    let ret = unsafe {
        libc::ioctl(
            dev.as_raw_fd(),
            LOOP_CONFIGURE as libc::Ioctl,
            &config as *const LoopConfig,
        )
    };
    check(ret).map(drop)
}

/// The pre-5.8 way to bind a loop device: `LOOP_SET_FD`, then `LOOP_SET_STATUS64` for the
/// flags. Read-only comes from how `backing` was opened; AUTOCLEAR from `flags`.
pub fn loop_set_fd_and_status(
    dev: &File,
    backing: &File,
    flags: u32,
    backing_name: &[u8],
) -> io::Result<()> {
    // SAFETY: LOOP_SET_FD takes the backing fd as its integer argument; both fds are valid.
    let ret = unsafe {
        libc::ioctl(
            dev.as_raw_fd(),
            LOOP_SET_FD as libc::Ioctl,
            backing.as_raw_fd() as libc::c_ulong,
        )
    };
    check(ret)?;
    let info = LoopInfo64::new(flags, backing_name);
    // SAFETY: `info` is a fully initialised `struct loop_info64` that outlives the call; the
    // kernel only reads it.
    let ret = unsafe {
        libc::ioctl(
            dev.as_raw_fd(),
            LOOP_SET_STATUS64 as libc::Ioctl,
            &info as *const LoopInfo64,
        )
    };
    if let Err(e) = check(ret) {
        // Do not leave a half-configured device behind.
        let _ = loop_clr_fd(dev);
        return Err(e);
    }
    Ok(())
}

/// `LOOP_CLR_FD`: detaches the loop device (deferred by the kernel while it is mounted).
pub fn loop_clr_fd(dev: &File) -> io::Result<()> {
    // SAFETY: LOOP_CLR_FD takes no argument; the fd is valid for the borrow.
    let ret = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CLR_FD as libc::Ioctl) };
    check(ret).map(drop)
}

/// `BLKRRPART`: asks the kernel to re-read the partition table of a whole-disk device.
pub fn blkrrpart(dev: &File) -> io::Result<()> {
    // SAFETY: BLKRRPART takes no argument; the fd is valid for the borrow.
    let ret = unsafe { libc::ioctl(dev.as_raw_fd(), BLKRRPART as libc::Ioctl) };
    check(ret).map(drop)
}

/// `BLKSSZGET`: the logical sector size of a block device in bytes.
pub fn blksszget(dev: &File) -> io::Result<u32> {
    let mut size: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one `int` through the pointer, which points at a live local.
    let ret = unsafe {
        libc::ioctl(
            dev.as_raw_fd(),
            BLKSSZGET as libc::Ioctl,
            &mut size as *mut libc::c_int,
        )
    };
    check(ret)?;
    Ok(size.unsigned_abs())
}

/// `struct blkpg_partition` of <linux/blkpg.h>: 148 bytes of fields, padded to the 8-byte
/// alignment of `long long` (152) on every 64-bit ABI.
#[repr(C)]
struct BlkpgPartition {
    /// Bytes from the start of the disk.
    start: libc::c_longlong,
    /// Bytes.
    length: libc::c_longlong,
    pno: libc::c_int,
    devname: [u8; 64],
    volname: [u8; 64],
}

/// `struct blkpg_ioctl_arg` of <linux/blkpg.h>.
#[repr(C)]
struct BlkpgIoctlArg {
    op: libc::c_int,
    flags: libc::c_int,
    datalen: libc::c_int,
    data: *mut libc::c_void,
}

#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(std::mem::size_of::<BlkpgPartition>() == 152);
    assert!(std::mem::offset_of!(BlkpgPartition, pno) == 16);
    assert!(std::mem::offset_of!(BlkpgPartition, devname) == 20);
    assert!(std::mem::offset_of!(BlkpgPartition, volname) == 84);
    assert!(std::mem::size_of::<BlkpgIoctlArg>() == 24);
    assert!(std::mem::offset_of!(BlkpgIoctlArg, datalen) == 8);
    assert!(std::mem::offset_of!(BlkpgIoctlArg, data) == 16);
};

/// `BLKPG_RESIZE_PARTITION` on the whole-disk device `disk`: partition `pno` now spans
/// `length` bytes from `start` (which must be where it already starts). Unlike `BLKRRPART`
/// this works while other partitions of the disk are mounted.
pub fn blkpg_resize_partition(disk: &File, pno: i32, start: i64, length: i64) -> io::Result<()> {
    let mut part = BlkpgPartition {
        start,
        length,
        pno,
        devname: [0; 64],
        volname: [0; 64],
    };
    let arg = BlkpgIoctlArg {
        op: BLKPG_RESIZE_PARTITION,
        flags: 0,
        datalen: std::mem::size_of::<BlkpgPartition>() as libc::c_int,
        data: (&mut part as *mut BlkpgPartition).cast(),
    };
    // SAFETY: `arg` and the `part` it points at are fully initialised and outlive the call;
    // `datalen` is the size of `part`, and the kernel only reads both (blkpg_do_ioctl copies
    // them in). The fd is valid for the borrow.
    let ret = unsafe {
        libc::ioctl(
            disk.as_raw_fd(),
            BLKPG as libc::Ioctl,
            &arg as *const BlkpgIoctlArg,
        )
    };
    check(ret).map(drop)
}

/// getrandom(2) into `buf`, blocking until the kernel's generator is seeded; for when
/// `/dev/urandom` is not there yet (no devtmpfs mounted).
pub fn getrandom(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: the pointer and length describe the live, writable tail of `buf`.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        filled += n.unsigned_abs();
    }
    Ok(())
}

/// `SWAP_FLAG_PREFER` of <sys/swap.h>: the low 15 bits of the flags are the priority.
const SWAP_FLAG_PREFER: libc::c_int = 0x8000;

/// swapon(2) of `path` (a device with a swap header) at `priority` (0–32767).
pub fn swapon(path: &std::ffi::CStr, priority: u16) -> io::Result<()> {
    let flags = SWAP_FLAG_PREFER | libc::c_int::from(priority & 0x7fff);
    // SAFETY: a NUL-terminated path that outlives the call, and plain flags.
    let ret = unsafe { libc::swapon(path.as_ptr(), flags) };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
