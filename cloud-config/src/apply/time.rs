//! `timezone` and `ntp`: the host's zone files, and the NTP sources the ntp service (chrony
//! in a system container) reads when it starts.
//!
//! `ntp:` becomes `var/lib/ros/ntp/sources.d/cloud-config.sources`: the ntp service binds
//! `/var/lib/ros/ntp` as its `/var/lib/chrony`, and its `chrony.conf` has
//! `sourcedir /var/lib/chrony/sources.d`. The file is on the state partition, so it is
//! removed when the config no longer names a server or pool, and with `enabled: false`.
//! `enabled: false` does not stop the service (`ros.services_include.ntp: false` does); it
//! only drops these sources, leaving the service's own (`ROS_NTP_SERVERS`, or its default
//! pool). A running chronyd reads the file again on `chronyc reload sources`; at boot the
//! apply runs before the ntp service starts.
//!
//! `timezone:` becomes `etc/timezone` (the name) and `etc/localtime` (a copy of the zone's
//! TZif file from `usr/share/zoneinfo`, not a symlink: a container binding the file would
//! see a link to a path it does not have). Without zoneinfo only UTC can be set, by removing
//! `etc/localtime`, which glibc and musl read as UTC.

use std::fs;
use std::io;
use std::path::Path;

use super::{
    create_dirs, io_err, remove_file, replace_file, write_in_place, ApplyError, ApplyReport,
};
use crate::edit::write_atomic;
use crate::schema::Ntp;

const NTP_SOURCES: &str = "var/lib/ros/ntp/sources.d/cloud-config.sources";
const TIMEZONE: &str = "etc/timezone";
const LOCALTIME: &str = "etc/localtime";
const ZONEINFO: &str = "usr/share/zoneinfo";
/// Names that mean UTC even where no zoneinfo is installed (ros's host has none).
const UTC_NAMES: [&str; 2] = ["UTC", "Etc/UTC"];

/// Writes or removes the chrony sources file for `ntp` (`None`: the config has no `ntp:`).
pub(super) fn ntp(root: &Path, ntp: Option<&Ntp>, report: &mut ApplyReport) {
    const STEP: &str = "ntp";
    let path = root.join(NTP_SOURCES);
    let remove = |why: &str, report: &mut ApplyReport| match remove_file(&path) {
        Ok(true) => report.ok(STEP, format!("{} removed ({why})", path.display())),
        Ok(false) => {}
        Err(e) => report.fail(STEP, &e),
    };
    let Some(ntp) = ntp else {
        return remove("no ntp: in the config", report);
    };
    if ntp.enabled == Some(false) {
        report.ok(
            STEP,
            "enabled: false: no sources from cloud-config; the ntp service still runs with \
             its own (ros.services_include.ntp: false turns it off)",
        );
        return remove("enabled: false", report);
    }
    let mut text = String::from(
        "# Written by `ros cloud-init apply` from the cloud-config's ntp: at every apply.\n",
    );
    let mut count = [0usize; 2];
    let lists = [("server", &ntp.servers), ("pool", &ntp.pools)];
    for (kind, (directive, list)) in lists.into_iter().enumerate() {
        for name in list.iter().flatten() {
            match ntp_host(name.as_str()) {
                Ok(host) => {
                    // iburst: four quick polls at start, as cloud-init's chrony template has.
                    text.push_str(&format!("{directive} {host} iburst\n"));
                    count[kind] += 1;
                }
                Err(e) => report.fail(STEP, &e),
            }
        }
    }
    if count == [0, 0] {
        return remove("no servers or pools", report);
    }
    match replace_file(&path, text.as_bytes(), 0o644) {
        Ok(()) => report.ok(
            STEP,
            format!(
                "{} names {} server(s), {} pool(s)",
                path.display(),
                count[0],
                count[1]
            ),
        ),
        Err(e) => report.fail(STEP, &e),
    }
}

/// A host name or address alone: anything else (a blank, `#`) would add chrony options or
/// end the line early.
fn ntp_host(s: &str) -> Result<&str, ApplyError> {
    let h = s.trim();
    let ok = !h.is_empty()
        && h.len() <= 253
        && !h.starts_with('-')
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'_' | b'%'));
    if ok {
        Ok(h)
    } else {
        Err(ApplyError::Invalid(format!(
            "{s:?} is not a host name or address"
        )))
    }
}

/// Sets the zone; an unknown one changes nothing and is reported.
pub(super) fn timezone(root: &Path, name: &str, report: &mut ApplyReport) {
    const STEP: &str = "timezone";
    match set_timezone(root, name) {
        Ok(done) => report.ok(STEP, done),
        Err(e) => report.fail(STEP, &e),
    }
}

