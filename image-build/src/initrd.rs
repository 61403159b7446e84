//! The initrd: a newc cpio of a file tree (see [`crate::cpio`]), zstd-compressed (by the
//! zstd program; gzip when the kernel cannot unpack zstd), and the pieces of its tree that
//! are not packages: our binaries, the shipped config, the directories init mounts on, the
//! module list init loads.
//!
//! Layout (besides the `base` layer, the boot packages and the modules):
//! - `/init` → `usr/bin/ros`; `/sbin/{init,halt,reboot,poweroff,shutdown}` → `../usr/bin/ros`
//! - `/usr/bin/ros`, `/usr/bin/system-docker-shim` (stripped), `/usr/bin/system-docker` → `ros`
//! - `/usr/share/ros/os-config.yml`, `/usr/share/ros/catalog/*.yml`
//! - `/usr/share/ros/modules-boot` (modules init loads before it looks for disks, in order),
//!   `/usr/share/ros/modules-system` (those it loads once the images, which hold the rest of
//!   the modules, and the state partition are mounted), `/usr/share/ros/kernel-release`
//! - `/usr/share/ros/prefetch`: files of `images.sqfs` init reads ahead (`boot.prefetch`)
//! - `/dev/console` (so PID 1 has a console even before it mounts devtmpfs)

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::cpio::{self, Kind};
use crate::tree::{Entry, Node, Tree};

/// Names our init provides: busybox's applets of these names are left out.
pub const OWN_APPLETS: [&str; 5] = ["init", "halt", "reboot", "poweroff", "shutdown"];

/// The command that builds the binaries the initrd needs.
pub const BUILD_BINARIES: &str = "cargo build --release -p ros -p system-docker";

#[derive(Debug, thiserror::Error)]
pub enum InitrdError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is missing: run `{BUILD_BINARIES}` first (or pass --bin-dir)")]
    MissingBinary { path: PathBuf },
    #[error("{path}: {source}")]
    Cpio {
        path: PathBuf,
        source: cpio::CpioError,
    },
    #[error("{path}: not a zstd, gzip or uncompressed newc cpio archive")]
    Format { path: PathBuf },
    #[error("zstd is not installed (the initrd is compressed with it): install zstd")]
    ZstdMissing,
    #[error("zstd: {0}")]
    Zstd(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> InitrdError + '_ {
    move |source| InitrdError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// How the cpio is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Zstd,
    Gzip,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
        }
    }
}

/// Removes busybox applet links named like the commands our init provides (`/sbin/init`,
/// `/sbin/reboot`, …), wherever busybox put them.
pub fn drop_own_applets(tree: &mut Tree) {
    let links: Vec<String> = tree
        .entries
        .iter()
        .filter(|(p, e)| {
            let name = p.rsplit('/').next().unwrap_or(p);
            OWN_APPLETS.contains(&name)
                && matches!(&e.node, Node::Symlink(t) if t.ends_with("busybox"))
        })
        .map(|(p, _)| p.clone())
        .collect();
    for p in links {
        tree.entries.remove(&p);
    }
}

