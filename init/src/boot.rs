//! The boot of a real ros host, after [`crate::early`] has left the initramfs: kernel
//! modules, the system images, the state partition, per-host identity, and the plan PID 1
//! supervises — system-docker, the one-shot bring-up of the services (which prints the
//! ready line), and root shells on the `ros.autologin` consoles.

use std::fs;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::mount::{mount, MsFlags};
use ros_cloud_config::load::{load, ConfigPaths, Loaded};

use crate::disk;
use crate::kmod;
use crate::plan::{Plan, Restart, ServiceSpec};
use crate::state::{self, State, StateConfig};

/// The modules init loads before it looks for disks (written by image-build).
const BOOT_MODULES: &str = "/usr/share/ros/modules-boot";
/// The modules init loads once the system images (which hold the rest) and the state
/// partition are mounted.
const SYSTEM_MODULES: &str = "/usr/share/ros/modules-system";
/// The initrd's last entry (image-build writes it after everything else): when it is
/// missing the kernel did not unpack the whole initrd, which it reports only on the console.
const INITRD_COMPLETE: &str = "/usr/share/ros/initrd-complete";
/// Where the system images' read-only store is mounted; system-docker's `--image-store`.
pub const IMAGES_MOUNT: &str = "/usr/share/ros/images";
/// Where the file system holding the images file is mounted.
const BOOT_MOUNT: &str = "/run/ros/boot";
/// The images file on a boot slot or the live ISO.
const IMAGES_FILE: &str = "images.sqfs";
/// The system engine's socket (DESIGN.md §4).
pub const SYSTEM_SOCKET: &str = "/run/system-docker.sock";
/// The boot log, on the state partition when there is one.
pub const BOOT_LOG_DIR: &str = "/var/log/boot";

/// What the boot made; the plan to supervise and what shutdown needs.
pub struct Booted {
    pub plan: Plan,
    pub state: State,
}

impl Booted {
    /// A boot that could not finish: a root shell on the console, nothing else.
    pub fn recovery() -> Booted {
        Booted {
            plan: recovery_plan(),
            state: State::Ram("the boot did not finish".into()),
        }
    }
}

/// The running config as far as it can be read now (the user's files live on the state
/// partition, so this is read again once it is mounted).
fn config() -> Loaded {
    let loaded = load(&ConfigPaths::new("/"));
    for e in &loaded.errors {
        log::error!("config: {e} (left out)");
    }
    loaded
}

fn seconds(loaded: &Loaded, key: &str, default: u64) -> Duration {
    Duration::from_secs(loaded.ros_u64(key).unwrap_or(default))
}

/// The modules a list file names (one per line, `#` comments).
fn module_list(path: &str) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// Loads `names` (several at once) from the module tree now at `/lib/modules/<release>`;
/// `optional` ones are skipped when that tree does not have them.
fn load_modules(names: &[String], optional: &[String], what: &str) {
    let release = kmod::kernel_release();
    let dir = Path::new("/lib/modules").join(&release);
    let index = match kmod::ModuleIndex::load(&dir) {
        Ok(i) => i,
        Err(e) => {
            log::warn!("no kernel modules for {release} ({}): {e}", dir.display());
            return;
        }
    };
    let mut names = names.to_vec();
    for m in optional {
        if !names.contains(m) && index.resolve(m).is_ok() {
            names.push(m.clone());
        }
    }
    if names.is_empty() {
        return;
    }
    let started = Instant::now();
    let mut failed = Vec::new();
    for (name, result) in kmod::load_modules_parallel(&index, &names, 4) {
        if let Err(e) = result {
            log::warn!("module {name}: {e}");
            failed.push(name);
        }
    }
    log::info!(
        "loaded {} {what} kernel module(s) in {:?}{}",
        names.len() - failed.len(),
        started.elapsed(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(" ({} failed: {})", failed.len(), failed.join(", "))
        }
    );
}

