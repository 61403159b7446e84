//! Transparent huge pages: off, unless the kernel command line says otherwise.
//!
//! Debian's kernel turns them on for every process (`always`), and with them on,
//! khugepaged raises `vm.min_free_kbytes` so that 2 MiB pages can be assembled: to 44 MiB
//! on a 1 GiB machine (5% of the memory on small ones) against the kernel's own 3.8 MiB.
//! Memory kept free is memory neither the page cache nor a workload can have. Measured at
//! `-m 1024` once the engine answered: MemAvailable 698 MiB with them, 837 without; and the
//! engine's Go heaps took 7 MiB more in huge pages.
//!
//! Turned off, this kernel puts `vm.min_free_kbytes` back itself; where it is still above
//! the kernel's own value after that, PID 1 writes that value (not when the command line
//! set it: `sysctl.vm.min_free_kbytes=`). `transparent_hugepage=always` (or `madvise`) on
//! the kernel command line is the way back: then nothing here changes.
//! Set up by PID 1 before any service starts.

use std::fs;

const ENABLED: &str = "/sys/kernel/mm/transparent_hugepage/enabled";
const MIN_FREE_KBYTES: &str = "/proc/sys/vm/min_free_kbytes";
const PARAM: &str = "transparent_hugepage=";

/// What PID 1 did, for its log.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The command line chose (its value).
    Chosen(String),
    /// The kernel has no transparent huge pages, or they are off already.
    Off,
    /// Turned off; `vm.min_free_kbytes` now, and what it was when PID 1 had to put it back.
    TurnedOff { min_free: u64, raised: Option<u64> },
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Chosen(v) => write!(f, "{PARAM}{v} (the kernel command line)"),
            Outcome::Off => write!(f, "off"),
            Outcome::TurnedOff { min_free, raised } => {
                write!(f, "turned off; vm.min_free_kbytes {min_free}")?;
                match raised {
                    Some(r) => write!(f, " (was {r})"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// The kernel's own `vm.min_free_kbytes` for `mem_kib` of memory: √(16 × memory in KiB),
/// between 128 KiB and 256 MiB (mm/page_alloc.c counts the memory above the watermarks,
/// a little less than MemTotal).
pub fn kernel_min_free_kbytes(mem_kib: u64) -> u64 {
    ((mem_kib * 16) as f64)
        .sqrt()
        .floor()
        .clamp(128.0, 262_144.0) as u64
}

/// The value of `transparent_hugepage=` on a kernel command line, if given.
pub fn chosen(cmdline: &str) -> Option<&str> {
    cmdline
        .split_whitespace()
        .filter_map(|w| w.strip_prefix(PARAM))
        .next_back()
}

/// Whether a kernel command line sets `vm.min_free_kbytes` itself (`sysctl.vm.min_free_kbytes=`,
/// or with `/` for the dots): the kernel applies that before PID 1 starts, and it stays.
pub fn sets_min_free(cmdline: &str) -> bool {
    cmdline.split_whitespace().any(|w| {
        w.strip_prefix("sysctl.")
            .or_else(|| w.strip_prefix("sysctl/"))
            .and_then(|r| r.split_once('='))
            .is_some_and(|(key, _)| key.replace('/', ".") == "vm.min_free_kbytes")
    })
}

/// Where the settings are: the kernel's, or a test's files.
pub struct Knobs<'a> {
    pub enabled: &'a str,
    pub min_free_kbytes: &'a str,
}

/// The kernel's settings.
pub const KERNEL: Knobs<'static> = Knobs {
    enabled: ENABLED,
    min_free_kbytes: MIN_FREE_KBYTES,
};

/// Turns transparent huge pages off unless `cmdline` chose, and puts `vm.min_free_kbytes`
/// back to the kernel's own value for `mem_kib` of memory when it is still above it (unless
/// `cmdline` set it).
pub fn setup(knobs: &Knobs, cmdline: &str, mem_kib: u64) -> Result<Outcome, String> {
    if let Some(v) = chosen(cmdline) {
        return Ok(Outcome::Chosen(v.to_owned()));
    }
    let enabled = match fs::read_to_string(knobs.enabled) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Outcome::Off),
        Err(e) => return Err(format!("{}: {e}", knobs.enabled)),
    };
    if enabled.contains("[never]") {
        return Ok(Outcome::Off);
    }
    fs::write(knobs.enabled, "never").map_err(|e| format!("{}: {e}", knobs.enabled))?;
    let path = knobs.min_free_kbytes;
    let min_free = fs::read_to_string(path)
        .map_err(|e| format!("{path}: {e}"))?
        .trim()
        .parse::<u64>()
        .map_err(|e| format!("{path}: {e}"))?;
    let own = kernel_min_free_kbytes(mem_kib);
    if min_free <= own || sets_min_free(cmdline) {
        return Ok(Outcome::TurnedOff {
            min_free,
            raised: None,
        });
    }
    fs::write(path, own.to_string()).map_err(|e| format!("{path}: {e}"))?;
    Ok(Outcome::TurnedOff {
        min_free: own,
        raised: Some(min_free),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_own_minimum() {
        // 958 MiB of MemTotal: the kernel itself chose 3912 (it counts the memory above
        // the watermarks, a little less).
        assert_eq!(kernel_min_free_kbytes(981_448), 3962);
        assert_eq!(kernel_min_free_kbytes(0), 128);
        assert_eq!(kernel_min_free_kbytes(1 << 40), 262_144);
    }

    #[test]
    fn what_the_log_says() {
        let off = Outcome::TurnedOff {
            min_free: 3962,
            raised: Some(45056),
        };
        assert_eq!(
            off.to_string(),
            "turned off; vm.min_free_kbytes 3962 (was 45056)"
        );
        assert_eq!(
            Outcome::Chosen("always".into()).to_string(),
            "transparent_hugepage=always (the kernel command line)"
        );
    }

    /// Runs the setup on a 958 MiB machine against files standing for the kernel's
    /// settings (`enabled`, `min_free_kbytes`): its outcome, and the files' text after it.
    fn run(enabled: &str, min_free: &str, cmdline: &str) -> (Outcome, String, String) {
        let t = tempfile::tempdir().unwrap();
        let (e, m) = (t.path().join("enabled"), t.path().join("min_free_kbytes"));
        fs::write(&e, enabled).unwrap();
        fs::write(&m, min_free).unwrap();
        let (e, m) = (e.display().to_string(), m.display().to_string());
        let knobs = Knobs {
            enabled: &e,
            min_free_kbytes: &m,
        };
        let o = setup(&knobs, cmdline, 981_448).unwrap();
        (
            o,
            fs::read_to_string(&e).unwrap(),
            fs::read_to_string(&m).unwrap(),
        )
    }

    fn off(min_free: u64, raised: Option<u64>) -> Outcome {
        Outcome::TurnedOff { min_free, raised }
    }

    #[test]
    fn turned_off_and_the_memory_kept_free_given_back() {
        let always = "[always] madvise never\n";
        assert_eq!(
            run(always, "45056\n", "console=ttyS0"),
            (off(3962, Some(45056)), "never".into(), "3962".into())
        );
        // The kernel put it back itself: nothing more to write.
        assert_eq!(
            run("always [madvise] never\n", "3823\n", ""),
            (off(3823, None), "never".into(), "3823\n".into())
        );
        // The command line's own vm.min_free_kbytes stays; huge pages still go off.
        assert_eq!(
            run(always, "65536\n", "sysctl.vm.min_free_kbytes=65536"),
            (off(65536, None), "never".into(), "65536\n".into())
        );
        // transparent_hugepage= leaves both alone.
        assert_eq!(
            run(always, "45056\n", "transparent_hugepage=always"),
            (
                Outcome::Chosen("always".into()),
                always.into(),
                "45056\n".into()
            )
        );
    }

    #[test]
    fn a_kernel_without_them() {
        let t = tempfile::tempdir().unwrap();
        let missing = t.path().join("none").display().to_string();
        let k = Knobs {
            enabled: &missing,
            min_free_kbytes: &missing,
        };
        assert_eq!(setup(&k, "", 981_448).unwrap(), Outcome::Off);
        // Unreadable for another reason: said, not taken for "off".
        let dir = t.path().display().to_string();
        let k = Knobs {
            enabled: &dir,
            min_free_kbytes: &dir,
        };
        assert!(setup(&k, "", 981_448).unwrap_err().starts_with(&dir));
    }

    #[test]
    fn the_command_line_sets_min_free() {
        assert!(sets_min_free("quiet sysctl.vm.min_free_kbytes=65536"));
        assert!(sets_min_free("sysctl/vm/min_free_kbytes=65536"));
        assert!(sets_min_free("sysctl.vm/min_free_kbytes=1"));
        assert!(!sets_min_free(
            "sysctl.vm.swappiness=10 vm.min_free_kbytes=1"
        ));
    }

    #[test]
    fn the_command_line_chooses() {
        assert_eq!(
            chosen("console=ttyS0 transparent_hugepage=always quiet"),
            Some("always")
        );
        assert_eq!(
            chosen("transparent_hugepage=never transparent_hugepage=madvise"),
            Some("madvise")
        );
        assert_eq!(chosen("console=ttyS0 ros.zram=off"), None);
        assert_eq!(chosen("xtransparent_hugepage=always"), None);
    }
}
