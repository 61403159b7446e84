//! Golden tests over `test_data/`:
//! - `valid/NAME.yml` → `valid/NAME.json` (normalized JSON) and `valid/NAME.warnings` (one
//!   warning per line, empty when none);
//! - `invalid/NAME.yml` → `invalid/NAME.err` (the located error, one line).
//!
//! `BLESS=1 cargo test -p ros-cloud-config --test golden` rewrites the expected files; review
//! the diff before committing it.

use std::fs;
use std::path::{Path, PathBuf};

use ros_cloud_config::{parse_document, to_json};

fn data(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test_data")
        .join(dir);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no test data in {}", dir.display());
    files
}

fn bless() -> bool {
    std::env::var_os("BLESS").is_some()
}

/// Compares with the golden file, or writes it when blessing. Returns a failure description.
fn check(expected: &Path, actual: &str) -> Option<String> {
    if bless() {
        fs::write(expected, actual).unwrap();
        return None;
    }
    let want = fs::read_to_string(expected)
        .unwrap_or_else(|e| panic!("{}: {e} (run with BLESS=1 to create)", expected.display()));
    (want != actual).then(|| {
        format!(
            "{}:\n--- expected\n{want}\n--- actual\n{actual}",
            expected.display()
        )
    })
}

#[test]
fn valid_configs_normalize() {
    let mut failures = Vec::new();
    for yml in data("valid") {
        let name = yml.file_name().unwrap().to_string_lossy().into_owned();
        let text = fs::read_to_string(&yml).unwrap();
        let v = match parse_document(&name, &text) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{name}: unexpected error: {e}"));
                continue;
            }
        };
        let json = serde_json::to_string_pretty(&to_json(&v.config)).unwrap() + "\n";
        failures.extend(check(&yml.with_extension("json"), &json));
        let warnings: String = v.warnings.iter().map(|w| format!("{w}\n")).collect();
        failures.extend(check(&yml.with_extension("warnings"), &warnings));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The normalized JSON of a config is itself a valid config with the same meaning: layers
/// are merged as JSON and `ros cloud-init apply` reads the merged document back.
#[test]
fn normalized_configs_read_back_the_same() {
    let mut failures = Vec::new();
    for yml in data("valid") {
        let name = yml.file_name().unwrap().to_string_lossy().into_owned();
        let text = fs::read_to_string(&yml).unwrap();
        let Ok(v) = parse_document(&name, &text) else {
            continue;
        };
        let json = to_json(&v.config);
        let doc = ros_cloud_config::edit::to_document(&json);
        match parse_document(&name, &doc) {
            Ok(back) if to_json(&back.config) == json => {}
            Ok(back) => failures.push(format!(
                "{name}: read back differently:\n{doc}\n{:#}",
                to_json(&back.config)
            )),
            Err(e) => failures.push(format!("{name}: does not read back: {e}\n{doc}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn invalid_configs_fail_located() {
    let mut failures = Vec::new();
    for yml in data("invalid") {
        let text = fs::read_to_string(&yml).unwrap();
        match parse_document("user-data", &text) {
            Ok(v) => failures.push(format!("{}: accepted: {:?}", yml.display(), v.config)),
            Err(e) => {
                assert!(
                    e.line > 0 && e.column > 0,
                    "{}: unlocated: {e}",
                    yml.display()
                );
                failures.extend(check(&yml.with_extension("err"), &format!("{e}\n")));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
