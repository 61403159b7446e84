//! `users`, `ssh_authorized_keys` and the datasource's public keys: accounts in
//! `etc/passwd|group|shadow` (rewritten in place), homes, `~/.ssh/authorized_keys`, sudo
//! rules. Passwords are never set: every new account is locked (`*`), SSH is by key only.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::accounts::{Kind, Table};
use super::{
    chmod, chown, create_dirs, io_err, read_or_empty, under_root, ApplyError, ApplyReport,
};
use crate::edit::write_atomic;
use crate::instance::Metadata;
use crate::schema::{CloudConfig, User};

const STEP: &str = "users";

/// The default login user (DESIGN.md §4).
pub(super) const DEFAULT_USER: &str = "rancher";
const DEFAULT_UID: u32 = 1100;
const DOCKER_GROUP: &str = "docker";
const DOCKER_GID: u32 = 1101;
/// New users get the first free uid from here on (after rancher and the docker group).
const FIRST_UID: u32 = 1101;
const SUDOERS: &str = "etc/sudoers.d/90-cloud-init-users";

struct Db {
    passwd: Table,
    group: Table,
    shadow: Table,
}

/// An account that exists once the tables are saved, and what its home gets.
struct Account {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
    keys: Vec<String>,
}

pub(super) fn apply(
    root: &Path,
    cfg: &CloudConfig,
    meta: Option<&Metadata>,
    report: &mut ApplyReport,
) {
    let users = cfg.users.as_deref().unwrap_or_default();
    let is_default = |u: &&User| u.name.as_str() == "default" || u.name.as_str() == DEFAULT_USER;
    let mut default_keys: Vec<String> = cfg
        .ssh_authorized_keys
        .iter()
        .flatten()
        .map(|k| k.as_str().to_owned())
        .collect();
    default_keys.extend(meta.iter().flat_map(|m| m.public_keys.iter()).cloned());
    for u in users.iter().filter(is_default) {
        default_keys.extend(keys_of(u));
    }
    let want_default = !default_keys.is_empty() || users.iter().any(|u| is_default(&u));
    if !want_default && users.is_empty() {
        return;
    }

    let mut db = match read_db(root) {
        Ok(db) => db,
        Err(e) => return report.fail(STEP, &e),
    };
    let mut accounts = Vec::new();
    if want_default {
        match ensure_default(&mut db, default_keys) {
            Ok(a) => accounts.push(a),
            Err(e) => report.fail(STEP, &e),
        }
    }
    for u in users.iter().filter(|u| !is_default(u)) {
        match ensure_user(&mut db, u) {
            Ok(a) => accounts.push(a),
            Err(e) => report.fail(&format!("{STEP}: {}", u.name.as_str()), &e),
        }
    }
    // Groups first: a passwd entry should never name a gid that does not exist yet.
    for t in [&db.group, &db.passwd, &db.shadow] {
        match t.save(root) {
            Ok(true) => report.ok(STEP, format!("{} updated", t_path(root, t))),
            Ok(false) => {}
            Err(e) => return report.fail(STEP, &e),
        }
    }
    for a in &accounts {
        match home_and_keys(root, a) {
            Ok(added) => report.ok(
                STEP,
                format!("{}: {added} key(s) added, {} in all", a.name, a.keys.len()),
            ),
            Err(e) => report.fail(&format!("{STEP}: {}", a.name), &e),
        }
    }
    if let Err(e) = sudoers(root, users, report) {
        report.fail(STEP, &e);
    }
}

fn t_path(root: &Path, t: &Table) -> String {
    root.join(t.path()).display().to_string()
}

fn keys_of(u: &User) -> impl Iterator<Item = String> + '_ {
    u.ssh_authorized_keys
        .iter()
        .flatten()
        .map(|k| k.as_str().to_owned())
}

fn read_db(root: &Path) -> Result<Db, ApplyError> {
    Ok(Db {
        passwd: Table::read(root, Kind::Passwd)?,
        group: Table::read(root, Kind::Group)?,
        shadow: Table::read(root, Kind::Shadow)?,
    })
}

fn days_since_epoch() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    (secs / 86_400).to_string()
}

/// Adds a locked shadow entry for `name` unless it has one.
fn ensure_shadow(db: &mut Db, name: &str) -> Result<(), ApplyError> {
    if db.shadow.get(name).is_some() {
        return Ok(());
    }
    let days = days_since_epoch();
    db.shadow
        .push(&[name, "*", &days, "0", "99999", "7", "", "", ""])
}

