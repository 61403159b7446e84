//! Reaching a booted ros from the tests: the artifacts of `dist/` (by the manifest), NoCloud
//! and config-drive seeds built with xorriso per test, an SSH key per test, and SSH over a
//! loopback host-forward of QEMU's user network.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{run, workspace_dir, Output};

/// A file of `dist/` as `dist/manifest.json` names it by kind (`qcow2`, `raw`, `iso`,
/// `kernel`, `initrd`); panics with the way to make it when it is missing.
pub fn artifact(kind: &str) -> PathBuf {
    let dist = workspace_dir().join("dist");
    let manifest = dist.join("manifest.json");
    let m: serde_json::Value = fs::read(&manifest)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| {
            panic!(
                "{} is missing or unreadable: build the artifacts first (`make image`; \
                 `make test` does)",
                manifest.display()
            )
        });
    let file = m["artifacts"][kind]["file"].as_str().unwrap_or_else(|| {
        panic!(
            "{}: no artifact {kind:?} (`make image` builds it)",
            manifest.display()
        )
    });
    let p = dist.join(file);
    assert!(p.is_file(), "{} is missing (`make image`)", p.display());
    p
}

/// The version the artifacts were built with.
pub fn dist_version() -> String {
    let manifest = workspace_dir().join("dist/manifest.json");
    fs::read(&manifest)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|m| m["version"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("{}: no version", manifest.display()))
}

/// A TCP port on 127.0.0.1 free when asked.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// An ed25519 key pair in `dir`: (private key path, public key line).
pub fn ssh_key(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    let _ = fs::remove_file(&key);
    let _ = fs::remove_file(key.with_extension("pub"));
    let out = run(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&key),
        Duration::from_secs(30),
    );
    assert!(out.success(), "ssh-keygen: {out}");
    let public = fs::read_to_string(format!("{}.pub", key.display())).expect("public key");
    (key, public.trim().to_string())
}

/// An ISO 9660 seed labelled `label` (`cidata`, `config-2`) holding `files` (path, text),
/// as cloud-localds and OpenStack make them (Joliet and Rock Ridge names).
pub fn seed_iso(dir: &Path, label: &str, files: &[(&str, &str)]) -> PathBuf {
    let content = dir.join(format!("{label}-seed"));
    let _ = fs::remove_dir_all(&content);
    for (path, text) in files {
        let p = content.join(path);
        fs::create_dir_all(p.parent().expect("a parent")).expect("seed dir");
        fs::write(&p, text).expect("seed file");
    }
    let iso = dir.join(format!("{label}.iso"));
    iso_of_dir(&content, label, &iso);
    iso
}

/// The ISO 9660 image (Joliet and Rock Ridge names, volume label `label`) of `dir`, written
/// to `out` (a file, or a device node under a test root).
pub fn iso_of_dir(dir: &Path, label: &str, out: &Path) {
    let made = run(
        Command::new("xorriso")
            .args(["-as", "mkisofs", "-quiet", "-J", "-R", "-V", label, "-o"])
            .arg(out)
            .arg(dir),
        Duration::from_secs(60),
    );
    assert!(
        made.success(),
        "xorriso (a seed ISO; apt-get install xorriso): {made}"
    );
}

/// The arguments of an `ssh` that logs in with `key` alone on `port`, never asks, and
/// does not check host keys (each VM and container makes its own at first start).
pub fn ssh_args(key: &Path, port: u16) -> Vec<std::ffi::OsString> {
    let mut a: Vec<std::ffi::OsString> = ["-F", "/dev/null", "-p", &port.to_string(), "-i"]
        .iter()
        .map(Into::into)
        .collect();
    a.push(key.into());
    for o in [
        "BatchMode=yes",
        "IdentitiesOnly=yes",
        "StrictHostKeyChecking=no",
        "UserKnownHostsFile=/dev/null",
        "ConnectTimeout=10",
        "LogLevel=ERROR",
    ] {
        a.push("-o".into());
        a.push(o.into());
    }
    a
}

/// SSH to `user@127.0.0.1:port` with `key`, running `cmd`.
pub fn ssh(port: u16, key: &Path, user: &str, cmd: &str, timeout: Duration) -> Output {
    run(
        Command::new("ssh")
            .args(ssh_args(key, port))
            .arg(format!("{user}@127.0.0.1"))
            .arg(cmd),
        timeout,
    )
}

/// Retries `true` over SSH until it works or `timeout` passes; the last attempt.
pub fn wait_ssh(port: u16, key: &Path, user: &str, timeout: Duration) -> Output {
    let deadline = Instant::now() + timeout;
    loop {
        let out = ssh(port, key, user, "true", Duration::from_secs(30));
        if out.success() || Instant::now() >= deadline {
            return out;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// A copy-on-write overlay of `base` (qcow2) at `path`, so tests never change the artifact.
pub fn overlay(base: &Path, path: &Path) {
    let out = run(
        Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
            .arg(base)
            .arg(path),
        Duration::from_secs(30),
    );
    assert!(out.success(), "qemu-img create (overlay): {out}");
}

/// A sparse copy of a raw image.
pub fn copy_sparse(from: &Path, to: &Path) {
    let out = run(
        Command::new("cp").arg("--sparse=always").arg(from).arg(to),
        Duration::from_secs(120),
    );
    assert!(out.success(), "cp --sparse: {out}");
}
