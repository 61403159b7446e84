//! The QEMU harness of the VM tests: command lines from small pure functions, one VM per
//! [`Vm`], its serial console captured (to memory and a log file per test) and driven
//! (a shell on the serial console where SSH is not there yet), polling with deadlines, and
//! the VM killed when the [`Vm`] is dropped.
//!
//! TCG by default: nested KVM on the build machines hangs guests. `ROS_TEST_KVM=1` asks for
//! KVM, used only when it answers: a probe VM under KVM must boot the kernel to its "no
//! root" panic and exit within seconds ([`kvm_answers`]). The network is QEMU's user network with
//! `restrict=on` — nothing leaves the machine — plus explicit forwards.

use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The QEMU binary the tests use.
pub const QEMU: &str = "qemu-system-x86_64";

/// A disk attached to the VM, in attachment order (the first is /dev/vda).
#[derive(Clone, Debug)]
pub struct Drive {
    pub file: PathBuf,
    /// `raw` or `qcow2`.
    pub format: String,
    pub read_only: bool,
}

impl Drive {
    pub fn raw(file: impl Into<PathBuf>) -> Drive {
        Drive {
            file: file.into(),
            format: "raw".into(),
            read_only: false,
        }
    }

    pub fn qcow2(file: impl Into<PathBuf>) -> Drive {
        Drive {
            format: "qcow2".into(),
            ..Drive::raw(file)
        }
    }

    pub fn read_only(mut self) -> Drive {
        self.read_only = true;
        self
    }
}

/// How the VM starts: the kernel and initrd directly, or the firmware from its disks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Firmware {
    /// QEMU loads `kernel` and `initrd` itself with `append` (SeaBIOS underneath).
    DirectKernel,
    /// SeaBIOS boots the first bootable disk or the CD-ROM (`boot_order`).
    Bios,
    /// OVMF boots the EFI system partition; `vars` is this VM's copy of the variable store.
    Uefi { vars: PathBuf },
}

/// OVMF's code and variable-store template (Debian's `ovmf`).
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// What a VM boots and with what.
#[derive(Clone, Debug)]
pub struct VmConfig {
    pub firmware: Firmware,
    /// An ISO on the CD-ROM drive (AHCI on q35).
    pub cdrom: Option<PathBuf>,
    /// `-boot order=…` (`d`: the CD-ROM first).
    pub boot_order: Option<String>,
    /// `-smbios type=1,…` fields (`manufacturer=Amazon EC2`).
    pub smbios: Option<String>,
    /// `guestfwd=tcp:IP:PORT-cmd:CMD` rules of the user network.
    pub guestfwd: Vec<String>,
    /// The user network's own addresses (`net=169.254.0.0/16`: EC2's link-local metadata
    /// address is then on the guest's link, and QEMU answers for it); QEMU's 10.0.2.0/24
    /// when `None`.
    pub user_net: Option<String>,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// The kernel command line.
    pub append: String,
    pub memory_mb: u32,
    pub cpus: u32,
    pub drives: Vec<Drive>,
    /// `(host port on 127.0.0.1, guest port)` TCP forwards of the user network.
    pub forwards: Vec<(u16, u16)>,
    /// No network device at all.
    pub no_network: bool,
    /// More NICs after the first, by MAC address: each on its own restricted user network
    /// without forwards (links for bonds and VLANs to be made of).
    pub extra_nics: Vec<String>,
    pub kvm: bool,
    /// A QMP socket (for `system_powerdown`: the ACPI power button).
    pub qmp: Option<PathBuf>,
}

impl VmConfig {
    pub fn new(kernel: impl Into<PathBuf>, initrd: impl Into<PathBuf>) -> VmConfig {
        VmConfig {
            firmware: Firmware::DirectKernel,
            cdrom: None,
            boot_order: None,
            smbios: None,
            guestfwd: Vec::new(),
            user_net: None,
            kernel: kernel.into(),
            initrd: initrd.into(),
            append: "console=ttyS0 panic=-1".into(),
            memory_mb: 1024,
            cpus: 2,
            drives: Vec::new(),
            forwards: Vec::new(),
            no_network: false,
            extra_nics: Vec::new(),
            kvm: kvm_wanted(),
            qmp: None,
        }
    }
}

