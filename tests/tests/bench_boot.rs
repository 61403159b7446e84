//! The boot benchmark (`make bench`; ignored in `make test`): one run, side by side, under
//! the same QEMU (TCG) and kernel —
//! - QEMU start → `ros: ready` (every default service up, the user engine answering the
//!   `info` call `docker info` makes) against QEMU start → a marker printed by a trivial busybox `/init`;
//! - memory in use after ready (`/proc/meminfo`, counted as Debian's `free` does), and the
//!   smallest `-m` of a ladder that reaches ready;
//! - the sizes of the boot artifacts.
//!
//! Reported, not asserted: the ready line's meaning never changes to improve a number.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ros_tests::qemu::{boot_slot, parse_ready, Drive, Vm, VmConfig};
use ros_tests::{require_tool, tempdir, workspace_dir};

const ROUNDS: usize = 3;

fn dist(name: &str) -> PathBuf {
    workspace_dir().join("dist").join(name)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn mib(path: &Path) -> f64 {
    std::fs::metadata(path).map_or(f64::NAN, |m| m.len() as f64 / (1 << 20) as f64)
}

/// An initrd whose /init prints a marker and powers off: the bare kernel's boot time.
fn bare_initrd(dir: &Path) -> PathBuf {
    let root = dir.join("bare");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    std::fs::write(
        root.join("init"),
        "#!/bin/busybox sh\n/bin/busybox mount -t proc proc /proc 2>/dev/null\n\
         echo BARE-KERNEL-MARKER\n/bin/busybox poweroff -f\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("proc")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root.join("init"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = dir.join("bare.cpio.gz");
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd {} && find . | cpio -o -H newc --quiet | gzip -1 > {}",
            root.display(),
            out.display()
        ))
        .status()
        .unwrap();
    assert!(st.success(), "building the bare initrd failed");
    out
}

/// Memory in use after ready, in MiB, from the guest's `/proc/meminfo`: `mem` as Debian's
/// `free` (procps 4) counts it, MemTotal − MemAvailable (the memory kept free for the
/// kernel's watermarks counts as in use); `short` as busybox's `free` counts it, MemTotal −
/// MemFree − Buffers − Cached − SReclaimable (the page cache, the tmpfs root with it, and the
/// reclaimable slab left out); swap in use (the zram swap init makes on small machines).
#[derive(Clone, Copy, Debug)]
struct Used {
    mem: u64,
    short: u64,
    swap: u64,
}

impl Used {
    /// From `/proc/meminfo`'s text (lines of PID 1 may fall between its lines).
    fn from_meminfo(text: &str) -> Option<Used> {
        let kib = |key: &str| -> Option<u64> {
            let line = text.lines().find(|l| l.trim_start().starts_with(key))?;
            line.trim_start()[key.len()..]
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        };
        let total = kib("MemTotal:")?;
        let cached = kib("Buffers:")? + kib("Cached:")? + kib("SReclaimable:")?;
        Some(Used {
            mem: total.saturating_sub(kib("MemAvailable:")?) >> 10,
            short: total.saturating_sub(kib("MemFree:")? + cached) >> 10,
            swap: kib("SwapTotal:")?.saturating_sub(kib("SwapFree:")?) >> 10,
        })
    }
}

/// Boots ros once; seconds from QEMU start to the ready line (None: degraded or timeout),
/// and the memory in use after ready.
fn boot_ros(dir: &Path, slot: &Path, mem: u32, i: usize) -> (Option<f64>, Option<Used>) {
    let state = dir.join(format!("state-{mem}-{i}.qcow2"));
    let _ = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&state)
        .arg("2G")
        .status();
    let mut c = VmConfig::new(dist("vmlinuz"), dist("initrd"));
    c.memory_mb = mem;
    c.append = "console=ttyS0 panic=-1 quiet ros.autologin=ttyS0 ros.images=LABEL=ROS_A \
                ros.boot_timeout=240 ros.state.autoformat=[/dev/vda]"
        .into();
    c.drives = vec![Drive::qcow2(&state), Drive::raw(slot).read_only()];
    let start = Instant::now();
    let Ok(mut vm) = Vm::start(&c, &dir.join(format!("ros-{mem}-{i}.log"))) else {
        return (None, None);
    };
    // A kernel that cannot unpack the initrd or start init never prints either line.
    let line = vm.wait_for_any(
        &[
            "ros: ready in ",
            "ros: degraded: ",
            "Initramfs unpacking failed",
            "Kernel panic",
            "Out of memory",
        ],
        Duration::from_secs(300),
    );
    let ready = line
        .as_deref()
        .and_then(parse_ready)
        .map(|_| start.elapsed().as_secs_f64());
    let used = ready.and_then(|_| {
        let (_, out) = vm.sh("cat /proc/meminfo", Duration::from_secs(60))?;
        Used::from_meminfo(&out)
    });
    (ready, used)
}