/// The gid of group `name`, made (at `want` if free, else the first free from FIRST_UID)
/// when missing.
fn ensure_group(db: &mut Db, name: &str, want: Option<u32>) -> Result<u32, ApplyError> {
    if let Some(gid) = db.group.id(name) {
        return Ok(gid);
    }
    let gid = match want.filter(|&g| db.group.is_free(g)) {
        Some(g) => g,
        None => db
            .group
            .free_id(FIRST_UID)
            .ok_or_else(|| ApplyError::Invalid("no free gid".into()))?,
    };
    db.group.push(&[name, "x", &gid.to_string(), ""])?;
    Ok(gid)
}

/// `rancher` as found, or made as DESIGN.md §4 says (uid/gid 1100, in `docker` 1101).
fn ensure_default(db: &mut Db, keys: Vec<String>) -> Result<Account, ApplyError> {
    if let Some(f) = db.passwd.get(DEFAULT_USER) {
        // Well-formed entries have numeric ids (checked when the table matched the line).
        return Ok(Account {
            name: DEFAULT_USER.into(),
            uid: f[2].parse().unwrap_or(DEFAULT_UID),
            gid: f[3].parse().unwrap_or(DEFAULT_UID),
            home: f[5].to_owned(),
            keys,
        });
    }
    if !db.passwd.is_free(DEFAULT_UID) {
        return Err(ApplyError::Invalid(format!(
            "{DEFAULT_USER}: uid {DEFAULT_UID} is taken"
        )));
    }
    let gid = ensure_group(db, DEFAULT_USER, Some(DEFAULT_UID))?;
    ensure_group(db, DOCKER_GROUP, Some(DOCKER_GID))?;
    db.group.add_member(DOCKER_GROUP, DEFAULT_USER);
    let home = format!("/home/{DEFAULT_USER}");
    let (uid_s, gid_s) = (DEFAULT_UID.to_string(), gid.to_string());
    db.passwd.push(&[
        DEFAULT_USER,
        "x",
        &uid_s,
        &gid_s,
        DEFAULT_USER,
        &home,
        "/bin/sh",
    ])?;
    ensure_shadow(db, DEFAULT_USER)?;
    Ok(Account {
        name: DEFAULT_USER.into(),
        uid: DEFAULT_UID,
        gid,
        home,
        keys,
    })
}

/// A `users:` entry: made if missing (an existing account keeps its uid, home and shell),
/// then added to its groups. Everything is checked before the tables change.
fn ensure_user(db: &mut Db, u: &User) -> Result<Account, ApplyError> {
    let name = u.name.as_str();
    let groups: Vec<&str> = u.groups.iter().flatten().map(|g| g.as_str()).collect();
    let keys: Vec<String> = keys_of(u).collect();
    let account = if let Some(f) = db.passwd.get(name) {
        Account {
            name: name.into(),
            uid: f[2].parse().unwrap_or(0),
            gid: f[3].parse().unwrap_or(0),
            home: f[5].to_owned(),
            keys,
        }
    } else {
        let uid = match u.uid {
            Some(uid) => match db.passwd.by_id(uid) {
                Some(other) => {
                    return Err(ApplyError::Invalid(format!(
                        "uid {uid} is in use by {}",
                        other[0]
                    )))
                }
                None => uid,
            },
            None => db
                .passwd
                .free_id(FIRST_UID)
                .ok_or_else(|| ApplyError::Invalid("no free uid".into()))?,
        };
        let home = u
            .homedir
            .as_ref()
            .map_or_else(|| format!("/home/{name}"), |h| h.as_str().to_owned());
        let shell = u.shell.as_ref().map_or("/bin/sh", |s| s.as_str());
        let gecos = u.gecos.as_ref().map_or("", |g| g.as_str());
        for (what, v) in [("gecos", gecos), ("homedir", &home), ("shell", shell)] {
            if v.contains(':') {
                return Err(ApplyError::Invalid(format!("{what} {v:?} contains ':'")));
            }
        }
        let primary = u.primary_group.as_ref().map_or(name, |g| g.as_str());
        let gid = ensure_group(db, primary, Some(uid))?;
        let (uid_s, gid_s) = (uid.to_string(), gid.to_string());
        db.passwd
            .push(&[name, "x", &uid_s, &gid_s, gecos, &home, shell])?;
        ensure_shadow(db, name)?;
        Account {
            name: name.into(),
            uid,
            gid,
            home,
            keys,
        }
    };
    for g in groups {
        ensure_group(db, g, None)?;
        db.group.add_member(g, name);
    }
    Ok(account)
}