fn set_timezone(root: &Path, name: &str) -> Result<String, ApplyError> {
    let name = zone_name(name)?;
    let zone = root.join(ZONEINFO).join(name);
    let localtime = root.join(LOCALTIME);
    let timezone = root.join(TIMEZONE);
    let missing = || ApplyError::Invalid(format!("{name}: no such zone in /{ZONEINFO}"));
    match fs::read(&zone) {
        Ok(data) if data.starts_with(b"TZif") => {
            write_shared(&localtime, &data)?;
            write_shared(&timezone, format!("{name}\n").as_bytes())?;
            Ok(format!(
                "{name} ({} from {})",
                localtime.display(),
                zone.display()
            ))
        }
        Ok(_) => Err(ApplyError::Invalid(format!(
            "{name}: {} is not a TZif file",
            zone.display()
        ))),
        Err(e) if is_missing(&e) && UTC_NAMES.contains(&name) => {
            remove_file(&localtime)?;
            write_shared(&timezone, format!("{name}\n").as_bytes())?;
            Ok(format!(
                "{name} (no {}: no {}, which is UTC)",
                zone.display(),
                localtime.display()
            ))
        }
        // A directory (`Europe`) is not a zone either.
        Err(e) if is_missing(&e) || e.kind() == io::ErrorKind::IsADirectory => Err(missing()),
        Err(e) => Err(io_err("read", &zone)(e)),
    }
}

fn is_missing(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// A tz database name (`Europe/Berlin`, `Etc/GMT+5`, `UTC`): relative, no `.` at all (so no
/// `..`), letters, digits and `_ + - /` only.
fn zone_name(s: &str) -> Result<&str, ApplyError> {
    let name = s.trim();
    let ok = !name.is_empty()
        && name.split('/').all(|c| !c.is_empty())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'/'));
    if ok {
        Ok(name)
    } else {
        Err(ApplyError::Invalid(format!(
            "{s:?} is not a time zone name"
        )))
    }
}

