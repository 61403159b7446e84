//! The bootable artifacts of `dist/`: `ros-<ver>.raw` and `ros-<ver>.qcow2` (the ros disk
//! layout of `ros_init::disk::layout`, booting with BIOS and UEFI) and `ros-<ver>.iso`
//! (hybrid BIOS+UEFI live system).
//!
//! Made with tools on files, without loop mounts or root: the GPT is written here, GRUB's
//! core images come from `grub-mkimage`, the EFI partition from `mkfs.vfat` and mtools at
//! its offset in the image, the slot and state file systems from `mkfs.ext4 -d` at theirs,
//! the qcow2 from `qemu-img convert`, the ISO from `grub-mkrescue` (xorriso). Reproducible:
//! fixed GUIDs, UUIDs, serials and hash seeds derived from the version, every time set to
//! the build epoch (`SOURCE_DATE_EPOCH`, `E2FSPROGS_FAKE_TIME`, and `debugfs` setting the
//! change times `mkfs.ext4 -d` copies from the build's files).

pub mod grub;
mod tool;

use std::fs::{self, File, FileTimes};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use ros_init::disk::layout;
use sha2::{Digest, Sha256};

/// The virtual size of the disk images; the state partition grows to fill a bigger disk at
/// first boot (`qemu-img resize`, a bigger cloud volume).
pub const DISK_BYTES: u64 = 2 << 30;
/// The volume label of the live ISO, which init mounts its system images from.
pub const LIVE_LABEL: &str = "ROS_LIVE";

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("cannot run {program} (install {package}): {source}")]
    Spawn {
        program: String,
        package: String,
        source: io::Error,
    },
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        program: String,
        status: String,
        stderr: String,
    },
    #[error("GRUB: {0}")]
    Grub(String),
    #[error("the disk layout does not fit {0} bytes")]
    Layout(u64),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> DiskError + '_ {
    move |source| DiskError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What the disk build reads: the boot artifacts in `out`.
pub struct Inputs<'a> {
    pub version: &'a str,
    pub epoch: u64,
    /// `dist/`: holds `vmlinuz`, `initrd`, `images.sqfs`; gets the images.
    pub out: &'a Path,
    /// Scratch space (`.cache/image-build/disk`).
    pub work: &'a Path,
    /// Images whose archives (`out/images/<name>.tar`) go in `preload/docker/` of the slot
    /// and the ISO.
    pub preload: &'a [String],
}

/// The files made, relative to `out`.
#[derive(Debug, Clone)]
pub struct Outputs {
    pub raw: String,
    pub qcow2: String,
    pub iso: String,
}

/// A GUID (text-form byte order, version 4 bits set) derived from the version and a name,
/// so two builds of one version have the same bytes.
pub fn derived_guid(version: &str, name: &str) -> [u8; 16] {
    let h = Sha256::digest(format!("ros {version} {name}").as_bytes());
    let mut g = [0u8; 16];
    g.copy_from_slice(&h[..16]);
    g[6] = (g[6] & 0x0f) | 0x40;
    g[8] = (g[8] & 0x3f) | 0x80;
    g
}

fn uuid_text(g: &[u8; 16]) -> String {
    ros_init::disk::format_guid(g)
}