/// The home (made empty if missing — no /etc/skel), `~/.ssh` (0700) and
/// `authorized_keys` (0600): keys already there are kept, new ones appended once. Returns how
/// many were added.
fn home_and_keys(root: &Path, a: &Account) -> Result<usize, ApplyError> {
    let home = under_root(root, &a.home)?;
    if !home.exists() {
        if let Some(parent) = home.parent() {
            create_dirs(parent)?;
        }
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&home)
            .map_err(io_err("create home", &home))?;
        chown(&home, a.uid, Some(a.gid))?;
    }
    if a.keys.is_empty() {
        return Ok(0);
    }
    let ssh = home.join(".ssh");
    match fs::symlink_metadata(&ssh) {
        // A link would let the account owner point root's writes elsewhere.
        Ok(m) if !m.is_dir() => {
            return Err(ApplyError::Invalid(format!(
                "{} is not a directory",
                ssh.display()
            )))
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::DirBuilder::new()
            .mode(0o700)
            .create(&ssh)
            .map_err(io_err("create", &ssh))?,
        Err(e) => return Err(io_err("stat", &ssh)(e)),
    }
    chmod(&ssh, 0o700)?;
    chown(&ssh, a.uid, Some(a.gid))?;

    let file = ssh.join("authorized_keys");
    let old = read_or_empty(&file)?;
    let (new, added) = merge_keys(&old, &a.keys);
    if added > 0 || !file.exists() {
        write_atomic(&file, new.as_bytes(), 0o600).map_err(io_err("write", &file))?;
    } else {
        chmod(&file, 0o600)?;
    }
    chown(&file, a.uid, Some(a.gid))?;
    Ok(added)
}

/// `old` with each key of `keys` it lacks appended (compared without surrounding blanks).
fn merge_keys(old: &str, keys: &[String]) -> (String, usize) {
    let mut out = old.to_owned();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    let mut have: Vec<String> = old.lines().map(|l| l.trim().to_owned()).collect();
    let mut added = 0;
    for k in keys {
        let k = k.trim();
        if k.is_empty() || have.iter().any(|h| h == k) {
            continue;
        }
        out.push_str(k);
        out.push('\n');
        have.push(k.to_owned());
        added += 1;
    }
    (out, added)
}

