//! Early boot: the kernel file systems, stdio on the console, and leaving the initramfs.
//!
//! The kernel starts `/init` on its initramfs, the `rootfs` mount, which `pivot_root(2)`
//! cannot leave — and every container's runtime pivots. So the first stage copies the
//! initramfs into a tmpfs, frees the old copy, makes the tmpfs `/` (`MS_MOVE` + `chroot`)
//! and execs `/sbin/init` again there; the second stage finds `/` is no longer `rootfs` and
//! boots. Nothing here panics: a mount that fails is logged and boot goes on, so the
//! console still gets a shell or a clear error.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::fs::{lchown, symlink, DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

use nix::mount::{mount, MsFlags};
use nix::sys::stat::{mknod, Mode, SFlag};

/// The environment variable carrying the kernel's share of boot time (seconds of uptime
/// when PID 1 first ran) from the first stage to the second.
pub const KERNEL_SECONDS_ENV: &str = "ROS_KERNEL_SECONDS";

/// Where the first stage builds the new root before it becomes `/`.
const NEW_ROOT: &str = "/.root";

/// Seconds since the kernel started (`/proc/uptime`); `None` when /proc is not mounted.
pub fn uptime() -> Option<f64> {
    fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn mkdir(path: &str, mode: u32) {
    let _ = fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path);
}

