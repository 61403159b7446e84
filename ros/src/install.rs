//! `ros install -d DEVICE [-c CLOUD_CONFIG]`: writes the ros disk layout
//! (`ros_init::disk::layout`) from the running live system onto a disk: the GPT with fresh
//! GUIDs, GRUB's boot code and core image (BIOS) and ROS_EFI (UEFI, `grub.cfg`, grubenv),
//! slot A with the kernel, initrd, system images and preloaded images of the boot medium,
//! an empty slot B, and the state partition, holding the given cloud-config as the user's
//! `cloud-config.yml`.
//!
//! The cloud-config is validated before anything is written. A disk that holds anything is
//! refused unless `--force`; on a terminal the user confirms first.

use std::fs;
use std::io::{self, BufRead, IsTerminal, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use nix::mount::{mount, umount, MsFlags};
use ros_init::disk::{self, layout};

#[derive(Args, Debug)]
pub struct InstallArgs {
    /// The disk to install to (its contents are lost)
    #[arg(short = 'd', long = "device", value_name = "DEVICE")]
    device: PathBuf,
    /// A cloud-config for the installed host (kept as its cloud-config.yml)
    #[arg(short = 'c', long = "cloud-config", value_name = "FILE")]
    cloud_config: Option<PathBuf>,
    /// Overwrite a disk that is not blank, without asking
    #[arg(short = 'f', long)]
    force: bool,
    /// Do not reboot when done
    #[arg(long)]
    no_reboot: bool,
    /// Where the boot medium is mounted (the live ISO)
    #[arg(long, value_name = "DIR", default_value = "/run/ros/boot")]
    source: PathBuf,
}

const STAGE: &str = "/run/ros/install";

pub fn run(args: InstallArgs) -> i32 {
    match install(&args) {
        Ok(()) => {
            if args.no_reboot {
                println!("ros install: done; remove the installation medium and reboot");
                0
            } else {
                println!("ros install: done; rebooting (remove the installation medium)");
                crate::power::main("reboot", &[])
            }
        }
        Err(e) => {
            eprintln!("ros install: {e:#}");
            1
        }
    }
}

fn step(what: &str) {
    println!("ros install: {what}");
}

fn install(a: &InstallArgs) -> Result<()> {
    let config = match &a.cloud_config {
        Some(f) => {
            let text = fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            ros_cloud_config::parse_document(&f.display().to_string(), &text)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Some(text)
        }
        None => None,
    };
    let install = a.source.join("install");
    for f in [
        "vmlinuz",
        "initrd",
        "images.sqfs",
        "install/mbr.bin",
        "install/core.img",
        "install/BOOTX64.EFI",
        "install/grub.cfg",
        "install/grubenv",
    ] {
        if !a.source.join(f).is_file() {
            bail!(
                "{} is missing: run ros install from the live ISO (or name its files with --source)",
                a.source.join(f).display()
            );
        }
    }
    // The disk itself, not a link to it (`/dev/disk/by-id/…`): partition names are made
    // from its name.
    let dev = &fs::canonicalize(&a.device).with_context(|| format!("{}", a.device.display()))?;
    let meta = fs::metadata(dev).with_context(|| format!("{}", dev.display()))?;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
    if !meta.file_type().is_block_device() {
        bail!("{} is not a block device", dev.display());
    }
    let (major, minor) = (
        nix::sys::stat::major(meta.rdev()),
        nix::sys::stat::minor(meta.rdev()),
    );
    if Path::new(&format!("/sys/dev/block/{major}:{minor}/partition")).exists() {
        bail!("{} is a partition; name the whole disk", dev.display());
    }
    // An exclusive open fails while the disk or any of its partitions is mounted (or in use
    // as a loop device's backing, or by the device mapper).
    if let Err(e) = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_EXCL)
        .open(dev)
    {
        bail!(
            "{} is in use ({e}): unmount its partitions first (the live system mounts none)",
            dev.display()
        );
    }
    let sector = disk::logical_sector_size(dev)
        .with_context(|| format!("reading the sector size of {}", dev.display()))?;
    if sector != 512 {
        bail!(
            "{} has {sector}-byte sectors; ros install writes 512-byte-sector disks only",
            dev.display()
        );
    }
    let size = fs::File::open(dev)
        .and_then(|mut f| io::Seek::seek(&mut f, io::SeekFrom::End(0)))
        .with_context(|| format!("reading the size of {}", dev.display()))?;
    if size < layout::MIN_DISK_BYTES {
        bail!(
            "{} holds {} MiB; ros needs at least {} MiB",
            dev.display(),
            size >> 20,
            layout::MIN_DISK_BYTES >> 20
        );
    }
    let blank = disk::is_blank(dev).with_context(|| format!("reading {}", dev.display()))?;
    if !blank && !a.force {
        if io::stdin().is_terminal() {
            print!(
                "ros install: {} is not blank; everything on it will be lost. Continue? [y/N] ",
                dev.display()
            );
            io::stdout().flush()?;
            let mut answer = String::new();
            io::stdin().lock().read_line(&mut answer)?;
            if !matches!(answer.trim(), "y" | "Y" | "yes") {
                bail!("not installed");
            }
        } else {
            bail!("{} is not blank; --force overwrites it", dev.display());
        }
    }

    step(&format!(
        "partitioning {} ({} MiB)",
        dev.display(),
        size >> 20
    ));
    // Wipe the ends first: old tables and signatures must not outlive the install.
    let f = fs::OpenOptions::new().write(true).open(dev)?;
    let zeros = vec![0u8; 1 << 20];
    f.write_all_at(&zeros, 0)?;
    f.write_all_at(&zeros, size - (1 << 20))?;
    f.sync_all()?;
    drop(f);
    let parts =
        layout::plan(size, |_| disk::random_guid()).context("the disk layout does not fit")?;
    let mbr = fs::read(install.join("mbr.bin"))?;
    disk::write_table(dev, disk::random_guid(), &parts, &mbr, false)?;
    let core = fs::read(install.join("core.img"))?;
    let f = fs::OpenOptions::new().write(true).open(dev)?;
    f.write_all_at(&core, parts[0].first_lba * 512)?;
    // Clear the other partitions' first MiB: no stale file system is recognized there.
    for p in &parts[1..] {
        f.write_all_at(&zeros, p.first_lba * 512)?;
    }
    f.sync_all()?;
    drop(f);
    disk::reread_partitions(dev)?;
    let part = |name: &str| {
        let n = layout::index_of(name).unwrap_or(1);
        disk::partition_path(dev, n)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !layout::NAMES.iter().all(|n| part(n).exists()) {
        if Instant::now() > deadline {
            bail!("the partitions of {} did not appear", dev.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    step("making the file systems");
    tool(
        Command::new("mkfs.fat")
            .args(["-F", "32", "-s", "1", "-n", "ROS_EFI"])
            .arg(part("ROS_EFI")),
    )?;
    for (name, journal) in [("ROS_A", false), ("ROS_B", false), ("ROS_STATE", true)] {
        let mut cmd = Command::new("mkfs.ext4");
        cmd.args(["-q", "-F", "-L", name]);
        if !journal {
            cmd.args(["-O", "^has_journal", "-m", "0"]);
        }
        tool(cmd.arg(part(name)))?;
    }

    step("installing the boot loader");
    with_mount(&part("ROS_EFI"), "vfat", |dir| {
        for d in ["EFI/BOOT", "boot/grub"] {
            fs::create_dir_all(dir.join(d))?;
        }
        copy(
            &install.join("BOOTX64.EFI"),
            &dir.join("EFI/BOOT/BOOTX64.EFI"),
        )?;
        copy(&install.join("grub.cfg"), &dir.join("boot/grub/grub.cfg"))?;
        copy(&install.join("grubenv"), &dir.join("boot/grub/grubenv"))
    })?;

    step("installing ros in slot A");
    with_mount(&part("ROS_A"), "ext4", |dir| {
        for f in ["vmlinuz", "initrd", "images.sqfs"] {
            copy(&a.source.join(f), &dir.join(f))?;
        }
        let preload = a.source.join("preload/docker");
        if preload.is_dir() {
            fs::create_dir_all(dir.join("preload/docker"))?;
            for e in fs::read_dir(&preload)? {
                let e = e?;
                if e.file_type()?.is_file() {
                    copy(&e.path(), &dir.join("preload/docker").join(e.file_name()))?;
                }
            }
        }
        Ok(())
    })?;

    if let Some(text) = config {
        step("keeping the cloud-config on the state partition");
        with_mount(&part("ROS_STATE"), "ext4", |dir| {
            let conf = dir.join("var/lib/ros/conf");
            fs::create_dir_all(&conf)?;
            ros_cloud_config::edit::write_atomic(
                &conf.join("cloud-config.yml"),
                text.as_bytes(),
                0o600,
            )
        })?;
    }
    nix::unistd::sync();
    Ok(())
}

fn tool(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("running {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{:?} failed ({}): {}",
            cmd.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn copy(from: &Path, to: &Path) -> io::Result<()> {
    fs::copy(from, to).map(|_| ())
}

/// Mounts `dev` on a staging directory for `f`, then unmounts it.
fn with_mount(dev: &Path, fstype: &str, f: impl FnOnce(&Path) -> io::Result<()>) -> Result<()> {
    let dir = Path::new(STAGE);
    fs::create_dir_all(dir)?;
    mount(Some(dev), dir, Some(fstype), MsFlags::empty(), None::<&str>)
        .with_context(|| format!("mounting {} ({fstype})", dev.display()))?;
    let done = f(dir).with_context(|| format!("writing to {}", dev.display()));
    nix::unistd::sync();
    let unmounted = umount(dir).with_context(|| format!("unmounting {}", dev.display()));
    done.and(unmounted)
}
