//! Store, load and extraction tests. They run as root (device nodes, ownership, trusted
//! xattrs) and skip with a visible message when not.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::*;

pub(super) fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

fn hex_of(d: &str) -> &str {
    &d["sha256:".len()..]
}

pub(super) fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!("SKIPPED: this test needs root (mknod, chown, trusted xattrs)");
            return;
        }
    };
}

/// Builds layer tars, including malformed ones.
pub(super) struct Layer {
    b: tar::Builder<Vec<u8>>,
}

impl Layer {
    pub fn new() -> Layer {
        Layer {
            b: tar::Builder::new(Vec::new()),
        }
    }

    fn header(kind: tar::EntryType, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(0);
        h
    }

    /// An entry whose name (and link name) are written byte for byte, bypassing the
    /// builder's own checks.
    pub fn raw(mut self, name: &str, kind: tar::EntryType, link: &str, data: &[u8]) -> Layer {
        let mut h = Self::header(kind, 0o644);
        h.set_size(data.len() as u64);
        {
            let old = h.as_old_mut();
            old.name = [0; 100];
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname = [0; 100];
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    pub fn file(self, name: &str, data: &[u8]) -> Layer {
        self.file_with(name, data, 0o644, 0, 0, &[])
    }

    pub fn file_with(
        mut self,
        name: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
        xattrs: &[(&str, &[u8])],
    ) -> Layer {
        if !xattrs.is_empty() {
            let mut pax = Vec::new();
            for (k, v) in xattrs {
                let body_len = format!(" SCHILY.xattr.{k}=").len() + v.len() + 1;
                let mut len = body_len + 1;
                while format!("{len}").len() + body_len != len {
                    len += 1;
                }
                pax.extend_from_slice(format!("{len} SCHILY.xattr.{k}=").as_bytes());
                pax.extend_from_slice(v);
                pax.push(b'\n');
            }
            let mut h = Self::header(tar::EntryType::XHeader, 0o644);
            h.set_path("PaxHeader").unwrap();
            h.set_size(pax.len() as u64);
            h.set_cksum();
            self.b.append(&h, &pax[..]).unwrap();
        }
        let mut h = Self::header(tar::EntryType::Regular, mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_size(data.len() as u64);
        self.b.append_data(&mut h, name, data).unwrap();
        self
    }

    pub fn dir(self, name: &str) -> Layer {
        self.dir_with(name, 0o755, 0)
    }

    pub fn dir_with(mut self, name: &str, mode: u32, uid: u64) -> Layer {
        let mut h = Self::header(tar::EntryType::Directory, mode);
        h.set_uid(uid);
        self.b.append_data(&mut h, name, &[][..]).unwrap();
        self
    }

    pub fn symlink(mut self, name: &str, target: &str) -> Layer {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777);
        self.b.append_link(&mut h, name, target).unwrap();
        self
    }

    pub fn hardlink(mut self, name: &str, target: &str) -> Layer {
        let mut h = Self::header(tar::EntryType::Link, 0o644);
        self.b.append_link(&mut h, name, target).unwrap();
        self
    }

    pub fn device(mut self, name: &str, kind: tar::EntryType, major: u32, minor: u32) -> Layer {
        let mut h = Self::header(kind, 0o666);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.b.append_data(&mut h, name, &[][..]).unwrap();
        self
    }

    pub fn build(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

pub(super) fn config_for(layers: &[&[u8]], created: &str) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| sha(l)).collect();
    serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

pub(super) fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// A legacy `docker save` archive: `<id>/layer.tar`, `<config hex>.json`, `manifest.json`.
/// (config, layers, tags) of one image of a `docker save` archive.
pub(super) type SaveImage<'a> = (&'a [u8], &'a [&'a [u8]], &'a [&'a str]);
/// (config, [(blob, mediaType)], index annotations) of one image of an OCI layout.
pub(super) type OciImage<'a> = (&'a [u8], Vec<(Vec<u8>, &'a str)>, Value);

pub(super) fn docker_save(images: &[SaveImage<'_>]) -> Vec<u8> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut manifest = Vec::new();
    for (config, layers, tags) in images {
        let cfg_name = format!("{}.json", hex_of(&sha(config)));
        let mut layer_names = Vec::new();
        for l in layers.iter() {
            let name = format!("{}/layer.tar", hex_of(&sha(l)));
            files.push((name.clone(), l.to_vec()));
            layer_names.push(name);
        }
        files.push((cfg_name.clone(), config.to_vec()));
        manifest.push(json!({"Config": cfg_name, "RepoTags": tags, "Layers": layer_names}));
    }
    files.push((
        "manifest.json".into(),
        serde_json::to_vec(&manifest).unwrap(),
    ));
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, d)| (n.as_str(), &d[..])).collect();
    tar_of(&refs)
}

