//! PID 1 on a real kernel: Debian's kernel with the initrd `ros-image-build` makes
//! (`make image`: dist/vmlinuz, dist/initrd, dist/images.sqfs), booted in QEMU (TCG) and
//! driven over its serial console (`ros.autologin=ttyS0`).
//!
//! One boot sequence, many assertions per boot:
//! 1. a blank disk listed in `ros.state.autoformat` becomes `ROS_STATE`; PID 1 left the
//!    initramfs for a tmpfs root, mounted the kernel file systems (cgroup2 with its
//!    controllers, /var/run → /run), loaded modules (the images' tree), made the
//!    `ros.zram` swap, turned transparent huge pages off (and the memory kept free for
//!    them back), read the engine's programs ahead, bound the persistent paths, started
//!    system-docker and the services, printed the ready line once (into the boot log too);
//!    the OOM scores are PID 1's, the catalog's and Docker's default; a file is written;
//!    `poweroff` ends QEMU cleanly;
//! 2. the same disks again: no formatting, the file and the entropy seed are there, same
//!    machine-id; Ctrl-Alt-Del (QMP `send-key`) reboots in order, ending QEMU
//!    (`-no-reboot`);
//! 3. no state partition (a disk listed for autoformat holds data: left alone) and a
//!    command-line service that fails: ros says it runs from RAM and
//!    the boot ends `ros: degraded:` naming the service at `ros.boot_timeout`; the ACPI
//!    power button (QMP `system_powerdown`) powers it off;
//! 4. a 64 MiB state partition made for an 80 MiB disk image, on a 1 GiB disk, grows with
//!    its file system to fill it, keeping its data; `transparent_hugepage=madvise` on the
//!    command line is kept; `reboot` ends QEMU.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ros_tests::qemu::{boot_slot, boot_to_ready, Drive, Vm, VmConfig};
use ros_tests::{require_tool, skip, tempdir, workspace_dir, Checks};

const BOOT: Duration = Duration::from_secs(300);
const CMD: Duration = Duration::from_secs(60);
const DOWN: Duration = Duration::from_secs(120);

fn dist(name: &str) -> PathBuf {
    let p = workspace_dir().join("dist").join(name);
    assert!(
        p.is_file(),
        "{} is missing: build the boot artifacts first (`make image`; `make test` does)",
        p.display()
    );
    p
}

fn blank_qcow2(path: &Path, size: &str) {
    let st = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(path)
        .arg(size)
        .status()
        .unwrap();
    assert!(st.success(), "qemu-img create failed");
}

fn config(append: &str, drives: Vec<Drive>) -> VmConfig {
    let mut c = VmConfig::new(dist("vmlinuz"), dist("initrd"));
    c.append =
        format!("console=ttyS0 panic=-1 quiet ros.autologin=ttyS0 ros.images=LABEL=ROS_A ros.boot_timeout=240 {append}");
    c.drives = drives;
    c
}

fn boot(c: &mut Checks, cfg: &VmConfig, log: &Path, what: &str) -> Option<Vm> {
    boot_to_ready(c, cfg, log, what, BOOT)
}

/// Runs a command on the serial console's shell and checks its exit code 0.
fn sh(c: &mut Checks, vm: &mut Vm, cmd: &str, what: &str) -> String {
    match vm.sh(cmd, CMD) {
        Some((0, out)) => {
            c.check(true, what, "");
            // PID 1 and the kernel share the serial line: their lines are not the output.
            out.lines()
                .filter(|l| {
                    !l.starts_with("ros-init: ") && !l.starts_with("ros: ") && !l.starts_with('[')
                })
                .collect::<Vec<_>>()
                .join("\n")
                .trim()
                .to_string()
        }
        other => {
            c.check(
                false,
                &format!("{what}: `{cmd}` should succeed"),
                format!("{other:?}\n{}", vm.tail(30)),
            );
            String::new()
        }
    }
}

