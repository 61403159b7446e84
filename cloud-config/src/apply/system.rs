//! `ros.sysctl`, `ros.modules`, `ros.environment` and `mounts`: files PID 1 and the shells
//! read. Loading modules and mounting are PID 1's job; here they are only written down.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use super::{
    create_dirs, io_err, read_or_empty, replace_file, under_root, ApplyError, ApplyReport,
};
use crate::types::SingleLine;

const MODULES: &str = "etc/modules-load.d/cloud-config.conf";
const ENVIRONMENT: &str = "etc/environment";
const FSTAB: &str = "etc/fstab";
const MOUNTS_BEGIN: &str = "# ros cloud-config mounts begin";
const MOUNTS_END: &str = "# ros cloud-config mounts end";

/// Each key to `proc/sys/<key with . as />`. The file must exist: the kernel makes them, and
/// a missing one is a typo or a module not loaded.
pub(super) fn sysctl(root: &Path, map: &BTreeMap<String, SingleLine>, report: &mut ApplyReport) {
    for (key, value) in map {
        let step = format!("sysctl: {key}");
        match write_sysctl(root, key, value.as_str()) {
            Ok(()) => report.ok(&step, format!("= {}", value.as_str())),
            Err(e) => report.fail(&step, &e),
        }
    }
}

fn write_sysctl(root: &Path, key: &str, value: &str) -> Result<(), ApplyError> {
    let rel = key.replace('.', "/");
    let valid = !key.is_empty()
        && rel.split('/').all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'*' | b'@'))
        });
    if !valid {
        return Err(ApplyError::Invalid(format!("{key:?} is not a sysctl key")));
    }
    let path = under_root(root, &format!("proc/sys/{rel}"))?;
    // sysctl(8) opens for writing with truncation too; procfs ignores it.
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .map_err(io_err("open", &path))?;
    f.write_all(value.as_bytes())
        .map_err(io_err("write", &path))
}

/// The list, one module a line, for PID 1's loader.
pub(super) fn modules(root: &Path, list: &[SingleLine], report: &mut ApplyReport) {
    let path = root.join(MODULES);
    let result = (|| {
        let mut text = String::new();
        for m in list {
            let m = m.as_str().trim();
            if m.is_empty() || m.contains(char::is_whitespace) || m.starts_with('#') {
                return Err(ApplyError::Invalid(format!("{m:?} is not a module name")));
            }
            text.push_str(m);
            text.push('\n');
        }
        write(&path, &text)
    })();
    match result {
        Ok(()) => report.ok(
            "modules",
            format!("{} lists {}", path.display(), list.len()),
        ),
        Err(e) => report.fail("modules", &e),
    }
}

fn write(path: &Path, text: &str) -> Result<(), ApplyError> {
    replace_file(path, text.as_bytes(), 0o644)
}

/// `KEY=value` lines in `etc/environment`: a key already there is replaced where it is,
/// other lines are kept, new keys are appended. A bad key is reported, the others still go.
pub(super) fn environment(
    root: &Path,
    map: &BTreeMap<String, SingleLine>,
    report: &mut ApplyReport,
) {
    let path = root.join(ENVIRONMENT);
    let old = match read_or_empty(&path) {
        Ok(s) => s,
        Err(e) => return report.fail("environment", &e),
    };
    let mut wanted: BTreeMap<&str, String> = BTreeMap::new();
    for (k, v) in map {
        if is_env_key(k) {
            wanted.insert(k, format!("{k}={}", env_value(v.as_str())));
        } else {
            let e = ApplyError::Invalid(format!("{k:?} is not a variable name"));
            report.fail("environment", &e);
        }
    }
    let mut lines = Vec::new();
    for l in old.lines() {
        let key = l.split_once('=').map(|(k, _)| k.trim());
        match key.and_then(|k| wanted.remove(k)) {
            Some(new) => lines.push(new),
            None => lines.push(l.to_owned()),
        }
    }
    lines.extend(wanted.into_values());
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    if text == old {
        return;
    }
    match write(&path, &text) {
        Ok(()) => report.ok("environment", format!("{} written", path.display())),
        Err(e) => report.fail("environment", &e),
    }
}