pub(super) fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

pub(super) fn zstd(b: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(b, ruzstd::encoding::CompressionLevel::Fastest)
}

/// OCI layout files: (config, [(blob, mediaType)], index annotations) per image.
pub(super) fn oci_files(images: &[OciImage<'_>]) -> Vec<(String, Vec<u8>)> {
    let mut files = vec![(
        "oci-layout".to_string(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    )];
    let mut descs = Vec::new();
    for (config, layers, annotations) in images {
        let mut ldescs = Vec::new();
        for (blob, mt) in layers {
            files.push((format!("blobs/sha256/{}", hex_of(&sha(blob))), blob.clone()));
            ldescs.push(json!({"mediaType": mt, "digest": sha(blob), "size": blob.len()}));
        }
        files.push((
            format!("blobs/sha256/{}", hex_of(&sha(config))),
            config.to_vec(),
        ));
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": sha(config), "size": config.len()},
            "layers": ldescs,
        }))
        .unwrap();
        files.push((
            format!("blobs/sha256/{}", hex_of(&sha(&manifest))),
            manifest.clone(),
        ));
        descs.push(json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha(&manifest), "size": manifest.len(),
            "annotations": annotations,
        }));
    }
    files.push((
        "index.json".into(),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": descs})).unwrap(),
    ));
    files
}

pub(super) fn oci_archive(images: &[OciImage<'_>]) -> Vec<u8> {
    let files = oci_files(images);
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, d)| (n.as_str(), &d[..])).collect();
    tar_of(&refs)
}

pub(super) struct Fixture {
    pub dir: tempfile::TempDir,
    pub store: ImageStore,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(&dir.path().join("store"), &[]).unwrap();
        Fixture { dir, store }
    }

    pub fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        fs::write(&p, data).unwrap();
        p
    }

    pub fn load(&self, name: &str, data: &[u8]) -> Result<Vec<String>, ImageError> {
        let p = self.write(name, data);
        self.store.load(&p)
    }

    /// Every path in the store, with the content of regular files.
    pub fn snapshot(&self) -> BTreeSet<(String, Vec<u8>)> {
        fn walk(root: &Path, p: &Path, out: &mut BTreeSet<(String, Vec<u8>)>) {
            for e in fs::read_dir(p).unwrap() {
                let e = e.unwrap();
                let path = e.path();
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                let ft = e.file_type().unwrap();
                let content = if ft.is_file() {
                    fs::read(&path).unwrap()
                } else {
                    Vec::new()
                };
                out.insert((rel, content));
                if ft.is_dir() {
                    walk(root, &path, out);
                }
            }
        }
        let root = self.store.root().to_path_buf();
        let mut out = BTreeSet::new();
        walk(&root, &root, &mut out);
        out
    }

    pub fn assert_clean_tmp(&self) {
        let n = fs::read_dir(self.store.root().join("tmp")).unwrap().count();
        assert_eq!(n, 0, "tmp/ is empty after the operation");
    }
}

pub(super) fn busybox_like() -> Vec<u8> {
    Layer::new()
        .dir("bin")
        .file_with(
            "bin/busybox",
            b"#!busybox",
            0o4755,
            0,
            0,
            &[("user.test", b"v1")],
        )
        .symlink("bin/sh", "/bin/busybox")
        .hardlink("bin/ls", "bin/busybox")
        .dir_with("home", 0o700, 1100)
        .file_with("home/f", b"x", 0o600, 1100, 1101, &[])
        .device("dev/null", tar::EntryType::Char, 1, 3)
        .device("dev/loop0", tar::EntryType::Block, 7, 0)
        .device("run/fifo", tar::EntryType::Fifo, 0, 0)
        .build()
}

