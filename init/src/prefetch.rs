//! Reading ahead: the files `/usr/share/ros/prefetch` names (paths in the system images,
//! written by image-build from `boot.prefetch`: the user engine's programs) are read into
//! the page cache by a background thread, from the moment the images are mounted, while
//! init and the first services start. The engine, started last, then finds its ~120 MB of
//! programs in memory instead of paging them in from the compressed images beside
//! everything else starting. The thread runs at the normal CPU priority: at the lowest,
//! under TCG, the read took three times as long and ended after the engine had started.
//!
//! Only when memory allows: the files must fit four times over in `MemAvailable`, or they
//! would push out what the boot itself needs (on a small machine they are paged in on
//! demand, as before).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The list image-build writes (one path per line, relative to the images' mount).
const PREFETCH: &str = "/usr/share/ros/prefetch";
/// The files must fit this many times in the memory available.
const HEADROOM: u64 = 4;

/// The files of `list` (a prefetch list's text) under `images`, with their sizes; missing
/// ones are left out.
pub fn files(list: &str, images: &Path) -> Vec<(PathBuf, u64)> {
    list.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let p = images.join(l.trim_start_matches('/'));
            let size = fs::metadata(&p).ok().filter(|m| m.is_file())?.len();
            Some((p, size))
        })
        .collect()
}

/// Whether `total` bytes may be read ahead with `available` bytes of memory available.
pub fn fits(total: u64, available: u64) -> bool {
    total.saturating_mul(HEADROOM) <= available
}

/// Starts reading ahead the listed files of the images mounted at `images`.
pub fn start(images: &Path) {
    let Ok(list) = fs::read_to_string(PREFETCH) else {
        return;
    };
    let files = files(&list, images);
    if files.is_empty() {
        return;
    }
    let total: u64 = files.iter().map(|(_, s)| s).sum();
    let available = crate::boot::meminfo_kib("MemAvailable").unwrap_or(0) << 10;
    if !fits(total, available) {
        log::info!(
            "prefetch: skipped: {} MiB of programs against {} MiB of memory available",
            total >> 20,
            available >> 20
        );
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("prefetch".into())
        .spawn(move || {
            // PID 1's signals are for its signalfd, never for this thread (the mask is
            // inherited blocked already; this keeps it so whatever the caller did).
            let _ = nix::sys::signal::SigSet::all().thread_block();
            let started = Instant::now();
            let mut buf = vec![0u8; 1 << 20];
            let mut read = 0u64;
            for (path, _) in &files {
                let Ok(mut f) = fs::File::open(path) else {
                    continue;
                };
                while let Ok(n) = f.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    read += n as u64;
                }
            }
            log::info!(
                "prefetch: read {} MiB of {} file(s) in {:.1?}",
                read >> 20,
                files.len(),
                started.elapsed()
            );
        });
    if let Err(e) = spawned {
        log::warn!("prefetch: cannot start its thread: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_names_files_of_the_images() {
        let dir = tempfile::tempdir().unwrap();
        let layer = dir.path().join("layers/sha256/ab/usr/sbin");
        fs::create_dir_all(&layer).unwrap();
        fs::write(layer.join("dockerd"), vec![0u8; 3000]).unwrap();
        let list = "# comment\nlayers/sha256/ab/usr/sbin/dockerd\n\nlayers/sha256/ab/missing\nlayers/sha256/ab/usr\n";
        let got = files(list, dir.path());
        assert_eq!(got, vec![(layer.join("dockerd"), 3000)]);
    }

    #[test]
    fn read_ahead_only_with_room_to_spare() {
        assert!(fits(120 << 20, 900 << 20));
        assert!(!fits(120 << 20, 400 << 20));
        assert!(!fits(1, 0));
        assert!(fits(0, 0));
    }
}