/// Asks for a shutdown with `cmd` and checks QEMU ends cleanly.
fn shut_down(c: &mut Checks, vm: &mut Vm, cmd: &str, what: &str) {
    vm.send(cmd);
    let st = vm.wait_exit(DOWN);
    c.check(
        st.is_some_and(|s| s.success()),
        &format!("{what}: `{cmd}` ends QEMU cleanly within {DOWN:?}"),
        format!("{st:?}\n{}", vm.tail(40)),
    );
    let out = vm.output();
    c.check(
        out.contains("reboot(2)") || out.contains("Power down") || out.contains("reboot: "),
        &format!("{what}: init reached reboot(2)"),
        vm.tail(20),
    );
}

#[test]
fn pid1_boots_formats_state_persists_and_powers_off() {
    let test = "pid1_boots_formats_state_persists_and_powers_off";
    if !require_tool(test, "qemu-system-x86_64")
        || !require_tool(test, "qemu-img")
        || !require_tool(test, "mkfs.ext4")
        || !require_tool(test, "sfdisk")
        || !require_tool(test, "jq")
    {
        return;
    }
    if std::env::var("ROS_TEST_NO_VM").is_ok_and(|v| v == "1") {
        skip(test, "ROS_TEST_NO_VM=1");
        return;
    }
    let t = tempdir();
    let slot = boot_slot(t.path(), &dist("images.sqfs"), "ROS_A");
    let state = t.path().join("state.qcow2");
    blank_qcow2(&state, "2G");
    let drives = || vec![Drive::qcow2(&state), Drive::raw(&slot).read_only()];
    let mut c = Checks::new(test);

    // 1. First boot: autoformat.
    let cfg = config("ros.state.autoformat=[/dev/vda] ros.zram=64M", drives());
    let log1 = t.path().join("boot1.log");
    let mut machine_id = String::new();
    if let Some(mut vm) = boot(&mut c, &cfg, &log1, "first boot") {
        let out = vm.output();
        c.check(
            out.contains("formatting as ROS_STATE"),
            "first boot: the blank disk is formatted",
            vm.tail(40),
        );
        let root = sh(&mut c, &mut vm, "grep ' / ' /proc/mounts", "root mount");
        c.check(
            root.contains("tmpfs") && !root.contains("rootfs"),
            "the root is a tmpfs, not the initramfs",
            &root,
        );
        let mounts = sh(&mut c, &mut vm, "cat /proc/mounts", "mounts");
        for (what, needle) in [
            ("proc", "proc /proc proc"),
            ("sysfs", "sysfs /sys sysfs"),
            ("devtmpfs", "/dev devtmpfs"),
            ("devpts", "/dev/pts devpts"),
            ("/run", "/run tmpfs"),
            ("cgroup2", "/sys/fs/cgroup cgroup2"),
            ("state", "/dev/vda1 /run/ros/state ext4"),
            ("state bound on /var/lib/ros", "/dev/vda1 /var/lib/ros ext4"),
            ("state bound on /home", "/dev/vda1 /home ext4"),
            ("state bound on /opt", "/dev/vda1 /opt ext4"),
            (
                "state bound on /var/lib/docker",
                "/dev/vda1 /var/lib/docker ext4",
            ),
            ("state bound on /var/log", "/dev/vda1 /var/log ext4"),
            (
                "state bound on /var/lib/system-docker",
                "/dev/vda1 /var/lib/system-docker ext4",
            ),
            ("/dev/shm", "/dev/shm tmpfs"),
            ("images", "/usr/share/ros/images squashfs"),
        ] {
            c.check(
                mounts.contains(needle),
                &format!("mounted: {what}"),
                &mounts,
            );
        }
        let label = sh(
            &mut c,
            &mut vm,
            "blkid /dev/vda1 2>/dev/null || cat /sys/class/block/vda1/size",
            "state partition",
        );
        c.check(!label.is_empty(), "the state partition exists", &label);
        c.check(
            vm.output().matches("ros: ready in").count() == 1,
            "the ready line is printed once",
            vm.tail(40),
        );
        let var_run = sh(&mut c, &mut vm, "readlink /var/run", "/var/run");
        c.check(var_run == "/run", "/var/run is a link to /run", &var_run);
        let ctl = sh(
            &mut c,
            &mut vm,
            "cat /sys/fs/cgroup/cgroup.subtree_control",
            "cgroup controllers",
        );
        c.check(
            ["cpu", "memory", "pids", "io"]
                .iter()
                .all(|k| ctl.split_whitespace().any(|w| w == *k)),
            "cgroup2 controllers cpu, memory, pids and io are enabled for containers",
            &ctl,
        );
        let log = sh(
            &mut c,
            &mut vm,
            "grep -c 'booting (kernel took\\|ros: ready in' /var/log/boot/init.log",
            "boot log",
        );
        c.check(
            log == "2",
            "/var/log/boot/init.log has the boot's first line and the ready line",
            &log,
        );
        // PID 1 and system-docker -1000; the catalog's -900 for sshd and netconf (applied:
        // netconf sets nothing itself), -500 for the user engine (dockerd and sshd set their
        // own, so its definition is checked); PID 1's other children and plain containers
        // Docker's 0.
        let scores = sh(
            &mut c,
            &mut vm,
            "for p in sshd chronyd; do \
               echo $p $(cat /proc/$(pidof $p | cut -d' ' -f1)/oom_score_adj); done; \
             echo docker-service $(system-docker inspect -f '{{.HostConfig.OomScoreAdj}}' docker); \
             echo netconf $(cat /proc/$(system-docker inspect -f '{{.State.Pid}}' network)/oom_score_adj); \
             echo shell $(cat /proc/$$/oom_score_adj)",
            "OOM scores",
        );
        // (sshd lowers its own listener's score to -1000 where it may: Debian's OpenSSH.)
        c.check(
            scores
                .lines()
                .any(|l| l.trim() == "sshd -1000" || l.trim() == "sshd -900"),
            "OOM score adjustment: sshd -900 or lower",
            &scores,
        );
        for want in [
            "netconf -900",
            "docker-service -500",
            "chronyd 0",
            "shell 0",
        ] {
            c.check(
                scores.lines().any(|l| l.trim() == want),
                &format!("OOM score adjustment: {want}"),
                &scores,
            );
        }
        let oom = sh(&mut c, &mut vm, "cat /proc/1/oom_score_adj", "oom");
        c.check(
            oom == "-1000",
            "PID 1 is protected from the OOM killer",
            &oom,
        );
        let sd = sh(
            &mut c,
            &mut vm,
            "cat /proc/$(pidof system-docker | cut -d' ' -f1)/oom_score_adj",
            "system-docker oom",
        );
        c.check(
            sd == "-1000",
            "system-docker is protected from the OOM killer",
            &sd,
        );
        let modules = sh(
            &mut c,
            &mut vm,
            "cat /proc/modules | cut -d' ' -f1",
            "modules",
        );
        // virtio_blk, ext4 and squashfs come from the initrd, overlay and virtio_net from
        // the images (init binds their module tree over the initrd's once they are mounted).
        for m in ["virtio_blk", "ext4", "squashfs", "overlay", "virtio_net"] {
            c.check(
                modules.lines().any(|l| l == m),
                &format!("module {m} loaded"),
                &modules,
            );
        }
        let kernel_release = sh(&mut c, &mut vm, "uname -r", "uname -r");
        let tree = sh(
            &mut c,
            &mut vm,
            "r=$(uname -r); grep \" /lib/modules/$r \" /proc/mounts | cut -d' ' -f3; \
             ls -A /lib/modules | tr '\\n' ' '; echo; ls /lib/modules/$r/kernel/net/bridge",
            "module tree",
        );
        let mut lines = tree.lines();
        c.check(
            lines.next() == Some("squashfs"),
            "/lib/modules/<release> is the images' module tree (squashfs)",
            &tree,
        );
        c.check(
            lines.next().is_some_and(|l| l.trim() == kernel_release) && tree.contains("bridge.ko"),
            "the initrd's module files are gone from RAM; the images' tree has bridge.ko",
            &tree,
        );
        // A module init did not load is there for the kernel and the engines to ask for.
        let tun = sh(
            &mut c,
            &mut vm,
            "modprobe tun && grep -c '^tun ' /proc/modules",
            "modprobe tun",
        );
        c.check(
            tun == "1",
            "modprobe loads a module from the images' tree",
            &tun,
        );
        // `ros.zram=64M`: init made a compressed swap in RAM of that size before the services.
        let swaps = sh(&mut c, &mut vm, "tail -n +2 /proc/swaps", "swaps");
        let zram: Vec<&str> = swaps.split_whitespace().collect();
        c.check(
            zram.first() == Some(&"/dev/zram0")
                && zram.get(2).and_then(|k| k.parse::<u64>().ok()) == Some(64 * 1024 - 4),
            "ros.zram=64M: /dev/zram0 is swap of 64 MiB",
            &swaps,
        );
        // Transparent huge pages are off by default, and the memory khugepaged keeps free
        // for them is given back (the kernel's own minimum for 1 GiB is ~4 MiB, not 44).
        let thp = sh(
            &mut c,
            &mut vm,
            "cat /sys/kernel/mm/transparent_hugepage/enabled /proc/sys/vm/min_free_kbytes",
            "thp",
        );
        c.check(
            thp.contains("[never]")
                && thp
                    .lines()
                    .last()
                    .and_then(|l| l.trim().parse::<u64>().ok())
                    .is_some_and(|k| k < 8192),
            "transparent huge pages off, vm.min_free_kbytes the kernel's own",
            &thp,
        );
        // The engine's programs were read ahead while the boot went on (a 1 GiB machine has
        // the memory to spare).
        let prefetch = sh(
            &mut c,
            &mut vm,
            "grep -o 'prefetch: read [0-9]* MiB of 2 file' /var/log/boot/init.log",
            "prefetch",
        );
        c.check(
            prefetch
                .split_whitespace()
                .nth(2)
                .and_then(|m| m.parse::<u64>().ok())
                .is_some_and(|m| m >= 50),
            "init read the engine's programs ahead (boot.prefetch)",
            &prefetch,
        );
        let ps = sh(
            &mut c,
            &mut vm,
            "system-docker ps --format '{{.Names}}'",
            "ps",
        );
        c.check(!ps.is_empty(), "system-docker runs service containers", &ps);
        machine_id = sh(&mut c, &mut vm, "cat /etc/machine-id", "machine-id");
        c.check(machine_id.len() == 32, "a machine-id was made", &machine_id);
        // Orphans are reaped: a shell leaves grandchildren that exit.
        sh(
            &mut c,
            &mut vm,
            "for i in 1 2 3 4 5; do (sleep 0.2 &) ; done; sleep 1",
            "orphans",
        );
        let zombies = sh(
            &mut c,
            &mut vm,
            "ps -o stat,pid | grep -c '^Z' || true",
            "zombies",
        );
        c.check(zombies == "0", "no zombie processes", &zombies);
        sh(
            &mut c,
            &mut vm,
            "echo kept-across-reboots > /var/lib/ros/marker",
            "write a file",
        );
        shut_down(&mut c, &mut vm, "poweroff", "first boot");
        c.check(
            vm.output().contains("state partition unmounted")
                && !vm.output().contains("still busy"),
            "first boot: the state partition was unmounted at shutdown",
            vm.tail(30),
        );
    }

    // 2. Second boot: same disk, nothing formatted, the file is there.
    let log2 = t.path().join("boot2.log");
    let mut cfg = cfg;
    let qmp2 = t.path().join("qmp2.sock");
    cfg.qmp = Some(qmp2.clone());
    if let Some(mut vm) = boot(&mut c, &cfg, &log2, "second boot") {
        c.check(
            !vm.output().contains("formatting as ROS_STATE"),
            "second boot: the state partition is not formatted again",
            vm.tail(40),
        );
        c.check(
            !vm.output().contains("recovering journal"),
            "second boot: the state file system was left clean at poweroff",
            vm.tail(40),
        );
        let marker = sh(&mut c, &mut vm, "cat /var/lib/ros/marker", "read the file");
        c.check(
            marker == "kept-across-reboots",
            "the file written before poweroff is there",
            &marker,
        );
        let id = sh(&mut c, &mut vm, "cat /etc/machine-id", "machine-id");
        c.check(
            id == machine_id,
            "the machine-id is kept",
            format!("{id} vs {machine_id}"),
        );
        let seed = sh(
            &mut c,
            &mut vm,
            "wc -c < /var/lib/ros/random-seed",
            "random seed",
        );
        c.check(
            seed == "512",
            "the entropy seed saved at shutdown is there (and replaced at boot)",
            &seed,
        );
        // Ctrl-Alt-Del on the keyboard reaches PID 1 (SIGINT: an orderly reboot), not the
        // kernel's immediate restart.
        let r = Vm::send_keys(&qmp2, &["ctrl", "alt", "delete"]);
        c.check(r.is_ok(), "QMP send-key ctrl-alt-delete", format!("{r:?}"));
        let st = vm.wait_exit(DOWN);
        c.check(
            st.is_some_and(|s| s.success()),
            "second boot: ctrl-alt-del ends QEMU cleanly",
            format!("{st:?}\n{}", vm.tail(40)),
        );
        let out = vm.output();
        c.check(
            out.contains("SIGINT: Reboot") && out.contains("state partition unmounted"),
            "ctrl-alt-del: init rebooted in order, unmounting the state partition",
            vm.tail(30),
        );
    }

    // 3. No state disk: from RAM.
    // A service from the command line that fails: the boot ends `degraded`, naming it,
    // once `ros.boot_timeout` has passed.
    // A disk listed for autoformat that holds data is left alone.
    let data_disk = t.path().join("data.img");
    let data: Vec<u8> = (0..64 * 1024u32).map(|i| (i % 251) as u8 + 1).collect();
    std::fs::write(&data_disk, &data).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&data_disk)
        .unwrap();
    f.set_len(64 << 20).unwrap();
    drop(f);
    let broken = format!(
        "ros.boot_timeout=60 ros.state.autoformat=[/dev/vda] \
         \"ros.services.broken={{image: ros/udev:{}, command: [/bin/false], restart: 'no'}}\"",
        env!("CARGO_PKG_VERSION")
    );
    let mut cfg = config(
        &broken,
        vec![Drive::raw(&data_disk), Drive::raw(&slot).read_only()],
    );
    let qmp = t.path().join("qmp.sock");
    cfg.qmp = Some(qmp.clone());
    let log3 = t.path().join("boot3.log");
    let vm3 = match Vm::start(&cfg, &log3) {
        Ok(vm) => Some(vm),
        Err(e) => {
            c.check(false, "RAM boot: QEMU starts", format!("{e}"));
            None
        }
    };
    if let Some(mut vm) = vm3 {
        let line = vm.wait_for_any(&["ros: degraded:", "ros: ready in"], BOOT);
        c.check(
            line.as_deref().is_some_and(|l| {
                l.contains("ros: degraded:")
                    && l.split("degraded:")
                        .nth(1)
                        .is_some_and(|names| names.split(',').any(|n| n.trim() == "broken"))
            }),
            "a failing service makes the boot end `ros: degraded:` naming it",
            format!("{line:?}\n{}", vm.tail(40)),
        );
        c.check(
            vm.output().contains("running from RAM"),
            "without a state partition ros says it runs from RAM",
            vm.tail(40),
        );
        c.check(
            vm.output()
                .matches("/dev/vda: listed in ros.state.autoformat but not blank")
                .count()
                == 1,
            "a listed disk holding data is left alone, and said so once",
            vm.tail(40),
        );
        let r = Vm::qmp(&qmp, "system_powerdown");
        c.check(r.is_ok(), "QMP system_powerdown", format!("{r:?}"));
        let st = vm.wait_exit(DOWN);
        c.check(
            st.is_some_and(|s| s.success()),
            "RAM boot: the power button powers off cleanly",
            format!("{st:?}\n{}", vm.tail(40)),
        );
        c.check(
            vm.output().contains("power button pressed"),
            "init saw the power button",
            vm.tail(20),
        );
        let after = std::fs::read(&data_disk).unwrap_or_default();
        c.check(
            after.len() == 64 << 20 && after[..data.len()] == data[..],
            "the data disk is unchanged",
            "its first 64 KiB or its size changed",
        );
    }
    // 4. A disk image's small state partition on a bigger disk grows to fill it.
    let grow = grow_disk(t.path());
    let cfg = config(
        "transparent_hugepage=madvise",
        vec![Drive::raw(&grow), Drive::raw(&slot).read_only()],
    );
    let log4 = t.path().join("boot4.log");
    if let Some(mut vm) = boot(&mut c, &cfg, &log4, "grow boot") {
        c.check(
            vm.output().contains("state partition grown from 64 MiB to"),
            "the state partition grows to the end of its disk",
            vm.tail(40),
        );
        let kept = sh(&mut c, &mut vm, "cat /var/lib/ros/before-grow", "data kept");
        c.check(
            kept == "kept",
            "data on the state partition survives the grow",
            &kept,
        );
        let size = sh(&mut c, &mut vm, "df -m /var/lib/ros | tail -1", "df");
        let mb: u64 = size
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        c.check(mb > 900, "the file system fills the 1 GiB disk", &size);
        // The kernel command line's choice of transparent huge pages is kept.
        let thp = sh(
            &mut c,
            &mut vm,
            "cat /sys/kernel/mm/transparent_hugepage/enabled",
            "thp",
        );
        c.check(
            thp.contains("[madvise]"),
            "transparent_hugepage=madvise on the command line is kept",
            &thp,
        );
        shut_down(&mut c, &mut vm, "reboot", "grow boot");
    }
    c.finish_with(|| {
        format!(
            "serial logs: {} {} {} {}",
            log1.display(),
            log2.display(),
            log3.display(),
            log4.display()
        )
    });
}

