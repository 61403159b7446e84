//! Bad input to the engine: malicious or broken image archives and malformed API requests.
//! Each must be refused with a clear message and leave the store as it was (`docker images`
//! identical, no new files in the data root, nothing written outside it).
//!
//! The archives are crafted here with the `tar` crate (raw headers, so `..` names and links
//! the crate would refuse to write are possible); digests are computed with sha2. Escapes aim
//! at a canary dir in the test's tempdir rather than at the host's /etc, so a buggy engine
//! cannot damage the machine: the check is that nothing appears in the canary dir.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ros_tests::{require_root, require_tool, Checks, Daemon, Output};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------------
// Crafting archives

/// One entry of a crafted layer; names and link targets are raw bytes, written unchecked.
enum Entry<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A layer tar with exactly these entries.
fn layer(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_old();
        let (name, kind, mode, link, data): (&str, tar::EntryType, u32, &str, &[u8]) = match e {
            Entry::Dir(n) => (n, tar::EntryType::Directory, 0o755, "", b""),
            Entry::File(n, d) => (n, tar::EntryType::Regular, 0o644, "", d),
            Entry::Symlink(n, t) => (n, tar::EntryType::Symlink, 0o777, t, b""),
            Entry::Hardlink(n, t) => (n, tar::EntryType::Link, 0o644, t, b""),
        };
        assert!(
            name.len() < 100 && link.len() < 100,
            "crafted names must fit a v7 header"
        );
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).expect("append crafted entry");
    }
    b.into_inner().expect("finish layer")
}

/// Builds an outer archive from (path, content) pairs, in order.
fn archive(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, data.as_slice())
            .expect("append archive file");
    }
    b.into_inner().expect("finish archive")
}

fn image_config(diff_ids: &[String]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": { "Cmd": ["/bin/sh"], "Env": ["PATH=/bin"] },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": diff_ids.iter().map(|_| serde_json::json!({"created_by": "ros-tests"}))
            .collect::<Vec<_>>(),
    }))
    .expect("config JSON")
}

/// A `docker save` archive (legacy layout: `<id>/layer.tar`, `<config-digest>.json`,
/// manifest.json). `diff_ids` overrides the layers' real digests (to craft a mismatch);
/// `manifest_first` puts manifest.json and the config before the layers.
fn docker_save(
    tag: &str,
    layers: &[Vec<u8>],
    diff_ids: Option<Vec<String>>,
    manifest_first: bool,
) -> Vec<u8> {
    let real: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", sha256_hex(l)))
        .collect();
    let diff_ids = diff_ids.unwrap_or(real);
    let config = image_config(&diff_ids);
    let config_name = format!("{}.json", sha256_hex(&config));
    let layer_files: Vec<(String, Vec<u8>)> = layers
        .iter()
        .map(|l| (format!("{}/layer.tar", sha256_hex(l)), l.clone()))
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": config_name,
        "RepoTags": [tag],
        "Layers": layer_files.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
    }]))
    .expect("manifest JSON");
    let head = vec![
        ("manifest.json".to_string(), manifest),
        (config_name, config),
    ];
    let files = if manifest_first {
        [head, layer_files].concat()
    } else {
        [layer_files, head].concat()
    };
    archive(&files)
}

