//! `ca_certs`: the `trusted` certificates and the bundle programs read, as Debian's
//! `update-ca-certificates` makes it.
//!
//! `trusted` goes to `usr/local/share/ca-certificates/cloud-init-ca-certs.crt` (cloud-init's
//! file name). The bundle `etc/ssl/certs/ca-certificates.crt` is then made again from
//! scratch: every `*.crt` under `usr/share/ca-certificates` (the distribution's; left out
//! with `remove_defaults`), then every `*.crt` under `usr/local/share/ca-certificates`
//! (ours and any an operator or `write_files` put there), each in path order. The bundle is
//! never read back, so applying twice gives the same bytes and nothing is appended twice;
//! a bundle that did not come from those directories is replaced. The default part is what
//! `ros-image-build`'s `ca_bundle` writes in an image.
//!
//! ros's host root ships no certificates: there the bundle holds the trusted ones only. The
//! user engine (the `docker` service) binds `/usr/local/share/ca-certificates` and names it
//! in `SSL_CERT_DIR`, so dockerd trusts them besides its image's bundle.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{io_err, remove_file, replace_file, ApplyError, ApplyReport};
use crate::schema::CaCerts;

const STEP: &str = "ca_certs";
const TRUSTED: &str = "usr/local/share/ca-certificates/cloud-init-ca-certs.crt";
const LOCAL_DIR: &str = "usr/local/share/ca-certificates";
const DIST_DIR: &str = "usr/share/ca-certificates";
const BUNDLE: &str = "etc/ssl/certs/ca-certificates.crt";
const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const END: &str = "-----END CERTIFICATE-----";

pub(super) fn apply(root: &Path, ca: &CaCerts, report: &mut ApplyReport) {
    let mut trusted = String::new();
    for (i, pem) in ca.trusted.iter().flatten().enumerate() {
        let pem = pem.trim();
        if !pem.contains(BEGIN) || !pem.contains(END) {
            let e = ApplyError::Invalid(format!("not a PEM certificate (no {END} line)"));
            report.fail(&format!("{STEP}: trusted[{i}]"), &e);
            continue;
        }
        trusted.push_str(pem);
        trusted.push('\n');
    }
    let path = root.join(TRUSTED);
    let written = if trusted.is_empty() {
        remove_file(&path).map(|_| ())
    } else {
        replace_file(&path, trusted.as_bytes(), 0o644)
    };
    if let Err(e) = written {
        // The bundle would not say what the config does: leave it as it was.
        return report.fail(STEP, &e);
    }
    // An entry may hold a chain: count certificates, not entries.
    let count = trusted.matches(BEGIN).count();
    if count > 0 {
        report.ok(
            STEP,
            format!("{} holds {count} certificate(s)", path.display()),
        );
    }
    let remove_defaults = ca.remove_defaults == Some(true);
    let bundle = root.join(BUNDLE);
    let made = (|| {
        let mut data = Vec::new();
        if !remove_defaults {
            append_crts(&root.join(DIST_DIR), &mut data)?;
        }
        append_crts(&root.join(LOCAL_DIR), &mut data)?;
        replace_file(&bundle, &data, 0o644)?;
        Ok::<_, ApplyError>(String::from_utf8_lossy(&data).matches(BEGIN).count())
    })();
    match made {
        Ok(n) => report.ok(
            STEP,
            format!(
                "{} has {n} certificate(s){}",
                bundle.display(),
                if remove_defaults {
                    " (remove_defaults: none of the distribution's)"
                } else {
                    ""
                }
            ),
        ),
        Err(e) => report.fail(STEP, &e),
    }
}

/// Every `*.crt` file under `dir` (none when it does not exist), in the byte order of their
/// paths, each ending with a newline.
fn append_crts(dir: &Path, out: &mut Vec<u8>) -> Result<(), ApplyError> {
    let mut files = Vec::new();
    crt_files(dir, &mut files)?;
    files.sort();
    for f in files {
        let data = fs::read(&f).map_err(io_err("read", &f))?;
        out.extend_from_slice(&data);
        if !out.is_empty() && !out.ends_with(b"\n") {
            out.push(b'\n');
        }
    }
    Ok(())
}