/// The mount points of this mount namespace (from /proc/self/mountinfo).
pub fn mount_points() -> Vec<(String, String)> {
    let Ok(text) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let point = left.split_whitespace().nth(4)?;
            let fstype = right.split_whitespace().next()?;
            Some((unescape(point), fstype.to_string()))
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let digits = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(digits, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_mounted(point: &str) -> bool {
    mount_points().iter().any(|(p, _)| p == point)
}

/// Mounts `fstype` on `target` unless something is mounted there already.
fn mount_fs(source: &str, target: &str, fstype: &str, flags: MsFlags, data: Option<&str>) {
    if is_mounted(target) {
        return;
    }
    mkdir(target, 0o755);
    if let Err(e) = mount(Some(source), target, Some(fstype), flags, data) {
        log::error!("mount {fstype} on {target}: {e}");
    }
}

/// /proc alone: enough to tell where we are (stage 1) and to read the kernel command line.
pub fn mount_proc() {
    // Before /proc is mounted, mountinfo cannot be read: check for a file of procfs.
    if Path::new("/proc/self/mountinfo").exists() {
        return;
    }
    mkdir("/proc", 0o555);
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if let Err(e) = mount(Some("proc"), "/proc", Some("proc"), flags, None::<&str>) {
        log::error!("mount proc on /proc: {e}");
    }
}

/// The kernel file systems every later step and every container expects.
pub fn mount_kernel_filesystems() {
    let nosuid_nodev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    let noexec = nosuid_nodev | MsFlags::MS_NOEXEC;
    mount_proc();
    mount_fs("sysfs", "/sys", "sysfs", noexec, None);
    // AppArmor profiles (the user engine loads docker-default) go through securityfs.
    if Path::new("/sys/kernel/security").is_dir() {
        mount_fs(
            "securityfs",
            "/sys/kernel/security",
            "securityfs",
            noexec,
            None,
        );
    }
    mount_fs(
        "devtmpfs",
        "/dev",
        "devtmpfs",
        MsFlags::MS_NOSUID,
        Some("mode=0755"),
    );
    mount_fs(
        "devpts",
        "/dev/pts",
        "devpts",
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=0620,gid=5,ptmxmode=0666"),
    );
    mount_fs("shm", "/dev/shm", "tmpfs", nosuid_nodev, Some("mode=1777"));
    mount_fs("mqueue", "/dev/mqueue", "mqueue", noexec, None);
    mount_fs("tmpfs", "/run", "tmpfs", nosuid_nodev, Some("mode=0755"));
    mkdir("/run/lock", 0o1777);
    mount_fs("cgroup2", "/sys/fs/cgroup", "cgroup2", noexec, None);
    enable_cgroup_controllers();
    for (link, target) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
        ("/dev/core", "/proc/kcore"),
    ] {
        let _ = symlink(target, link);
    }
    // /var/run is /run (DESIGN.md §4); a directory left there by an image is replaced.
    mkdir("/var", 0o755);
    if fs::read_link("/var/run")
        .map(|t| t != Path::new("/run"))
        .unwrap_or(true)
    {
        let _ = fs::remove_dir("/var/run");
        let _ = fs::remove_file("/var/run");
        if let Err(e) = symlink("/run", "/var/run") {
            log::error!("symlink /var/run -> /run: {e}");
        }
    }
}

/// Hands every controller of the cgroup2 root to its children, so system-docker can limit
/// its containers' memory, cpu, io and pids.
fn enable_cgroup_controllers() {
    let Ok(available) = fs::read_to_string("/sys/fs/cgroup/cgroup.controllers") else {
        return;
    };
    let wanted: Vec<String> = available
        .split_whitespace()
        .map(|c| format!("+{c}"))
        .collect();
    if wanted.is_empty() {
        return;
    }
    if let Err(e) = fs::write("/sys/fs/cgroup/cgroup.subtree_control", wanted.join(" ")) {
        log::error!("enable cgroup controllers {}: {e}", wanted.join(" "));
    }
}

/// Makes sure fds 0, 1 and 2 are open, on /dev/console (the kernel opens it for init only
/// when the initramfs has the node; without it init would run deaf and mute).
pub fn console_stdio() {
    if (0..3).all(|fd| nix::sys::stat::fstat(fd).is_ok()) {
        return;
    }
    if !Path::new("/dev/console").exists() {
        mkdir("/dev", 0o755);
        let _ = mount(
            Some("devtmpfs"),
            "/dev",
            Some("devtmpfs"),
            MsFlags::MS_NOSUID,
            Some("mode=0755"),
        );
    }
    let Ok(console) = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/console")
    else {
        return;
    };
    use std::os::fd::IntoRawFd;
    let fd = console.into_raw_fd();
    for target in 0..3 {
        if fd != target {
            let _ = nix::unistd::dup2(fd, target);
        }
    }
    if fd > 2 {
        let _ = nix::unistd::close(fd);
    }
}

/// Whether `/` is the initramfs (`rootfs`), which must be left before containers run.
pub fn root_is_initramfs() -> bool {
    mount_points()
        .iter()
        .any(|(p, t)| p == "/" && t == "rootfs")
}

/// Stage 1: copy the initramfs into a tmpfs, free it, make the tmpfs `/` and exec
/// `/sbin/init` in it. Returns only on failure (the caller carries on from the initramfs,
/// which boots but cannot run containers, and says so).
pub fn switch_to_tmpfs_root(kernel_seconds: f64) -> io::Error {
    mkdir(NEW_ROOT, 0o755);
    if let Err(e) = mount(
        Some("tmpfs"),
        NEW_ROOT,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("mode=0755"),
    ) {
        return io::Error::other(format!("mount tmpfs on {NEW_ROOT}: {e}"));
    }
    let root_dev = match fs::symlink_metadata("/") {
        Ok(m) => m.dev(),
        Err(e) => return e,
    };
    if let Err(e) = copy_tree(Path::new("/"), Path::new(NEW_ROOT), root_dev) {
        return io::Error::other(format!("copy the initramfs into tmpfs: {e}"));
    }
    // The kernel file systems mounted so far move along.
    for (point, _) in mount_points() {
        if point == "/" || point == NEW_ROOT || point.matches('/').count() != 1 {
            continue;
        }
        let target = format!("{NEW_ROOT}{point}");
        mkdir(&target, 0o755);
        if let Err(e) = mount(
            Some(point.as_str()),
            target.as_str(),
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        ) {
            log::warn!("move {point} into the new root: {e}");
        }
    }
    // Free the initramfs's memory: everything on its device goes (the tmpfs and the moved
    // mounts are other devices and stay).
    remove_tree_on(Path::new("/"), root_dev);
    if let Err(e) = std::env::set_current_dir(NEW_ROOT) {
        return e;
    }
    if let Err(e) = mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>) {
        return io::Error::other(format!("move the new root onto /: {e}"));
    }
    if let Err(e) = nix::unistd::chroot(".") {
        return io::Error::other(format!("chroot into the new root: {e}"));
    }
    let _ = std::env::set_current_dir("/");
    std::env::set_var(KERNEL_SECONDS_ENV, format!("{kernel_seconds:.3}"));
    let prog = c"/sbin/init";
    let argv = [c"init"];
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend(v.into_encoded_bytes());
            CString::new(kv).ok()
        })
        .collect();
    match nix::unistd::execve(prog, &argv, &env) {
        Err(e) => io::Error::other(format!("exec /sbin/init in the new root: {e}")),
    }
}

