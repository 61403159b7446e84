//! `write_files`: decoded content, mode, owner, append. A file whose owner is unknown or
//! whose path leaves the root is reported and not written; the others still are.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::accounts::{Kind, Table};
use super::{chmod, chown, create_dirs, io_err, under_root, ApplyError, ApplyReport};
use crate::edit::write_atomic;
use crate::schema::{Owner, WriteFile};

const STEP: &str = "write_files";
const DEFAULT_MODE: u32 = 0o644;

pub(super) fn apply<'a>(
    root: &Path,
    files: impl Iterator<Item = &'a WriteFile>,
    report: &mut ApplyReport,
) {
    for f in files {
        let step = format!("{STEP}: {}", f.path.as_str());
        match write_one(root, f) {
            Ok(()) => report.ok(&step, "written"),
            Err(e) => report.fail(&step, &e),
        }
    }
}

fn write_one(root: &Path, f: &WriteFile) -> Result<(), ApplyError> {
    let path = under_root(root, f.path.as_str())?;
    let data = f.decoded().map_err(ApplyError::Invalid)?;
    // The owner is resolved before anything is written: a file is written right or not at all.
    let owner = f.owner.as_ref().map(|o| resolve(root, o)).transpose()?;
    let mode = f.permissions.map_or(DEFAULT_MODE, |m| m.bits());
    if let Some(dir) = path.parent() {
        create_dirs(dir)?;
    }
    if f.append {
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(mode)
            .open(&path)
            .map_err(io_err("open", &path))?;
        file.write_all(&data).map_err(io_err("append to", &path))?;
        file.sync_all().map_err(io_err("sync", &path))?;
    } else {
        write_atomic(&path, &data, mode).map_err(io_err("write", &path))?;
    }
    if let Some((uid, gid)) = owner {
        chown(&path, uid, gid)?;
    }
    // After chown, which clears set-id bits, and for an appended file that already existed.
    chmod(&path, mode)
}

/// `user[:group]` as ids: numeric, or names looked up in the root's `etc/passwd` and
/// `etc/group` (not the running system's, which may be another root's). Without a group the
/// file keeps the one it has.
fn resolve(root: &Path, owner: &Owner) -> Result<(u32, Option<u32>), ApplyError> {
    let lookup = |kind: Kind, name: &str| -> Result<u32, ApplyError> {
        if let Ok(id) = name.parse::<u32>() {
            return Ok(id);
        }
        Table::read(root, kind)?.id(name).ok_or_else(|| {
            let what = if kind == Kind::Passwd {
                "user"
            } else {
                "group"
            };
            ApplyError::Invalid(format!("owner: no {what} {name:?}"))
        })
    };
    let uid = lookup(Kind::Passwd, owner.user.as_str())?;
    let gid = owner
        .group
        .as_ref()
        .map(|g| lookup(Kind::Group, g.as_str()))
        .transpose()?;
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use crate::apply::{apply as apply_all, tests::opts};
    use base64::Engine;
    use flate2::{write::GzEncoder, Compression};
    use serde_json::json;
    use std::fs;
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;

    fn host() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        fs::create_dir_all(&etc).unwrap();
        fs::write(
            etc.join("passwd"),
            "root:x:0:0:root:/root:/bin/sh\nweb:x:1200:1200::/home/web:/bin/sh\n",
        )
        .unwrap();
        fs::write(etc.join("group"), "root:x:0:\nweb:x:1200:\nlogs:x:1300:\n").unwrap();
        dir
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn decodes_modes_owners_and_append() {
        let dir = host();
        let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
        fs::write(dir.path().join("etc/log.conf"), "first\n").unwrap();
        let cfg = json!({"write_files": [
            {"path": "/etc/plain", "content": "hello\n"},
            {"path": "/etc/b64", "content": b64(b"binary\0data"), "encoding": "b64",
             "permissions": "0600", "owner": "web:logs"},
            {"path": "/opt/deep/dir/gz", "content": b64(&gzip(b"zipped\n")),
             "encoding": "gz+b64", "permissions": "0755", "owner": "1200"},
            {"path": "/etc/log.conf", "content": "second\n", "append": true,
             "owner": "root:root", "permissions": "0640"},
            {"path": "/etc/bad-owner", "content": "x", "owner": "nobody-here:web"},
            {"path": "/etc/bad-group", "content": "x", "owner": "web:nogroup"},
            {"path": "/etc/after", "content": "still written"},
        ]});
        let r = apply_all(&cfg, None, &crate::apply::tests::opts(dir.path()));
        assert_eq!(r.errors.len(), 2, "{r:?}");
        assert!(r.errors[0].contains("/etc/bad-owner") && r.errors[0].contains("no user"));
        assert!(r.errors[1].contains("/etc/bad-group") && r.errors[1].contains("no group"));
        let p = |s: &str| dir.path().join(s);
        let meta = |s: &str| {
            let m = fs::metadata(p(s)).unwrap();
            (m.mode() & 0o7777, m.uid(), m.gid())
        };
        assert_eq!(fs::read(p("etc/plain")).unwrap(), b"hello\n");
        assert_eq!(meta("etc/plain"), (0o644, 0, 0));
        assert_eq!(fs::read(p("etc/b64")).unwrap(), b"binary\0data");
        assert_eq!(meta("etc/b64"), (0o600, 1200, 1300));
        assert_eq!(fs::read(p("opt/deep/dir/gz")).unwrap(), b"zipped\n");
        assert_eq!(meta("opt/deep/dir/gz"), (0o755, 1200, 0));
        assert_eq!(meta("opt/deep").0, 0o755);
        assert_eq!(fs::read(p("etc/log.conf")).unwrap(), b"first\nsecond\n");
        assert_eq!(meta("etc/log.conf"), (0o640, 0, 0));
        assert!(!p("etc/bad-owner").exists() && !p("etc/bad-group").exists());
        assert_eq!(fs::read(p("etc/after")).unwrap(), b"still written");
    }

    #[test]
    fn deferred_files_come_last() {
        let dir = host();
        // The deferred file is owned by a user this same config makes.
        let cfg = json!({
            "users": [{"name": "svc"}],
            "write_files": [
                {"path": "/home/svc/conf", "content": "x", "owner": "svc:svc", "defer": true},
                {"path": "/etc/early", "content": "y"},
            ],
        });
        let r = apply_all(&cfg, None, &opts(dir.path()));
        assert!(r.errors.is_empty(), "{r:?}");
        let m = fs::metadata(dir.path().join("home/svc/conf")).unwrap();
        assert_eq!((m.uid(), m.gid()), (1101, 1101));
        let pos = |s: &str| r.done.iter().position(|l| l.contains(s)).unwrap();
        assert!(pos("/etc/early") < pos("/home/svc/conf"));
    }
}
