//! The container's filesystem: overlay root, /proc /sys /dev, volumes, tmpfs, devices,
//! masked paths, then `pivot_root`. Runs in the container's first process, inside its new
//! mount namespace, so every mount vanishes with the container.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};

use super::spec::{ContainerSpec, MountKind};

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("mount {what} on {target}: {source}")]
    Mount {
        what: String,
        target: PathBuf,
        source: nix::Error,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("pivot_root to {path}: {source}")]
    Pivot { path: PathBuf, source: nix::Error },
    #[error("invalid mount destination {0:?}: must be an absolute path")]
    Destination(String),
}

fn do_mount(
    src: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), MountError> {
    mount(src, target, fstype, flags, data).map_err(|source| MountError::Mount {
        what: fstype
            .map(str::to_string)
            .or_else(|| src.map(|s| s.display().to_string()))
            .unwrap_or_default(),
        target: target.to_path_buf(),
        source,
    })
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> MountError + 'a {
    move |source| MountError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Joins `path` onto `root`, resolving symlinks as if `root` were `/`: no component can
/// lead outside `root`, whatever the container's files say (they are untrusted).
pub fn secure_join(root: &Path, path: &str) -> PathBuf {
    let mut pending: Vec<String> = Path::new(path)
        .components()
        .rev()
        .filter_map(comp_str)
        .collect();
    let mut resolved: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(c) = pending.pop() {
        match c.as_str() {
            "" | "." => continue,
            ".." => {
                resolved.pop();
                continue;
            }
            _ => {}
        }
        let candidate = root.join(resolved.iter().collect::<PathBuf>()).join(&c);
        match fs::symlink_metadata(&candidate) {
            Ok(m) if m.file_type().is_symlink() && hops < 40 => {
                hops += 1;
                let Ok(target) = fs::read_link(&candidate) else {
                    resolved.push(c);
                    continue;
                };
                if target.is_absolute() {
                    resolved.clear();
                }
                pending.extend(target.components().rev().filter_map(comp_str));
            }
            _ => resolved.push(c),
        }
    }
    root.join(resolved.iter().collect::<PathBuf>())
}

fn comp_str(c: Component) -> Option<String> {
    match c {
        Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
        Component::ParentDir => Some("..".into()),
        Component::CurDir | Component::RootDir | Component::Prefix(_) => None,
    }
}

/// Creates `target` as a directory, or as an empty file when `like_file`.
fn ensure_mountpoint(target: &Path, like_file: bool) -> Result<(), MountError> {
    if fs::symlink_metadata(target).is_ok() {
        return Ok(());
    }
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(io("create", parent))?;
    }
    if like_file {
        fs::File::create(target)
            .map(drop)
            .map_err(io("create", target))
    } else {
        fs::create_dir_all(target).map_err(io("create", target))
    }
}

fn propagation_flags(p: &str) -> MsFlags {
    match p {
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "private" => MsFlags::MS_PRIVATE,
        _ => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
    }
}

