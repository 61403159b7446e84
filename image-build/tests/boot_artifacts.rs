//! The boot artifacts of the last build (`dist/`), when there are any: the manifest's
//! sha256s match the files and the initrd holds what boot needs. Skipped, saying so, when
//! `ros-image-build` has not made them yet.

use std::path::{Path, PathBuf};

use image_build::cpio::Kind;

fn dist() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .join("dist")
}

#[test]
fn built_initrd_has_what_boot_needs() {
    let dist = dist();
    let manifest: serde_json::Value = match std::fs::read(dist.join("manifest.json")) {
        Ok(m) => serde_json::from_slice(&m).expect("manifest.json"),
        Err(_) => {
            eprintln!("skipped: no dist/manifest.json (run ros-image-build)");
            return;
        }
    };
    let artifacts = &manifest["artifacts"];
    if artifacts["initrd"].is_null() {
        eprintln!("skipped: dist/manifest.json names no initrd (run ros-image-build)");
        return;
    }
    for kind in ["kernel", "initrd", "images_fs"] {
        let a = &artifacts[kind];
        if a.is_null() {
            continue;
        }
        let file = dist.join(a["file"].as_str().expect("file"));
        let (size, sha) = image_build::archive::file_digest(&file).expect("digest");
        assert_eq!(a["size"].as_u64(), Some(size), "{kind}");
        assert_eq!(a["sha256"].as_str(), Some(sha.as_str()), "{kind}");
    }

    let entries = image_build::initrd::read_initrd(&dist.join("initrd")).expect("initrd");
    let get = |p: &str| entries.iter().find(|e| e.path == p);
    assert_eq!(
        get("init").map(|e| &e.kind),
        Some(&Kind::Symlink("usr/bin/ros".into()))
    );
    assert_eq!(
        get("sbin/init").map(|e| &e.kind),
        Some(&Kind::Symlink("../usr/bin/ros".into()))
    );
    for p in [
        "usr/bin/ros",
        "usr/bin/system-docker-shim",
        "bin/busybox",
        "sbin/mke2fs",
    ] {
        assert!(
            matches!(get(p).map(|e| &e.kind), Some(Kind::File(_))),
            "{p} is not a file in the initrd"
        );
    }
    let release = match get("usr/share/ros/kernel-release").map(|e| &e.kind) {
        Some(Kind::File(d)) => String::from_utf8_lossy(d).trim().to_string(),
        _ => panic!("no kernel-release"),
    };
    let modules = format!("lib/modules/{release}/");
    assert!(entries
        .iter()
        .any(|e| e.path.starts_with(&modules) && e.path.contains("/virtio_blk.ko")));
    assert!(get(&format!("{modules}modules.dep")).is_some());
}