impl VmConfig {
    /// A VM that boots from its disks (or `cdrom`) through `firmware`.
    pub fn firmware(firmware: Firmware) -> VmConfig {
        VmConfig {
            firmware,
            ..VmConfig::new("", "")
        }
    }
}

/// Whether the environment asks for KVM (`ROS_TEST_KVM=1`) and KVM answers here.
pub fn kvm_wanted() -> bool {
    static ANSWER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if !std::env::var("ROS_TEST_KVM").is_ok_and(|v| v == "1") {
        return false;
    }
    *ANSWER.get_or_init(|| {
        let kernel = crate::workspace_dir().join("dist/vmlinuz");
        let yes = kvm_answers(&kernel, Duration::from_secs(15));
        if !yes {
            eprintln!("ROS_TEST_KVM=1 but KVM did not answer (a probe VM did not boot {} in time): using TCG", kernel.display());
        }
        yes
    })
}

/// Whether KVM really runs guests here: `/dev/kvm` opens, and a VM under KVM boots
/// `kernel` (no initrd) to its "unable to mount root" panic and exits (`panic=-1
/// -no-reboot`) within `deadline`. Nested KVM can pass the first and hang on the second.
pub fn kvm_answers(kernel: &Path, deadline: Duration) -> bool {
    if fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
        || !kernel.exists()
    {
        return false;
    }
    let Ok(mut child) = Command::new(QEMU)
        .args([
            "-machine",
            "q35,accel=kvm",
            "-cpu",
            "host",
            "-m",
            "128",
            "-nodefaults",
        ])
        .args([
            "-display",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
            "-kernel",
        ])
        .arg(kernel)
        .args(["-append", "console=ttyS0 panic=-1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let start = Instant::now();
    let exited = loop {
        match child.try_wait() {
            Ok(Some(_)) => break true,
            Ok(None) if start.elapsed() < deadline => {
                std::thread::sleep(Duration::from_millis(100))
            }
            _ => break false,
        }
    };
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
        return false;
    }
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    out.contains("Kernel panic")
}

/// The `-nic` argument: user networking, restricted, with the forwards (host → guest) and
/// the guest forwards (guest → a command on the host).
pub fn nic_arg(forwards: &[(u16, u16)], guestfwd: &[String], net: Option<&str>) -> String {
    let mut s = String::from("user,model=virtio-net-pci,restrict=on");
    if let Some(net) = net {
        let _ = write!(s, ",net={net}");
    }
    for (host, guest) in forwards {
        let _ = write!(s, ",hostfwd=tcp:127.0.0.1:{host}-:{guest}");
    }
    for g in guestfwd {
        let _ = write!(s, ",guestfwd={g}");
    }
    s
}

/// The `-drive` argument of a disk.
pub fn drive_arg(d: &Drive) -> String {
    let mut s = format!(
        "file={},if=virtio,format={},cache=unsafe",
        d.file.display(),
        d.format
    );
    if d.read_only {
        s.push_str(",readonly=on");
    }
    s
}

/// The whole QEMU argument list (without the program name).
pub fn qemu_args(c: &VmConfig) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "-machine".into(),
        if c.kvm {
            "q35,accel=kvm"
        } else {
            "q35,accel=tcg"
        }
        .into(),
        "-cpu".into(),
        if c.kvm { "host" } else { "max" }.into(),
        "-smp".into(),
        c.cpus.to_string(),
        "-m".into(),
        c.memory_mb.to_string(),
        "-display".into(),
        "none".into(),
        "-monitor".into(),
        "none".into(),
        "-serial".into(),
        "stdio".into(),
        "-no-reboot".into(),
        "-device".into(),
        "virtio-rng-pci".into(),
    ];
    match &c.firmware {
        Firmware::DirectKernel => a.extend([
            "-kernel".into(),
            c.kernel.display().to_string(),
            "-initrd".into(),
            c.initrd.display().to_string(),
            "-append".into(),
            c.append.clone(),
        ]),
        Firmware::Bios => {}
        Firmware::Uefi { vars } => a.extend([
            "-drive".into(),
            format!("if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"),
            "-drive".into(),
            format!("if=pflash,format=raw,unit=1,file={}", vars.display()),
        ]),
    }
    if let Some(iso) = &c.cdrom {
        a.push("-drive".into());
        a.push(format!("file={},media=cdrom,readonly=on", iso.display()));
    }
    if let Some(order) = &c.boot_order {
        a.push("-boot".into());
        a.push(format!("order={order}"));
    }
    if let Some(smbios) = &c.smbios {
        a.push("-smbios".into());
        a.push(format!("type=1,{smbios}"));
    }
    for d in &c.drives {
        a.push("-drive".into());
        a.push(drive_arg(d));
    }
    if let Some(q) = &c.qmp {
        a.push("-qmp".into());
        a.push(format!("unix:{},server=on,wait=off", q.display()));
    }
    if c.no_network {
        a.push("-nic".into());
        a.push("none".into());
    } else {
        a.push("-nic".into());
        a.push(nic_arg(&c.forwards, &c.guestfwd, c.user_net.as_deref()));
        for mac in &c.extra_nics {
            a.push("-nic".into());
            a.push(format!("user,model=virtio-net-pci,restrict=on,mac={mac}"));
        }
    }
    a
}

