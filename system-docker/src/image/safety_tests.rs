//! The layer and archive checks: each hostile input is refused with a clear error, and the
//! store is left exactly as it was.

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde_json::json;

use super::tests::{
    config_for, docker_save, gzip, is_root, oci_archive, oci_files, sha, tar_of, Fixture, Layer,
};
use super::*;

macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!("SKIPPED: this test needs root (mknod, chown, trusted xattrs)");
            return;
        }
    };
}

fn hex_of(d: &str) -> &str {
    &d["sha256:".len()..]
}

/// Loads `archive`, expects `check` to accept the error, and the store to be unchanged.
fn refused(f: &Fixture, archive: &[u8], check: impl Fn(&ImageError) -> bool) -> ImageError {
    let before = f.snapshot();
    let e = f
        .load("bad.tar", archive)
        .expect_err("the archive must be refused");
    assert!(check(&e), "unexpected error: {e:?}");
    assert!(!e.to_string().is_empty());
    assert_eq!(f.snapshot(), before, "the store is unchanged after {e}");
    f.assert_clean_tmp();
    e
}

/// A fixture with one image already loaded, so "unchanged" covers existing state too.
fn fixture_with_image() -> Fixture {
    let f = Fixture::new();
    let l = Layer::new().file("ok", b"ok").build();
    let cfg = config_for(&[&l], "2024-01-01T00:00:00Z");
    f.load("ok.tar", &docker_save(&[(&cfg, &[&l], &["ok:1"])]))
        .unwrap();
    f
}

fn one_layer_save(layer: &[u8]) -> Vec<u8> {
    let good = Layer::new().file("good", b"g").build();
    let cfg = config_for(&[&good, layer], "2024-01-01T00:00:00Z");
    docker_save(&[(&cfg, &[&good, layer], &["evil:latest"])])
}

#[test]
fn refuses_truncated_archives() {
    require_root!();
    let f = fixture_with_image();
    let l = Layer::new().file("big", &vec![7u8; 10_000]).build();
    let save = one_layer_save(&l);
    for cut in [save.len() / 2, save.len() - 1536, 700] {
        refused(&f, &save[..cut], |e| {
            matches!(e, ImageError::InvalidArchive(_))
        });
    }
    // A layer cut in the middle of a file.
    let short = &l[..l.len() - 4096];
    let cfg = config_for(&[&l], "2024-01-01T00:00:00Z");
    let e = refused(&f, &docker_save(&[(&cfg, &[short], &["t:1"])]), |e| {
        matches!(e, ImageError::InvalidArchive(_))
    });
    assert!(e.to_string().contains("truncated"), "{e}");
    // A truncated gzip layer.
    let gz = gzip(&l);
    let archive = oci_archive(&[(
        &cfg,
        vec![(
            gz[..gz.len() / 2].to_vec(),
            "application/vnd.oci.image.layer.v1.tar+gzip",
        )],
        json!({"org.opencontainers.image.ref.name": "t:2"}),
    )]);
    refused(&f, &archive, |e| matches!(e, ImageError::InvalidArchive(_)));
    refused(&f, b"not a tar at all, clearly", |e| {
        matches!(e, ImageError::InvalidArchive(_))
    });
    refused(&f, &tar_of(&[("hello", b"x")]), |e| {
        matches!(e, ImageError::InvalidArchive(_))
    });
}

#[test]
fn refuses_digest_mismatches() {
    require_root!();
    let f = fixture_with_image();
    let l = Layer::new().file("a", b"1").build();
    let other = Layer::new().file("a", b"2").build();
    // The config promises another layer than the archive has.
    let cfg = config_for(&[&other], "2024-01-01T00:00:00Z");
    let e = refused(&f, &docker_save(&[(&cfg, &[&l], &["m:1"])]), |e| {
        matches!(e, ImageError::DigestMismatch { .. })
    });
    assert!(e.to_string().contains(&sha(&other)), "{e}");

    // An OCI blob whose content does not match its name.
    let cfg = config_for(&[&l], "2024-01-01T00:00:00Z");
    let mut files = oci_files(&[(
        &cfg,
        vec![(gzip(&l), "application/vnd.oci.image.layer.v1.tar+gzip")],
        json!({"org.opencontainers.image.ref.name": "m:2"}),
    )]);
    let gz_name = format!("blobs/sha256/{}", hex_of(&sha(&gzip(&l))));
    for (n, d) in &mut files {
        if *n == gz_name {
            // Same uncompressed content, other compressed bytes.
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(&l).unwrap();
            *d = e.finish().unwrap();
            assert_ne!(sha(d), sha(&gzip(&l)));
        }
    }
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, d)| (n.as_str(), &d[..])).collect();
    refused(&f, &tar_of(&refs), |e| {
        matches!(e, ImageError::DigestMismatch { .. })
    });

    // A config that is not what its name says.
    let mut files = oci_files(&[(
        &cfg,
        vec![(l.clone(), "application/vnd.oci.image.layer.v1.tar")],
        json!({}),
    )]);
    let cfg_name = format!("blobs/sha256/{}", hex_of(&sha(&cfg)));
    for (n, d) in &mut files {
        if *n == cfg_name {
            d.push(b' ');
        }
    }
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, d)| (n.as_str(), &d[..])).collect();
    refused(&f, &tar_of(&refs), |e| {
        matches!(e, ImageError::DigestMismatch { .. })
    });
}

fn unsafe_path(e: &ImageError) -> bool {
    matches!(e, ImageError::UnsafePath { .. })
}