/// Directories are walked without following symlinks to them (no loops); a symlink to a
/// file counts as the file (Debian links certificates this way).
fn crt_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ApplyError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("read directory", dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err("read directory", dir))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(io_err("stat", &path))?;
        if kind.is_dir() {
            crt_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "crt")
            && (kind.is_file() || fs::metadata(&path).is_ok_and(|m| m.is_file()))
        {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{apply as apply_all, tests::opts};
    use serde_json::json;

    fn pem(body: &str) -> String {
        format!("{BEGIN}\n{body}\n{END}\n")
    }

    /// A root with two distribution certificates, as the docker image has them.
    fn with_defaults() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let mozilla = dir.path().join(DIST_DIR).join("mozilla");
        fs::create_dir_all(&mozilla).unwrap();
        fs::write(mozilla.join("B_Root.crt"), pem("QkI=")).unwrap();
        // No final newline: the bundle still separates it from the next.
        fs::write(mozilla.join("A_Root.crt"), pem("QUE=").trim_end()).unwrap();
        fs::write(mozilla.join("README"), "not a certificate").unwrap();
        (dir, format!("{}{}", pem("QUE="), pem("QkI=")))
    }

    #[test]
    fn trusted_certs_join_the_defaults() {
        let (dir, defaults) = with_defaults();
        let root = dir.path();
        let cfg = json!({"ca_certs": {"trusted": [pem("T25l"), format!("  {}  ", pem("VHdv"))]}});
        let r = apply_all(&cfg, None, &opts(root));
        assert!(r.errors.is_empty(), "{r:?}");
        let ours = format!("{}{}", pem("T25l"), pem("VHdv"));
        assert_eq!(fs::read_to_string(root.join(TRUSTED)).unwrap(), ours);
        let bundle = fs::read_to_string(root.join(BUNDLE)).unwrap();
        assert_eq!(bundle, format!("{defaults}{ours}"));
        assert!(
            r.done.iter().any(|d| d.contains("has 4 certificate(s)")),
            "{r:?}"
        );
        // Again: byte for byte the same, nothing appended twice.
        let r = apply_all(&cfg, None, &opts(root));
        assert!(r.errors.is_empty(), "{r:?}");
        assert_eq!(fs::read_to_string(root.join(BUNDLE)).unwrap(), bundle);
        assert_eq!(fs::read_to_string(root.join(TRUSTED)).unwrap(), ours);
    }

    #[test]
    fn remove_defaults_keeps_only_the_trusted() {
        let (dir, _) = with_defaults();
        let root = dir.path();
        let cfg = json!({"ca_certs": {"remove_defaults": true, "trusted": [pem("T25l")]}});
        let r = apply_all(&cfg, None, &opts(root));
        assert!(r.errors.is_empty(), "{r:?}");
        assert_eq!(fs::read_to_string(root.join(BUNDLE)).unwrap(), pem("T25l"));
        // The distribution's files stay; only the bundle leaves them out.
        assert!(root.join(DIST_DIR).join("mozilla/A_Root.crt").exists());
        // Without trusted certificates, an empty bundle and no file of ours.
        let cfg = json!({"ca_certs": {"remove_defaults": true}});
        apply_all(&cfg, None, &opts(root));
        assert_eq!(fs::read(root.join(BUNDLE)).unwrap(), b"");
        assert!(!root.join(TRUSTED).exists());
    }

    #[test]
    fn a_host_without_defaults_and_local_certs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // One an operator (or write_files) put there comes after ours, in path order.
        let local = root.join(LOCAL_DIR);
        fs::create_dir_all(&local).unwrap();
        fs::write(local.join("corp.crt"), pem("Q29ycA==")).unwrap();
        let cfg = json!({"ca_certs": {"trusted": [pem("T25l"), "-----BEGIN CERTIFICATE-----\nx"]}});
        let r = apply_all(&cfg, None, &opts(root));
        assert_eq!(r.errors.len(), 1, "{r:?}");
        assert!(r.errors[0].starts_with("ca_certs: trusted[1]: "), "{r:?}");
        assert_eq!(
            fs::read_to_string(root.join(BUNDLE)).unwrap(),
            format!("{}{}", pem("T25l"), pem("Q29ycA=="))
        );
    }
}
