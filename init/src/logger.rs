//! PID 1's log: every line to stderr (the console), and to `/dev/kmsg` only when this is the
//! real init — PID 1 of the initial PID namespace — so tests in a PID namespace never write
//! into the host's kernel log.
//!
//! Levels: `error` — something PID 1 could not do; `warn` — a service died or was killed;
//! `info` — starts, stops, the shutdown steps.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

/// The boot log file, once the state partition (or RAM's /var/log) is there; closed before
/// the state partition is unmounted at shutdown.
static FILE: Mutex<Option<File>> = Mutex::new(None);

/// Stops writing the boot log file (it lives on the state partition, which must unmount).
pub fn close_file() {
    if let Ok(mut f) = FILE.lock() {
        if let Some(f) = f.take() {
            let _ = f.sync_all();
        }
    }
}

/// Also writes every line to `path` (appending; a file over 1 MiB is rotated to `.1`).
pub fn log_to_file(path: &Path) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if std::fs::metadata(path).is_ok_and(|m| m.len() > 1 << 20) {
        let _ = std::fs::rename(path, path.with_extension("log.1"));
    }
    match OpenOptions::new().create(true).append(true).open(path) {
        Ok(f) => {
            if let Ok(mut slot) = FILE.lock() {
                *slot = Some(f);
            }
        }
        Err(e) => log::warn!("boot log {}: {e}", path.display()),
    }
}

/// The inode of the initial PID namespace (`PROC_PID_INIT_INO`, include/linux/proc_ns.h).
const INIT_PID_NS: &str = "pid:[4026531836]";

struct Logger {
    kmsg: Option<Mutex<File>>,
}

impl log::Log for Logger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        let line = format!("ros-init: {}: {}\n", record.level(), record.args());
        // Errors writing the console are not actionable: PID 1 carries on.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
        if let Ok(mut f) = FILE.lock() {
            if let Some(f) = f.as_mut() {
                let _ = f.write_all(line.as_bytes());
            }
        }
        if let Some(kmsg) = &self.kmsg {
            let prio = match record.level() {
                log::Level::Error => 3,
                log::Level::Warn => 4,
                _ => 6,
            };
            if let Ok(mut f) = kmsg.lock() {
                let _ = f.write_all(format!("<{prio}>{line}").as_bytes());
            }
        }
    }

    fn flush(&self) {}
}

pub fn real_init() -> bool {
    nix::unistd::getpid().as_raw() == 1
        && std::fs::read_link("/proc/self/ns/pid")
            .is_ok_and(|l| l.as_os_str() == std::ffi::OsStr::new(INIT_PID_NS))
}

pub fn init() {
    let kmsg = if real_init() {
        OpenOptions::new()
            .write(true)
            .open("/dev/kmsg")
            .ok()
            .map(Mutex::new)
    } else {
        None
    };
    // Fails only when a logger is already set (a second call): keep that one.
    let _ = log::set_boxed_logger(Box::new(Logger { kmsg }));
    log::set_max_level(log::LevelFilter::Info);
}
