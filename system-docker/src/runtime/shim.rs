//! The shim: one small process per container, started by the daemon as
//! `system-docker shim run <container-dir>` (or `shim exec <spec>` for `docker exec`).
//!
//! It creates the container's process in its namespaces, writes the container's output to
//! the json-file log, waits for the process to exit and records the exit status in a file.
//! It is a fresh exec of the binary and single-threaded, so it stays small (no async
//! runtime) and may fork freely; because it, not the daemon, is the container's parent, a
//! daemon that is killed and restarted loses neither output nor exit codes.

use std::ffi::{CString, OsString};
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{ForkResult, Gid, Pid, Uid};

use super::cgroups::{ContainerCgroups, Hierarchies};
use super::spec::{ContainerSpec, ExecSpec, ExitStatus, NsMode, StartReport};
use crate::{fsutil, jsonlog, sys};

/// Entry point of `system-docker shim …`; returns the process exit code.
pub fn shim_main(args: Vec<OsString>) -> i32 {
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["run", dir] => run(Path::new(dir)),
        ["exec", spec] => exec(Path::new(spec)),
        _ => {
            eprintln!("usage: system-docker shim run DIR | shim exec SPEC (internal, started by the daemon)");
            2
        }
    }
}

fn report(r: &StartReport) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, r);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

fn run(dir: &Path) -> i32 {
    let spec: ContainerSpec = match fs::read(dir.join("spec.json"))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            report(&StartReport::Failed {
                error: format!("reading {}/spec.json: {e}", dir.display()),
                exit_code: 128,
            });
            return 1;
        }
    };
    let _ = nix::unistd::setsid();
    for sig in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGPIPE,
        Signal::SIGQUIT,
    ] {
        sys::ignore_signal(sig);
    }
    match start(&spec) {
        Ok((child, cgroups, out_r, err_r)) => {
            report(&StartReport::Started {
                pid: child.as_raw(),
            });
            // The daemon may go away; nothing more is written to it.
            if let Ok(null) = fs::OpenOptions::new().write(true).open("/dev/null") {
                let _ = nix::unistd::dup2(null.as_raw_fd(), 1);
            }
            let status = supervise(&spec, child, out_r, err_r);
            let oom_killed = oom_kills(&cgroups) > 0;
            cgroups.destroy();
            let exit = ExitStatus {
                exit_code: status,
                finished_at: jsonlog::now(),
                oom_killed,
            };
            if let Err(e) = fsutil::write_json_atomic_unsynced(&spec.exit_file, &exit) {
                eprintln!("shim: writing {}: {e}", spec.exit_file.display());
            }
            0
        }
        Err((error, exit_code)) => {
            report(&StartReport::Failed { error, exit_code });
            1
        }
    }
}

type Started = (Pid, ContainerCgroups, OwnedFd, OwnedFd);

fn start(spec: &ContainerSpec) -> Result<Started, (String, i32)> {
    let setup = |e: String| (e, 128);
    let hier = Hierarchies::host();
    let cgroups = ContainerCgroups::create(&hier, &spec.cgroup_parent, &spec.id, &spec.resources)
        .map_err(|e| setup(e.to_string()))?;
    let fail = |e: String, code: i32, cg: &ContainerCgroups| {
        cg.destroy();
        (e, code)
    };
    let (out_r, out_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| setup(e.to_string()))?;
    let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| setup(e.to_string()))?;
    let (sync_r, sync_w) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| setup(e.to_string()))?;

    match &spec.namespaces.pid {
        NsMode::Private => unshare(CloneFlags::CLONE_NEWPID)
            .map_err(|e| fail(format!("unshare pid namespace: {e}"), 128, &cgroups))?,
        NsMode::Join(pid) => {
            join_ns(*pid, "pid", CloneFlags::CLONE_NEWPID).map_err(|e| fail(e, 128, &cgroups))?
        }
        NsMode::Host => {}
    }
    match sys::fork() {
        Err(e) => Err(fail(format!("fork: {e}"), 128, &cgroups)),
        Ok(ForkResult::Child) => {
            drop(out_r);
            drop(err_r);
            drop(sync_r);
            let (msg, code) = match child(spec, &cgroups, out_w, err_w) {
                Ok(never) => match never {},
                Err(e) => e,
            };
            let mut w = fs::File::from(sync_w);
            let _ = w.write_all(format!("{code}\n{msg}").as_bytes());
            sys::exit_now(code)
        }
        Ok(ForkResult::Parent { child }) => {
            drop(out_w);
            drop(err_w);
            drop(sync_w);
            let mut msg = String::new();
            let _ = fs::File::from(sync_r).read_to_string(&mut msg);
            if msg.is_empty() {
                return Ok((child, cgroups, out_r, err_r));
            }
            let _ = waitpid(child, None);
            let (code, text) = msg.split_once('\n').unwrap_or(("128", msg.as_str()));
            Err(fail(
                text.to_string(),
                code.parse().unwrap_or(128),
                &cgroups,
            ))
        }
    }
}

