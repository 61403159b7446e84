//! `ros_init`: the core of PID 1 — reaping every child (orphans included), the busybox init
//! signal semantics, supervision of the configured processes, and the ordered shutdown
//! ending in `reboot(2)`.
//!
//! On a real host (PID 1 of the initial PID namespace, no `ROS_INIT_PLAN`) it boots first:
//! [`early`] leaves the initramfs and mounts the kernel file systems, [`boot`] loads modules,
//! mounts the system images and the [`state`] partition, and makes the plan — system-docker
//! and the one-shot [`bringup`] of the services, which prints the ready line. Elsewhere (the
//! black-box tests, a developer's shell) the supervised processes come from the JSON file
//! named by `ROS_INIT_PLAN` (see [`plan`]).
//!
//! Safety rule: `reboot(2)` and `kill(-1, …)` are used only when `getpid() == 1`. Run as
//! any other process (a developer's shell, a unit test) init becomes a child subreaper, and
//! at the end of its shutdown it exits instead.

pub mod boot;
pub mod bringup;
pub mod cloudinit;
pub mod disk;
pub mod early;
pub mod kmod;
mod logger;
pub mod plan;
pub mod power_button;
pub mod prefetch;
pub mod signals;
pub mod state;
pub mod supervisor;
mod sys;
pub mod thp;
pub mod zram;

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::plan::{Plan, ServiceSpec, PLAN_ENV};
use crate::signals::Shutdown;
use crate::supervisor::{Spawner, Supervisor};

/// How long PID 1 waits for a SIGKILLed process to be reaped before it moves on.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// Longest sleep of the main loop; a missed wakeup costs at most this.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Entry point of the `init` name of the multi-call binary. As PID 1 it never returns;
/// otherwise it returns the exit code once a shutdown signal has been handled.
pub fn main() -> i32 {
    if nix::unistd::getpid().as_raw() == 1 && std::env::var_os(PLAN_ENV).is_none() {
        early::mount_proc();
        if logger::real_init() {
            return boot_main();
        }
    }
    logger::init();
    let pid1 = nix::unistd::getpid().as_raw() == 1;
    if !pid1 {
        log::warn!("not PID 1: acting as a child subreaper; will exit instead of reboot(2)");
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            log::error!("PR_SET_CHILD_SUBREAPER: {e}");
        }
    }
    let events = Events::new();
    let plan = match std::env::var_os(PLAN_ENV) {
        None => {
            log::info!("{PLAN_ENV} not set: no services to supervise");
            Plan::default()
        }
        Some(path) => match Plan::load(path.as_ref()) {
            Ok(plan) => plan,
            Err(e) => {
                log::error!("{}; supervising nothing", error_chain(&e));
                Plan::default()
            }
        },
    };
    let (ordered, warnings) = plan.start_order();
    for w in warnings {
        log::warn!("plan: {w}");
    }
    let mut init = Init {
        pid1,
        events,
        sup: Supervisor::new(ordered),
        grace: Duration::from_millis(plan.shutdown_grace_ms),
        no_children: false,
        booted: false,
        recovery_started: false,
    };
    init.run()
}