/// Everything up to and including `pivot_root`, then the masks that need the final /proc.
pub fn setup_rootfs(spec: &ContainerSpec) -> Result<(), MountError> {
    // Our mounts must not propagate back to the host, while host mounts made later (a new
    // disk, say) still reach containers that asked for shared volumes.
    do_mount(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None,
    )?;

    let rf = &spec.rootfs;
    let target = &rf.target;
    fs::create_dir_all(target).map_err(io("create", target))?;
    let empty_lower;
    let lower: Vec<String> = if rf.lower.is_empty() {
        // overlayfs needs a lower dir even for an image without layers.
        empty_lower = rf.work.with_file_name("empty");
        fs::create_dir_all(&empty_lower).map_err(io("create", &empty_lower))?;
        vec![empty_lower.display().to_string()]
    } else {
        rf.lower.iter().map(|p| p.display().to_string()).collect()
    };
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        rf.upper.display(),
        rf.work.display()
    );
    do_mount(
        Some(Path::new("overlay")),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(&data),
    )?;

    let nosuid_noexec_nodev = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    let proc_dir = target.join("proc");
    ensure_mountpoint(&proc_dir, false)?;
    do_mount(
        Some(Path::new("proc")),
        &proc_dir,
        Some("proc"),
        nosuid_noexec_nodev,
        None,
    )?;

    let sys_dir = target.join("sys");
    ensure_mountpoint(&sys_dir, false)?;
    let mut sys_flags = nosuid_noexec_nodev;
    if !spec.privileged {
        sys_flags |= MsFlags::MS_RDONLY;
    }
    // sysfs of the host's network namespace cannot be mounted from a new one and vice versa
    // only for non-init user namespaces; as root in the initial user namespace it works.
    do_mount(
        Some(Path::new("sysfs")),
        &sys_dir,
        Some("sysfs"),
        sys_flags,
        None,
    )?;
    if let Some(u) = cgroup2_mount() {
        let cg = sys_dir.join("fs/cgroup");
        if cg.is_dir() {
            let flags = if spec.privileged {
                MsFlags::empty()
            } else {
                MsFlags::MS_RDONLY
            };
            let _ = do_mount(
                Some(&u),
                &cg,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            );
            let _ = do_mount(
                None,
                &cg,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags,
                None,
            );
        }
    }

    setup_dev(spec)?;

    for (src, dest) in &spec.etc_files {
        let t = secure_join(target, dest);
        ensure_mountpoint(&t, true)?;
        do_mount(Some(src), &t, None, MsFlags::MS_BIND, None)?;
    }

    for m in &spec.mounts {
        if !m.destination.starts_with('/') {
            return Err(MountError::Destination(m.destination.clone()));
        }
        let t = secure_join(target, &m.destination);
        match m.kind {
            MountKind::Bind => {
                let is_file = fs::metadata(&m.source)
                    .map(|md| !md.is_dir())
                    .unwrap_or(false);
                ensure_mountpoint(&t, is_file)?;
                do_mount(
                    Some(&m.source),
                    &t,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None,
                )?;
                if m.read_only {
                    do_mount(
                        None,
                        &t,
                        None,
                        MsFlags::MS_BIND
                            | MsFlags::MS_REMOUNT
                            | MsFlags::MS_RDONLY
                            | MsFlags::MS_REC,
                        None,
                    )?;
                }
                let prop = m.propagation.as_deref().unwrap_or("rprivate");
                do_mount(None, &t, None, propagation_flags(prop), None)?;
            }
            MountKind::Tmpfs => {
                ensure_mountpoint(&t, false)?;
                let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
                if m.read_only {
                    flags |= MsFlags::MS_RDONLY;
                }
                let data = m.data.clone().unwrap_or_else(|| "mode=1777".into());
                do_mount(
                    Some(Path::new("tmpfs")),
                    &t,
                    Some("tmpfs"),
                    flags,
                    Some(&data),
                )?;
            }
        }
    }

    pivot(target)?;

    if !spec.privileged {
        for p in &spec.masked_paths {
            mask(Path::new(p));
        }
        for p in &spec.readonly_paths {
            let p = Path::new(p);
            if p.exists()
                && do_mount(Some(p), p, None, MsFlags::MS_BIND | MsFlags::MS_REC, None).is_ok()
            {
                let _ = do_mount(
                    None,
                    p,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC,
                    None,
                );
            }
        }
    }
    if rf.read_only {
        do_mount(
            None,
            Path::new("/"),
            None,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None,
        )?;
    }
    Ok(())
}

fn cgroup2_mount() -> Option<PathBuf> {
    let h = super::cgroups::Hierarchies::host();
    h.unified
}

/// Hides a path: /dev/null over files, an empty read-only tmpfs over directories.
fn mask(p: &Path) {
    match fs::metadata(p) {
        Ok(m) if m.is_dir() => {
            let _ = mount(
                Some("tmpfs"),
                p,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None::<&str>,
            );
        }
        Ok(_) => {
            let _ = mount(
                Some("/dev/null"),
                p,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            );
        }
        Err(_) => {}
    }
}