pub fn build(i: &Inputs) -> Result<Outputs, DiskError> {
    fs::create_dir_all(i.work).map_err(io_err(i.work))?;
    let early = i.work.join("early.cfg");
    fs::write(&early, grub::EARLY_CFG).map_err(io_err(&early))?;
    let core = i.work.join("core.img");
    grub::mkimage("i386-pc", grub::I386_PC, &core, &early)?;
    let efi_binary = i.work.join("BOOTX64.EFI");
    grub::mkimage("x86_64-efi", grub::X86_64_EFI, &efi_binary, &early)?;

    // The slot's files, every time the epoch (mkfs.ext4 -d copies them).
    let slot = i.work.join("slot");
    let _ = fs::remove_dir_all(&slot);
    fs::create_dir_all(&slot).map_err(io_err(&slot))?;
    for name in ["vmlinuz", "initrd", "images.sqfs"] {
        let dest = slot.join(name);
        fs::copy(i.out.join(name), &dest).map_err(io_err(&dest))?;
        set_epoch(&dest, i.epoch)?;
    }
    if !i.preload.is_empty() {
        let dir = slot.join("preload/docker");
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        for name in i.preload {
            let dest = dir.join(format!("{name}.tar"));
            fs::copy(i.out.join("images").join(format!("{name}.tar")), &dest)
                .map_err(io_err(&dest))?;
            set_epoch(&dest, i.epoch)?;
        }
        set_epoch(&dir, i.epoch)?;
        set_epoch(&slot.join("preload"), i.epoch)?;
    }
    set_epoch(&slot, i.epoch)?;

    let raw_name = format!("ros-{}.raw", i.version);
    let raw = i.out.join(&raw_name);
    let tmp = i.out.join(format!("{raw_name}.tmp-{}", std::process::id()));
    let made = write_raw(i, &tmp, &core, &efi_binary, &slot);
    if let Err(e) = made {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, &raw).map_err(io_err(&raw))?;
    log::info!(
        "disk: {} ({} virtual)",
        raw.display(),
        crate::human(DISK_BYTES)
    );

    let qcow2_name = format!("ros-{}.qcow2", i.version);
    let qcow2 = i.out.join(&qcow2_name);
    let tmp = i
        .out
        .join(format!("{qcow2_name}.tmp-{}", std::process::id()));
    tool::run(
        Command::new("qemu-img")
            .args(["convert", "-q", "-f", "raw", "-O", "qcow2", "-c"])
            .args(["-o", "compression_type=zlib"])
            .arg(&raw)
            .arg(&tmp),
        "qemu-utils",
    )?;
    fs::rename(&tmp, &qcow2).map_err(io_err(&qcow2))?;
    log::info!("disk: {}", qcow2.display());

    let install = install_files(i, &core, &efi_binary)?;
    let iso_name = format!("ros-{}.iso", i.version);
    write_iso(i, &i.out.join(&iso_name), &slot, &install)?;
    Ok(Outputs {
        raw: raw_name,
        qcow2: qcow2_name,
        iso: iso_name,
    })
}

fn set_epoch(path: &Path, epoch: u64) -> Result<(), DiskError> {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(epoch);
    File::open(path)
        .and_then(|f| f.set_times(FileTimes::new().set_accessed(t).set_modified(t)))
        .map_err(io_err(path))
}

/// Sets the change time of every inode `mkfs.ext4 -d dir` made (at `offset` in `raw`) to
/// the epoch: mkfs copies each source file's ctime, which only the kernel sets, so two
/// builds would differ in it. One `debugfs -w` run with a command per path.
fn pin_ctimes(
    raw: &Path,
    offset: u64,
    dir: &Path,
    epoch: u64,
    script: &Path,
) -> Result<(), DiskError> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<String>) -> Result<(), DiskError> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .map_err(io_err(dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        for n in names {
            let path = format!("{rel}/{n}");
            out.push(path.clone());
            let full = dir.join(&n);
            if fs::symlink_metadata(&full).map_err(io_err(&full))?.is_dir() {
                walk(&full, &path, out)?;
            }
        }
        Ok(())
    }
    let mut paths = vec!["/".to_owned(), "/lost+found".to_owned()];
    walk(dir, "", &mut paths)?;
    let mut cmds = String::new();
    for p in &paths {
        if p.contains(['"', '\n', ' ']) {
            return Err(DiskError::Io {
                path: dir.join(p.trim_start_matches('/')),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "debugfs cannot name a path with spaces or quotes",
                ),
            });
        }
        cmds.push_str(&format!("sif {p} ctime @{epoch}\n"));
    }
    fs::write(script, cmds).map_err(io_err(script))?;
    let mut cmd = Command::new("debugfs");
    cmd.env("E2FSPROGS_FAKE_TIME", epoch.to_string())
        .stdout(std::process::Stdio::null())
        .arg("-w")
        .arg("-f")
        .arg(script)
        .arg(format!("{}?offset={offset}", raw.display()));
    let stderr = tool::stderr_of(&mut cmd, "e2fsprogs")?;
    // debugfs exits 0 when a command fails; its banner is the only line it writes otherwise.
    let failed: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("debugfs "))
        .collect();
    if !failed.is_empty() {
        return Err(DiskError::Failed {
            program: "debugfs".into(),
            status: "0 with errors".into(),
            stderr: failed.join("\n"),
        });
    }
    Ok(())
}

