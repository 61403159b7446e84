//! Transparent huge pages: off, unless the kernel command line says otherwise.
//!
//! Debian's kernel turns them on for every process (`always`), and with them on,
//! khugepaged raises `vm.min_free_kbytes` so that 2 MiB pages can be assembled: to 44 MiB
//! on a 1 GiB machine (5% of the memory on small ones) against the kernel's own 3.9 MiB.
//! Memory kept free is memory neither the page cache nor a workload can have. Measured at
//! `-m 1024` once the engine answered: MemAvailable 698 MiB with them, 837 without; and the
//! engine's Go heaps took 7 MiB more in huge pages.
//!
//! Turned off, this kernel puts `vm.min_free_kbytes` back itself; where it is still above
//! the kernel's own value after that, PID 1 writes that value. `transparent_hugepage=always`
//! (or `madvise`) on the kernel command line is the way back: then nothing here changes.
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

/// Turns transparent huge pages off unless `cmdline` chose, and puts `vm.min_free_kbytes`
/// back to the kernel's own value for `mem_kib` of memory when khugepaged raised it.
pub fn setup(cmdline: &str, mem_kib: u64) -> Result<Outcome, String> {
    if let Some(v) = chosen(cmdline) {
        return Ok(Outcome::Chosen(v.to_owned()));
    }
    let Ok(now) = fs::read_to_string(ENABLED) else {
        return Ok(Outcome::Off);
    };
    if now.contains("[never]") {
        return Ok(Outcome::Off);
    }
    fs::write(ENABLED, "never").map_err(|e| format!("{ENABLED}: {e}"))?;
    let own = kernel_min_free_kbytes(mem_kib);
    let now = fs::read_to_string(MIN_FREE_KBYTES)
        .map_err(|e| format!("{MIN_FREE_KBYTES}: {e}"))?
        .trim()
        .parse::<u64>()
        .map_err(|e| format!("{MIN_FREE_KBYTES}: {e}"))?;
    if now <= own {
        return Ok(Outcome::TurnedOff {
            min_free: now,
            raised: None,
        });
    }
    fs::write(MIN_FREE_KBYTES, own.to_string()).map_err(|e| format!("{MIN_FREE_KBYTES}: {e}"))?;
    Ok(Outcome::TurnedOff {
        min_free: own,
        raised: Some(now),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_own_minimum() {
        // 958 MiB of MemTotal: the kernel itself chose 3912 (a little less memory counted).
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