/// For `etc/localtime` and `etc/timezone`, which a container may bind one by one: a regular
/// file is rewritten in place (the bind keeps the inode it was made with); a symlink (a
/// distribution's `localtime -> /usr/share/zoneinfo/…`) or nothing is replaced by a new
/// file, never written through into the zone file a link names.
fn write_shared(path: &Path, data: &[u8]) -> Result<(), ApplyError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => {
            let old = fs::read(path).map_err(io_err("read", path))?;
            if old == data {
                return Ok(());
            }
            write_in_place(path, data, 0o644)
        }
        Ok(m) if m.file_type().is_symlink() => {
            if let Some(dir) = path.parent() {
                create_dirs(dir)?;
            }
            write_atomic(path, data, 0o644).map_err(io_err("write", path))
        }
        _ => replace_file(path, data, 0o644),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{apply as apply_all, tests::opts};
    use serde_json::json;
    use std::os::unix::fs::MetadataExt;

    /// A zone file as tzdata has them: only the magic matters here.
    fn fake_zone(root: &Path, name: &str, body: &str) -> Vec<u8> {
        let p = root.join(ZONEINFO).join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        let data = format!("TZif2{body}").into_bytes();
        fs::write(&p, &data).unwrap();
        data
    }

    #[test]
    fn ntp_servers_and_pools_to_a_sources_file() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = json!({"ntp": {
            "servers": ["ntp1.example.com", "10.0.0.1", "fe80::1%eth0"],
            "pools": ["2.debian.pool.ntp.org"],
        }});
        let r = apply_all(&cfg, None, &opts(dir.path()));
        assert!(r.errors.is_empty(), "{r:?}");
        let path = dir.path().join(NTP_SOURCES);
        let text = fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                "server ntp1.example.com iburst",
                "server 10.0.0.1 iburst",
                "server fe80::1%eth0 iburst",
                "pool 2.debian.pool.ntp.org iburst",
            ]
        );
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o644);
        assert!(r.done.iter().any(|d| d.contains("3 server(s), 1 pool(s)")));
        // The same config again: the same bytes.
        apply_all(&cfg, None, &opts(dir.path()));
        assert_eq!(fs::read_to_string(&path).unwrap(), text);
    }

    #[test]
    fn ntp_refuses_what_is_not_a_host() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = json!({"ntp": {"servers": ["a.example iburst minpoll 0", "b.example", "#x"]}});
        let r = apply_all(&cfg, None, &opts(dir.path()));
        assert_eq!(r.errors.len(), 2, "{r:?}");
        let text = fs::read_to_string(dir.path().join(NTP_SOURCES)).unwrap();
        assert!(text.ends_with("\nserver b.example iburst\n"), "{text}");
    }

    #[test]
    fn ntp_disabled_or_gone_removes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(NTP_SOURCES);
        let on = json!({"ntp": {"servers": ["10.0.0.1"]}});
        apply_all(&on, None, &opts(dir.path()));
        assert!(path.exists());
        let r = apply_all(
            &json!({"ntp": {"enabled": false, "servers": ["10.0.0.1"]}}),
            None,
            &opts(dir.path()),
        );
        assert!(r.errors.is_empty(), "{r:?}");
        assert!(!path.exists());
        assert!(r.done.iter().any(|d| d.contains("still runs")), "{r:?}");
        // A config without ntp: leaves no stale sources on the state partition.
        apply_all(&on, None, &opts(dir.path()));
        let r = apply_all(&json!({"hostname": "h"}), None, &opts(dir.path()));
        assert!(!path.exists());
        assert!(r.done.iter().any(|d| d.contains("removed")), "{r:?}");
        // Enabled with nothing listed: the service's own sources.
        apply_all(&on, None, &opts(dir.path()));
        apply_all(&json!({"ntp": {"enabled": true}}), None, &opts(dir.path()));
        assert!(!path.exists());
    }

    #[test]
    fn timezone_copies_the_zone() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let data = fake_zone(root, "Europe/Berlin", "berlin");
        fs::create_dir_all(root.join("etc")).unwrap();
        // A distribution's symlink is replaced, not written through.
        std::os::unix::fs::symlink("../usr/share/zoneinfo/Europe/Berlin", root.join(LOCALTIME))
            .unwrap();
        let r = apply_all(&json!({"timezone": "Europe/Berlin"}), None, &opts(root));
        assert!(r.errors.is_empty(), "{r:?}");
        let lt = root.join(LOCALTIME);
        assert!(fs::symlink_metadata(&lt).unwrap().file_type().is_file());
        assert_eq!(fs::read(&lt).unwrap(), data);
        assert_eq!(
            fs::read_to_string(root.join(TIMEZONE)).unwrap(),
            "Europe/Berlin\n"
        );
        // Another zone rewrites the regular file in place (a bind would see it).
        let ino = fs::metadata(&lt).unwrap().ino();
        let tokyo = fake_zone(root, "Asia/Tokyo", "tokyo");
        let r = apply_all(&json!({"timezone": "Asia/Tokyo"}), None, &opts(root));
        assert!(r.errors.is_empty(), "{r:?}");
        assert_eq!(fs::read(&lt).unwrap(), tokyo);
        assert_eq!(fs::metadata(&lt).unwrap().ino(), ino);
        assert_eq!(
            fs::read(root.join(ZONEINFO).join("Europe/Berlin")).unwrap(),
            data
        );
    }

    #[test]
    fn unknown_zone_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let data = fake_zone(root, "Europe/Berlin", "berlin");
        apply_all(&json!({"timezone": "Europe/Berlin"}), None, &opts(root));
        for (name, want) in [
            (
                "Europe/Berlinn",
                "timezone: Europe/Berlinn: no such zone in /usr/share/zoneinfo",
            ),
            (
                "Europe",
                "timezone: Europe: no such zone in /usr/share/zoneinfo",
            ),
            (
                "../../etc/passwd",
                "timezone: \"../../etc/passwd\" is not a time zone name",
            ),
            ("/etc/passwd", "is not a time zone name"),
        ] {
            let r = apply_all(&json!({"timezone": name}), None, &opts(root));
            assert_eq!(r.errors.len(), 1, "{r:?}");
            assert!(r.errors[0].contains(want), "{r:?}");
            assert_eq!(fs::read(root.join(LOCALTIME)).unwrap(), data);
            assert_eq!(
                fs::read_to_string(root.join(TIMEZONE)).unwrap(),
                "Europe/Berlin\n"
            );
        }
    }

    #[test]
    fn utc_without_zoneinfo_removes_localtime() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(root.join(LOCALTIME), "TZif2old").unwrap();
        let r = apply_all(&json!({"timezone": "Etc/UTC"}), None, &opts(root));
        assert!(r.errors.is_empty(), "{r:?}");
        assert!(!root.join(LOCALTIME).exists());
        assert_eq!(
            fs::read_to_string(root.join(TIMEZONE)).unwrap(),
            "Etc/UTC\n"
        );
        // With zoneinfo, UTC is a copy like any zone.
        let utc = fake_zone(root, "UTC", "utc");
        let r = apply_all(&json!({"timezone": "UTC"}), None, &opts(root));
        assert!(r.errors.is_empty(), "{r:?}");
        assert_eq!(fs::read(root.join(LOCALTIME)).unwrap(), utc);
    }

    #[test]
    fn zone_names() {
        for ok in [
            "UTC",
            "Europe/Berlin",
            "Etc/GMT+5",
            "America/Port-au-Prince",
        ] {
            assert_eq!(zone_name(ok).unwrap(), ok);
        }
        for bad in [
            "",
            "/UTC",
            "Europe//Berlin",
            "Europe/",
            "a/../b",
            "UTC\u{0}",
            "a b",
        ] {
            assert!(zone_name(bad).is_err(), "{bad:?}");
        }
    }
}