/// `DIR/ros` and `DIR/system-docker-shim` as `/usr/bin/…`, stripped, with the links to
/// `ros`. `scratch` is a directory for the stripped copies.
pub fn add_binaries(tree: &mut Tree, bin_dir: &Path, scratch: &Path) -> Result<(), InitrdError> {
    let strip = which("strip");
    if strip.is_none() {
        log::warn!("no `strip` here (binutils): the initrd gets unstripped binaries");
    }
    for name in ["ros", "system-docker-shim"] {
        let src = bin_dir.join(name);
        if !src.is_file() {
            return Err(InitrdError::MissingBinary { path: src });
        }
        let data = match &strip {
            Some(strip) => stripped(strip, &src, scratch)?,
            None => fs::read(&src).map_err(io_err(&src))?,
        };
        tree.insert(&format!("usr/bin/{name}"), Entry::file(data, 0o755));
    }
    tree.insert("init", Entry::symlink("usr/bin/ros"));
    for name in OWN_APPLETS {
        tree.insert(&format!("sbin/{name}"), Entry::symlink("../usr/bin/ros"));
    }
    tree.insert("usr/bin/system-docker", Entry::symlink("ros"));
    Ok(())
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// A copy of `src` run through `strip --strip-all`; the unstripped bytes, with a warning,
/// when strip fails.
fn stripped(strip: &Path, src: &Path, scratch: &Path) -> Result<Vec<u8>, InitrdError> {
    fs::create_dir_all(scratch).map_err(io_err(scratch))?;
    let name = src.file_name().unwrap_or_default().to_string_lossy();
    let tmp = scratch.join(format!("{name}.strip-{}", std::process::id()));
    fs::copy(src, &tmp).map_err(io_err(&tmp))?;
    let out = Command::new(strip).arg("--strip-all").arg(&tmp).output();
    let data = match out {
        Ok(o) if o.status.success() => fs::read(&tmp).map_err(io_err(&tmp)),
        Ok(o) => {
            log::warn!(
                "strip {}: {}; shipping it unstripped",
                src.display(),
                String::from_utf8_lossy(&o.stderr).trim()
            );
            fs::read(src).map_err(io_err(src))
        }
        Err(e) => {
            log::warn!("strip {}: {e}; shipping it unstripped", src.display());
            fs::read(src).map_err(io_err(src))
        }
    };
    let _ = fs::remove_file(&tmp);
    data
}

/// The service catalog: `os-config.yml` → `/usr/share/ros/os-config.yml`, every other
/// `*.yml` → `/usr/share/ros/catalog/`.
pub fn add_catalog(tree: &mut Tree, catalog: &Path) -> Result<usize, InitrdError> {
    let mut names: Vec<String> = fs::read_dir(catalog)
        .map_err(io_err(catalog))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yml"))
        .collect();
    names.sort();
    for n in &names {
        let p = catalog.join(n);
        let data = fs::read(&p).map_err(io_err(&p))?;
        let dest = if n == "os-config.yml" {
            "usr/share/ros/os-config.yml".to_string()
        } else {
            format!("usr/share/ros/catalog/{n}")
        };
        tree.insert(&dest, Entry::file(data, 0o644));
    }
    Ok(names.len())
}

/// The directories init mounts on, `/etc/os-release` when the layers have none, the
/// kernel release and the modules init loads at boot.
pub fn add_skeleton(
    tree: &mut Tree,
    version: &str,
    release: &str,
    load: &[String],
    system_load: &[String],
) {
    let dirs: [(&str, u32); 13] = [
        ("proc", 0o555),
        ("sys", 0o555),
        ("dev", 0o755),
        ("run", 0o755),
        ("tmp", 0o1777),
        ("mnt", 0o755),
        ("var", 0o755),
        ("var/lib", 0o755),
        ("var/log", 0o755),
        ("home", 0o755),
        ("opt", 0o755),
        ("root", 0o700),
        ("usr/share/ros", 0o755),
    ];
    for (p, mode) in dirs {
        tree.insert(p, Entry::dir(mode));
    }
    if !tree.entries.contains_key("etc/os-release") {
        tree.insert(
            "etc/os-release",
            Entry::file(
                format!("NAME=\"ros\"\nID=ros\nVERSION_ID={version}\n").into_bytes(),
                0o644,
            ),
        );
    }
    tree.insert(
        "usr/share/ros/kernel-release",
        Entry::file(format!("{release}\n").into_bytes(), 0o644),
    );
    for (path, list) in [
        ("usr/share/ros/modules-boot", load),
        ("usr/share/ros/modules-system", system_load),
    ] {
        let text: String = list.iter().map(|m| format!("{m}\n")).collect();
        tree.insert(path, Entry::file(text.into_bytes(), 0o644));
    }
}

/// The cpio entries of `tree`: sorted by path, every missing parent directory added (root,
/// 0755), `/dev/console`, and last the [`INITRD_COMPLETE`] marker.
pub fn entries(tree: &Tree) -> Vec<cpio::Entry> {
    let mut all = Tree::default();
    for p in tree.entries.keys() {
        let mut at = 0;
        while let Some(i) = p[at..].find('/') {
            all.insert(&p[..at + i], Entry::dir(0o755));
            at += i + 1;
        }
    }
    for (p, e) in &tree.entries {
        match all.entries.get_mut(p) {
            // A directory added as a parent takes the tree's owner and mode.
            Some(have) if have.node == Node::Dir && e.node == Node::Dir => *have = e.clone(),
            _ => all.insert(p, e.clone()),
        }
    }
    let mut out: Vec<cpio::Entry> = all
        .entries
        .iter()
        .map(|(p, e)| {
            let kind = match &e.node {
                Node::Dir => Kind::Dir,
                Node::File(d) => Kind::File(d.as_slice().to_vec()),
                Node::Symlink(t) => Kind::Symlink(t.clone()),
            };
            cpio::Entry::new(p, kind, e.mode, e.uid, e.gid)
        })
        .collect();
    if !all.entries.contains_key("dev/console") {
        let console = cpio::Entry::new("dev/console", Kind::CharDev(5, 1), 0o600, 0, 0);
        let at = out.partition_point(|e| e.path.as_str() < "dev/console");
        out.insert(at, console);
    }
    // Last, out of order: init finds it only when the kernel unpacked everything (with too
    // little memory it stops partway, says so once on the console, and runs /init anyway).
    for dir in ["usr", "usr/share", "usr/share/ros"] {
        if !all.entries.contains_key(dir) {
            out.push(cpio::Entry::new(dir, Kind::Dir, 0o755, 0, 0));
        }
    }
    out.push(cpio::Entry::new(
        INITRD_COMPLETE,
        Kind::File(format!("{} entries before this one\n", out.len()).into_bytes()),
        0o644,
        0,
        0,
    ));
    out
}

/// The files of `images.sqfs` init reads into the page cache while it boots; init's
/// `PREFETCH` (init/src/prefetch.rs) reads it.
pub const PREFETCH: &str = "usr/share/ros/prefetch";

/// The initrd's last entry; init's `INITRD_COMPLETE` (init/src/boot.rs) looks for it.
pub const INITRD_COMPLETE: &str = "usr/share/ros/initrd-complete";

/// Writes `entries` as a compressed cpio to `path` (through a temporary file). Returns
/// the uncompressed size.
pub fn write(
    path: &Path,
    entries: &[cpio::Entry],
    mtime: u64,
    compression: Compression,
) -> Result<u64, InitrdError> {
    let mtime = u32::try_from(mtime).unwrap_or(u32::MAX);
    let (raw, size) = cpio::write(Vec::new(), entries, mtime).map_err(io_err(path))?;
    let packed = match compression {
        Compression::Zstd => zstd(&raw)?,
        Compression::Gzip => {
            let mut gz = flate2::GzBuilder::new()
                .mtime(0)
                .write(Vec::new(), flate2::Compression::best());
            gz.write_all(&raw).map_err(io_err(path))?;
            gz.finish().map_err(io_err(path))?
        }
    };
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    fs::write(&tmp, packed).map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))?;
    Ok(size)
}