#[test]
fn load_legacy_docker_save_and_inspect() {
    require_root!();
    let f = Fixture::new();
    let l1 = busybox_like();
    let l2 = Layer::new()
        .file(".wh.gone", b"")
        .dir("opq")
        .file("opq/.wh..wh..opq", b"")
        .file("opq/new", b"new")
        .file("bin/.wh.ls", b"")
        .build();
    let cfg = config_for(&[&l1, &l2], "2024-01-02T03:04:05Z");
    let out = f
        .load(
            "save.tar",
            &docker_save(&[(
                &cfg,
                &[&l1, &l2],
                &["busybox:latest", "localhost:5000/bb:1"],
            )]),
        )
        .unwrap();
    assert_eq!(
        out,
        vec![
            "Loaded image: busybox:latest",
            "Loaded image: localhost:5000/bb:1"
        ]
    );
    f.assert_clean_tmp();

    let id = sha(&cfg);
    for name in [
        "busybox",
        "busybox:latest",
        "docker.io/library/busybox:latest",
        "localhost:5000/bb:1",
        &id,
        hex_of(&id),
        &hex_of(&id)[..8],
        &hex_of(&id)[..1],
    ] {
        assert_eq!(f.store.get(name).unwrap().id, id, "lookup by {name}");
    }
    assert!(matches!(
        f.store.get("busybox:2"),
        Err(ImageError::NotFound(_))
    ));
    assert!(matches!(
        f.store.get("nothing"),
        Err(ImageError::NotFound(_))
    ));

    let img = f.store.get("busybox").unwrap();
    assert_eq!(img.repo_tags, vec!["busybox:latest", "localhost:5000/bb:1"]);
    assert_eq!(img.created.as_deref(), Some("2024-01-02T03:04:05Z"));
    assert_eq!(img.diff_ids, vec![sha(&l1), sha(&l2)]);
    assert_eq!(img.config["config"]["Cmd"][0], "/bin/sh");
    assert!(!img.readonly);
    assert_eq!(img.size, 9 + 1 + 3);
    assert_eq!(f.store.list().unwrap(), vec![img.clone()]);

    let paths = f.store.layer_paths(&img).unwrap();
    assert_eq!(paths.len(), 2);
    assert!(
        paths[0].ends_with(hex_of(&sha(&l2))),
        "top-most layer first"
    );
    let (top, base) = (&paths[1 - 1], &paths[1]);

    // Ownership, modes, times, xattrs.
    let m = fs::symlink_metadata(base.join("bin/busybox")).unwrap();
    assert_eq!(
        m.permissions().mode() & 0o7777,
        0o4755,
        "set-uid survives chown"
    );
    assert_eq!(m.mtime(), 1_600_000_000);
    assert_eq!(
        xattr::get(base.join("bin/busybox"), "user.test")
            .unwrap()
            .as_deref(),
        Some(&b"v1"[..])
    );
    assert_eq!(
        fs::read_link(base.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    assert_eq!(
        fs::symlink_metadata(base.join("bin/sh")).unwrap().mtime(),
        1_600_000_000
    );
    assert_eq!(
        fs::metadata(base.join("bin/ls")).unwrap().ino(),
        m.ino(),
        "hard link"
    );
    let home = fs::metadata(base.join("home")).unwrap();
    assert_eq!(
        (home.uid(), home.mode() & 0o7777, home.mtime()),
        (1100, 0o700, 1_600_000_000)
    );
    let hf = fs::metadata(base.join("home/f")).unwrap();
    assert_eq!((hf.uid(), hf.gid()), (1100, 1101));
    let null = fs::metadata(base.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert!(fs::metadata(base.join("dev/loop0"))
        .unwrap()
        .file_type()
        .is_block_device());
    assert!(fs::metadata(base.join("run/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(
        fs::metadata(base.join("dev")).unwrap().permissions().mode() & 0o7777,
        0o755
    );

    // Whiteouts and opaque directories in overlayfs form.
    for wh in ["gone", "bin/ls"] {
        let m = fs::symlink_metadata(top.join(wh)).unwrap();
        assert!(m.file_type().is_char_device(), "{wh} is a whiteout");
        assert_eq!(m.rdev(), 0);
    }
    assert!(!top.join(".wh.gone").exists());
    assert_eq!(
        xattr::get(top.join("opq"), "trusted.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
    assert!(!top.join("opq/.wh..wh..opq").exists());
    assert_eq!(fs::read(top.join("opq/new")).unwrap(), b"new");

    // The store survives a reopen.
    let again = ImageStore::open(f.store.root(), &[]).unwrap();
    assert_eq!(again.get("busybox").unwrap(), img);
}

#[test]
fn load_docker25_save_with_oci_blobs() {
    require_root!();
    let f = Fixture::new();
    let l = Layer::new().file("etc/hostname", b"x\n").build();
    let cfg = config_for(&[&l], "2024-01-01T00:00:00Z");
    let blob = |b: &[u8]| format!("blobs/sha256/{}", hex_of(&sha(b)));
    let manifest = json!([{"Config": blob(&cfg), "RepoTags": ["app:1"], "Layers": [blob(&l)]}]);
    let mut files = oci_files(&[(
        &cfg,
        vec![(l.clone(), "application/vnd.oci.image.layer.v1.tar")],
        json!({}),
    )]);
    files.push((
        "manifest.json".into(),
        serde_json::to_vec(&manifest).unwrap(),
    ));
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, d)| (n.as_str(), &d[..])).collect();
    let out = f.load("d25.tar", &tar_of(&refs)).unwrap();
    assert_eq!(out, vec!["Loaded image: app:1"]);
    let img = f.store.get("app:1").unwrap();
    assert_eq!(
        fs::read(f.store.layer_paths(&img).unwrap()[0].join("etc/hostname")).unwrap(),
        b"x\n"
    );
}

#[test]
fn load_oci_archive_gzip_zstd_and_names() {
    require_root!();
    let f = Fixture::new();
    let l1 = Layer::new().file("a", b"1").build();
    let l2 = Layer::new().file("b", b"2").build();
    let l3 = Layer::new().file("c", b"3").build();
    let cfg = config_for(&[&l1, &l2, &l3], "2024-01-01T00:00:00Z");
    let layers = vec![
        (gzip(&l1), "application/vnd.oci.image.layer.v1.tar+gzip"),
        (zstd(&l2), "application/vnd.oci.image.layer.v1.tar+zstd"),
        // Compression is found by magic bytes even when the media type says otherwise.
        (gzip(&l3), "application/vnd.oci.image.layer.v1.tar"),
    ];
    let cfg2 = config_for(&[&l1], "2023-01-01T00:00:00Z");
    let cfg3 = config_for(&[&l2], "2022-01-01T00:00:00Z");
    let cfg4 = config_for(&[&l3], "2021-01-01T00:00:00Z");
    let archive = oci_archive(&[
        (
            &cfg,
            layers,
            json!({"org.opencontainers.image.ref.name": "docker.io/library/busybox:latest"}),
        ),
        (
            &cfg2,
            vec![(gzip(&l1), "application/vnd.oci.image.layer.v1.tar+gzip")],
            json!({"org.opencontainers.image.ref.name": "latest"}),
        ),
        (
            &cfg3,
            vec![(l2.clone(), "application/vnd.oci.image.layer.v1.tar")],
            json!({"org.opencontainers.image.ref.name": "1.0",
                   "io.containerd.image.name": "docker.io/someone/app:1.0"}),
        ),
        (
            &cfg4,
            vec![(l3.clone(), "application/vnd.oci.image.layer.v1.tar")],
            json!({"org.opencontainers.image.ref.name": "localhost:5000/x:y"}),
        ),
    ]);
    let out = f.load("oci.tar", &archive).unwrap();
    assert_eq!(
        out,
        vec![
            "Loaded image: busybox:latest".to_string(),
            format!("Loaded image ID: {}", sha(&cfg2)),
            "Loaded image: someone/app:1.0".to_string(),
            "Loaded image: localhost:5000/x:y".to_string(),
        ]
    );
    let img = f.store.get("busybox").unwrap();
    let p = f.store.layer_paths(&img).unwrap();
    assert_eq!(fs::read(p[0].join("c")).unwrap(), b"3");
    assert_eq!(fs::read(p[1].join("b")).unwrap(), b"2");
    assert_eq!(fs::read(p[2].join("a")).unwrap(), b"1");
    let dangling = f.store.get(&sha(&cfg2)).unwrap();
    assert!(dangling.repo_tags.is_empty());
    // Layers are shared, not unpacked twice.
    let n = fs::read_dir(f.store.root().join("layers/sha256"))
        .unwrap()
        .count();
    assert_eq!(n, 6, "three layer dirs and three records");
    let list: Vec<String> = f.store.list().unwrap().into_iter().map(|i| i.id).collect();
    assert_eq!(
        list,
        vec![sha(&cfg), sha(&cfg2), sha(&cfg3), sha(&cfg4)],
        "newest first"
    );
}

#[test]
fn load_compressed_archive_and_layout_directory() {
    require_root!();
    let f = Fixture::new();
    let l = Layer::new().file("x", b"y").build();
    let cfg = config_for(&[&l], "2024-01-01T00:00:00Z");
    let save = docker_save(&[(&cfg, &[&l], &["gz:1"])]);
    assert_eq!(
        f.load("s.tar.gz", &gzip(&save)).unwrap(),
        vec!["Loaded image: gz:1"]
    );
    assert_eq!(
        f.load("s.tar.zst", &zstd(&save)).unwrap(),
        vec!["Loaded image: gz:1"]
    );

    let l2 = Layer::new().file("z", b"z").build();
    let cfg2 = config_for(&[&l2], "2024-01-01T00:00:00Z");
    let dir = f.dir.path().join("layout");
    for (name, data) in oci_files(&[(
        &cfg2,
        vec![(zstd(&l2), "application/vnd.oci.image.layer.v1.tar+zstd")],
        json!({"org.opencontainers.image.ref.name": "dir:1"}),
    )]) {
        let p = dir.join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    }
    assert_eq!(f.store.load(&dir).unwrap(), vec!["Loaded image: dir:1"]);
    f.assert_clean_tmp();
}

#[test]
fn legacy_save_with_symlinked_duplicate_layer() {
    require_root!();
    let f = Fixture::new();
    let l = Layer::new().file("same", b"s").build();
    let cfg = config_for(&[&l, &l], "2024-01-01T00:00:00Z");
    let mut b = tar::Builder::new(Vec::new());
    let add = |b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).unwrap();
    };
    add(&mut b, "aaa/layer.tar", &l);
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "bbb/layer.tar", "../aaa/layer.tar")
        .unwrap();
    let cfg_name = format!("{}.json", hex_of(&sha(&cfg)));
    add(&mut b, &cfg_name, &cfg);
    let m = json!([{"Config": cfg_name, "RepoTags": null, "Layers": ["aaa/layer.tar", "bbb/layer.tar"]}]);
    add(&mut b, "manifest.json", &serde_json::to_vec(&m).unwrap());
    let out = f.load("dup.tar", &b.into_inner().unwrap()).unwrap();
    assert_eq!(out, vec![format!("Loaded image ID: {}", sha(&cfg))]);
    let img = f.store.get(&sha(&cfg)).unwrap();
    assert_eq!(
        f.store.layer_paths(&img).unwrap().len(),
        1,
        "a repeated layer is given once"
    );
}

fn never(_: &str) -> bool {
    false
}

fn load_simple(f: &Fixture, content: &[u8], tags: &[&str]) -> (String, Vec<u8>) {
    let l = Layer::new().file("f", content).build();
    let cfg = config_for(&[&l], "2024-01-01T00:00:00Z");
    f.load("i.tar", &docker_save(&[(&cfg, &[&l], tags)]))
        .unwrap();
    (sha(&cfg), l)
}

#[test]
fn tag_and_remove_follow_docker_rules() {
    require_root!();
    let f = Fixture::new();
    let (id, layer) = load_simple(&f, b"one", &["a:1"]);
    let layer_dir = f
        .store
        .root()
        .join("layers/sha256")
        .join(hex_of(&sha(&layer)));

    f.store.tag("a:1", "a:2").unwrap();
    f.store.tag(&id, "localhost:5000/b").unwrap();
    assert_eq!(
        f.store.get("a:1").unwrap().repo_tags,
        vec!["a:1", "a:2", "localhost:5000/b:latest"]
    );
    assert!(matches!(
        f.store.tag("nope", "x"),
        Err(ImageError::NotFound(_))
    ));
    assert!(matches!(
        f.store.tag("a:1", "Bad:x"),
        Err(ImageError::InvalidReference(_))
    ));
    assert!(matches!(
        f.store.tag("a:1", &format!("x@{id}")),
        Err(ImageError::InvalidReference(_))
    ));

    // By id with references in several repositories: needs force.
    let e = f.store.remove(&id, false, &never).unwrap_err();
    assert!(
        matches!(e, ImageError::Conflict(_)) && e.to_string().contains("multiple repositories"),
        "{e}"
    );

    // Untagging keeps the image while a tag is left.
    assert_eq!(
        f.store.remove("a:2", false, &never).unwrap(),
        vec![Removed::Untagged("a:2".into())]
    );
    assert_eq!(
        f.store.remove("localhost:5000/b", false, &never).unwrap(),
        vec![Removed::Untagged("localhost:5000/b:latest".into())]
    );
    assert!(layer_dir.is_dir());

    // The last tag of an image a container uses: must force, and the image stays.
    let used = |i: &str| i == id;
    let e = f.store.remove("a:1", false, &used).unwrap_err();
    assert!(e.to_string().contains("must force"), "{e}");
    assert_eq!(
        f.store.remove("a:1", true, &used).unwrap(),
        vec![Removed::Untagged("a:1".into())]
    );
    assert!(f.store.get(&id).unwrap().repo_tags.is_empty());
    assert!(matches!(
        f.store.remove(&id, true, &used),
        Err(ImageError::Conflict(_))
    ));

    // Deleting by id removes the image and its layers.
    let out = f.store.remove(&hex_of(&id)[..12], false, &never).unwrap();
    assert_eq!(
        out,
        vec![Removed::Deleted(id.clone()), Removed::Deleted(sha(&layer))]
    );
    assert!(!layer_dir.exists());
    assert!(!layer_dir.with_extension("json").exists());
    assert!(matches!(f.store.get(&id), Err(ImageError::NotFound(_))));
    assert!(f.store.list().unwrap().is_empty());
    f.assert_clean_tmp();
}

#[test]
fn removing_the_last_tag_deletes_but_keeps_shared_layers() {
    require_root!();
    let f = Fixture::new();
    let shared = Layer::new().file("shared", b"s").build();
    let own = Layer::new().file("own", b"o").build();
    let cfg1 = config_for(&[&shared, &own], "2024-01-01T00:00:00Z");
    let cfg2 = config_for(&[&shared], "2024-01-02T00:00:00Z");
    f.load(
        "x.tar",
        &docker_save(&[
            (&cfg1, &[&shared, &own], &["one:1"]),
            (&cfg2, &[&shared], &["two:1"]),
        ]),
    )
    .unwrap();
    let out = f.store.remove("one:1", false, &never).unwrap();
    assert_eq!(
        out,
        vec![
            Removed::Untagged("one:1".into()),
            Removed::Deleted(sha(&cfg1)),
            Removed::Deleted(sha(&own)),
        ]
    );
    let two = f.store.get("two:1").unwrap();
    assert!(f.store.layer_paths(&two).unwrap()[0]
        .join("shared")
        .exists());

    // A tag moved by a later load leaves the old image dangling, as Docker does.
    let (id_a, _) = load_simple(&f, b"a", &["mv:1"]);
    let l = Layer::new().file("f", b"b").build();
    let cfg = config_for(&[&l], "2024-01-01T00:00:00Z");
    let out = f
        .load("mv.tar", &docker_save(&[(&cfg, &[&l], &["mv:1"])]))
        .unwrap();
    assert_eq!(
        out,
        vec![
            format!("The image mv:1 already exists, renaming the old one with ID {id_a} to empty string"),
            "Loaded image: mv:1".to_string(),
        ]
    );
    assert!(f.store.get(&id_a).unwrap().repo_tags.is_empty());
}

#[test]
fn readonly_stores_are_used_in_place() {
    require_root!();
    let ro = Fixture::new();
    let (id, layer) = load_simple(&ro, b"system", &["ros/os-console:1"]);
    let ro_root = ro.store.root().to_path_buf();

    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("rw"), std::slice::from_ref(&ro_root)).unwrap();
    let img = store.get("ros/os-console:1").unwrap();
    assert!(img.readonly);
    assert_eq!(img.id, id);
    let paths = store.layer_paths(&img).unwrap();
    assert!(
        paths[0].starts_with(&ro_root),
        "read-only layers are used in place"
    );
    assert_eq!(store.list().unwrap().len(), 1);

    let e = store.remove("ros/os-console:1", true, &never).unwrap_err();
    assert!(
        matches!(e, ImageError::Conflict(_)) && e.to_string().contains("read-only"),
        "{e}"
    );
    let e = store.remove(&id, true, &never).unwrap_err();
    assert!(e.to_string().contains("read-only"), "{e}");

    // A writable tag of a read-only image can be removed; the image stays.
    store.tag("ros/os-console:1", "mine:1").unwrap();
    assert_eq!(
        store.remove("mine:1", false, &never).unwrap(),
        vec![Removed::Untagged("mine:1".into())]
    );
    assert!(store.get(&id).is_ok());

    // Loading an image whose layer the read-only store has does not copy it.
    let cfg = config_for(&[&layer], "2025-01-01T00:00:00Z");
    let f = Fixture { dir, store };
    f.load(
        "again.tar",
        &docker_save(&[(&cfg, &[&layer], &["other:1"])]),
    )
    .unwrap();
    assert_eq!(
        fs::read_dir(f.store.root().join("layers/sha256"))
            .unwrap()
            .count(),
        0
    );
    let other = f.store.get("other:1").unwrap();
    assert!(f.store.layer_paths(&other).unwrap()[0].starts_with(&ro_root));
    // Removing it must not touch the read-only layer.
    f.store.remove("other:1", false, &never).unwrap();
    assert!(ro_root
        .join("layers/sha256")
        .join(hex_of(&sha(&layer)))
        .is_dir());
}

#[test]
fn concurrent_loads_share_layers() {
    require_root!();
    let f = Fixture::new();
    let shared = Layer::new().file("big", &vec![1u8; 200_000]).build();
    let mut archives = Vec::new();
    for i in 0..6 {
        let own = Layer::new().file("n", format!("{i}").as_bytes()).build();
        let cfg = config_for(&[&shared, &own], "2024-01-01T00:00:00Z");
        let tag = format!("c:{i}");
        archives.push(f.write(
            &format!("c{i}.tar"),
            &docker_save(&[(&cfg, &[&shared, &own], &[tag.as_str()])]),
        ));
    }
    std::thread::scope(|s| {
        for a in &archives {
            let store = f.store.clone();
            s.spawn(move || store.load(a).unwrap());
        }
        for i in 0..3 {
            let store = f.store.clone();
            s.spawn(move || {
                let _ = store.remove(&format!("c:{i}"), false, &never);
            });
        }
    });
    for i in 3..6 {
        let img = f.store.get(&format!("c:{i}")).unwrap();
        for p in f.store.layer_paths(&img).unwrap() {
            assert!(p.is_dir());
        }
    }
    f.assert_clean_tmp();
}

#[test]
fn open_cleans_leftovers() {
    require_root!();
    let f = Fixture::new();
    load_simple(&f, b"x", &["k:1"]);
    let root = f.store.root().to_path_buf();
    fs::create_dir_all(root.join("tmp/load-dead/layer-1")).unwrap();
    let orphan = root.join("layers/sha256").join("ab".repeat(32));
    fs::create_dir_all(&orphan).unwrap();
    let store = ImageStore::open(&root, &[]).unwrap();
    assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
    assert!(!orphan.exists());
    assert!(store.get("k:1").is_ok());
}

#[test]
fn layers_an_import_relies_on_are_not_removed() {
    require_root!();
    let f = Fixture::new();
    let (id, layer) = load_simple(&f, b"pinned", &["p:1"]);
    let hex = hex_of(&sha(&layer)).to_string();
    let mut staging = f.store.staging("load").unwrap();
    assert!(
        staging.layer_available(&hex),
        "present, so the import skips unpacking it"
    );
    let out = f.store.remove("p:1", false, &never).unwrap();
    assert_eq!(
        out,
        vec![Removed::Untagged("p:1".into()), Removed::Deleted(id)]
    );
    assert!(
        f.store.layer_dir(&hex).is_some(),
        "pinned by the import in progress"
    );

    let cfg = config_for(&[&layer], "2025-01-01T00:00:00Z");
    let image = super::commit::NewImage {
        id_hex: hex_of(&sha(&cfg)).to_string(),
        config: cfg,
        diff_ids: vec![sha(&layer)],
        tags: vec![reference::Reference::parse("q:1").unwrap()],
        digests: Vec::new(),
    };
    f.store.commit(&mut staging, &[image]).unwrap();
    drop(staging);
    let img = f.store.get("q:1").unwrap();
    assert!(f.store.layer_paths(&img).unwrap()[0].join("f").is_file());
    f.assert_clean_tmp();
}