/// Puts the images' module tree (`modules/<release>`: every module the image ships, the
/// initrd's too) in place of the initrd's at `/lib/modules/<release>`, whose files would
/// only take RAM once loaded. If the bind fails, the initrd's tree stays.
fn use_images_modules(images: &Path) -> Result<(), String> {
    let release = kmod::kernel_release();
    let from = images.join("modules").join(&release);
    if !from.is_dir() {
        return Err(format!("{} is missing", from.display()));
    }
    let own = Path::new("/lib/modules").join(&release);
    let aside = Path::new("/lib/modules").join(format!(".{release}.initrd"));
    let moved = fs::rename(&own, &aside).is_ok();
    let bound = fs::create_dir_all(&own)
        .map_err(|e| format!("{}: {e}", own.display()))
        .and_then(|()| {
            mount(
                Some(&from),
                &own,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| format!("bind {} on {}: {e}", from.display(), own.display()))
        });
    match bound {
        Ok(()) => {
            if moved {
                let _ = fs::remove_dir_all(&aside);
            }
            Ok(())
        }
        Err(e) => {
            if moved {
                let _ = fs::remove_dir(&own);
                let _ = fs::rename(&aside, &own);
            }
            Err(e)
        }
    }
}

fn mkdir(path: &str) {
    let _ = fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path);
}

/// Mounts the system images read-only at [`IMAGES_MOUNT`]: a squashfs device, or the
/// `images.sqfs` file on the device `spec` names (a boot slot, the live ISO), or a file
/// path. Returns the store directory.
fn mount_images(spec: &str, wait: Duration) -> Result<PathBuf, String> {
    let squashfs_file = if spec.starts_with('/') && Path::new(spec).is_file() {
        PathBuf::from(spec)
    } else {
        let dev = disk::find(
            spec,
            Path::new("/sys"),
            Path::new("/dev"),
            Instant::now() + wait,
        )
        .map_err(|e| e.to_string())?;
        let probe = fs::File::open(&dev)
            .ok()
            .and_then(|mut f| disk::probe(&mut f))
            .ok_or_else(|| format!("{}: no file system found", dev.display()))?;
        let fstype = probe.fs.as_str();
        if fstype == "squashfs" {
            mkdir(IMAGES_MOUNT);
            return mount(
                Some(&dev),
                IMAGES_MOUNT,
                Some("squashfs"),
                MsFlags::MS_RDONLY,
                None::<&str>,
            )
            .map(|_| PathBuf::from(IMAGES_MOUNT))
            .map_err(|e| format!("mount {} (squashfs): {e}", dev.display()));
        }
        mkdir(BOOT_MOUNT);
        mount(
            Some(&dev),
            BOOT_MOUNT,
            Some(fstype),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(|e| format!("mount {} ({fstype}): {e}", dev.display()))?;
        Path::new(BOOT_MOUNT).join(IMAGES_FILE)
    };
    let dev = disk::loop_attach(&squashfs_file, true)
        .map_err(|e| format!("loop device for {}: {e}", squashfs_file.display()))?;
    let loop_path = dev.path().to_path_buf();
    mkdir(IMAGES_MOUNT);
    mount(
        Some(&loop_path),
        IMAGES_MOUNT,
        Some("squashfs"),
        MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .map_err(|e| format!("mount {} (squashfs): {e}", squashfs_file.display()))?;
    // The mount holds the loop device now; it clears itself when the squashfs is unmounted.
    drop(dev);
    Ok(PathBuf::from(IMAGES_MOUNT))
}

/// Per-host identity, made at first boot and kept on the state partition: machine-id.
fn identity() {
    let kept = Path::new("/var/lib/ros/machine-id");
    let id = match fs::read_to_string(kept) {
        Ok(id) if id.trim().len() == 32 => id.trim().to_string(),
        _ => {
            let id = disk::random_guid()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>();
            mkdir("/var/lib/ros");
            if let Err(e) = fs::write(kept, format!("{id}\n")) {
                log::warn!("cannot keep the machine-id in {}: {e}", kept.display());
            }
            log::info!("first boot: machine-id {id}");
            id
        }
    };
    mkdir("/etc");
    let _ = fs::write("/etc/machine-id", format!("{id}\n"));
}

/// The random seed kept on the state partition.
const RANDOM_SEED: &str = "/var/lib/ros/random-seed";

/// Mixes the seed saved at the last shutdown into the kernel's pool (written, not credited:
/// it adds uncertainty without claiming any) and replaces it at once, so a seed is never
/// used twice even if the host crashes.
fn seed_entropy() {
    if let Ok(seed) = fs::read(RANDOM_SEED) {
        if let Ok(mut u) = fs::OpenOptions::new().write(true).open("/dev/urandom") {
            let _ = u.write_all(&seed);
        }
    }
    save_random_seed();
}

/// Saves 512 bytes of the kernel's randomness for the next boot (also at shutdown).
pub fn save_random_seed() {
    let mut seed = [0u8; 512];
    let ok = fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut seed))
        .is_ok();
    if ok && Path::new("/var/lib/ros").is_dir() {
        let tmp = Path::new(RANDOM_SEED).with_extension("tmp");
        if fs::write(&tmp, seed).is_ok() {
            let _ = fs::rename(&tmp, RANDOM_SEED);
        }
    }
}

