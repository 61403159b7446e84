//! The one place PID 1 needs `unsafe`: resetting the signal mask of a child between fork and
//! exec. PID 1 blocks the signals it takes through its signalfd, and a blocked mask survives
//! execve(2) (signal(7)), so without this every service would start deaf to SIGTERM.
#![allow(unsafe_code)]

use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::sys::signal::SigSet;

/// Makes `cmd` exec with no signal blocked.
pub fn unblock_signals_in_child(cmd: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec; it only calls
    // sigemptyset(3) and pthread_sigmask(3), which are async-signal-safe, and allocates
    // nothing.
    unsafe {
        cmd.pre_exec(|| {
            SigSet::empty()
                .thread_set_mask()
                .map_err(|e| std::io::Error::from_raw_os_error(e as i32))
        });
    }
}
