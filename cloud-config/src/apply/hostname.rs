//! `hostname`, `fqdn`, `preserve_hostname`: `etc/hostname`, the `127.0.1.1` line of
//! `etc/hosts`, and on the running host the kernel's host name.

use std::path::Path;

use super::{read_or_empty, write_in_place, ApplyError, ApplyReport};
use crate::instance::Metadata;
use crate::schema::CloudConfig;
use crate::types::Hostname;

const STEP: &str = "hostname";

pub(super) fn apply(
    root: &Path,
    is_host: bool,
    cfg: &CloudConfig,
    meta: Option<&Metadata>,
    report: &mut ApplyReport,
) {
    if cfg.preserve_hostname == Some(true) {
        return;
    }
    let (short, fqdn) = match names(cfg, meta) {
        Ok(Some(n)) => n,
        Ok(None) => return,
        Err(e) => return report.fail(STEP, &e),
    };
    let hostname = root.join("etc/hostname");
    match write_in_place(&hostname, format!("{short}\n").as_bytes(), 0o644) {
        Ok(()) => report.ok(STEP, format!("{} is {short}", hostname.display())),
        Err(e) => report.fail(STEP, &e),
    }
    let hosts = root.join("etc/hosts");
    let updated = read_or_empty(&hosts)
        .map(|old| hosts_content(&old, &fqdn, &short))
        .and_then(|new| write_in_place(&hosts, new.as_bytes(), 0o644));
    match updated {
        Ok(()) => report.ok(STEP, format!("{} names {fqdn}", hosts.display())),
        Err(e) => report.fail(STEP, &e),
    }
    if is_host {
        match nix::unistd::sethostname(&short) {
            Ok(()) => report.ok(STEP, format!("kernel host name is {short}")),
            Err(e) => report.fail(
                STEP,
                &ApplyError::Invalid(format!("cannot set the kernel host name: {e}")),
            ),
        }
    }
}

/// The short name and the fully qualified one, as cloud-init picks them: `fqdn` wins for the
/// long name, `hostname` for the short one; a dotted `hostname` alone is both; the
/// datasource's name is the fallback.
fn names(
    cfg: &CloudConfig,
    meta: Option<&Metadata>,
) -> Result<Option<(String, String)>, ApplyError> {
    let first_label = |h: &str| h.split('.').next().unwrap_or(h).to_owned();
    let from_meta = match meta.and_then(|m| m.hostname.as_deref()) {
        Some(h) if !h.is_empty() => Some(
            Hostname::parse(h)
                .map_err(|m| ApplyError::Invalid(format!("metadata hostname: {m}")))?,
        ),
        _ => None,
    };
    let fqdn = cfg.fqdn.as_ref().map(|h| h.as_str().to_owned());
    let host = cfg.hostname.as_ref().or(from_meta.as_ref());
    Ok(match (host, fqdn) {
        (Some(h), Some(f)) if cfg.hostname.is_some() => Some((first_label(h.as_str()), f)),
        (_, Some(f)) => Some((first_label(&f), f)),
        (Some(h), None) => Some((first_label(h.as_str()), h.as_str().to_owned())),
        (None, None) => None,
    })
}

/// `old` with its `127.0.1.1` lines replaced by one naming this host, in the place of the
/// first; every other line is kept as it was.
fn hosts_content(old: &str, fqdn: &str, short: &str) -> String {
    let line = if fqdn == short {
        format!("127.0.1.1 {short}")
    } else {
        format!("127.0.1.1 {fqdn} {short}")
    };
    let mut out = Vec::new();
    let mut placed = false;
    if old.trim().is_empty() {
        out.push("127.0.0.1 localhost".to_owned());
        out.push("::1 localhost ip6-localhost ip6-loopback".to_owned());
    }
    for l in old.lines() {
        if l.split_whitespace().next() == Some("127.0.1.1") {
            if !placed {
                out.push(line.clone());
                placed = true;
            }
        } else {
            out.push(l.to_owned());
        }
    }
    if !placed {
        out.push(line);
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{apply as apply_all, tests::opts};
    use serde_json::json;
    use std::fs;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn writes_hostname_and_keeps_hosts_lines() {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        fs::create_dir_all(&etc).unwrap();
        fs::write(
            etc.join("hosts"),
            "127.0.0.1 localhost\n127.0.1.1 old\n10.0.0.5 db # mine\n",
        )
        .unwrap();
        let ino = fs::metadata(etc.join("hosts")).unwrap().ino();
        let cfg = json!({"hostname": "web1", "fqdn": "web1.example.com"});
        let r = apply_all(&cfg, None, &opts(dir.path()));
        assert!(r.errors.is_empty(), "{r:?}");
        assert_eq!(fs::read_to_string(etc.join("hostname")).unwrap(), "web1\n");
        assert_eq!(
            fs::read_to_string(etc.join("hosts")).unwrap(),
            "127.0.0.1 localhost\n127.0.1.1 web1.example.com web1\n10.0.0.5 db # mine\n"
        );
        assert_eq!(fs::metadata(etc.join("hosts")).unwrap().ino(), ino);
    }

    #[test]
    fn fqdn_and_metadata_fallbacks() {
        let cfg = |v| crate::parse_document("t", &crate::edit::to_document(&v)).unwrap();
        let meta = Metadata {
            hostname: Some("meta-host".into()),
            ..Default::default()
        };
        let n = |v, m| names(&cfg(v).config, m).unwrap();
        assert_eq!(
            n(json!({"fqdn": "a.example.com"}), Some(&meta)),
            Some(("a".into(), "a.example.com".into()))
        );
        assert_eq!(
            n(json!({"hostname": "b.example.com"}), None),
            Some(("b".into(), "b.example.com".into()))
        );
        assert_eq!(
            n(json!({}), Some(&meta)),
            Some(("meta-host".into(), "meta-host".into()))
        );
        assert_eq!(n(json!({}), None), None);
        let bad = Metadata {
            hostname: Some("no such".into()),
            ..Default::default()
        };
        assert!(names(&cfg(json!({})).config, Some(&bad)).is_err());
    }

    #[test]
    fn new_hosts_file_and_preserve() {
        assert_eq!(
            hosts_content("", "h", "h"),
            "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n127.0.1.1 h\n"
        );
        let dir = tempfile::tempdir().unwrap();
        let cfg = json!({"hostname": "x", "preserve_hostname": true});
        let r = apply_all(&cfg, None, &opts(dir.path()));
        assert!(r.errors.is_empty() && r.done.is_empty(), "{r:?}");
        assert!(!dir.path().join("etc/hostname").exists());
    }
}
