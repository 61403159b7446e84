//! The shipped spec is valid, and the service catalog (services/catalog/*.yml) names only
//! images the spec builds, at the version the build tags them with.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use image_build::spec;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

fn images_of(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("image", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => images_of(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| images_of(v, out)),
        _ => {}
    }
}

#[test]
fn shipped_spec_is_valid() {
    let plan = spec::load(&root().join("image-build/spec.yml"), None).expect("spec.yml");
    assert_eq!(plan.version, spec::WORKSPACE_VERSION);
    let names: Vec<&str> = plan.images.iter().map(|i| i.name.as_str()).collect();
    for want in ["console", "docker", "ntp", "syslog", "udev"] {
        assert!(names.contains(&want), "spec lacks image {want}: {names:?}");
    }
    for image in &plan.images {
        assert!(
            image.entrypoint.is_some(),
            "image {} has no entrypoint",
            image.name
        );
    }
}

#[test]
fn catalog_names_images_the_spec_builds() {
    let plan = spec::load(&root().join("image-build/spec.yml"), None).expect("spec.yml");
    let tags: BTreeMap<String, String> = plan
        .images
        .iter()
        .map(|i| (i.tag.clone(), i.name.clone()))
        .collect();
    let dir = root().join("services/catalog");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("services/catalog")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    assert!(files.iter().any(|f| f.ends_with("os-config.yml")));
    let mut used = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read");
        let value: serde_json::Value =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let mut images = Vec::new();
        images_of(&value, &mut images);
        assert!(!images.is_empty(), "{} names no image", f.display());
        for image in images {
            assert!(
                tags.contains_key(&image),
                "{} names {image}, which image-build/spec.yml does not build (it builds {:?})",
                f.display(),
                tags.keys().collect::<Vec<_>>()
            );
            used.push(image);
        }
    }
    let defaults = std::fs::read_to_string(dir.join("os-config.yml")).expect("os-config");
    let value: serde_json::Value = serde_saphyr::from_str(&defaults).expect("yaml");
    let services = value["ros"]["services"].as_object().expect("ros.services");
    for name in ["udev", "syslog", "ntp", "console", "docker"] {
        let s = &services[name];
        assert_eq!(
            s["labels"]["io.ros.scope"], "system",
            "{name} lacks io.ros.scope: system"
        );
        if let Some(after) = s["labels"]["io.ros.after"].as_str() {
            for dep in after.split(',') {
                assert!(
                    services.contains_key(dep.trim()),
                    "{name} starts after {dep}, which is not a default service"
                );
            }
        }
    }
    // Preloaded images are for the user engine, not services.
    let preload = plan
        .boot
        .as_ref()
        .map(|b| b.preload.clone())
        .unwrap_or_default();
    for (tag, name) in &tags {
        assert!(
            used.contains(tag) || preload.contains(name),
            "no catalog entry runs {tag}, and boot.preload does not list {name}"
        );
    }
}