/// The host's files that system containers bind (DESIGN.md §4): they must exist as files
/// before the first container starts, or the engine would make directories of them.
fn host_files(hostname: &str) {
    let resolv = Path::new("/etc/resolv.conf");
    if resolv.is_dir() {
        let _ = fs::remove_dir_all(resolv);
    }
    if !resolv.exists() {
        let _ = fs::write(resolv, "# written by ros netconf once the network is up\n");
    }
    let _ = fs::write(
        "/etc/hosts",
        format!("127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
    );
    for dir in ["/etc/docker", "/etc/ssh", "/media", "/mnt"] {
        mkdir(dir);
    }
}

fn hostname(loaded: &Loaded) {
    let name = loaded
        .value
        .get("hostname")
        .and_then(|v| v.as_str())
        .unwrap_or("ros");
    if let Err(e) = nix::unistd::sethostname(name) {
        log::warn!("sethostname {name}: {e}");
    }
    let _ = fs::write("/etc/hostname", format!("{name}\n"));
    host_files(name);
}

/// Appends a line to the boot log (best effort; rotated at 1 MiB, one old copy kept).
pub fn boot_log(line: &str) {
    mkdir(BOOT_LOG_DIR);
    crate::logger::append(&boot_log_file(), &format!("{line}\n"));
}

/// Says something on the console itself (not only through the log).
pub fn console(line: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
    boot_log(line);
}

/// Sets this process's OOM score adjustment (PID 1's -1000; the bring-up's changes).
pub fn set_oom_score_adj(score: i32) {
    if let Err(e) = fs::write("/proc/self/oom_score_adj", score.to_string()) {
        log::warn!("oom_score_adj {score}: {e}");
    }
}

/// The boot log file, on the state partition once it is mounted.
pub fn boot_log_file() -> PathBuf {
    Path::new(BOOT_LOG_DIR).join("init.log")
}

/// Everything between the early mounts and supervision.
pub fn boot() -> Booted {
    set_oom_score_adj(-1000);
    let incomplete = !Path::new(INITRD_COMPLETE).exists();
    if incomplete {
        console(&format!(
            "ros: the initrd was not fully unpacked (the kernel said \"Initramfs unpacking \
             failed\" above): modules, config and programs are missing. This machine has {} \
             MiB of memory; the kernel needs about three times the initrd's size to unpack it \
             (give it more, e.g. -m 256). Recovery shell on the console",
            mem_total_mib().map_or_else(|| "?".to_owned(), |m| m.to_string())
        ));
    }
    let loaded = config();
    // `ros.modules` given so far (the kernel command line, the image's config) may name a
    // disk driver: those the initrd has are loaded now, the rest with the system's below.
    load_modules(
        &module_list(BOOT_MODULES),
        &loaded.ros_strings("modules"),
        "boot",
    );
    let wait = seconds(&loaded, "state.wait", 3);
    let images_spec = loaded
        .ros_str("images")
        .unwrap_or("LABEL=ROS_A")
        .to_string();
    let images = match mount_images(&images_spec, wait) {
        Ok(dir) => {
            log::info!("system images: {images_spec} mounted at {}", dir.display());
            Some(dir)
        }
        Err(e) => {
            console(&format!(
                "ros: no system images ({images_spec}): {e}; services cannot start"
            ));
            None
        }
    };
    if let Some(dir) = &images {
        crate::prefetch::start(dir);
        match use_images_modules(dir) {
            Ok(()) => log::info!("kernel modules: /lib/modules from the system images"),
            Err(e) => console(&format!(
                "ros: kernel modules: only the initrd's ({e}); the network, overlay and the \
                 engines' modules are missing"
            )),
        }
    }
    let state_cfg = StateConfig {
        dev: loaded
            .ros_str("state.dev")
            .map_or_else(|| StateConfig::default().dev, str::to_owned),
        wait,
        autoformat: loaded.ros_strings("state.autoformat"),
        fstype: loaded.ros_str("state.fstype").unwrap_or("ext4").to_string(),
    };
    let state = state::setup(&state_cfg);
    match &state {
        State::Mounted { dev, formatted } => {
            log::info!(
                "state partition {} mounted at {}{}",
                dev.display(),
                state::STATE_MOUNT,
                if *formatted {
                    " (formatted on this boot)"
                } else {
                    ""
                }
            );
        }
        State::Ram(why) => console(&format!(
            "ros: {why}: running from RAM; nothing is kept across reboots"
        )),
    }
    crate::logger::log_to_file(&boot_log_file());
    // The user's config is on the state partition: read everything again.
    let loaded = config();
    let mut names = module_list(SYSTEM_MODULES);
    names.extend(loaded.ros_strings("modules"));
    load_modules(&names, &[], "system");
    if let Some(kib) = mem_total_kib() {
        crate::zram::setup(&loaded, kib << 10, || {
            load_modules(&["zram".to_owned()], &[], "zram")
        });
        let cmdline = fs::read_to_string("/proc/cmdline").unwrap_or_default();
        match crate::thp::setup(&crate::thp::KERNEL, &cmdline, kib) {
            Ok(o) => log::info!("transparent huge pages: {o}"),
            Err(e) => log::warn!("transparent huge pages: {e}"),
        }
    }
    seed_entropy();
    identity();
    hostname(&loaded);
    let plan = if incomplete {
        recovery_plan()
    } else if let Some(why) = base_config_problem(&loaded, &ConfigPaths::new("/").defaults()) {
        console(&format!(
            "ros: {why}: no services are defined without it; recovery shell on the console"
        ));
        recovery_plan()
    } else if loaded.ros_flag("recovery") {
        console("ros: ros.recovery is set: no services; recovery shell on the console");
        recovery_plan()
    } else {
        production_plan(&loaded, images.as_deref())
    };
    Booted { plan, state }
}

/// Why the image's own config layer (which defines the system services) was not applied,
/// if it was not: the one config whose loss leaves nothing to start.
fn base_config_problem(loaded: &Loaded, defaults: &Path) -> Option<String> {
    if loaded.applied.iter().any(|a| Path::new(a) == defaults) {
        return None;
    }
    Some(
        match loaded
            .errors
            .iter()
            .find(|e| Path::new(&e.source) == defaults)
        {
            Some(e) => format!("the image's config cannot be used: {e}"),
            None => format!("the image's config {} is missing", defaults.display()),
        },
    )
}

/// A line of /proc/meminfo (`MemTotal`, `MemAvailable`), in KiB.
pub(crate) fn meminfo_kib(key: &str) -> Option<u64> {
    let text = fs::read_to_string("/proc/meminfo").ok()?;
    let line = text
        .lines()
        .find(|l| l.strip_prefix(key).is_some_and(|r| r.starts_with(':')))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `MemTotal` of /proc/meminfo, in KiB.
fn mem_total_kib() -> Option<u64> {
    meminfo_kib("MemTotal")
}

/// `MemTotal` of /proc/meminfo, in MiB.
fn mem_total_mib() -> Option<u64> {
    mem_total_kib().map(|k| k / 1024)
}

/// A root shell on the console.
pub fn recovery_shell() -> ServiceSpec {
    let mut spec = ServiceSpec::new(
        "recovery",
        ["/bin/busybox", "setsid", "-c", "/bin/sh", "-l"]
            .map(String::from)
            .to_vec(),
    );
    spec.tty = Some("console".into());
    spec.restart = Restart::Always;
    spec.backoff_initial_ms = 1000;
    spec
}

/// `ros.recovery`: nothing but a shell on the console.
fn recovery_plan() -> Plan {
    Plan {
        services: vec![recovery_shell()],
        ..Plan::default()
    }
}

/// What PID 1 supervises on a booted host.
fn production_plan(loaded: &Loaded, images: Option<&Path>) -> Plan {
    let stop = seconds(loaded, "shutdown_timeout", 10);
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let mut daemon = s(&[
        "/usr/bin/system-docker",
        "daemon",
        "-H",
        &format!("unix://{SYSTEM_SOCKET}"),
        "--data-root",
        "/var/lib/system-docker",
        // The bring-up recreates the containers of this boot; none of the last boot's
        // may start before it (an old console would take the serial line).
        "--no-autostart",
    ]);
    if let Some(dir) = images {
        daemon.push("--image-store".into());
        daemon.push(dir.display().to_string());
    }
    let mut services = vec![
        ServiceSpec {
            restart: Restart::Always,
            backoff_initial_ms: 500,
            backoff_max_ms: 10_000,
            // Every service gets the shutdown timeout; the engine a little more.
            stop_timeout_ms: (stop.as_millis() as u64).saturating_mul(6) + 5_000,
            stop_argv: s(&[
                "/usr/bin/ros",
                "service",
                "stop-all",
                "--timeout",
                &stop.as_secs().to_string(),
            ]),
            // A restart within this boot, once the bring-up has replaced the last boot's
            // containers, starts this boot's again (their restart policies), which died with
            // it or while it was down. Before that, the last boot's must stay down.
            restart_argv_after: vec!["services".into()],
            restart_argv: daemon
                .iter()
                .filter(|a| *a != "--no-autostart")
                .cloned()
                .collect(),
            oom_score_adj: -1000,
            ..ServiceSpec::new("system-docker", daemon)
        },
        ServiceSpec {
            after: vec!["system-docker".into()],
            // Killed, nothing would print the ready line or apply the cloud-config; it is
            // small, and gives this up before it runs the user's commands.
            oom_score_adj: -900,
            ..ServiceSpec::new("services", s(&["/usr/bin/ros", "service", "boot"]))
        },
    ];
    if let Some(ttys) = loaded.ros_str("autologin") {
        for tty in ttys.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let tty = tty.trim_start_matches("/dev/");
            log::info!("autologin: a root shell on {tty} (ros.autologin)");
            services.push(ServiceSpec {
                restart: Restart::Always,
                backoff_initial_ms: 1000,
                tty: Some(tty.to_string()),
                stop_timeout_ms: 1000,
                ..ServiceSpec::new(
                    &format!("autologin-{tty}"),
                    s(&["/bin/busybox", "setsid", "-c", "/bin/sh", "-l"]),
                )
            });
        }
    }
    Plan {
        services,
        ..Plan::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded_from(dir: &Path) -> Loaded {
        load(&ConfigPaths::new(dir))
    }

    #[test]
    fn the_image_config_missing_or_broken_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let paths = ConfigPaths::new(dir.path());
        let defaults = paths.defaults();
        let why = base_config_problem(&loaded_from(dir.path()), &defaults).unwrap();
        assert!(why.contains("is missing"), "{why}");

        fs::create_dir_all(defaults.parent().unwrap()).unwrap();
        fs::write(&defaults, "ros:\n  services: [\n").unwrap();
        let why = base_config_problem(&loaded_from(dir.path()), &defaults).unwrap();
        assert!(
            why.contains("cannot be used") && why.contains("os-config.yml:"),
            "{why}"
        );

        fs::write(&defaults, "ros:\n  boot_timeout: 100\n").unwrap();
        assert_eq!(
            base_config_problem(&loaded_from(dir.path()), &defaults),
            None
        );
    }
}