fn write_raw(
    i: &Inputs,
    raw: &Path,
    core: &Path,
    efi_binary: &Path,
    slot: &Path,
) -> Result<(), DiskError> {
    let f = File::create(raw).map_err(io_err(raw))?;
    f.set_len(DISK_BYTES).map_err(io_err(raw))?;
    drop(f);
    let parts = layout::plan(DISK_BYTES, |n| {
        derived_guid(i.version, &format!("partition {n}"))
    })
    .ok_or(DiskError::Layout(DISK_BYTES))?;
    let boot_img = Path::new(grub::I386_PC).join("boot.img");
    let boot_img = fs::read(&boot_img).map_err(io_err(&boot_img))?;
    let core_lba = parts[0].first_lba;
    let mbr = grub::mbr_boot_code(&boot_img, core_lba)?;
    ros_init::disk::write_table(raw, derived_guid(i.version, "disk"), &parts, &mbr, false)
        .map_err(io_err(raw))?;

    // BIOS: the core image in the BIOS-boot partition.
    let core_bytes = fs::read(core).map_err(io_err(core))?;
    let room = (parts[0].last_lba + 1 - parts[0].first_lba) * 512;
    let placed = grub::place_core(&core_bytes, core_lba, room)?;
    write_at(raw, core_lba * 512, &placed)?;

    // UEFI and the shared config: ROS_EFI.
    let efi_config = efi_config(i)?;
    let efi = &parts[1];
    let efi_offset = efi.first_lba * 512;
    let efi_kib = (efi.last_lba + 1 - efi.first_lba) / 2;
    tool::run(
        Command::new("mkfs.vfat")
            .env("SOURCE_DATE_EPOCH", i.epoch.to_string())
            .args(["--invariant", "-F", "32", "-s", "1", "-n", "ROS_EFI", "-i"])
            .arg(hex::encode(&derived_guid(i.version, "efi")[..4]))
            .args(["--offset", &efi.first_lba.to_string()])
            .arg(raw)
            .arg(efi_kib.to_string()),
        "dosfstools",
    )?;
    let (cfg, env) = (&efi_config[0], &efi_config[1]);
    set_epoch(efi_binary, i.epoch)?;
    let image = format!("{}@@{efi_offset}", raw.display());
    let mtools = |args: &[&str], files: &[&Path]| {
        tool::run(
            Command::new(args[0])
                .env("SOURCE_DATE_EPOCH", i.epoch.to_string())
                .env("MTOOLS_SKIP_CHECK", "1")
                .args(["-i", &image])
                .args(&args[1..])
                .args(files),
            "mtools",
        )
    };
    mtools(
        &["mmd", "::/EFI", "::/EFI/BOOT", "::/boot", "::/boot/grub"],
        &[],
    )?;
    mtools(
        &["mcopy", "-m"],
        &[efi_binary, Path::new("::/EFI/BOOT/BOOTX64.EFI")],
    )?;
    mtools(&["mcopy", "-m"], &[cfg, env, Path::new("::/boot/grub/")])?;

    // The slots and the state partition.
    let ext4 = |name: &str, dir: Option<&Path>, journal: bool| -> Result<(), DiskError> {
        let p = &parts[layout::index_of(name).unwrap_or(1) as usize - 1];
        let uuid = uuid_text(&derived_guid(i.version, &format!("{name} fs")));
        let mut cmd = Command::new("mkfs.ext4");
        cmd.env("E2FSPROGS_FAKE_TIME", i.epoch.to_string())
            .args(["-q", "-F", "-L", name, "-U", &uuid, "-m", "0"])
            .arg("-E")
            .arg(format!(
                "hash_seed={uuid},root_owner=0:0,offset={}",
                p.first_lba * 512
            ));
        if !journal {
            cmd.args(["-O", "^has_journal"]);
        }
        if let Some(d) = dir {
            cmd.arg("-d").arg(d);
        }
        cmd.arg(raw)
            .arg(format!("{}k", (p.last_lba + 1 - p.first_lba) / 2));
        tool::run(&mut cmd, "e2fsprogs")?;
        match dir {
            Some(d) => pin_ctimes(
                raw,
                p.first_lba * 512,
                d,
                i.epoch,
                &i.work.join(format!("{name}.debugfs")),
            ),
            None => Ok(()),
        }
    };
    // The slots are read-only while booted: no journal.
    ext4("ROS_A", Some(slot), false)?;
    ext4("ROS_B", None, false)?;
    ext4("ROS_STATE", None, true)?;
    Ok(())
}

/// `grub.cfg` and `grubenv` of ROS_EFI, written in the work folder with the epoch's time.
fn efi_config(i: &Inputs) -> Result<[PathBuf; 2], DiskError> {
    let files = i.work.join("efi");
    let _ = fs::remove_dir_all(&files);
    fs::create_dir_all(&files).map_err(io_err(&files))?;
    let cfg = files.join("grub.cfg");
    fs::write(&cfg, grub::disk_cfg(i.version)).map_err(io_err(&cfg))?;
    let env = files.join("grubenv");
    fs::write(&env, grub::grubenv(&[("ros_slot", "A")])).map_err(io_err(&env))?;
    for f in [&cfg, &env] {
        set_epoch(f, i.epoch)?;
    }
    Ok([cfg, env])
}