/// An OCI image archive (uncompressed layers) whose index names the image `ref_name`.
/// `corrupt_layer` flips a byte of the first layer blob after its digest is computed.
fn oci_archive(ref_name: &str, layers: &[Vec<u8>], corrupt_layer: bool) -> Vec<u8> {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", sha256_hex(l)))
        .collect();
    let config = image_config(&diff_ids);
    let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut descs = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let digest = sha256_hex(l);
        let mut content = l.clone();
        if corrupt_layer && i == 0 {
            // A byte in the first entry's data area: still a well-formed tar.
            content[600] ^= 0x20;
        }
        descs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": format!("sha256:{digest}"),
            "size": l.len(),
        }));
        blobs.push((format!("blobs/sha256/{digest}"), content));
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{}", sha256_hex(&config)),
            "size": config.len(),
        },
        "layers": descs,
    }))
    .expect("manifest JSON");
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{}", sha256_hex(&manifest)),
            "size": manifest.len(),
            "annotations": { "org.opencontainers.image.ref.name": ref_name },
        }],
    }))
    .expect("index JSON");
    blobs.push((format!("blobs/sha256/{}", sha256_hex(&config)), config));
    blobs.push((format!("blobs/sha256/{}", sha256_hex(&manifest)), manifest));
    let mut files = vec![
        (
            "oci-layout".to_string(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        ("index.json".to_string(), index),
    ];
    files.extend(blobs);
    archive(&files)
}

// ---------------------------------------------------------------------------------------------
// Store snapshots

/// Every path under `dir` (relative), for "no new files" checks.
fn tree(dir: &Path) -> BTreeSet<PathBuf> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<PathBuf>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            out.insert(p.strip_prefix(base).unwrap_or(&p).to_path_buf());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(base, &p, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

struct Snapshot {
    images: Output,
    files: BTreeSet<PathBuf>,
}

fn snapshot(d: &Daemon) -> Snapshot {
    let images = d.docker(&["images", "-a", "-q", "--no-trunc"]);
    images.ok();
    Snapshot {
        images,
        files: tree(d.data_root()),
    }
}

/// Loads `bytes` as `<name>.tar` and checks it is refused with a message mentioning one of
/// `any_of`, that `tag` did not appear and that the store is unchanged.
#[allow(clippy::too_many_arguments)]
fn refused(
    c: &mut Checks,
    d: &Daemon,
    dir: &Path,
    before: &Snapshot,
    name: &str,
    bytes: &[u8],
    tag: &str,
    any_of: &[&str],
) {
    let path = dir.join(format!("{name}.tar"));
    fs::write(&path, bytes).expect("write crafted archive");
    let out = d.docker(&["load", "-i", &path.to_string_lossy()]);
    // Shown with --nocapture: what the engine says for each refusal.
    eprintln!("{name}: {}", out.stderr.trim());
    c.fails_with(
        &out,
        any_of,
        &format!("{name}: load is refused with a clear message"),
    );
    let err_line = out.stderr.trim();
    c.check(
        err_line.len() > 10 && !err_line.eq_ignore_ascii_case("error: eof"),
        &format!("{name}: the refusal says what is wrong"),
        &out,
    );
    let after = snapshot(d);
    c.check(
        after.images.stdout == before.images.stdout,
        &format!("{name}: docker images -a -q unchanged"),
        format!("before:\n{}\nafter:\n{}", before.images, after.images),
    );
    let new: Vec<_> = after.files.difference(&before.files).collect();
    c.check(
        new.is_empty(),
        &format!("{name}: no new files left in the data root"),
        format!("{new:#?}"),
    );
    let inspect = d.docker(&["image", "inspect", tag]);
    c.check(
        !inspect.success(),
        &format!("{name}: {tag} does not exist"),
        &inspect,
    );
}

const DIGEST_WORDS: &[&str] = &[
    "digest", "sha256", "mismatch", "verif", "checksum", "corrupt",
];
const TRUNC_WORDS: &[&str] = &[
    "eof",
    "truncat",
    "unexpected end",
    "incomplete",
    "short",
    "missing",
];
const PATH_WORDS: &[&str] = &[
    "..", "path", "outside", "escape", "travers", "unsafe", "invalid", "breakout", "link",
];

#[test]
fn bad_image_archives_are_refused() {
    const T: &str = "bad_image_archives_are_refused";
    if !require_root(T) || !require_tool(T, "docker") {
        return;
    }
    let tmp = ros_tests::tempdir();
    let d = Daemon::start(tmp.path());
    let mut c = Checks::new(T);
    let work = tmp.path().join("crafted");
    fs::create_dir_all(&work).expect("mkdir crafted");
    // The target of every escape attempt: nothing may appear in it or link to its file.
    let canary = tmp.path().join("canary");
    fs::create_dir_all(&canary).expect("mkdir canary");
    fs::write(canary.join("target.txt"), "canary\n").expect("write canary");
    let canary_abs = canary.to_string_lossy().into_owned();
    let canary_rel = canary_abs.trim_start_matches('/').to_string();
    let up = "../../../../../../../../../../../..";
    let passwd_nlink = fs::metadata("/etc/passwd").map(|m| m.nlink()).ok();

    // Controls: well-formed archives built by the same code load fine, so each refusal below
    // is due to its one defect.
    let good = layer(&[Entry::Dir("etc/"), Entry::File("etc/hello.txt", b"hello\n")]);
    let path = work.join("good.tar");
    fs::write(&path, docker_save("good:latest", &[good], None, false)).expect("write");
    let out = d.docker(&["load", "-i", &path.to_string_lossy()]);
    assert!(
        out.success(),
        "a well-formed crafted docker-save archive must load:\n{out}"
    );
    let path = work.join("good-oci.tar");
    let good2 = layer(&[Entry::File("hello2.txt", b"hello 2\n")]);
    fs::write(
        &path,
        oci_archive("docker.io/library/good-oci:latest", &[good2], false),
    )
    .expect("write");
    let out = d.docker(&["load", "-i", &path.to_string_lossy()]);
    c.ok(&out, "a well-formed crafted OCI archive loads");
    let path = work.join("good-links.tar");
    let links = layer(&[
        Entry::Dir("a/"),
        Entry::File("a/f", b"data\n"),
        Entry::Hardlink("a/hard", "a/f"),
        Entry::Symlink("a/abs", "/etc/passwd"),
        Entry::Symlink("a/rel", "../a/f"),
    ]);
    fs::write(
        &path,
        docker_save("good-links:latest", &[links], None, true),
    )
    .expect("write");
    let out = d.docker(&["load", "-i", &path.to_string_lossy()]);
    c.ok(
        &out,
        "in-image hard links and (absolute) symlinks are legitimate and load",
    );

    let before = snapshot(&d);
    let img_layer = |tag: &str| layer(&[Entry::File("unique.txt", format!("{tag}\n").as_bytes())]);

    // Truncated archives: mid-layer with manifest last, and mid-layer with manifest first.
    let full = docker_save("trunc1:latest", &[img_layer("trunc1")], None, false);
    refused(
        &mut c,
        &d,
        &work,
        &before,
        "truncated",
        &full[..full.len() / 2],
        "trunc1",
        TRUNC_WORDS,
    );
    let full = docker_save(
        "trunc2:latest",
        &[layer(&[Entry::File("big.bin", &vec![7u8; 64 * 1024])])],
        None,
        true,
    );
    refused(
        &mut c,
        &d,
        &work,
        &before,
        "truncated-mid-layer",
        &full[..full.len() - 20 * 1024],
        "trunc2",
        TRUNC_WORDS,
    );
    refused(
        &mut c,
        &d,
        &work,
        &before,
        "not-a-tar",
        b"this is not an image archive\n",
        "x",
        &["tar", "archive", "manifest", "invalid", "format", "eof"],
    );

    // Digest mismatches: docker-save diff_id that is not the layer's, OCI blob altered.
    let wrong = format!("sha256:{}", sha256_hex(b"something else"));
    let bytes = docker_save(
        "mismatch:latest",
        &[img_layer("mismatch")],
        Some(vec![wrong]),
        false,
    );
    refused(
        &mut c,
        &d,
        &work,
        &before,
        "diff-id-mismatch",
        &bytes,
        "mismatch",
        DIGEST_WORDS,
    );
    let bytes = oci_archive(
        "docker.io/library/ocimismatch:latest",
        &[img_layer("ocim")],
        true,
    );
    refused(
        &mut c,
        &d,
        &work,
        &before,
        "oci-blob-mismatch",
        &bytes,
        "ocimismatch",
        DIGEST_WORDS,
    );

    // Path traversal: a `../` name (after a good layer, which must not stay behind either).
    let dotdot = format!("{up}{canary_abs}/escaped.txt");
    let bad = layer(&[Entry::File(&dotdot, b"escaped\n")]);
    let bytes = docker_save("dotdot:latest", &[img_layer("dotdot"), bad], None, false);
    refused(
        &mut c,
        &d,
        &work,
        &before,
        "dotdot-path",
        &bytes,
        "dotdot",
        PATH_WORDS,
    );
    let bad = layer(&[
        Entry::Dir("x/"),
        Entry::File("x/../../escaped2.txt", b"escaped\n"),
    ]);
    let bytes = docker_save("dotdot2:latest", &[bad], None, false);
    refused(
        &mut c,
        &d,
        &work,
        &before,
        "dotdot-inner",
        &bytes,
        "dotdot2",
        PATH_WORDS,
    );

    // Symlink escapes: `evil -> /` then a file through it; the same with a relative link.
    let through = format!("evil/{canary_rel}/pwned");
    let bad = layer(&[
        Entry::Symlink("evil", "/"),
        Entry::File(&through, b"pwned\n"),
    ]);
    let bytes = docker_save("symroot:latest", &[bad], None, false);
    refused(
        &mut c,
        &d,
        &work,
        &before,
        "symlink-to-root",
        &bytes,
        "symroot",
        PATH_WORDS,
    );
    let rel_target = format!("{up}{canary_abs}");
    let bad = layer(&[
        Entry::Symlink("evil2", &rel_target),
        Entry::File("evil2/pwned2", b"x\n"),
    ]);
    let bytes = docker_save("symrel:latest", &[bad], None, false);
    refused(
        &mut c,
        &d,
        &work,
        &before,
        "symlink-relative-escape",
        &bytes,
        "symrel",
        PATH_WORDS,
    );
    // Hard links out of the layer.
    let bad = layer(&[
        Entry::Dir("etc/"),
        Entry::Hardlink("etc/passwd", "../../etc/passwd"),
    ]);
    let bytes = docker_save("hardpasswd:latest", &[bad], None, false);
    refused(
        &mut c,
        &d,
        &work,
        &before,
        "hardlink-etc-passwd",
        &bytes,
        "hardpasswd",
        PATH_WORDS,
    );
    let canary_target = format!("{up}{canary_abs}/target.txt");
    let bad = layer(&[Entry::Hardlink("stolen", &canary_target)]);
    let bytes = docker_save("hardcanary:latest", &[bad], None, false);
    refused(
        &mut c,
        &d,
        &work,
        &before,
        "hardlink-escape",
        &bytes,
        "hardcanary",
        PATH_WORDS,
    );

    // The link in one layer, a file "through" it in the next: with layers unpacked each in
    // its own dir this is a legitimate image (layer 2's dir replaces layer 1's link, as in
    // overlayfs), so it may load, but nothing may land in the canary dir. Loaded last, so the
    // "store unchanged" checks above compare against the same baseline.
    let l1 = layer(&[Entry::Symlink("evil3", &canary_abs)]);
    let l2 = layer(&[Entry::File("evil3/pwned3", b"x\n")]);
    let path = work.join("symlink-across-layers.tar");
    fs::write(
        &path,
        docker_save("symlayers:latest", &[l1, l2], None, false),
    )
    .expect("write");
    let out = d.docker(&["load", "-i", &path.to_string_lossy()]);
    c.check(
        !canary.join("pwned3").exists(),
        "symlink-across-layers: nothing written through layer 1's link",
        &out,
    );

    // Nothing escaped.
    let in_canary: Vec<_> = tree(&canary).into_iter().collect();
    c.check(
        in_canary == [PathBuf::from("target.txt")],
        "nothing was written outside the store (canary dir untouched)",
        format!("{in_canary:?}"),
    );
    let nlink = fs::metadata(canary.join("target.txt"))
        .map(|m| m.nlink())
        .ok();
    c.check(
        nlink == Some(1),
        "no hard link to the canary file was created",
        format!("{nlink:?}"),
    );
    let now = fs::metadata("/etc/passwd").map(|m| m.nlink()).ok();
    c.check(
        now == passwd_nlink,
        "no hard link to /etc/passwd was created",
        format!("{now:?}"),
    );
    let out = d.docker(&["image", "inspect", "-f", "{{.Id}}", "good"]);
    c.ok(&out, "the good image is intact after the refusals");
    c.finish_with(|| d.log_tail(40));
}

#[test]
fn api_errors_are_docker_shaped() {
    const T: &str = "api_errors_are_docker_shaped";
    if !require_root(T) || !require_tool(T, "docker") {
        return;
    }
    let tmp = ros_tests::tempdir();
    let d = Daemon::start(tmp.path());
    let mut c = Checks::new(T);
    let path = tmp.path().join("good.tar");
    let good = layer(&[Entry::File("hello.txt", b"hello\n")]);
    fs::write(&path, docker_save("good:latest", &[good], None, false)).expect("write");
    d.load(&path);

    let is_json_error = |r: &ros_tests::HttpResponse| {
        r.message().is_some_and(|m| !m.trim().is_empty())
            && r.header("content-type")
                .is_some_and(|ct| ct.contains("application/json"))
    };

    // Malformed JSON, and JSON of the wrong shape.
    let before = d.docker(&["ps", "-aq"]);
    for (what, body) in [
        ("truncated JSON", r#"{"Image": "good", "Cmd": ["#),
        ("not JSON", "this is not json"),
        ("wrong type", r#"{"Image": 5}"#),
    ] {
        let r = d.api("POST", "/containers/create", Some(body));
        c.check(
            r.status == 400 && is_json_error(&r),
            &format!("create with {what} → 400 with a JSON message"),
            &r,
        );
    }
    let after = d.docker(&["ps", "-aq"]);
    c.check(
        after.stdout == before.stdout,
        "bad creates created nothing",
        &after,
    );

    // Unknown container.
    for path in ["/containers/nosuch/json", "/v1.41/containers/nosuch/json"] {
        let r = d.api("GET", path, None);
        c.check(
            r.status == 404
                && is_json_error(&r)
                && r.message()
                    .is_some_and(|m| m.contains("No such container: nosuch")),
            &format!("GET {path} → 404 No such container: nosuch"),
            &r,
        );
    }
    for args in [
        &["rm", "nosuch"][..],
        &["stop", "nosuch"],
        &["logs", "nosuch"],
        &["start", "nosuch"],
    ] {
        let out = d.docker(args);
        c.fails_with(
            &out,
            &["No such container: nosuch"],
            &format!("docker {}", args.join(" ")),
        );
    }

    // Unknown image.
    let r = d.api("GET", "/images/nosuchimage:latest/json", None);
    c.check(
        r.status == 404
            && is_json_error(&r)
            && r.message().is_some_and(|m| m.contains("No such image")),
        "GET /images/nosuchimage:latest/json → 404 No such image",
        &r,
    );
    let r = d.api(
        "POST",
        "/containers/create",
        Some(r#"{"Image": "nosuchimage:latest"}"#),
    );
    c.check(
        r.status == 404 && r.message().is_some_and(|m| m.contains("No such image")),
        "create from an unknown image → 404 No such image",
        &r,
    );
    let out = d.docker(&["image", "inspect", "nosuchimage"]);
    c.fails_with(&out, &["No such image"], "docker image inspect nosuchimage");

    // Name conflict.
    let body = r#"{"Image": "good:latest", "Cmd": ["/bin/true"]}"#;
    let r = d.api("POST", "/containers/create?name=dup", Some(body));
    c.check(r.status == 201, "create ?name=dup → 201", &r);
    let id = r
        .json()
        .and_then(|j| j["Id"].as_str().map(str::to_string))
        .unwrap_or_default();
    c.check(id.len() == 64, "201 carries the 64-hex Id", &r);
    let r = d.api("POST", "/containers/create?name=dup", Some(body));
    c.check(
        r.status == 409
            && is_json_error(&r)
            && r.message()
                .is_some_and(|m| m.contains("dup") && m.contains("already in use")),
        "second create ?name=dup → 409 ... is already in use",
        &r,
    );
    let out = d.docker(&["create", "--name", "dup", "good"]);
    c.fails_with(
        &out,
        &["Conflict", "already in use"],
        "docker create --name dup (taken)",
    );
    let ps = d.docker(&["ps", "-aq", "--no-trunc"]);
    c.check(
        ps.lines() == [id.clone()],
        "exactly one container after the conflicts",
        &ps,
    );

    // Invalid names (Docker's pattern needs 2+ characters), unknown endpoint.
    let out = d.docker(&["create", "--name", "x", "good"]);
    c.fails_with(
        &out,
        &["Invalid container name"],
        "docker create --name x (too short)",
    );
    let r = d.api("POST", "/containers/create?name=bad/name", Some(body));
    c.check(
        r.status == 400 && is_json_error(&r),
        "create ?name=bad/name → 400",
        &r,
    );
    let r = d.api("GET", "/v1.41/nosuchendpoint", None);
    c.check(
        r.status == 404 && is_json_error(&r),
        "unknown endpoint → 404 with a JSON message",
        &r,
    );

    let r = d.api("DELETE", "/containers/dup", None);
    c.check(r.status == 204, "DELETE /containers/dup → 204", &r);
    c.finish_with(|| d.log_tail(40));
}