#[test]
#[ignore = "benchmark: make bench"]
fn boot_to_ready_against_the_bare_kernel() {
    let test = "boot_to_ready_against_the_bare_kernel";
    if !require_tool(test, "qemu-system-x86_64") || !require_tool(test, "cpio") {
        return;
    }
    for f in ["vmlinuz", "initrd", "images.sqfs"] {
        assert!(dist(f).is_file(), "dist/{f} missing: make image");
    }
    let t = tempdir();
    let bare = bare_initrd(t.path());
    let slot = boot_slot(t.path(), &dist("images.sqfs"), "ROS_A");

    let mut bare_times = Vec::new();
    let mut ros_times = Vec::new();
    let mut used = Vec::new();
    for i in 0..ROUNDS {
        let mut c = VmConfig::new(dist("vmlinuz"), &bare);
        c.append = "console=ttyS0 panic=-1 quiet".into();
        c.no_network = true;
        let start = Instant::now();
        let mut vm = Vm::start(&c, &t.path().join(format!("bare-{i}.log"))).unwrap();
        if vm
            .wait_for("BARE-KERNEL-MARKER", Duration::from_secs(120))
            .is_some()
        {
            bare_times.push(start.elapsed().as_secs_f64());
        }
        drop(vm);
        let (ready, mem) = boot_ros(t.path(), &slot, 1024, i);
        ros_times.extend(ready);
        used.extend(mem);
    }
    let mut smallest = None;
    for mem in [128, 160, 192, 256, 384] {
        let (ready, used) = boot_ros(t.path(), &slot, mem, 99);
        eprintln!(
            "-m {mem}: {}",
            match (ready, used) {
                (Some(s), Some(u)) => format!(
                    "ready after {s:.1}s; {} MiB in use ({} as busybox counts it), {} MiB \
                     in zram swap",
                    u.mem, u.short, u.swap
                ),
                (Some(s), None) => format!("ready after {s:.1}s"),
                _ => "no ready line".to_string(),
            }
        );
        if ready.is_some() {
            smallest = Some(mem);
            break;
        }
    }
    let (b, r) = (median(bare_times.clone()), median(ros_times.clone()));
    println!("\nboot (QEMU TCG, 2 vCPUs, -m 1024; {ROUNDS} rounds, medians, QEMU start → marker):");
    println!("| metric | ros | bare kernel + busybox init | ratio | goal |");
    println!("|---|---|---|---|---|");
    println!(
        "| QEMU start → ready (user docker answering) | {r:.1} s | {b:.1} s | {:.2}× | ≤ 2× |",
        r / b
    );
    println!(
        "| memory in use after ready (MemTotal − MemAvailable, as Debian's `free`) | {} MiB ({} \
         as busybox's `free` counts it, the page cache and reclaimable slab left out) | | | small \
         next to Debian's ~100 MiB |",
        used.iter()
            .max_by_key(|u| u.mem)
            .map_or("?".into(), |u| u.mem.to_string()),
        used.iter()
            .max_by_key(|u| u.short)
            .map_or("?".into(), |u| u.short.to_string())
    );
    println!(
        "| smallest `-m` reaching ready (of 128/160/192/256/384) | {} | | | 128 |",
        smallest.map_or("none".into(), |m| format!("{m} MiB"))
    );
    println!(
        "| sizes | vmlinuz {:.1} MiB, initrd {:.1} MiB, images.sqfs {:.1} MiB | | | initrd ≤ 40 MiB |",
        mib(&dist("vmlinuz")),
        mib(&dist("initrd")),
        mib(&dist("images.sqfs"))
    );
    println!("raw: bare {bare_times:?} ros {ros_times:?} used {used:?}");
}

#[test]
fn memory_in_use_is_counted_as_debians_free_counts_it() {
    let meminfo = "MemTotal:         981168 kB\nMemFree:          592896 kB\n\
                   ros-init: INFO: a line of PID 1's\nMemAvailable:     714620 kB\n\
                   Buffers:            1024 kB\nCached:           261324 kB\n\
                   SwapCached:            0 kB\nSwapTotal:         65532 kB\n\
                   SwapFree:          55292 kB\nSReclaimable:      15504 kB\n";
    let u = Used::from_meminfo(meminfo).unwrap();
    assert_eq!((u.mem, u.short, u.swap), (260, 107, 10));
    assert!(Used::from_meminfo("MemTotal: 1 kB\n").is_none());
}
