//! Reproducible artifacts: `ros-image-build` run again from the same package cache into
//! another output folder makes the same bytes as `make image` made in `dist/` — the kernel,
//! the initrd, the system images' squashfs, the raw and qcow2 disk images — by sha256. The
//! ISO's are printed (xorriso stamps it with the time of the build).
//!
//! Needs root (the read-only store) and a `dist/` from `make image`; skips loudly otherwise.
//! Warm: about a minute.

use std::process::{Command, Stdio};
use std::time::Duration;

use ros_tests::{require_root, run, skip, target_dir, tempdir, workspace_dir, Checks};

#[test]
fn a_second_build_makes_the_same_bytes() {
    const T: &str = "a_second_build_makes_the_same_bytes";
    if !require_root(T) {
        return;
    }
    let dist = workspace_dir().join("dist");
    let Ok(first) = std::fs::read(dist.join("manifest.json")) else {
        skip(
            T,
            "no dist/manifest.json: `make image` first (`make test` does)",
        );
        return;
    };
    let first: serde_json::Value = serde_json::from_slice(&first).expect("manifest.json");
    // The build `make image` used (the `image` profile): the same tool and binaries.
    let tool = target_dir().join("image/ros-image-build");
    if !tool.is_file() {
        skip(
            T,
            &format!("{} is missing: `make image` first", tool.display()),
        );
        return;
    }
    let mut c = Checks::new(T);
    let out = tempdir();
    let build = run(
        Command::new(&tool)
            .arg("--out")
            .arg(out.path())
            .arg("--cache")
            .arg(workspace_dir().join(".cache/image-build"))
            .env_remove("VERSION")
            .env_remove("SOURCE_DATE_EPOCH")
            .stdout(Stdio::null()),
        Duration::from_secs(900),
    );
    if !c.ok(&build, "ros-image-build into a second folder") {
        return c.finish();
    }
    let second: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.path().join("manifest.json")).expect("second manifest"),
    )
    .expect("second manifest.json");
    eprintln!(
        "iso: dist/ {} second {} (not compared)",
        first["artifacts"]["iso"]["sha256"], second["artifacts"]["iso"]["sha256"]
    );
    for kind in ["kernel", "initrd", "images_fs", "raw", "qcow2"] {
        let a = &first["artifacts"][kind]["sha256"];
        let b = &second["artifacts"][kind]["sha256"];
        c.check(
            a.is_string() && a == b,
            &format!("{kind}: the same sha256 from both builds"),
            format!("dist/: {a}, second: {b}"),
        );
    }
    c.finish();
}