fn join_ns(pid: i32, kind: &str, flag: CloneFlags) -> Result<(), String> {
    let path = format!("/proc/{pid}/ns/{kind}");
    let f = fs::File::open(&path).map_err(|e| format!("open {path}: {e}"))?;
    setns(f.as_fd(), flag).map_err(|e| format!("setns {path}: {e}"))
}

enum Never {}

/// The container's first process, from fork to exec. Returns only on failure, with the
/// message and the exit code Docker uses (127: not found, 126: not executable).
fn child(
    spec: &ContainerSpec,
    cgroups: &ContainerCgroups,
    out_w: OwnedFd,
    err_w: OwnedFd,
) -> Result<Never, (String, i32)> {
    let e128 = |e: String| (e, 128);
    sys::default_all_signals();
    let _ = nix::unistd::setsid();
    cgroups.join_self().map_err(|e| e128(e.to_string()))?;
    let ns = &spec.namespaces;
    let mut flags = CloneFlags::CLONE_NEWNS;
    for (mode, flag, kind) in [
        (&ns.uts, CloneFlags::CLONE_NEWUTS, "uts"),
        (&ns.ipc, CloneFlags::CLONE_NEWIPC, "ipc"),
        (&ns.net, CloneFlags::CLONE_NEWNET, "net"),
    ] {
        match mode {
            NsMode::Private => flags |= flag,
            NsMode::Join(pid) => join_ns(*pid, kind, flag).map_err(e128)?,
            NsMode::Host => {}
        }
    }
    // The stdin fifo lives outside the container's root: open it before pivot_root. A
    // non-blocking open never waits for a writer; reads block again once it is cleared.
    let stdin = match &spec.stdin_fifo {
        Some(fifo) => {
            let f = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(fifo)
                .map_err(|e| e128(format!("open {}: {e}", fifo.display())))?;
            fcntl(f.as_raw_fd(), FcntlArg::F_SETFL(OFlag::empty()))
                .map_err(|e| e128(format!("fcntl stdin: {e}")))?;
            Some(f)
        }
        None => None,
    };
    unshare(flags).map_err(|e| e128(format!("unshare namespaces: {e}")))?;
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    super::mounts::setup_rootfs(spec).map_err(|e| e128(e.to_string()))?;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    if ns.uts == NsMode::Private && !spec.hostname.is_empty() {
        nix::unistd::sethostname(&spec.hostname).map_err(|e| e128(format!("sethostname: {e}")))?;
    }
    if ns.net == NsMode::Private {
        sys::loopback_up().map_err(|e| e128(format!("bringing up lo: {e}")))?;
    }
    let stdin = match stdin {
        Some(f) => f,
        None => fs::OpenOptions::new()
            .read(true)
            .open("/dev/null")
            .map_err(|e| e128(format!("open /dev/null: {e}")))?,
    };
    for (fd, target) in [
        (stdin.as_raw_fd(), 0),
        (out_w.as_raw_fd(), 1),
        (err_w.as_raw_fd(), 2),
    ] {
        nix::unistd::dup2(fd, target).map_err(|e| e128(format!("dup2: {e}")))?;
    }
    become_user_and_exec(
        &spec.user,
        &spec.cwd,
        &spec.env,
        &spec.args,
        &spec.capabilities,
        spec.no_new_privileges,
        spec.oom_score_adj,
    )
}

