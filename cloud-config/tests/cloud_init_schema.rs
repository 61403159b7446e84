//! Our verdict (accept/refuse) on every `test_data/{valid,invalid}/*.yml` against Debian's
//! `cloud-init schema -c FILE`, except the intended differences listed, with reasons, in
//! `test_data/cloud_init_differences.txt`.
//!
//! Without `cloud-init` on PATH the test says it is skipped; with `ROS_REQUIRE_CLOUD_INIT=1`
//! (CI) a missing `cloud-init` is a failure.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

#[test]
fn agrees_with_cloud_init_schema() {
    let available = Command::new("cloud-init")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        assert!(
            std::env::var_os("ROS_REQUIRE_CLOUD_INIT").is_none(),
            "cloud-init is required (ROS_REQUIRE_CLOUD_INIT) but not installed"
        );
        eprintln!("SKIPPED: cloud-init not installed (apt-get install cloud-init)");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data");
    let listed: BTreeMap<String, String> =
        fs::read_to_string(root.join("cloud_init_differences.txt"))
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| {
                let (f, why) = l.split_once('\t').unwrap_or((l, ""));
                assert!(!why.trim().is_empty(), "difference without a reason: {l}");
                (f.to_owned(), why.to_owned())
            })
            .collect();
    let mut failures = Vec::new();
    for dir in ["valid", "invalid"] {
        let mut files: Vec<_> = fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yml"))
            .collect();
        files.sort();
        for path in files {
            let rel = format!("{dir}/{}", path.file_name().unwrap().to_string_lossy());
            let text = fs::read_to_string(&path).unwrap();
            let ours = ros_cloud_config::parse_document(&rel, &text).is_ok();
            let out = Command::new("cloud-init")
                .args(["schema", "-c"])
                .arg(&path)
                .output()
                .unwrap();
            let theirs = out.status.success();
            let differs = ours != theirs;
            match (differs, listed.contains_key(&rel)) {
                (true, false) => failures.push(format!(
                    "{rel}: we {} it, cloud-init {} it, and this is not a listed difference:\n{}{}",
                    if ours { "accept" } else { "refuse" },
                    if theirs { "accepts" } else { "refuses" },
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr),
                )),
                (false, true) => {
                    failures.push(format!("{rel}: listed as a difference but both agree"))
                }
                _ => {}
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