/// What `ros install` writes besides the slot's files, as the ISO carries it in `install/`:
/// `mbr.bin` (the protective MBR's boot code), `core.img` (placed for the BIOS-boot
/// partition), `BOOTX64.EFI`, `grub.cfg`, `grubenv`. The layout fixes where the core image
/// goes, so both are ready to copy.
fn install_files(i: &Inputs, core: &Path, efi_binary: &Path) -> Result<PathBuf, DiskError> {
    let dir = i.work.join("install");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let parts = layout::plan(layout::MIN_DISK_BYTES, |_| [0; 16])
        .ok_or(DiskError::Layout(layout::MIN_DISK_BYTES))?;
    let core_lba = parts[0].first_lba;
    let room = (parts[0].last_lba + 1 - core_lba) * 512;
    let boot_img = Path::new(grub::I386_PC).join("boot.img");
    let boot_img = fs::read(&boot_img).map_err(io_err(&boot_img))?;
    let core_bytes = fs::read(core).map_err(io_err(core))?;
    let files: [(&str, Vec<u8>); 2] = [
        ("mbr.bin", grub::mbr_boot_code(&boot_img, core_lba)?),
        ("core.img", grub::place_core(&core_bytes, core_lba, room)?),
    ];
    for (name, data) in files {
        let p = dir.join(name);
        fs::write(&p, data).map_err(io_err(&p))?;
    }
    let [cfg, env] = efi_config(i)?;
    let sources: [(&Path, &str); 3] = [
        (efi_binary, "BOOTX64.EFI"),
        (&cfg, "grub.cfg"),
        (&env, "grubenv"),
    ];
    for (from, name) in sources {
        let p = dir.join(name);
        fs::copy(from, &p).map_err(io_err(&p))?;
    }
    Ok(dir)
}

fn write_at(path: &Path, offset: u64, data: &[u8]) -> Result<(), DiskError> {
    use std::os::unix::fs::FileExt;
    let f = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    f.write_all_at(data, offset).map_err(io_err(path))
}

/// The live ISO: GRUB for BIOS (El Torito) and UEFI (an EFI image), the kernel, the initrd,
/// the system images and `preload/` at its root, what `ros install` needs in `install/`,
/// volume label [`LIVE_LABEL`].
fn write_iso(i: &Inputs, iso: &Path, slot: &Path, install: &Path) -> Result<(), DiskError> {
    let root = i.work.join("iso");
    let _ = fs::remove_dir_all(&root);
    let grub_dir = root.join("boot/grub");
    fs::create_dir_all(&grub_dir).map_err(io_err(&grub_dir))?;
    for name in ["vmlinuz", "initrd", "images.sqfs"] {
        let dest = root.join(name);
        fs::hard_link(slot.join(name), &dest).map_err(io_err(&dest))?;
    }
    if slot.join("preload").is_dir() {
        let dest = root.join("preload/docker");
        fs::create_dir_all(&dest).map_err(io_err(&dest))?;
        for e in fs::read_dir(slot.join("preload/docker")).map_err(io_err(slot))? {
            let e = e.map_err(io_err(slot))?;
            let to = dest.join(e.file_name());
            fs::hard_link(e.path(), &to).map_err(io_err(&to))?;
        }
    }
    let cfg = grub_dir.join("grub.cfg");
    fs::write(&cfg, grub::live_cfg(i.version, LIVE_LABEL)).map_err(io_err(&cfg))?;
    let dest = root.join("install");
    fs::create_dir_all(&dest).map_err(io_err(&dest))?;
    for e in fs::read_dir(install).map_err(io_err(install))? {
        let e = e.map_err(io_err(install))?;
        let to = dest.join(e.file_name());
        fs::hard_link(e.path(), &to).map_err(io_err(&to))?;
    }
    let tmp = iso.with_extension(format!("iso.tmp-{}", std::process::id()));
    tool::run(
        Command::new("grub-mkrescue")
            .env("SOURCE_DATE_EPOCH", i.epoch.to_string())
            .arg("-o")
            .arg(&tmp)
            .arg(&root)
            .args(["--", "-volid", LIVE_LABEL]),
        "grub-pc-bin, grub-efi-amd64-bin, xorriso, mtools",
    )?;
    fs::rename(&tmp, iso).map_err(io_err(iso))?;
    log::info!("disk: {}", iso.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_guids_are_v4_and_stable() {
        let a = derived_guid("1.0.0", "disk");
        assert_eq!(a, derived_guid("1.0.0", "disk"));
        assert_ne!(a, derived_guid("1.0.1", "disk"));
        assert_eq!(a[6] >> 4, 4);
        assert_eq!(a[8] >> 6, 2);
    }
}