/// `sudo:` rules of every user in one file, 0440, rewritten whole; left alone when no user
/// has any.
fn sudoers(root: &Path, users: &[User], report: &mut ApplyReport) -> Result<(), ApplyError> {
    let mut text =
        String::from("# Written by ros cloud-config from users[].sudo; edits are lost.\n");
    let mut any = false;
    for u in users {
        let name = match u.name.as_str() {
            "default" => DEFAULT_USER,
            n => n,
        };
        for rule in u.sudo.iter().flatten() {
            text.push_str(&format!("{name} {}\n", rule.as_str()));
            any = true;
        }
    }
    if !any {
        return Ok(());
    }
    let path = root.join(SUDOERS);
    if let Some(dir) = path.parent() {
        create_dirs(dir)?;
    }
    write_atomic(&path, text.as_bytes(), 0o440).map_err(io_err("write", &path))?;
    report.ok(STEP, format!("{} written", path.display()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{apply as apply_all, tests::opts};
    use serde_json::json;
    use std::os::unix::fs::MetadataExt;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nthis line is broken\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:root\n";

    fn host() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        fs::create_dir_all(&etc).unwrap();
        fs::write(etc.join("passwd"), PASSWD).unwrap();
        fs::write(etc.join("group"), GROUP).unwrap();
        fs::write(etc.join("shadow"), "root:*:19000:0:99999:7:::\n").unwrap();
        dir
    }

    fn read(dir: &tempfile::TempDir, p: &str) -> String {
        fs::read_to_string(dir.path().join(p)).unwrap()
    }

    #[test]
    fn default_user_keys_are_merged_without_duplicates() {
        let dir = host();
        let ssh = dir.path().join("home/rancher/.ssh");
        fs::create_dir_all(&ssh).unwrap();
        fs::write(ssh.join("authorized_keys"), "ssh-ed25519 OLD me").unwrap();
        let cfg = json!({"ssh_authorized_keys": ["ssh-ed25519 NEW you", "ssh-ed25519 OLD me"]});
        let meta = Metadata {
            public_keys: vec!["ssh-rsa META them".into(), "ssh-ed25519 NEW you".into()],
            ..Default::default()
        };
        let r = apply_all(&cfg, Some(&meta), &opts(dir.path()));
        assert!(r.errors.is_empty(), "{r:?}");
        let want = "ssh-ed25519 OLD me\nssh-ed25519 NEW you\nssh-rsa META them\n";
        assert_eq!(read(&dir, "home/rancher/.ssh/authorized_keys"), want);
        let r = apply_all(&cfg, Some(&meta), &opts(dir.path()));
        assert!(r.errors.is_empty(), "{r:?}");
        assert_eq!(read(&dir, "home/rancher/.ssh/authorized_keys"), want);

        let m = fs::metadata(ssh.join("authorized_keys")).unwrap();
        assert_eq!((m.mode() & 0o777, m.uid(), m.gid()), (0o600, 1100, 1100));
        let m = fs::metadata(&ssh).unwrap();
        assert_eq!((m.mode() & 0o777, m.uid(), m.gid()), (0o700, 1100, 1100));
        assert!(read(&dir, "etc/passwd")
            .ends_with("rancher:x:1100:1100:rancher:/home/rancher:/bin/sh\n"));
        assert!(read(&dir, "etc/group").contains("rancher:x:1100:\ndocker:x:1101:rancher\n"));
        assert!(read(&dir, "etc/shadow").contains("\nrancher:*:"));
    }

    #[test]
    fn users_are_added_in_place() {
        let dir = host();
        let ino = |p: &str| fs::metadata(dir.path().join(p)).unwrap().ino();
        let before = [ino("etc/passwd"), ino("etc/group"), ino("etc/shadow")];
        let cfg = json!({"users": [
            "default",
            {"name": "alice", "groups": ["wheel", "ops"], "sudo": ["ALL=(ALL) NOPASSWD:ALL"],
             "ssh_authorized_keys": ["ssh-ed25519 AAA alice"], "shell": "/bin/bash"},
            {"name": "bob", "uid": 2000, "primary_group": "wheel"},
            {"name": "carol", "uid": 2000},
        ]});
        let r = apply_all(&cfg, None, &opts(dir.path()));
        assert_eq!(r.errors.len(), 1, "{r:?}");
        assert!(
            r.errors[0].contains("carol: uid 2000 is in use by bob"),
            "{r:?}"
        );
        assert_eq!(
            before,
            [ino("etc/passwd"), ino("etc/group"), ino("etc/shadow")]
        );
        assert_eq!(
            read(&dir, "etc/passwd"),
            format!(
                "{PASSWD}rancher:x:1100:1100:rancher:/home/rancher:/bin/sh\n\
                 alice:x:1101:1102::/home/alice:/bin/bash\nbob:x:2000:10::/home/bob:/bin/sh\n"
            )
        );
        assert_eq!(
            read(&dir, "etc/group"),
            "root:x:0:\nwheel:x:10:root,alice\nrancher:x:1100:\ndocker:x:1101:rancher\n\
             alice:x:1102:\nops:x:1103:alice\n"
        );
        let shadow = read(&dir, "etc/shadow");
        assert!(
            shadow.contains("\nalice:*:") && shadow.contains("\nbob:*:"),
            "{shadow}"
        );
        assert!(!shadow.contains("carol"));
        let keys = dir.path().join("home/alice/.ssh/authorized_keys");
        let m = fs::metadata(&keys).unwrap();
        assert_eq!((m.uid(), m.gid()), (1101, 1102));
        assert_eq!(
            fs::read_to_string(&keys).unwrap(),
            "ssh-ed25519 AAA alice\n"
        );
        let m = fs::metadata(dir.path().join("home/bob")).unwrap();
        assert!(m.is_dir());
        assert_eq!((m.uid(), m.gid()), (2000, 10));
        let sudo = dir.path().join(SUDOERS);
        assert_eq!(fs::metadata(&sudo).unwrap().mode() & 0o777, 0o440);
        assert!(fs::read_to_string(&sudo)
            .unwrap()
            .ends_with("\nalice ALL=(ALL) NOPASSWD:ALL\n"));

        // Again: nothing changes, nothing is added twice.
        let passwd = read(&dir, "etc/passwd");
        let r = apply_all(&cfg, None, &opts(dir.path()));
        assert_eq!(r.errors.len(), 1, "{r:?}");
        assert_eq!(read(&dir, "etc/passwd"), passwd);
        assert!(read(&dir, "etc/group").contains("wheel:x:10:root,alice\n"));
    }

    #[test]
    fn ssh_dir_symlink_is_refused() {
        let dir = host();
        fs::create_dir_all(dir.path().join("home/rancher")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("home/rancher/.ssh")).unwrap();
        let cfg = json!({"ssh_authorized_keys": ["ssh-ed25519 K"]});
        let r = apply_all(&cfg, None, &opts(dir.path()));
        assert_eq!(r.errors.len(), 1, "{r:?}");
        assert!(!Path::new("/etc/authorized_keys").exists());
    }
}
