//! PID 1's log: every line to stderr (the console), and to `/dev/kmsg` only when this is the
//! real init — PID 1 of the initial PID namespace — so tests in a PID namespace never write
//! into the host's kernel log.
//!
//! Levels: `error` — something PID 1 could not do; `warn` — a service died or was killed;
//! `info` — starts, stops, the shutdown steps.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The boot log file, once the state partition (or RAM's /var/log) is there; forgotten
/// before the state partition is unmounted at shutdown.
static FILE: Mutex<Option<PathBuf>> = Mutex::new(None);

/// A boot log file is rotated (to `.1`, one old copy kept) when it grows past this.
const ROTATE_AT: u64 = 1 << 20;

/// Stops writing the boot log file (it lives on the state partition, which must unmount).
pub fn close_file() {
    if let Ok(mut f) = FILE.lock() {
        *f = None;
    }
}

/// The lines logged before the boot log file was there (bounded), written into it first.
static EARLY: Mutex<String> = Mutex::new(String::new());
const EARLY_MAX: usize = 64 << 10;

/// Also writes every line to `path`, starting with those logged so far.
pub fn log_to_file(path: &Path) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    // FILE is held while the early lines go out, so no line can come between them.
    if let Ok(mut slot) = FILE.lock() {
        if let Ok(mut early) = EARLY.lock() {
            if !early.is_empty() {
                append(path, &early);
                *early = String::new();
            }
        }
        *slot = Some(path.to_owned());
    }
}

/// Appends `line` to `path`, first rotating a file grown past [`ROTATE_AT`]. The file is
/// opened for each line: PID 1 and the bring-up both write it, and an open handle would
/// keep writing into the copy the other one rotated away (and hold the state partition).
pub fn append(path: &Path, line: &str) {
    if std::fs::metadata(path).is_ok_and(|m| m.len() > ROTATE_AT) {
        let mut old = path.as_os_str().to_owned();
        old.push(".1");
        let _ = std::fs::rename(path, old);
    }
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
        let _ = f.write_all(line.as_bytes());
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
        if let Ok(path) = FILE.lock() {
            match path.as_deref() {
                Some(path) => append(path, &line),
                None => {
                    if let Ok(mut early) = EARLY.lock() {
                        if early.len() + line.len() <= EARLY_MAX {
                            early.push_str(&line);
                        }
                    }
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_rotates_past_the_limit_keeping_one_old_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("init.log");
        let big = "x".repeat(ROTATE_AT as usize);
        append(&path, &big);
        append(&path, "more\n");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), ROTATE_AT + 5);
        append(&path, "new\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        let old = dir.path().join("init.log.1");
        assert_eq!(std::fs::metadata(&old).unwrap().len(), ROTATE_AT + 5);
        append(&path, "again\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\nagain\n");
    }
}