#[test]
fn refuses_path_traversal() {
    require_root!();
    let f = fixture_with_image();
    let outside = f.dir.path().join("outside");
    for name in [
        "../outside",
        "a/../../outside",
        "/outside",
        "/etc/evil-ros-test",
        "./../x",
    ] {
        let l = Layer::new()
            .file("fine", b"f")
            .raw(name, tar::EntryType::Regular, "", b"pwned")
            .build();
        let e = refused(&f, &one_layer_save(&l), unsafe_path);
        assert!(
            e.to_string().contains(name.trim_start_matches("./")) || e.to_string().contains(".."),
            "{e}"
        );
    }
    // Whiteouts of `.` or `..` would delete the directory itself or its parent.
    for name in [".wh...", ".wh..", "d/.wh...", "d/.wh.."] {
        let l = Layer::new()
            .dir("d")
            .file("d/keep", b"k")
            .raw(name, tar::EntryType::Regular, "", b"")
            .build();
        refused(&f, &one_layer_save(&l), unsafe_path);
    }
    assert!(!outside.exists());
    assert!(!Path::new("/etc/evil-ros-test").exists());
}

#[test]
fn refuses_writing_through_symlinks() {
    require_root!();
    let f = fixture_with_image();
    let victim = f.dir.path().join("victim");
    fs::create_dir(&victim).unwrap();
    let v = victim.display().to_string();
    let cases = [
        Layer::new()
            .symlink("evil", "/")
            .file("evil/etc/x", b"pwned")
            .build(),
        Layer::new()
            .symlink("evil", &v)
            .file("evil/x", b"pwned")
            .build(),
        Layer::new()
            .symlink("evil", "../../../../../../..")
            .file("evil/x", b"pwned")
            .build(),
        Layer::new()
            .dir("d")
            .symlink("d/evil", &v)
            .dir("d/evil/sub")
            .build(),
        Layer::new()
            .symlink("evil", &v)
            .symlink("evil/x", "/")
            .build(),
        Layer::new()
            .symlink("evil", &v)
            .file("evil/.wh.x", b"")
            .build(),
        Layer::new()
            .symlink("evil", &v)
            .file("evil/.wh..wh..opq", b"")
            .build(),
    ];
    for l in cases {
        refused(&f, &one_layer_save(&l), unsafe_path);
    }
    assert_eq!(
        fs::read_dir(&victim).unwrap().count(),
        0,
        "nothing written through a symlink"
    );
    assert!(xattr::get(&victim, "trusted.overlay.opaque")
        .unwrap()
        .is_none());
}

#[test]
fn refuses_hard_links_out_of_the_layer() {
    require_root!();
    let f = fixture_with_image();
    let secret = f.dir.path().join("secret");
    fs::write(&secret, b"s").unwrap();
    let cases = [
        Layer::new()
            .raw(
                "h",
                tar::EntryType::Link,
                "../../../../../../etc/passwd",
                b"",
            )
            .build(),
        Layer::new()
            .raw("h", tar::EntryType::Link, "/etc/passwd", b"")
            .build(),
        Layer::new()
            .raw(
                "h",
                tar::EntryType::Link,
                &secret.display().to_string(),
                b"",
            )
            .build(),
        Layer::new()
            .symlink("l", "/etc")
            .raw("h", tar::EntryType::Link, "l/passwd", b"")
            .build(),
    ];
    for l in cases {
        refused(&f, &one_layer_save(&l), unsafe_path);
    }
    // A link to something the layer does not have is an invalid archive.
    let l = Layer::new()
        .raw("h", tar::EntryType::Link, "missing", b"")
        .build();
    refused(&f, &one_layer_save(&l), |e| {
        matches!(e, ImageError::InvalidArchive(_))
    });
    assert_eq!(fs::metadata(&secret).unwrap().nlink(), 1);

    // A hard link to a symlink links the symlink itself, never what it points to.
    let l = Layer::new()
        .symlink("l", "/etc/passwd")
        .hardlink("h", "l")
        .build();
    let cfg = config_for(&[&l], "2024-01-01T00:00:00Z");
    f.load("hl.tar", &docker_save(&[(&cfg, &[&l], &["hl:1"])]))
        .unwrap();
    let p = f.store.layer_paths(&f.store.get("hl:1").unwrap()).unwrap();
    let h = fs::symlink_metadata(p[0].join("h")).unwrap();
    assert!(h.file_type().is_symlink());
    assert_ne!(h.ino(), fs::metadata("/etc/passwd").unwrap().ino());
}

#[test]
fn replacing_entries_never_follows_symlinks() {
    require_root!();
    let f = Fixture::new();
    let victim = f.dir.path().join("victim");
    fs::write(&victim, b"keep").unwrap();
    // A later entry replaces a symlink; it must replace the link, not write to its target.
    let l = Layer::new()
        .symlink("x", &victim.display().to_string())
        .file("x", b"new")
        .dir("d")
        .file("d/f", b"1")
        .file("d", b"file now")
        .build();
    let cfg = config_for(&[&l], "2024-01-01T00:00:00Z");
    f.load("r.tar", &docker_save(&[(&cfg, &[&l], &["r:1"])]))
        .unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"keep");
    let p = f.store.layer_paths(&f.store.get("r:1").unwrap()).unwrap();
    assert_eq!(fs::read(p[0].join("x")).unwrap(), b"new");
    assert_eq!(fs::read(p[0].join("d")).unwrap(), b"file now");
}
