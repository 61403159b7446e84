//! image-build: the system images of ros, built from a declarative spec
//! (`image-build/spec.yml`) out of real Debian packages and busybox.
//!
//! It owns turning the spec into `dist/`: package resolution and downloads (through apt,
//! never installing anything on the build machine), reproducible layers shared between
//! images, `docker save`-form archives (`dist/images/<name>.tar`), the read-only pre-unpacked
//! store the OS boots from (`dist/images/store`, made by the engine's own image store), the
//! boot artifacts (`dist/vmlinuz`, `dist/initrd`, `dist/images.sqfs`: the kernel package, a
//! zstd newc cpio written here, a squashfs of the store) and `dist/manifest.json`. Disk
//! images and ISOs extend it.
//!
//! It does not run anything it builds and nothing at runtime depends on it.

pub mod apt;
pub mod archive;
pub mod boot;
pub mod build;
pub mod cpio;
pub mod disk;
pub mod imagesfs;
pub mod initrd;
pub mod kernel;
pub mod kmod;
pub mod layer;
pub mod pattern;
pub mod spec;
pub mod store;
pub mod tree;

pub use build::{build, Options, Report};

/// `1234567` → `1.2 MiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_sizes() {
        assert_eq!(super::human(512), "512 B");
        assert_eq!(super::human(1536), "1.5 KiB");
        assert_eq!(super::human(3 << 20), "3.0 MiB");
    }
}