/// Copies `from` into `to` (an existing directory): directories, files, symlinks and device
/// nodes, with modes and owners; stays on the device `dev` (mount points are skipped).
fn copy_tree(from: &Path, to: &Path, dev: u64) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(from)?.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = fs::symlink_metadata(&src)?;
        if meta.dev() != dev || src == Path::new(NEW_ROOT) {
            // A mount point: its directory is made, its content moves (or is not ours).
            if meta.is_dir() {
                mkdir(&dst.to_string_lossy(), meta.mode() & 0o7777);
            }
            continue;
        }
        let ft = meta.file_type();
        if ft.is_dir() {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&dst)
                .or_else(|e| {
                    if e.kind() == io::ErrorKind::AlreadyExists {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })?;
            copy_tree(&src, &dst, dev)?;
            fs::set_permissions(&dst, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        } else if ft.is_symlink() {
            symlink(fs::read_link(&src)?, &dst)?;
        } else if ft.is_file() {
            fs::copy(&src, &dst)?;
            fs::set_permissions(&dst, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        } else {
            use std::os::unix::fs::FileTypeExt;
            let kind = if ft.is_char_device() {
                SFlag::S_IFCHR
            } else if ft.is_block_device() {
                SFlag::S_IFBLK
            } else {
                continue;
            };
            mknod(
                &dst,
                kind,
                Mode::from_bits_truncate(meta.mode() & 0o7777),
                meta.rdev(),
            )
            .map_err(io::Error::from)?;
        }
        lchown(&dst, Some(meta.uid()), Some(meta.gid()))?;
    }
    Ok(())
}

/// Removes everything under `dir` that lives on device `dev` (best effort).
fn remove_tree_on(dir: &Path, dev: u64) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for entry in rd.filter_map(Result::ok) {
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.dev() != dev {
            continue;
        }
        if meta.is_dir() {
            remove_tree_on(&path, dev);
            let _ = fs::remove_dir(&path);
        } else {
            let _ = fs::remove_file(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/x\\134y"), "/x\\y");
    }

    #[test]
    fn copies_a_tree_with_links_and_modes() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        let dst = t.path().join("dst");
        fs::create_dir_all(src.join("usr/bin")).unwrap();
        fs::write(src.join("usr/bin/ros"), b"elf").unwrap();
        fs::set_permissions(src.join("usr/bin/ros"), fs::Permissions::from_mode(0o755)).unwrap();
        symlink("usr/bin/ros", src.join("init")).unwrap();
        fs::create_dir(&dst).unwrap();
        let dev = fs::metadata(&src).unwrap().dev();
        copy_tree(&src, &dst, dev).unwrap();
        assert_eq!(fs::read(dst.join("usr/bin/ros")).unwrap(), b"elf");
        assert_eq!(
            fs::metadata(dst.join("usr/bin/ros")).unwrap().mode() & 0o777,
            0o755
        );
        assert_eq!(
            fs::read_link(dst.join("init")).unwrap(),
            Path::new("usr/bin/ros")
        );
        remove_tree_on(&src, dev);
        assert_eq!(fs::read_dir(&src).unwrap().count(), 0);
    }
}
