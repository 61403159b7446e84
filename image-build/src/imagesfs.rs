//! `images.sqfs`: the read-only image store (`dist/images/store`) as a squashfs, which init
//! mounts read-only and hands to system-docker as `--image-store` — so the system images
//! stay in the page cache, not in RAM for the host's life. The kernel modules beyond the
//! initrd's are in it too (`modules/<release>/`), for the same reason.
//!
//! Made by `mksquashfs` (squashfs-tools), which keeps owners, modes, device nodes and
//! xattrs. Reproducible: every time and the filesystem's own time set to the build epoch;
//! squashfs-tools ≥ 4.5 orders its output the same way however many threads compress it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::store::Outcome;

/// The compressor: lz4 in its high-compression mode (the kernel has CONFIG_SQUASHFS_LZ4).
/// Every program a service runs is paged in from here, at boot and again whenever memory
/// is short; under TCG, lz4 made the first boot ~4 s faster than zstd (median of three:
/// 35.8 s against 40.1 s to ready) for a third more bytes on disk (104 MiB against 78 MiB).
pub const COMPRESSION: &str = "lz4";

#[derive(Debug, thiserror::Error)]
pub enum ImagesFsError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("cannot run mksquashfs (install squashfs-tools): {0}")]
    Spawn(io::Error),
    #[error("mksquashfs failed ({status}): {stderr}")]
    Failed { status: String, stderr: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ImagesFsError + '_ {
    move |source| ImagesFsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The mksquashfs arguments after the source and destination.
pub fn args(epoch: u64) -> Vec<String> {
    [
        "-noappend",
        "-comp",
        COMPRESSION,
        "-Xhc",
        "-mkfs-time",
        &epoch.to_string(),
        "-all-time",
        &epoch.to_string(),
        "-no-progress",
        "-quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The sources of the squashfs: every entry of `store` (sorted), and `extra` beside them;
/// given several sources, mksquashfs puts each in the root under its own name.
fn sources(store: &Path, extra: Option<&Path>) -> Result<Vec<PathBuf>, ImagesFsError> {
    let mut out: Vec<PathBuf> = fs::read_dir(store)
        .map_err(io_err(store))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io_err(store))?;
    out.sort();
    out.extend(extra.map(Path::to_path_buf));
    Ok(out)
}

/// Makes `dest` the squashfs of `store` (its contents at the root) and of `extra` (a
/// directory, under its own name), unless the stamp beside it (`<dest>.stamp`) shows it was
/// made from the same inputs (`stamp`: what the store's own stamp and `extra`'s digest say)
/// with the same arguments.
pub fn build(
    store: &Path,
    stamp: &str,
    extra: Option<&Path>,
    dest: &Path,
    epoch: u64,
) -> Result<Outcome, ImagesFsError> {
    let mut args = args(epoch);
    // Several sources give the root mksquashfs' own defaults; these are the store's.
    args.extend(["-root-mode", "0755", "-root-uid", "0", "-root-gid", "0"].map(String::from));
    let stamp = format!("{}\n{stamp}", args.join(" "));
    let stamp_path = dest.with_extension("sqfs.stamp");
    if dest.is_file() && fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp) {
        return Ok(Outcome::UpToDate);
    }
    let _ = fs::remove_file(&stamp_path);
    let tmp = dest.with_extension(format!("sqfs.tmp-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    log::info!(
        "images.sqfs: mksquashfs {} ({COMPRESSION})",
        store.display()
    );
    let out = Command::new("mksquashfs")
        .args(sources(store, extra)?)
        .arg(&tmp)
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .map_err(ImagesFsError::Spawn)?;
    if !out.status.success() {
        let _ = fs::remove_file(&tmp);
        return Err(ImagesFsError::Failed {
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    fs::rename(&tmp, dest).map_err(io_err(dest))?;
    fs::write(&stamp_path, stamp).map_err(io_err(&stamp_path))?;
    Ok(Outcome::Built)
}

#[cfg(test)]
mod tests {
    #[test]
    fn arguments_pin_every_time() {
        let a = super::args(1_704_067_200).join(" ");
        assert!(
            a.contains("-mkfs-time 1704067200 -all-time 1704067200"),
            "{a}"
        );
        assert!(a.contains("-noappend"));
    }
}