/// Switches to the container user, drops capabilities and execs; shared by run and exec.
fn become_user_and_exec(
    user: &str,
    cwd: &str,
    env: &[String],
    args: &[String],
    capabilities: &[String],
    no_new_privs: bool,
    oom_score_adj: i32,
) -> Result<Never, (String, i32)> {
    let e128 = |e: String| (e, 128);
    // Before the capabilities go: lowering the score needs CAP_SYS_RESOURCE. Where even
    // that is not granted (a confined build machine), the process still starts, and its
    // log says why its score is not the one asked for.
    if let Err(e) = fs::write("/proc/self/oom_score_adj", oom_score_adj.to_string()) {
        eprintln!("system-docker: oom_score_adj {oom_score_adj} not applied: {e}");
    }
    let u = super::user::resolve(Path::new("/"), user).map_err(|e| e128(e.to_string()))?;
    let cwd = if cwd.is_empty() { "/" } else { cwd };
    // Docker creates a missing working directory.
    let _ = fs::create_dir_all(cwd);
    let mut env: Vec<String> = env.to_vec();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", u.home));
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    let gids: Vec<Gid> = u
        .additional_gids
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    nix::unistd::setgroups(&gids).map_err(|e| e128(format!("setgroups: {e}")))?;
    nix::unistd::setgid(Gid::from_raw(u.gid))
        .map_err(|e| e128(format!("setgid {}: {e}", u.gid)))?;
    // The bounding set must be cut while we still hold CAP_SETPCAP, i.e. before setuid.
    super::caps::apply(capabilities, true).map_err(|e| e128(format!("capabilities: {e}")))?;
    if u.uid != 0 {
        nix::unistd::setuid(Uid::from_raw(u.uid))
            .map_err(|e| e128(format!("setuid {}: {e}", u.uid)))?;
    }
    if no_new_privs {
        nix::sys::prctl::set_no_new_privs().map_err(|e| e128(format!("no_new_privs: {e}")))?;
    }
    nix::unistd::chdir(cwd).map_err(|e| {
        (
            format!("chdir to cwd (\"{cwd}\") set in config.json failed: {e}"),
            128,
        )
    })?;
    let Some(argv0) = args.first() else {
        return Err(("no command specified".into(), 128));
    };
    let path_var = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("");
    let program = lookup(argv0, path_var)?;
    let c = |s: &str| {
        CString::new(s).map_err(|_| (format!("argument contains a NUL byte: {s:?}"), 128))
    };
    let cargs = args.iter().map(|a| c(a)).collect::<Result<Vec<_>, _>>()?;
    let cenv = env.iter().map(|a| c(a)).collect::<Result<Vec<_>, _>>()?;
    let cprog = c(&program.to_string_lossy())?;
    let err = nix::unistd::execve(&cprog, &cargs, &cenv).unwrap_err();
    let code = if err == nix::errno::Errno::ENOENT {
        127
    } else {
        126
    };
    Err((
        format!("exec: \"{argv0}\": {}", err.desc().to_lowercase()),
        code,
    ))
}

/// `PATH` lookup with the container's `PATH`, not the shim's.
fn lookup(argv0: &str, path_var: &str) -> Result<PathBuf, (String, i32)> {
    use std::os::unix::fs::PermissionsExt;
    if argv0.contains('/') {
        return Ok(PathBuf::from(argv0));
    }
    for dir in path_var.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(argv0);
        if let Ok(m) = fs::metadata(&p) {
            if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                return Ok(p);
            }
        }
    }
    Err((
        format!("exec: \"{argv0}\": executable file not found in $PATH"),
        127,
    ))
}

/// Copies the container's output into the log until its first process exits; returns the
/// exit code as Docker reports it (128 + signal for a killed process).
fn supervise(spec: &ContainerSpec, child: Pid, out_r: OwnedFd, err_r: OwnedFd) -> i32 {
    let mut log = match jsonlog::Writer::open(&spec.log.path, spec.log.max_size, spec.log.max_files)
    {
        Ok(w) => Some(w),
        Err(e) => {
            eprintln!("shim: opening log {}: {e}", spec.log.path.display());
            None
        }
    };
    let pidfd = sys::pidfd_open(child.as_raw()).ok();
    for fd in [&out_r, &err_r] {
        let _ = fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
    }
    let mut streams = [
        Stream {
            fd: Some(out_r),
            name: "stdout",
            buf: Vec::new(),
        },
        Stream {
            fd: Some(err_r),
            name: "stderr",
            buf: Vec::new(),
        },
    ];
    let status = loop {
        let mut fds: Vec<PollFd> = Vec::new();
        let mut which: Vec<usize> = Vec::new();
        for (i, s) in streams.iter().enumerate() {
            if let Some(fd) = &s.fd {
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                which.push(i);
            }
        }
        if let Some(p) = &pidfd {
            fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
        }
        // Without a pidfd (very old kernels) fall back to a short poll tick.
        let timeout = if pidfd.is_some() {
            PollTimeout::NONE
        } else {
            PollTimeout::from(100u16)
        };
        let _ = poll(&mut fds, timeout);
        let ready: Vec<usize> = fds
            .iter()
            .take(which.len())
            .enumerate()
            .filter(|(_, f)| f.revents().is_some_and(|r| !r.is_empty()))
            .map(|(i, _)| which[i])
            .collect();
        drop(fds);
        for i in ready {
            streams[i].pump(log.as_mut());
        }
        match waitpid(child, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => break code,
            Ok(WaitStatus::Signaled(_, sig, _)) => break 128 + sig as i32,
            Ok(_) => {}
            Err(_) => break 128,
        }
    };
    // Output written just before the exit is still in the pipes; with a private pid
    // namespace every writer is gone now, so reading to EOF ends.
    for s in streams.iter_mut() {
        s.pump(log.as_mut());
        s.flush(log.as_mut());
    }
    status
}