/// The zstd level of the initrd. The kernel unpacks level 9 about as fast as level 1 (1.6 s
/// against 1.2-1.5 s for 33 MiB under TCG) into 40% less: 10.9 MB against 18.0 (ruzstd's
/// only level, about zstd's 1), and the compressed initrd is held in RAM until it is
/// unpacked. Level 19 is smaller again (9.7 MB) but its 8 MiB window unpacked slower.
const ZSTD_LEVEL: &str = "-9";

/// Compresses `raw` with the zstd program: one thread (a given zstd makes the same bytes
/// from every build), with a checksum the kernel verifies.
fn zstd(raw: &[u8]) -> Result<Vec<u8>, InitrdError> {
    let mut child = Command::new("zstd")
        .args([ZSTD_LEVEL, "-T1", "--check", "-q", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => InitrdError::ZstdMissing,
            _ => InitrdError::Zstd(format!("cannot start it: {e}")),
        })?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    // Fed from a thread: zstd writes while it reads, and both pipes are bounded.
    let (fed, out) = std::thread::scope(|s| {
        let feeder = s.spawn(move || stdin.write_all(raw));
        let out = child.wait_with_output();
        (feeder.join(), out)
    });
    let out = out.map_err(|e| InitrdError::Zstd(format!("waiting for it: {e}")))?;
    if !out.status.success() {
        return Err(InitrdError::Zstd(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    match fed {
        Ok(Ok(())) => Ok(out.stdout),
        Ok(Err(e)) => Err(InitrdError::Zstd(format!("writing the cpio to it: {e}"))),
        Err(_) => Err(InitrdError::Zstd(
            "the thread writing to it panicked".into(),
        )),
    }
}

/// Reads an initrd back: decompresses it (zstd, gzip or none, by its magic) and parses the
/// cpio. For tests and for checking a build.
pub fn read_initrd(path: &Path) -> Result<Vec<cpio::Entry>, InitrdError> {
    let data = fs::read(path).map_err(io_err(path))?;
    let raw = if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let mut d = ruzstd::decoding::StreamingDecoder::new(data.as_slice()).map_err(|e| {
            InitrdError::Io {
                path: path.to_path_buf(),
                source: io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
            }
        })?;
        let mut out = Vec::new();
        d.read_to_end(&mut out).map_err(io_err(path))?;
        out
    } else if data.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data.as_slice())
            .read_to_end(&mut out)
            .map_err(io_err(path))?;
        out
    } else if data.starts_with(b"070701") {
        data
    } else {
        return Err(InitrdError::Format {
            path: path.to_path_buf(),
        });
    };
    cpio::parse(&raw).map_err(|source| InitrdError::Cpio {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_tree() -> Tree {
        let mut t = Tree::default();
        t.insert("bin", Entry::dir(0o755));
        t.insert("bin/busybox", Entry::file(b"bb".to_vec(), 0o755));
        t.insert("bin/sh", Entry::symlink("/bin/busybox"));
        t.insert("sbin/init", Entry::symlink("/bin/busybox"));
        t.insert("sbin/reboot", Entry::symlink("/bin/busybox"));
        t.insert("bin/halt", Entry::symlink("/bin/busybox"));
        t.insert("sbin/mke2fs", Entry::file(b"mke2fs".to_vec(), 0o755));
        // What add_tar makes of a hard link: a second file with the same bytes.
        t.insert("sbin/mkfs.ext4", Entry::file(b"mke2fs".to_vec(), 0o755));
        t.insert(
            "etc/shadow",
            Entry {
                node: Node::File(std::sync::Arc::new(b"root:*:1::::::\n".to_vec())),
                mode: 0o640,
                uid: 0,
                gid: 42,
            },
        );
        t
    }

    #[test]
    fn own_commands_replace_busybox_applets() {
        let tmp = tempfile::tempdir().unwrap();
        let bins = tmp.path().join("bin");
        fs::create_dir_all(&bins).unwrap();
        let err = add_binaries(&mut Tree::default(), &bins, tmp.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains(BUILD_BINARIES), "{err}");
        // Any ELF-less file will do: strip refuses it and the bytes go in unstripped.
        fs::write(bins.join("ros"), b"ros").unwrap();
        fs::write(bins.join("system-docker-shim"), b"shim").unwrap();

        let mut t = sample_tree();
        drop_own_applets(&mut t);
        assert!(!t.entries.contains_key("sbin/init"));
        assert!(!t.entries.contains_key("bin/halt"));
        assert!(t.entries.contains_key("bin/sh"));
        add_binaries(&mut t, &bins, tmp.path()).unwrap();
        assert_eq!(t.entries["init"].node, Node::Symlink("usr/bin/ros".into()));
        for n in OWN_APPLETS {
            assert_eq!(
                t.entries[&format!("sbin/{n}")].node,
                Node::Symlink("../usr/bin/ros".into())
            );
        }
        assert_eq!(
            t.entries["usr/bin/system-docker"].node,
            Node::Symlink("ros".into())
        );
        assert_eq!(t.entries["usr/bin/ros"].mode, 0o755);
    }

    #[test]
    fn initrds_read_back_with_parents_first_and_hard_links_as_files() {
        let tmp = tempfile::tempdir().unwrap();
        let catalog = tmp.path().join("catalog");
        fs::create_dir_all(&catalog).unwrap();
        fs::write(catalog.join("os-config.yml"), "rancher: {}\n").unwrap();
        fs::write(catalog.join("ntp.yml"), "ntp: {}\n").unwrap();
        fs::write(catalog.join("README"), "not config").unwrap();
        let mut t = sample_tree();
        assert_eq!(add_catalog(&mut t, &catalog).unwrap(), 2);
        add_skeleton(
            &mut t,
            "1.2.3",
            "6.1.0-1-amd64",
            &["virtio_blk".into(), "ext4".into()],
            &["bridge".into()],
        );
        let entries = entries(&t);
        // The marker comes last, after its parents.
        assert_eq!(entries.last().unwrap().path, INITRD_COMPLETE);
        let pos = |p: &str| entries.iter().position(|e| e.path == p).unwrap();
        assert!(pos("usr/share/ros") < entries.len() - 1);
        for c in [Compression::Zstd, Compression::Gzip] {
            let path = tmp.path().join(format!("initrd.{}", c.name()));
            let size = write(&path, &entries, 1_704_067_200, c).unwrap();
            assert!(fs::metadata(&path).unwrap().len() < size);
            let back = read_initrd(&path).unwrap();
            assert_eq!(back.len(), entries.len());
            let paths: Vec<&str> = back.iter().map(|e| e.path.as_str()).collect();
            // Every parent precedes its contents.
            for (i, p) in paths.iter().enumerate() {
                if let Some((parent, _)) = p.rsplit_once('/') {
                    let at = paths.iter().position(|q| *q == parent).expect(parent);
                    assert!(at < i, "{parent} after {p}");
                    assert_eq!(back[at].kind, Kind::Dir);
                }
            }
            let get = |p: &str| back.iter().find(|e| e.path == p).expect(p);
            assert_eq!(get("usr/share/ros/os-config.yml").data(), b"rancher: {}\n");
            assert_eq!(get("usr/share/ros/catalog/ntp.yml").data(), b"ntp: {}\n");
            assert!(back.iter().all(|e| !e.path.contains("README")));
            assert_eq!(
                get("usr/share/ros/modules-boot").data(),
                b"virtio_blk\next4\n"
            );
            assert_eq!(get("usr/share/ros/modules-system").data(), b"bridge\n");
            assert_eq!(
                get("usr/share/ros/kernel-release").data(),
                b"6.1.0-1-amd64\n"
            );
            assert!(
                String::from_utf8_lossy(get("etc/os-release").data()).contains("VERSION_ID=1.2.3")
            );
            assert_eq!(get("tmp").mode, 0o1777);
            assert_eq!(get("dev/console").kind, Kind::CharDev(5, 1));
            let shadow = get("etc/shadow");
            assert_eq!((shadow.mode, shadow.gid), (0o640, 42));
            assert_eq!(get("sbin/mkfs.ext4").kind, get("sbin/mke2fs").kind);
            assert_ne!(get("sbin/mkfs.ext4").ino, get("sbin/mke2fs").ino);
            assert_eq!(get("sbin/mke2fs").nlink, 1);
            assert!(back.iter().all(|e| e.mtime == 1_704_067_200));
            let inos: Vec<u32> = back.iter().map(|e| e.ino).collect();
            assert_eq!(inos, (1..=back.len() as u32).collect::<Vec<_>>());
        }
        let a = tmp.path().join("a");
        let b = tmp.path().join("b");
        write(&a, &entries, 5, Compression::Zstd).unwrap();
        write(&b, &entries, 5, Compression::Zstd).unwrap();
        assert_eq!(fs::read(a).unwrap(), fs::read(b).unwrap());
        let junk = tmp.path().join("junk");
        fs::write(&junk, b"junk").unwrap();
        assert!(read_initrd(&junk).is_err());
    }
}
