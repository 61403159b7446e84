//! PID 1's log: every line to stderr (the console), and to `/dev/kmsg` only when this is the
//! real init — PID 1 of the initial PID namespace — so tests in a PID namespace never write
//! into the host's kernel log.
//!
//! Levels: `error` — something PID 1 could not do; `warn` — a service died or was killed;
//! `info` — starts, stops, the shutdown steps.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Mutex;

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