fn is_env_key(k: &str) -> bool {
    let mut b = k.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Bare when safe; otherwise double-quoted with `"`, `\`, `$` and `` ` `` escaped, which
/// both pam_env and a shell sourcing the file read back as the same value.
fn env_value(v: &str) -> String {
    let plain = !v.is_empty()
        && v.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'/' | b'.' | b'-' | b'_' | b':' | b',' | b'+' | b'@' | b'%' | b'='
                )
        });
    if plain {
        return v.to_owned();
    }
    let mut s = String::from("\"");
    for c in v.chars() {
        if matches!(c, '"' | '\\' | '$' | '`') {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

/// cloud-init `mounts:` entries (`[dev, dir, type, opts, dump, pass]`, missing fields as
/// cloud-init defaults them) as `etc/fstab` lines between markers, rewritten whole each
/// time; lines outside the markers are the user's. Mount points are made under the root.
pub(super) fn mounts(root: &Path, entries: &[Vec<SingleLine>], report: &mut ApplyReport) {
    let mut block = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let step = format!("mounts[{i}]");
        match fstab_line(root, e) {
            Ok(Some(line)) => block.push(line),
            Ok(None) => {}
            Err(err) => report.fail(&step, &err),
        }
    }
    let path = root.join(FSTAB);
    let result = read_or_empty(&path).and_then(|old| {
        let new = fstab_content(&old, &block);
        if new == old {
            return Ok(false);
        }
        write(&path, &new).map(|()| true)
    });
    match result {
        Ok(true) => report.ok(
            "mounts",
            format!("{} has {} mount(s)", path.display(), block.len()),
        ),
        Ok(false) => {}
        Err(e) => report.fail("mounts", &e),
    }
}

/// One fstab line; `None` for an entry without a mount point (cloud-init's way to say "do
/// not mount this").
fn fstab_line(root: &Path, e: &[SingleLine]) -> Result<Option<String>, ApplyError> {
    const DEFAULTS: [&str; 6] = ["", "", "auto", "defaults,nofail", "0", "2"];
    let field = |i: usize| {
        e.get(i)
            .map(|f| f.as_str().trim())
            .filter(|f| !f.is_empty() && *f != "null")
            .unwrap_or(DEFAULTS[i])
    };
    let (dev, dir) = (field(0), field(1));
    if dev.is_empty() || dir.is_empty() {
        return Ok(None);
    }
    if e.len() > 6 {
        return Err(ApplyError::Invalid(format!("{dev}: more than 6 fields")));
    }
    // cloud-init's short form: `sdb` is `/dev/sdb`; `LABEL=x`, `UUID=x`, `host:/export` as is.
    let dev = if dev.starts_with('/') || dev.contains(['=', ':']) {
        dev.to_owned()
    } else {
        format!("/dev/{dev}")
    };
    let fstype = field(2);
    if fstype != "swap" && dir != "none" {
        if !dir.starts_with('/') {
            return Err(ApplyError::Invalid(format!(
                "{dir:?} is not an absolute path"
            )));
        }
        create_dirs(&under_root(root, dir)?)?;
    }
    let fields = [dev.as_str(), dir, fstype, field(3), field(4), field(5)];
    Ok(Some(fields.map(fstab_escape).join(" ")))
}

/// fstab(5): blanks and backslashes in a field are written as octal escapes.
fn fstab_escape(f: &str) -> String {
    let mut s = String::new();
    for c in f.chars() {
        match c {
            ' ' => s.push_str("\\040"),
            '\t' => s.push_str("\\011"),
            '\\' => s.push_str("\\134"),
            c => s.push(c),
        }
    }
    s
}

fn fstab_content(old: &str, block: &[String]) -> String {
    let mut out = Vec::new();
    let mut inside = false;
    for l in old.lines() {
        match l.trim() {
            MOUNTS_BEGIN => inside = true,
            MOUNTS_END => inside = false,
            _ if !inside => out.push(l.to_owned()),
            _ => {}
        }
    }
    if !block.is_empty() {
        out.push(MOUNTS_BEGIN.to_owned());
        out.extend(block.iter().cloned());
        out.push(MOUNTS_END.to_owned());
    }
    let mut s = out.join("\n");
    if !s.is_empty() {
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{apply as apply_all, tests::opts};
    use serde_json::json;
    use std::fs;

    #[test]
    fn sysctl_writes_existing_keys() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("proc/sys/net/ipv4/ip_forward");
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(&f, "0\n").unwrap();
        let cfg = json!({"ros": {"sysctl": {
            "net.ipv4.ip_forward": "1", "vm.no_such": "5", "../etc/x": "1"}}});
        let r = apply_all(&cfg, None, &opts(dir.path()));
        assert_eq!(fs::read_to_string(&f).unwrap(), "1");
        assert_eq!(r.errors.len(), 2, "{r:?}");
        assert!(r.errors.iter().any(|e| e.contains("vm.no_such")), "{r:?}");
        assert!(!dir.path().join("proc/sys/vm/no_such").exists());
    }

    #[test]
    fn modules_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("etc")).unwrap();
        fs::write(
            dir.path().join("etc/environment"),
            "PATH=/usr/bin:/bin\nEDITOR=vi\n",
        )
        .unwrap();
        let cfg = json!({"ros": {
            "modules": ["overlay", "br_netfilter"],
            "environment": {"EDITOR": "nano", "GREETING": "hello world", "PRICE": "$5",
                            "bad-key": "x"},
        }});
        let r = apply_all(&cfg, None, &opts(dir.path()));
        assert_eq!(r.errors.len(), 1, "{r:?}");
        assert_eq!(
            fs::read_to_string(dir.path().join(MODULES)).unwrap(),
            "overlay\nbr_netfilter\n"
        );
        assert_eq!(
            fs::read_to_string(dir.path().join(ENVIRONMENT)).unwrap(),
            "PATH=/usr/bin:/bin\nEDITOR=nano\nGREETING=\"hello world\"\nPRICE=\"\\$5\"\n"
        );
    }

    #[test]
    fn mounts_are_managed_between_markers() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("etc")).unwrap();
        let mine = "LABEL=ROS_STATE / ext4 defaults 0 1\n";
        fs::write(dir.path().join(FSTAB), mine).unwrap();
        let cfg = json!({"mounts": [
            ["sdb", "/mnt/data"],
            ["LABEL=logs", "/var/log/app", "ext4", "noatime", "0", "0"],
            ["swapfile", "none", "swap", "sw", "0", "0"],
            ["ephemeral0"],
        ]});
        let r = apply_all(&cfg, None, &opts(dir.path()));
        assert!(r.errors.is_empty(), "{r:?}");
        let want = format!(
            "{mine}{MOUNTS_BEGIN}\n/dev/sdb /mnt/data auto defaults,nofail 0 2\n\
             LABEL=logs /var/log/app ext4 noatime 0 0\n/dev/swapfile none swap sw 0 0\n\
             {MOUNTS_END}\n"
        );
        assert_eq!(fs::read_to_string(dir.path().join(FSTAB)).unwrap(), want);
        assert!(dir.path().join("mnt/data").is_dir());
        assert!(dir.path().join("var/log/app").is_dir());
        // Again, then with one mount less: the block is replaced, never repeated.
        apply_all(&cfg, None, &opts(dir.path()));
        assert_eq!(fs::read_to_string(dir.path().join(FSTAB)).unwrap(), want);
        let cfg = json!({"mounts": [["sdc", "/mnt/c"]]});
        apply_all(&cfg, None, &opts(dir.path()));
        assert_eq!(
            fs::read_to_string(dir.path().join(FSTAB)).unwrap(),
            format!(
                "{mine}{MOUNTS_BEGIN}\n/dev/sdc /mnt/c auto defaults,nofail 0 2\n{MOUNTS_END}\n"
            )
        );
    }
}