struct Stream {
    fd: Option<OwnedFd>,
    name: &'static str,
    buf: Vec<u8>,
}

impl Stream {
    /// Reads what is available; complete lines go to the log, a partial line waits (up to
    /// 16 KiB) for its end.
    fn pump(&mut self, mut log: Option<&mut jsonlog::Writer>) {
        let Some(fd) = &self.fd else { return };
        let mut chunk = [0u8; 16384];
        loop {
            match nix::unistd::read(fd.as_raw_fd(), &mut chunk) {
                Ok(0) => {
                    self.fd = None;
                    break;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            }
        }
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            if let Some(l) = log.as_deref_mut() {
                let _ = l.write(self.name, &line);
            }
        }
        if self.buf.len() >= 16384 || self.fd.is_none() {
            self.flush(log);
        }
    }

    fn flush(&mut self, log: Option<&mut jsonlog::Writer>) {
        if !self.buf.is_empty() {
            if let Some(l) = log {
                let _ = l.write(self.name, &self.buf);
            }
            self.buf.clear();
        }
    }
}

fn oom_kills(cg: &ContainerCgroups) -> u64 {
    cg.dirs
        .iter()
        .filter_map(|d| {
            fs::read_to_string(d.join("memory.events"))
                .or_else(|_| fs::read_to_string(d.join("memory.oom_control")))
                .ok()
        })
        .flat_map(|t| {
            t.lines()
                .filter_map(|l| {
                    l.strip_prefix("oom_kill ")
                        .and_then(|n| n.trim().parse::<u64>().ok())
                })
                .collect::<Vec<_>>()
        })
        .sum()
}

/// `docker exec`: join the container's cgroups and namespaces, then fork the process (it
/// must be forked to enter the pid namespace) and exit with its status. Its stdio is the
/// shim's, which the daemon connected to the client.
fn exec(spec_path: &Path) -> i32 {
    let spec: ExecSpec = match fs::read(spec_path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("exec: reading {}: {e}", spec_path.display());
            return 126;
        }
    };
    let _ = fs::remove_file(spec_path);
    let hier = Hierarchies::host();
    let cg = ContainerCgroups::existing(&hier, &spec.cgroup_parent, &spec.container_id);
    if let Err(e) = cg.join_self() {
        eprintln!("OCI runtime exec failed: {e}");
        return 126;
    }
    let mut ns_files = Vec::new();
    for (kind, flag) in [
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ] {
        let path = format!("/proc/{}/ns/{kind}", spec.pid);
        match fs::File::open(&path) {
            Ok(f) => ns_files.push((f, flag, path)),
            Err(e) => {
                eprintln!("OCI runtime exec failed: open {path}: {e}");
                return 126;
            }
        }
    }
    for (f, flag, path) in &ns_files {
        // Joining a namespace we are already in is harmless (host namespaces).
        if let Err(e) = setns(f.as_fd(), *flag) {
            eprintln!("OCI runtime exec failed: setns {path}: {e}");
            return 126;
        }
    }
    drop(ns_files);
    for sig in [
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGPIPE,
        Signal::SIGQUIT,
    ] {
        sys::ignore_signal(sig);
    }
    match sys::fork() {
        Err(e) => {
            eprintln!("OCI runtime exec failed: fork: {e}");
            126
        }
        Ok(ForkResult::Child) => {
            sys::default_all_signals();
            let (msg, code) = match become_user_and_exec(
                &spec.user,
                &spec.cwd,
                &spec.env,
                &spec.args,
                &spec.capabilities,
                spec.no_new_privileges,
                spec.oom_score_adj,
            ) {
                Ok(never) => match never {},
                Err(e) => e,
            };
            eprintln!("OCI runtime exec failed: {msg}");
            sys::exit_now(code)
        }
        Ok(ForkResult::Parent { child }) => loop {
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, code)) => return code,
                Ok(WaitStatus::Signaled(_, sig, _)) => return 128 + sig as i32,
                Ok(_) => continue,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return 128,
            }
        },
    }
}
