//! The read-only, pre-unpacked image store (`system-docker daemon --image-store DIR`), the
//! way the OS ships its system images (DESIGN §5, §8; format in
//! `system-docker/src/image/mod.rs`): the same layout as the writable store
//! `<data-root>/image`, packed without `tmp/`.
//!
//! A store is made the documented way — a daemon A loads images into an empty data root, is
//! stopped, and its `<data-root>/image` is copied — then mounted read-only (a squashfs on a
//! loop device, as shipped; or a read-only bind mount, which even root cannot write) and
//! handed to a daemon B with a fresh data root. B must list and run those images without
//! copying anything, refuse to remove them, and keep its own writable store working beside
//! them.
//!
//! Needs root, the docker CLI and the image fixtures; the squashfs variant also needs
//! `mksquashfs` (Debian: squashfs-tools) and loop devices. Skips loudly without them.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::mount::{umount2, MntFlags};
use ros_tests::{fixtures, require_root, require_tool, sh, skip, Checks, Daemon, Fixtures, Output};
use sha2::{Digest, Sha256};

fn prerequisites(test: &str) -> Option<&'static Fixtures> {
    if !require_root(test) || !require_tool(test, "docker") {
        return None;
    }
    fixtures(test)
}

/// A mount, lazily detached on drop (also when the test fails).
struct Mounted {
    point: PathBuf,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        // A loop device mounted with `-o loop` is set to autoclear: it goes with the mount.
        let _ = umount2(&self.point, MntFlags::MNT_DETACH);
    }
}

/// How the store is made read-only.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// `mksquashfs` + `mount -t squashfs -o loop,ro` (what the OS ships).
    Squashfs,
    /// `mount --bind` + `mount -o remount,bind,ro`.
    BindRo,
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Every path under `dir` with its size, type and mode (to show the store is unchanged).
fn tree(dir: &Path) -> BTreeSet<String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(m) = fs::symlink_metadata(&p) else {
                continue;
            };
            let rel = p.strip_prefix(base).unwrap_or(&p).display().to_string();
            out.insert(format!("{rel} {:o} {} {}", m.mode(), m.size(), m.rdev()));
            if m.is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