/// How many VMs the tests of one test binary run at once (`ROS_TEST_VMS`, default 2): on
/// two cores, more TCG guests make every one of them slower than its deadlines.
pub fn max_vms() -> usize {
    std::env::var("ROS_TEST_VMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(2)
}

static RUNNING: Mutex<usize> = Mutex::new(0);
static FREED: std::sync::Condvar = std::sync::Condvar::new();

/// A place among the [`max_vms`] VMs that may run at once; held for a test's VMs, given
/// back when dropped.
pub struct VmSlot(());

impl VmSlot {
    /// Waits for a free place.
    pub fn take() -> VmSlot {
        let mut n = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= max_vms() {
            n = FREED.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
        VmSlot(())
    }
}

impl Drop for VmSlot {
    fn drop(&mut self) {
        let mut n = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        *n = n.saturating_sub(1);
        FREED.notify_one();
    }
}

/// A running VM. Dropping it kills QEMU.
pub struct Vm {
    child: Child,
    stdin: Option<ChildStdin>,
    serial: Arc<Mutex<Vec<u8>>>,
    pub log: PathBuf,
    started: Instant,
    commands: u32,
}

impl Vm {
    /// Starts QEMU; the serial console goes to memory and to `log`.
    pub fn start(c: &VmConfig, log: &Path) -> std::io::Result<Vm> {
        let mut child = Command::new(QEMU)
            .args(qemu_args(c))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let serial = Arc::new(Mutex::new(Vec::new()));
        let mut file = fs::File::create(log)?;
        let _ = writeln!(file, "# {} {}", QEMU, qemu_args(c).join(" "));
        for (mut pipe, tag) in [
            (
                Box::new(
                    child
                        .stdout
                        .take()
                        .ok_or_else(|| std::io::Error::other("no pipe"))?,
                ) as Box<dyn Read + Send>,
                "",
            ),
            (
                Box::new(
                    child
                        .stderr
                        .take()
                        .ok_or_else(|| std::io::Error::other("no pipe"))?,
                ),
                "qemu: ",
            ),
        ] {
            let serial = Arc::clone(&serial);
            let mut file = file.try_clone()?;
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match pipe.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let mut chunk = tag.as_bytes().to_vec();
                            chunk.extend_from_slice(&buf[..n]);
                            let _ = file.write_all(&chunk);
                            if let Ok(mut s) = serial.lock() {
                                s.extend_from_slice(&chunk);
                            }
                        }
                    }
                }
            });
        }
        let stdin = child.stdin.take();
        Ok(Vm {
            child,
            stdin,
            serial,
            log: log.to_path_buf(),
            started: Instant::now(),
            commands: 0,
        })
    }

    /// Everything the serial console printed so far (lossy UTF-8, `\r` removed).
    pub fn output(&self) -> String {
        let bytes = self.serial.lock().map(|s| s.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).replace('\r', "")
    }

    fn len(&self) -> usize {
        self.serial.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// The last `n` lines of output, for failure messages.
    pub fn tail(&self, n: usize) -> String {
        let out = self.output();
        let lines: Vec<&str> = out.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Time since QEMU was started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits until a line printed after byte `from` satisfies `pred`; that line.
    fn wait_line_from(
        &mut self,
        from: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let bytes = self.serial.lock().map(|s| s.clone()).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes[from.min(bytes.len())..]).replace('\r', "");
            // Only complete lines.
            let complete = match text.rfind('\n') {
                Some(i) => &text[..i],
                None => "",
            };
            if let Some(l) = complete.lines().find(|l| pred(l)) {
                return Some(l.to_string());
            }
            if Instant::now() >= deadline || self.exited() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for a line containing `needle` anywhere in the output.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> Option<String> {
        self.wait_line_from(0, timeout, |l| l.contains(needle))
    }

    /// Waits for the first line that contains any of `needles`.
    pub fn wait_for_any(&mut self, needles: &[&str], timeout: Duration) -> Option<String> {
        self.wait_line_from(0, timeout, |l| needles.iter().any(|n| l.contains(n)))
    }

    /// Types a line on the serial console.
    pub fn send(&mut self, line: &str) {
        if let Some(stdin) = &mut self.stdin {
            let _ = stdin.write_all(line.as_bytes());
            let _ = stdin.write_all(b"\n");
            let _ = stdin.flush();
        }
    }

    /// Runs `cmd` in the serial console's shell; its output and exit code, or `None` when
    /// it did not finish within `timeout`. The end marker is computed by the shell, so the
    /// echo of the typed line never matches it.
    pub fn sh(&mut self, cmd: &str, timeout: Duration) -> Option<(i32, String)> {
        self.commands += 1;
        let n = self.commands;
        let from = self.len();
        let begin = format!("@B{n}@");
        let end = format!("@E{n}@");
        // `${x#}` keeps the typed text from containing the printed markers.
        self.send(&format!(
            "echo @B{n}${{_r#}}@; {cmd}; echo @E{n}${{_r#}}@$?@"
        ));
        let endline = self.wait_line_from(from, timeout, |l| {
            l.starts_with(&end) && l.len() > end.len()
        })?;
        let code = endline[end.len()..]
            .trim_end_matches('@')
            .parse()
            .unwrap_or(-1);
        let text = self.output();
        let start = text[..]
            .rfind(&format!("{begin}\n"))
            .map(|i| i + begin.len() + 1)?;
        let region = &text[start..];
        // Empty output: the end marker follows the begin marker's line directly.
        let stop = if region.starts_with(&end) {
            start
        } else {
            start + region.find(&format!("\n{end}"))?
        };
        Some((code, text[start..stop].to_string()))
    }

    /// Runs one QMP command without arguments (`system_powerdown`) on the socket of
    /// `cfg.qmp`.
    pub fn qmp(socket: &Path, command: &str) -> std::io::Result<String> {
        Self::qmp_json(socket, &format!("{{\"execute\":\"{command}\"}}"))
    }

    /// Presses keys together on the VM's keyboard (QEMU key codes: `ctrl`, `alt`,
    /// `delete`).
    pub fn send_keys(socket: &Path, keys: &[&str]) -> std::io::Result<String> {
        let keys: Vec<String> = keys
            .iter()
            .map(|k| format!("{{\"type\":\"qcode\",\"data\":\"{k}\"}}"))
            .collect();
        Self::qmp_json(
            socket,
            &format!(
                "{{\"execute\":\"send-key\",\"arguments\":{{\"keys\":[{}]}}}}",
                keys.join(",")
            ),
        )
    }

    /// Runs one QMP request (a JSON object) on the socket of `cfg.qmp`; its reply line.
    pub fn qmp_json(socket: &Path, request: &str) -> std::io::Result<String> {
        use std::io::BufRead;
        let stream = std::os::unix::net::UnixStream::connect(socket)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut reader = std::io::BufReader::new(stream.try_clone()?);
        let mut w = stream;
        let mut line = String::new();
        reader.read_line(&mut line)?; // the greeting
        w.write_all(b"{\"execute\":\"qmp_capabilities\"}\n")?;
        line.clear();
        reader.read_line(&mut line)?;
        w.write_all(format!("{request}\n").as_bytes())?;
        line.clear();
        reader.read_line(&mut line)?;
        Ok(line)
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits for QEMU to end by itself (the guest powered off, or rebooted with
    /// `-no-reboot`).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                // Let the readers drain what is left.
                std::thread::sleep(Duration::from_millis(200));
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A boot slot as ros lays it out: an ext4 file system labelled `label` (`ROS_A`) holding
/// `images.sqfs`, made without mounting (`mkfs.ext4 -d`) in `dir`.
pub fn boot_slot(dir: &Path, images_sqfs: &Path, label: &str) -> PathBuf {
    let content = dir.join(format!("{label}-content"));
    fs::create_dir_all(&content).expect("slot content dir");
    fs::copy(images_sqfs, content.join("images.sqfs")).expect("copy images.sqfs");
    let size_mb = fs::metadata(images_sqfs).map_or(0, |m| m.len()) / (1 << 20) + 64;
    let img = dir.join(format!("{label}.img"));
    let st = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", label, "-d"])
        .arg(&content)
        .arg(&img)
        .arg(format!("{size_mb}M"))
        .status()
        .expect("run mkfs.ext4");
    assert!(st.success(), "mkfs.ext4 -d for the boot slot failed");
    let _ = fs::remove_dir_all(&content);
    img
}

/// Starts the VM and waits up to `timeout` for the ready line, checking it (not `degraded`,
/// its figures adding up); `None`, with the failure recorded, when it never comes. Once
/// ready, lets the bring-up's exit line pass, so typed input does not interleave with it.
pub fn boot_to_ready(
    c: &mut crate::Checks,
    cfg: &VmConfig,
    log: &Path,
    what: &str,
    timeout: Duration,
) -> Option<Vm> {
    let mut vm = match Vm::start(cfg, log) {
        Ok(vm) => vm,
        Err(e) => {
            c.check(false, &format!("{what}: start qemu"), e);
            return None;
        }
    };
    let line = vm.wait_for_any(&["ros: ready in ", "ros: degraded: "], timeout);
    let ready = line.as_deref().and_then(parse_ready);
    c.check(
        ready.is_some(),
        &format!("{what}: the ready line within {timeout:?}"),
        format!(
            "got {line:?}; serial log {}:\n{}",
            log.display(),
            vm.tail(80)
        ),
    );
    let (total, kernel, userland) = ready?;
    eprintln!(
        "{what}: ready in {total:.2}s (kernel {kernel:.2}s, userland {userland:.2}s); \
         QEMU running {:.1}s",
        vm.elapsed().as_secs_f64()
    );
    c.check(
        (total - kernel - userland).abs() < 0.02 && kernel > 0.0,
        &format!("{what}: ready line adds up"),
        line.unwrap_or_default(),
    );
    vm.wait_for("services: pid ", Duration::from_secs(10));
    Some(vm)
}

/// The ready line's numbers: `ros: ready in 7.42s (kernel 1.71s, userland 5.71s)`.
pub fn parse_ready(line: &str) -> Option<(f64, f64, f64)> {
    let rest = line.split("ros: ready in ").nth(1)?;
    let (total, rest) = rest.split_once("s (kernel ")?;
    let (kernel, rest) = rest.split_once("s, userland ")?;
    let userland = rest.strip_suffix("s)")?;
    Some((
        total.parse().ok()?,
        kernel.parse().ok()?,
        userland.parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line() {
        let mut c = VmConfig::new("/k", "/i");
        c.kvm = false;
        c.drives.push(Drive::qcow2("/s.qcow2"));
        c.drives.push(Drive::raw("/b.img").read_only());
        c.forwards.push((2222, 22));
        let a = qemu_args(&c).join(" ");
        assert!(a.contains("-machine q35,accel=tcg"));
        assert!(a.contains("-no-reboot"));
        assert!(a.contains("-drive file=/s.qcow2,if=virtio,format=qcow2,cache=unsafe -drive file=/b.img,if=virtio,format=raw,cache=unsafe,readonly=on"));
        assert!(
            a.contains("-nic user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22")
        );
        assert!(a.contains("-append console=ttyS0 panic=-1"));
        c.extra_nics.push("52:54:00:12:35:11".into());
        assert!(qemu_args(&c)
            .join(" ")
            .contains(":22 -nic user,model=virtio-net-pci,restrict=on,mac=52:54:00:12:35:11"));
        c.no_network = true;
        assert!(qemu_args(&c).join(" ").contains("-nic none"));
    }

    #[test]
    fn kvm_without_a_kernel_does_not_answer() {
        assert!(!kvm_answers(
            Path::new("/nonexistent/vmlinuz"),
            Duration::from_secs(1)
        ));
    }

    #[test]
    fn ready_line_numbers() {
        assert_eq!(
            parse_ready("ros: ready in 7.42s (kernel 1.71s, userland 5.71s)"),
            Some((7.42, 1.71, 5.71))
        );
        assert_eq!(parse_ready("ros: degraded: ntp"), None);
    }
}