/// PID 1 of a real host: boot, then supervise. Never returns.
fn boot_main() -> i32 {
    early::console_stdio();
    std::env::set_var(
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    );
    let kernel = std::env::var(early::KERNEL_SECONDS_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .or_else(early::uptime)
        .unwrap_or(0.0);
    if early::root_is_initramfs() {
        logger::init();
        let e = early::switch_to_tmpfs_root(kernel);
        log::error!("cannot leave the initramfs: {e}; containers cannot run from it");
    }
    std::env::set_var(early::KERNEL_SECONDS_ENV, format!("{kernel:.3}"));
    early::mount_kernel_filesystems();
    logger::init();
    // A panic is caught (PID 1 must not exit); the hook says what it was, in the boot log too.
    std::panic::set_hook(Box::new(|info| log::error!("PID 1 bug: {info}")));
    log::info!(
        "ros {} booting (kernel took {kernel:.2}s)",
        env!("CARGO_PKG_VERSION")
    );
    // Ctrl-Alt-Del becomes SIGINT to PID 1 (an orderly reboot) instead of the kernel's
    // immediate restart, which would skip the sync and the state partition's unmount.
    if let Err(e) = nix::sys::reboot::set_cad_enabled(false) {
        log::warn!("ctrl-alt-del stays the kernel's: {e}");
    }
    // Blocked from here, a poweroff or reboot sent while the boot waits for disks or checks
    // a file system stays pending and is acted on once the boot is done.
    let mut events = Events::new();
    let booted = match std::panic::catch_unwind(boot::boot) {
        Ok(booted) => booted,
        Err(_) => {
            // (On the state partition when the panic came after it was mounted; else in RAM.)
            logger::log_to_file(&boot::boot_log_file());
            boot::console(
                "ros: the boot failed (the panic is above and in /var/log/boot/init.log); \
                 recovery shell on the console",
            );
            boot::Booted::recovery()
        }
    };
    events.button = power_button::PowerButton::open(
        std::path::Path::new("/sys/class/input"),
        std::path::Path::new("/dev/input"),
    );
    let (ordered, warnings) = booted.plan.start_order();
    for w in warnings {
        log::warn!("plan: {w}");
    }
    let mut init = Init {
        pid1: true,
        events,
        sup: Supervisor::new(ordered),
        grace: Duration::from_millis(booted.plan.shutdown_grace_ms),
        no_children: false,
        booted: true,
        recovery_started: false,
    };
    init.run()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Signals, taken synchronously through a signalfd, and presses of the power button (taken
/// as SIGUSR2: poweroff).
struct Events {
    fd: Option<SignalFd>,
    button: Option<power_button::PowerButton>,
}

impl Events {
    fn new() -> Events {
        let mut mask = SigSet::empty();
        for s in signals::HANDLED {
            mask.add(s);
        }
        // Blocked, the signals stay pending for the signalfd; children get an empty mask
        // again in `sys::unblock_signals_in_child`.
        if let Err(e) = mask.thread_block() {
            log::error!("block signals: {e}");
        }
        let fd = match SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC) {
            Ok(fd) => Some(fd),
            Err(e) => {
                log::error!("signalfd: {e}; falling back to polling for children");
                None
            }
        };
        Events { fd, button: None }
    }

    /// Sleeps until a signal arrives or `deadline` (at most [`MAX_SLEEP`]); returns the
    /// signals taken, SIGCHLD included.
    fn wait(&mut self, deadline: Option<Instant>) -> Vec<Signal> {
        let now = Instant::now();
        let sleep = deadline
            .map_or(MAX_SLEEP, |d| d.saturating_duration_since(now))
            .min(MAX_SLEEP);
        let Some(fd) = &self.fd else {
            std::thread::sleep(sleep.min(Duration::from_millis(100)));
            return Vec::new();
        };
        // Round up so a deadline 0.4 ms away does not spin.
        let ms = u16::try_from(sleep.as_micros().div_ceil(1000)).unwrap_or(u16::MAX);
        let mut fds = vec![PollFd::new(fd.as_fd_ref(), PollFlags::POLLIN)];
        if let Some(b) = &self.button {
            fds.push(PollFd::new(b.fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                log::error!("poll: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let mut got = Vec::new();
        loop {
            match fd.read_signal() {
                Ok(Some(info)) => {
                    if let Ok(sig) = Signal::try_from(info.ssi_signo as i32) {
                        got.push(sig);
                    }
                }
                Ok(None) => break,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    log::error!("read signalfd: {e}");
                    break;
                }
            }
        }
        if let Some(b) = &mut self.button {
            if b.pressed() {
                log::info!("power button pressed");
                got.push(Signal::SIGUSR2);
            }
        }
        got
    }
}

trait AsFdRef {
    fn as_fd_ref(&self) -> std::os::fd::BorrowedFd<'_>;
}

impl AsFdRef for SignalFd {
    fn as_fd_ref(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(self)
    }
}

/// Starts services as real processes, each leading its own process group so a stop reaches
/// the helpers it forked too.
struct ProcessSpawner;

/// A command from an argv with signals unblocked; the leader of its own process group
/// when `group` (so a stop reaches the helpers it forked too).
fn command(argv: &[String], group: bool) -> std::io::Result<Command> {
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let mut cmd = Command::new(prog);
    cmd.args(args);
    if group {
        cmd.process_group(0);
    }
    sys::unblock_signals_in_child(&mut cmd);
    Ok(cmd)
}

impl Spawner for ProcessSpawner {
    fn spawn(&mut self, spec: &ServiceSpec) -> std::io::Result<Pid> {
        // A terminal's program makes its own session (`setsid -c`), which it does without
        // forking only when it does not lead a process group.
        let mut cmd = command(&spec.argv, spec.tty.is_none())?;
        if let Some(tty) = &spec.tty {
            let path = std::path::Path::new("/dev").join(tty);
            let open = || {
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
            };
            cmd.stdin(open()?).stdout(open()?).stderr(open()?);
        }
        let child = cmd.spawn()?;
        let pid = i32::try_from(child.id()).map_err(|_| std::io::Error::other("pid range"))?;
        // Set from here, not in the child: a write between fork and exec would allocate. The
        // child runs with PID 1's score only until this lands.
        let path = format!("/proc/{pid}/oom_score_adj");
        if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() != spec.oom_score_adj.to_string())
        {
            if let Err(e) = std::fs::write(&path, spec.oom_score_adj.to_string()) {
                log::warn!("{}: oom_score_adj {}: {e}", spec.name, spec.oom_score_adj);
            }
        }
        // Dropping the handle neither waits nor kills; the reaper collects the exit status.
        drop(child);
        Ok(Pid::from_raw(pid))
    }
}

struct Init {
    pid1: bool,
    events: Events,
    sup: Supervisor,
    grace: Duration,
    /// The last `waitpid` said there are no children at all.
    no_children: bool,
    /// This is a booted host: shutdown unmounts the state partition.
    booted: bool,
    recovery_started: bool,
}

impl Init {
    fn run(&mut self) -> i32 {
        // A shutdown asked for before supervision (during the boot) is carried out first.
        for sig in self.events.wait(Some(Instant::now())) {
            if let Some(how) = Shutdown::from_signal(sig) {
                log::info!("{sig} arrived during the boot");
                return self.shutdown(how, sig);
            }
        }
        self.sup.start_all(&mut ProcessSpawner, Instant::now());
        log::info!("supervising {} service(s)", self.sup.slots.len());
        loop {
            let sigs = self.events.wait(self.sup.next_due());
            // PID 1 must not die of a bug: a panic in one round is logged, and the signals
            // taken before it are still acted on.
            let round = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.reap();
                self.sup.tick(&mut ProcessSpawner, Instant::now());
                self.check_essential();
            }));
            if round.is_err() {
                log::error!("supervision round panicked (above); going on");
                // A bug that repeats must not spin.
                std::thread::sleep(Duration::from_millis(100));
            }
            for sig in sigs {
                match Shutdown::from_signal(sig) {
                    Some(how) => return self.shutdown(how, sig),
                    None if sig == Signal::SIGCHLD => {}
                    None => log::info!("{sig}: ignored"),
                }
            }
        }
    }

    /// When system-docker keeps failing on a booted host, a root shell on the console says
    /// why and lets someone look, instead of a host that silently never comes up.
    fn check_essential(&mut self) {
        if !self.booted || self.recovery_started {
            return;
        }
        let Some(slot) = self
            .sup
            .slots
            .iter()
            .find(|s| s.spec.name == "system-docker")
        else {
            return;
        };
        if slot.starts < 5 || matches!(slot.state, supervisor::State::Running { .. }) {
            return;
        }
        self.recovery_started = true;
        boot::console(&format!(
            "ros: system-docker failed {} times (see /var/log/boot/init.log and the \
             messages above); recovery shell on the console",
            slot.starts
        ));
        let spec = boot::recovery_shell();
        if let Err(e) = ProcessSpawner.spawn(&spec) {
            log::error!("recovery shell: {e}");
        }
    }

    /// Runs a service's stop command to completion, bounded by `timeout`.
    fn run_stop_command(&mut self, name: &str, argv: &[String], timeout: Duration) {
        let child = match command(argv, true).and_then(|mut c| c.spawn()) {
            Ok(c) => c,
            Err(e) => {
                log::warn!("{name}: stop command {argv:?}: {e}");
                return;
            }
        };
        let pid = Pid::from_raw(child.id() as i32);
        drop(child);
        let done = std::cell::Cell::new(false);
        let deadline = Instant::now() + timeout;
        loop {
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => {}
                Ok(_) | Err(_) => done.set(true),
            }
            if done.get() || Instant::now() >= deadline {
                break;
            }
            let _ = self
                .events
                .wait(Some(Instant::now() + Duration::from_millis(100)));
            self.reap();
        }
        if !done.get() {
            log::warn!("{name}: stop command still running after {timeout:?}: killed");
            Self::signal_group(pid, Signal::SIGKILL);
        }
    }

    /// Collects every exited child — supervised, or an orphan reparented to us.
    fn reap(&mut self) {
        loop {
            match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => {
                    self.sup.exited(pid, code != 0, Instant::now());
                }
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    if self.sup.exited(pid, true, Instant::now()) {
                        log::warn!("pid {pid} killed by {sig}");
                    }
                }
                Ok(WaitStatus::StillAlive) => {
                    self.no_children = false;
                    return;
                }
                Ok(_) => {}
                Err(Errno::EINTR) => {}
                Err(Errno::ECHILD) => {
                    self.no_children = true;
                    return;
                }
                Err(e) => {
                    log::error!("waitpid: {e}");
                    return;
                }
            }
        }
    }

    /// Reaps until `done` holds or `deadline` passes; returns whether `done` held. Shutdown
    /// signals arriving meanwhile are logged and dropped: one shutdown at a time.
    fn wait_until(&mut self, deadline: Instant, done: impl Fn(&Init) -> bool) -> bool {
        loop {
            self.reap();
            if done(self) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            for sig in self.events.wait(Some(deadline)) {
                if sig != Signal::SIGCHLD {
                    log::info!("{sig}: ignored, shutdown in progress");
                }
            }
        }
    }

    fn signal_group(pid: Pid, sig: Signal) {
        if kill(Pid::from_raw(-pid.as_raw()), sig).is_err() {
            // Not (or no longer) a group leader: signal the process itself.
            let _ = kill(pid, sig);
        }
    }

    fn shutdown(&mut self, how: Shutdown, sig: Signal) -> i32 {
        log::info!("{sig}: {how:?}: stopping services");
        self.sup.begin_stop();
        for i in (0..self.sup.slots.len()).rev() {
            let Some(pid) = self.sup.pid_of(i) else {
                continue;
            };
            let name = self.sup.slots[i].spec.name.clone();
            let timeout = Duration::from_millis(self.sup.slots[i].spec.stop_timeout_ms);
            let stop_argv = self.sup.slots[i].spec.stop_argv.clone();
            if !stop_argv.is_empty() {
                log::info!("{name}: running its stop command");
                self.run_stop_command(&name, &stop_argv, timeout);
            }
            log::info!("{name}: stopping (SIGTERM, {timeout:?})");
            Self::signal_group(pid, Signal::SIGTERM);
            if self.wait_until(Instant::now() + timeout, |s| s.sup.pid_of(i).is_none()) {
                continue;
            }
            log::warn!("{name}: still running after {timeout:?}: SIGKILL");
            Self::signal_group(pid, Signal::SIGKILL);
            if !self.wait_until(Instant::now() + KILL_WAIT, |s| s.sup.pid_of(i).is_none()) {
                log::error!("{name}: pid {pid} survives SIGKILL; going on");
            }
        }
        if self.pid1 {
            // kill(-1) from PID 1 reaches every other process of its PID namespace.
            log::info!("sending SIGTERM to all processes");
            let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
            let grace = self.grace;
            if !self.wait_until(Instant::now() + grace, |s| s.no_children) {
                log::info!("sending SIGKILL to all processes");
                let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
                if !self.wait_until(Instant::now() + KILL_WAIT, |s| s.no_children) {
                    log::error!("processes survive SIGKILL; going on");
                }
            }
        }
        if self.booted {
            boot::save_random_seed();
        }
        nix::unistd::sync();
        if self.booted {
            logger::close_file();
            state::teardown();
        }
        if !self.pid1 {
            log::info!("{how:?}: not PID 1, so exiting instead of reboot(2)");
            return 0;
        }
        log::info!("{how:?}: reboot(2)");
        // Safety rule: only ever reached with getpid() == 1 (checked at start, and PID 1
        // keeps its pid). In a child PID namespace this ends the namespace.
        let Err(e) = nix::sys::reboot::reboot(how.reboot_mode());
        log::error!("reboot(2): {e}");
        // PID 1 must not exit: reap forever.
        loop {
            self.reap();
            let _ = self.events.wait(None);
        }
    }
}