fn setup_dev(spec: &ContainerSpec) -> Result<(), MountError> {
    let dev = spec.rootfs.target.join("dev");
    ensure_mountpoint(&dev, false)?;
    if spec.privileged {
        // Privileged containers (udev, the user engine) see the host's devices, live.
        do_mount(
            Some(Path::new("/dev")),
            &dev,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )?;
        do_mount(None, &dev, None, MsFlags::MS_SLAVE | MsFlags::MS_REC, None)?;
    } else {
        do_mount(
            Some(Path::new("tmpfs")),
            &dev,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
            Some("mode=755,size=65536k"),
        )?;
        for (name, major, minor) in [
            ("null", 1, 3),
            ("zero", 1, 5),
            ("full", 1, 7),
            ("random", 1, 8),
            ("urandom", 1, 9),
            ("tty", 5, 0),
        ] {
            let p = dev.join(name);
            mknod(
                &p,
                SFlag::S_IFCHR,
                Mode::from_bits_truncate(0o666),
                makedev(major, minor),
            )
            .map_err(|e| MountError::Io {
                op: "mknod",
                path: p.clone(),
                source: e.into(),
            })?;
            // mknod honours the umask; the nodes must be world-usable.
            fs::set_permissions(&p, fs::Permissions::from_mode(0o666)).map_err(io("chmod", &p))?;
        }
        for (link, to) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
            ("ptmx", "pts/ptmx"),
            ("core", "/proc/kcore"),
        ] {
            let p = dev.join(link);
            std::os::unix::fs::symlink(to, &p).map_err(io("symlink", &p))?;
        }
        let pts = dev.join("pts");
        ensure_mountpoint(&pts, false)?;
        do_mount(
            Some(Path::new("devpts")),
            &pts,
            Some("devpts"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
        )?;
        let mq = dev.join("mqueue");
        ensure_mountpoint(&mq, false)?;
        let _ = mount(
            Some("mqueue"),
            &mq,
            Some("mqueue"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV,
            None::<&str>,
        );
    }
    let shm = dev.join("shm");
    ensure_mountpoint(&shm, false)?;
    do_mount(
        Some(Path::new("shm")),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV,
        Some("mode=1777,size=65536k"),
    )?;
    for d in &spec.devices {
        let t = secure_join(&spec.rootfs.target, &d.container_path);
        let meta = fs::metadata(&d.host_path).map_err(io("stat", &d.host_path))?;
        if !(meta.file_type().is_char_device() || meta.file_type().is_block_device()) {
            return Err(MountError::Io {
                op: "use as device",
                path: d.host_path.clone(),
                source: io::Error::new(io::ErrorKind::InvalidInput, "not a device node"),
            });
        }
        ensure_mountpoint(&t, true)?;
        do_mount(Some(&d.host_path), &t, None, MsFlags::MS_BIND, None)?;
    }
    Ok(())
}

/// `pivot_root(".", ".")` then a lazy unmount of the old root, which leaves no directory
/// behind in the container (the technique runc uses).
fn pivot(target: &Path) -> Result<(), MountError> {
    let pe = |source| MountError::Pivot {
        path: target.to_path_buf(),
        source,
    };
    nix::unistd::chdir(target).map_err(pe)?;
    nix::unistd::pivot_root(".", ".").map_err(pe)?;
    umount2(".", MntFlags::MNT_DETACH).map_err(pe)?;
    nix::unistd::chdir("/").map_err(pe)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn secure_join_stays_inside_root() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir_all(r.join("etc")).unwrap();
        symlink("/", r.join("evil")).unwrap();
        symlink("../../../../etc", r.join("etc/up")).unwrap();
        symlink("/etc", r.join("abs")).unwrap();
        assert_eq!(secure_join(r, "/evil/etc/passwd"), r.join("etc/passwd"));
        assert_eq!(secure_join(r, "/etc/up/hosts"), r.join("etc/hosts"));
        assert_eq!(secure_join(r, "/../../x"), r.join("x"));
        assert_eq!(secure_join(r, "/abs/x"), r.join("etc/x"));
        assert_eq!(secure_join(r, "/data"), r.join("data"));
    }
}