/// A 1 GiB raw disk whose GPT, made for 80 MiB, holds a first partition and a 64 MiB
/// ext4 ROS_STATE partition with a file on it: a disk image put on a bigger disk.
fn grow_disk(dir: &Path) -> PathBuf {
    let img = dir.join("grow.img");
    let script = format!(
        "set -e; truncate -s 80M {i}; \
         printf 'label: gpt\\nsize=8MiB, name=other\\nsize=64MiB, name=ROS_STATE\\n' | sfdisk -q {i}; \
         start=$(sfdisk --json {i} | jq '.partitiontable.partitions[1].start'); \
         mkdir -p {d}/grow-content/var/lib/ros && echo kept > {d}/grow-content/var/lib/ros/before-grow; \
         mkfs.ext4 -q -F -L ROS_STATE -d {d}/grow-content -E offset=$((start * 512)) {i} 65536k; \
         truncate -s 1G {i}",
        i = img.display(),
        d = dir.display()
    );
    let st = Command::new("sh").arg("-c").arg(&script).status().unwrap();
    assert!(st.success(), "building the disk to grow failed: {script}");
    img
}

#[test]
fn dist_artifacts_are_declared_in_the_manifest() {
    let manifest = workspace_dir().join("dist/manifest.json");
    if !manifest.is_file() {
        skip(
            "dist_artifacts_are_declared_in_the_manifest",
            "dist/manifest.json missing (make image)",
        );
        return;
    }
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    for kind in ["kernel", "initrd"] {
        let a = &m["artifacts"][kind];
        let file = workspace_dir()
            .join("dist")
            .join(a["file"].as_str().unwrap());
        let bytes = std::fs::read(&file).unwrap();
        assert_eq!(a["size"].as_u64(), Some(bytes.len() as u64), "{kind} size");
        use sha2::Digest;
        assert_eq!(
            a["sha256"].as_str(),
            Some(hex::encode(sha2::Sha256::digest(&bytes)).as_str()),
            "{kind} sha256"
        );
    }
}