/// The names in `<store>/layers/sha256` (layer dirs and their `.json` records).
fn layer_entries(store: &Path) -> BTreeSet<String> {
    fs::read_dir(store.join("layers/sha256"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn config_entries(store: &Path) -> BTreeSet<String> {
    fs::read_dir(store.join("configs/sha256"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A docker-save archive of `extra:1`: busybox's layer plus a new one holding `/extra.txt`.
/// Returns the archive and the new layer's diff id (hex).
fn extra_image(busybox_tar: &Path) -> (Vec<u8>, String) {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut archive = tar::Archive::new(fs::File::open(busybox_tar).expect("open busybox.tar"));
    for entry in archive.entries().expect("read busybox.tar") {
        let mut entry = entry.expect("busybox.tar entry");
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = entry.path().expect("entry path").display().to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("read entry");
        files.push((path, data));
    }
    let get = |name: &str| {
        files
            .iter()
            .find(|(p, _)| p == name)
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| panic!("busybox.tar has no {name}"))
    };
    let manifest: serde_json::Value =
        serde_json::from_slice(&get("manifest.json")).expect("manifest.json is JSON");
    let base_layer = manifest[0]["Layers"][0]
        .as_str()
        .expect("manifest has a layer")
        .to_string();
    let config_name = manifest[0]["Config"].as_str().expect("manifest has Config");
    let mut config: serde_json::Value =
        serde_json::from_slice(&get(config_name)).expect("config is JSON");

    let mut layer = tar::Builder::new(Vec::new());
    let body = b"extra layer\n";
    let mut h = tar::Header::new_gnu();
    h.set_path("extra.txt").expect("path");
    h.set_size(body.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    layer.append(&h, &body[..]).expect("append");
    let layer = layer.into_inner().expect("layer tar");
    let new_hex = sha256_hex(&layer);

    let base_hex = base_layer.trim_end_matches(".tar").to_string();
    config["rootfs"] = serde_json::json!({
        "type": "layers",
        "diff_ids": [format!("sha256:{base_hex}"), format!("sha256:{new_hex}")],
    });
    if let Some(o) = config.as_object_mut() {
        o.remove("history");
    }
    let config = serde_json::to_vec(&config).expect("config");
    let config_hex = sha256_hex(&config);
    let manifest = serde_json::json!([{
        "Config": format!("{config_hex}.json"),
        "RepoTags": ["extra:1"],
        "Layers": [base_layer.clone(), format!("{new_hex}.tar")],
    }]);

    let mut out = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).expect("path");
        h.set_size(data.len() as u64);
        h.set_mode(0o444);
        h.set_mtime(0);
        h.set_cksum();
        out.append(&h, data).expect("append");
    };
    add(&base_layer, &get(&base_layer));
    add(&format!("{new_hex}.tar"), &layer);
    add(&format!("{config_hex}.json"), &config);
    add(
        "manifest.json",
        &serde_json::to_vec(&manifest).expect("manifest"),
    );
    (out.into_inner().expect("archive"), new_hex)
}

/// Daemon A loads busybox and layered into an empty data root; returns a copy of its
/// `<data-root>/image` without `tmp/` (the documented recipe for a read-only store).
fn build_store(fx: &Fixtures, work: &Path) -> PathBuf {
    let a_root = work.join("a");
    fs::create_dir_all(&a_root).expect("mkdir a");
    let mut a = Daemon::start(&a_root);
    a.load(&fx.busybox_tar);
    a.load(&fx.layered_tar);
    a.stop();
    let src = work.join("store");
    let image = a.data_root().join("image");
    let out = sh(
        "cp",
        &["-a", &image.to_string_lossy(), &src.to_string_lossy()],
    );
    assert!(out.success(), "copying the store failed:\n{out}");
    let _ = fs::remove_dir_all(src.join("tmp"));
    src
}

/// Mounts `src` read-only at `<work>/ro`. `None` (after a loud skip) when this machine
/// cannot.
fn mount_readonly(test: &str, kind: Kind, src: &Path, work: &Path) -> Option<Mounted> {
    let ro = work.join("ro");
    fs::create_dir_all(&ro).expect("mkdir ro");
    let ro_s = ro.to_string_lossy().into_owned();
    let src_s = src.to_string_lossy().into_owned();
    match kind {
        Kind::Squashfs => {
            let img = work.join("store.squashfs");
            let img_s = img.to_string_lossy().into_owned();
            // Keeps owners, device nodes (whiteouts) and xattrs (opaque dirs) by default.
            let out = sh(
                "mksquashfs",
                &[&src_s, &img_s, "-noappend", "-quiet", "-no-progress"],
            );
            assert!(out.success(), "mksquashfs failed:\n{out}");
            let out = sh("mount", &["-t", "squashfs", "-o", "loop,ro", &img_s, &ro_s]);
            if !out.success() {
                skip(
                    test,
                    &format!("cannot mount a squashfs on a loop device here:\n{out}"),
                );
                return None;
            }
            Some(Mounted { point: ro })
        }
        Kind::BindRo => {
            let out = sh("mount", &["--bind", &src_s, &ro_s]);
            assert!(out.success(), "mount --bind failed:\n{out}");
            let m = Mounted { point: ro };
            let out = sh("mount", &["-o", "remount,bind,ro", &ro_s]);
            assert!(out.success(), "remount,bind,ro failed:\n{out}");
            Some(m)
        }
    }
}

fn names(out: &Output) -> Vec<String> {
    let mut v = out.lines();
    v.sort();
    v
}

fn scenario(test: &str, kind: Kind) {
    let Some(fx) = prerequisites(test) else {
        return;
    };
    if matches!(kind, Kind::Squashfs) && !require_tool(test, "mksquashfs") {
        return;
    }
    let tmp = ros_tests::tempdir();
    let work = tmp.path().canonicalize().expect("canonical tempdir");
    let src = build_store(fx, &work);
    let Some(mounted) = mount_readonly(test, kind, &src, &work) else {
        return;
    };
    let ro = mounted.point.clone();
    let ro_s = ro.to_string_lossy().into_owned();
    let mut c = Checks::new(test);

    let probe = fs::write(ro.join("probe"), b"x");
    c.check(
        probe.is_err(),
        "the store is read-only even for root",
        format!("{probe:?}"),
    );
    let before = tree(&ro);

    let b_root = work.join("b");
    fs::create_dir_all(&b_root).expect("mkdir b");
    let mut d = Daemon::start_with_args(&b_root, &["--image-store", &ro_s]);
    let own = d.data_root().join("image");

    // --- the store's images are listed and inspectable, with the ids A gave them
    let ids = d.sd(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    c.check(
        names(&ids) == ["busybox:latest", "layered:latest"],
        "images lists the store's busybox and layered",
        &ids,
    );
    let out = d.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    c.check(
        names(&out) == ["busybox:latest", "layered:latest"],
        "docker images lists them too",
        &out,
    );
    let busybox_id = d.inspect("{{.Id}}", "busybox");
    c.check(
        config_entries(&ro).contains(&format!(
            "{}.json",
            busybox_id.trim_start_matches("sha256:")
        )),
        "busybox's id is the config in the store",
        format!("{busybox_id}\n{:?}", config_entries(&ro)),
    );

    // --- run from the store
    let out = d.sd(&["run", "--rm", "busybox", "echo", "hi"]);
    c.out_eq(&out, "hi", "run --rm busybox echo hi");
    let out = d.sd(&[
        "run",
        "--rm",
        "layered",
        "sh",
        "-c",
        "test ! -e /etc/motd && test ! -e /opt/gone && test -d /opt && cat /etc/layer2",
    ]);
    c.out_eq(
        &out,
        "added by layer 2",
        "run layered: the store's whiteouts hide /etc/motd and /opt/gone",
    );
    let out = d.sd(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo changed > /etc/motd && cat /etc/motd",
    ]);
    c.out_eq(
        &out,
        "changed",
        "a container writes over a file of a read-only lower layer",
    );
    let out = d.sd(&["run", "--rm", "busybox", "cat", "/etc/motd"]);
    c.out_eq(
        &out,
        "welcome to the ros test busybox",
        "the next container sees the store's file unchanged",
    );
    c.check(
        layer_entries(&own).is_empty() && config_entries(&own).is_empty(),
        "nothing was copied into B's own store (layers/ and configs/ empty)",
        format!(
            "layers: {:?}\nconfigs: {:?}",
            layer_entries(&own),
            config_entries(&own)
        ),
    );

    // --- the store's images cannot be removed
    for args in [
        &["rmi", "busybox"][..],
        &["rmi", "-f", "busybox"][..],
        &["rmi", &busybox_id][..],
    ] {
        let out = d.sd(args);
        c.fails_with(
            &out,
            &["read-only"],
            &format!("system-docker {}", args.join(" ")),
        );
    }
    let out = d.docker(&["rmi", "busybox"]);
    c.fails_with(&out, &["read-only"], "docker rmi busybox");
    let out = d.sd(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    c.check(
        out.lines().iter().any(|l| l == "busybox:latest"),
        "busybox is still there after the refused rmi",
        &out,
    );

    // --- tags of them live in the writable store
    let out = d.sd(&["tag", "busybox", "mine:1"]);
    c.ok(&out, "tag busybox mine:1");
    let out = d.sd(&["inspect", "-f", "{{.Id}}", "mine:1"]);
    c.out_eq(&out, &busybox_id, "mine:1 is busybox's image");
    let out = d.sd(&["run", "--rm", "mine:1", "echo", "tagged"]);
    c.out_eq(&out, "tagged", "run the new tag");
    let out = d.sd(&["rmi", "mine:1"]);
    c.out_eq(&out, "Untagged: mine:1", "rmi mine:1 untags only");
    let out = d.sd(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    c.check(
        names(&out) == ["busybox:latest", "layered:latest"],
        "after rmi mine:1: busybox and layered, no mine:1",
        &out,
    );

    // --- an image loaded into B's own store, beside the read-only ones
    let (extra, extra_layer) = extra_image(&fx.busybox_tar);
    let extra_tar = work.join("extra.tar");
    fs::write(&extra_tar, &extra).expect("write extra.tar");
    let out = d.sd(&["load", "-i", &extra_tar.to_string_lossy()]);
    c.out_eq(
        &out,
        "Loaded image: extra:1",
        "load extra:1 into B's own store",
    );
    let want: BTreeSet<String> = [extra_layer.clone(), format!("{extra_layer}.json")]
        .into_iter()
        .collect();
    c.check(
        layer_entries(&own) == want,
        "B's own store got the new layer only (busybox's layer is the store's)",
        format!("{:?}", layer_entries(&own)),
    );
    let out = d.sd(&[
        "run",
        "--rm",
        "extra:1",
        "sh",
        "-c",
        "cat /extra.txt && cat /etc/motd",
    ]);
    c.out_eq(
        &out,
        "extra layer\nwelcome to the ros test busybox",
        "run extra:1: its own layer over the store's",
    );
    let out = d.sd(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    c.check(
        names(&out) == ["busybox:latest", "extra:1", "layered:latest"],
        "images lists both stores' images",
        &out,
    );

    // --- the daemon restarts onto the same stores
    d.restart();
    let out = d.sd(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    c.check(
        names(&out) == ["busybox:latest", "extra:1", "layered:latest"],
        "after a daemon restart both stores' images are listed",
        &out,
    );
    let out = d.sd(&["run", "--rm", "layered", "cat", "/etc/layer2"]);
    c.out_eq(&out, "added by layer 2", "run layered after the restart");

    // --- removing B's own image leaves the shared layer of the store alone
    let out = d.sd(&["rmi", "extra:1"]);
    c.check(
        out.success()
            && out.stdout.contains("Untagged: extra:1")
            && out.stdout.contains("Deleted: sha256:"),
        "rmi extra:1 untags and deletes it",
        &out,
    );
    c.check(
        layer_entries(&own).is_empty() && config_entries(&own).is_empty(),
        "B's own store is empty again",
        format!(
            "layers: {:?}\nconfigs: {:?}",
            layer_entries(&own),
            config_entries(&own)
        ),
    );
    let out = d.sd(&["run", "--rm", "busybox", "echo", "still"]);
    c.out_eq(&out, "still", "busybox still runs");

    // --- loading an image the store already has copies nothing; removing that tag again
    // cannot remove the store's image
    let out = d.sd(&["load", "-i", &fx.busybox_tar.to_string_lossy()]);
    c.out_eq(
        &out,
        "Loaded image: busybox:latest",
        "load busybox.tar, which the store has",
    );
    c.check(
        layer_entries(&own).is_empty() && config_entries(&own).is_empty(),
        "loading an image the store has copies nothing",
        format!(
            "layers: {:?}\nconfigs: {:?}",
            layer_entries(&own),
            config_entries(&own)
        ),
    );
    let _ = d.sd(&["rmi", "busybox"]);
    let out = d.sd(&["run", "--rm", "busybox", "echo", "kept"]);
    c.out_eq(
        &out,
        "kept",
        "after rmi of the writable busybox tag, the store's busybox is still there",
    );

    let after = tree(&ro);
    c.check(
        before == after,
        "the read-only store is unchanged",
        format!(
            "gone: {:?}\nnew: {:?}",
            before.difference(&after).collect::<Vec<_>>(),
            after.difference(&before).collect::<Vec<_>>()
        ),
    );

    let log = d.log_tail(60);
    // The daemon goes first (its containers' overlays use the store), then the mount.
    drop(d);
    drop(mounted);
    c.finish_with(|| log);
}

/// The store as shipped: a squashfs image on a loop device.
#[test]
fn squashfs_store() {
    scenario("squashfs_store", Kind::Squashfs);
}

/// The store on a read-only bind mount (where squashfs is unavailable, and as a second
/// filesystem under the same code).
#[test]
fn bind_mounted_readonly_store() {
    scenario("bind_mounted_readonly_store", Kind::BindRo);
}
