//! The crate's only `unsafe` code: thin wrappers over syscalls that `nix` either lacks or
//! marks unsafe. Each returns owned, typed values so no raw fd leaves this module.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use nix::unistd::{ForkResult, Pid};

/// `pidfd_open(2)`: a file descriptor that becomes readable when `pid` exits. Works for
/// processes that are not our children, which is how the daemon watches shims it re-adopts.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags by value and returns a new fd or -1; it does
    // not touch our memory.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `fork(2)`. Only called by the shim, which is single-threaded, so the child may run any
/// code (no locks can be held by threads that vanish in the child).
pub fn fork() -> nix::Result<ForkResult> {
    // SAFETY: the shim is single-threaded when it forks (see above); nix's fork is unsafe
    // only because of multi-threaded callers.
    unsafe { nix::unistd::fork() }
}

/// Sets the loopback interface of the current network namespace up (a new netns starts with
/// `lo` down; Docker containers with `--net none` still have `lo` up).
pub fn loopback_up() -> io::Result<()> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    use std::os::fd::AsRawFd;
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(io::Error::from)?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the name and writes the flags inside `req`, which lives for
    // the whole call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the union member ifru_flags is the one SIOCGIFFLAGS just filled.
    unsafe {
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    }
    // SAFETY: as above; SIOCSIFFLAGS reads `req`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The start time of `pid` in clock ticks since boot (field 22 of /proc/PID/stat), used to
/// tell a re-adopted process from a new one that reused its pid.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// Whether `pid` is still alive with the given start time.
pub fn process_alive(pid: i32, start_time: u64) -> bool {
    pid > 0 && process_start_time(pid) == Some(start_time)
}

/// Send `sig` to `pid` (negative values are process groups).
pub fn kill(pid: i32, sig: nix::sys::signal::Signal) -> nix::Result<()> {
    nix::sys::signal::kill(Pid::from_raw(pid), sig)
}

/// Ignores `sig` in the current process (the shim must outlive SIGTERM/SIGINT/SIGHUP sent
/// to its process group; only SIGKILL ends it).
pub fn ignore_signal(sig: nix::sys::signal::Signal) {
    use nix::sys::signal::{signal, SigHandler};
    // SAFETY: SIG_IGN installs no handler code, so no async-signal-safety concerns arise.
    let _ = unsafe { signal(sig, SigHandler::SigIgn) };
}

/// Restores the default action of every catchable signal; ignored dispositions survive
/// `execve`, and a container must start with the defaults.
pub fn default_all_signals() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: SIG_DFL installs no handler code.
        let _ = unsafe { signal(sig, SigHandler::SigDfl) };
    }
}

/// `_exit(2)`: ends a forked child at once, without running the parent's exit handlers or
/// flushing buffers it inherited.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no memory of ours.
    unsafe { libc::_exit(code) }
}

/// Waits until the process behind `pidfd` has exited.
pub async fn pidfd_wait(pidfd: OwnedFd) -> io::Result<()> {
    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;
    // SAFETY: `register_with_interest` requires that the fd stays open and is not closed by
    // anyone else while registered; the AsyncFd takes ownership of the OwnedFd, so it is
    // closed only when the AsyncFd is dropped, after deregistration.
    let afd = unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) }
        .map_err(|e| io::Error::other(e.to_string()))?;
    let _guard = afd.readable().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_readable() {
        let me = std::process::id() as i32;
        let t = process_start_time(me).expect("start time of self");
        assert!(process_alive(me, t));
        assert!(!process_alive(me, t + 1));
    }
}
