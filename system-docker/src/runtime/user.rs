//! Resolving `user[:group]` against the container's own /etc/passwd and /etc/group, as
//! Docker does: names are looked up there, numbers are taken as they are.

use std::fs;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    NoGroup(String),
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(PasswdEntry {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                home: f.get(5).unwrap_or(&"/").to_string(),
            })
        })
        .collect()
}

/// (name, gid, members)
fn parse_group(text: &str) -> Vec<(String, u32, Vec<String>)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let members = f
                .get(3)
                .map(|m| {
                    m.split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            Some((f.first()?.to_string(), f.get(2)?.parse().ok()?, members))
        })
        .collect()
}

/// Resolves `spec` (`""`, `name`, `uid`, `name:group`, `uid:gid`) with the files under `root`.
pub fn resolve(root: &Path, spec: &str) -> Result<ResolvedUser, UserError> {
    let passwd = parse_passwd(&fs::read_to_string(root.join("etc/passwd")).unwrap_or_default());
    let groups = parse_group(&fs::read_to_string(root.join("etc/group")).unwrap_or_default());
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "0" } else { user };
    let entry = passwd.iter().find(|e| e.name == user);
    let (uid, mut gid, home, name) = match (entry, user.parse::<u32>()) {
        (Some(e), _) => (e.uid, e.gid, e.home.clone(), Some(e.name.clone())),
        (None, Ok(uid)) => match passwd.iter().find(|e| e.uid == uid) {
            Some(e) => (uid, e.gid, e.home.clone(), Some(e.name.clone())),
            None => (uid, 0, "/".to_string(), None),
        },
        (None, Err(_)) => return Err(UserError::NoUser(user.to_string())),
    };
    if let Some(g) = group {
        gid = match (groups.iter().find(|(n, _, _)| n == g), g.parse::<u32>()) {
            (Some((_, id, _)), _) => *id,
            (None, Ok(id)) => id,
            (None, Err(_)) => return Err(UserError::NoGroup(g.to_string())),
        };
    }
    let additional_gids = match (&name, group) {
        (Some(n), None) => groups
            .iter()
            .filter(|(_, id, members)| *id != gid && members.iter().any(|m| m == n))
            .map(|(_, id, _)| *id)
            .collect(),
        _ => Vec::new(),
    };
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("etc")).unwrap();
        fs::write(
            t.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        fs::write(
            t.path().join("etc/group"),
            "root:x:0:\napp:x:1000:\nwheel:x:10:app\n",
        )
        .unwrap();
        t
    }

    #[test]
    fn resolves_names_numbers_and_groups() {
        let t = root();
        let r = resolve(t.path(), "").unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_str()), (0, 0, "/root"));
        let r = resolve(t.path(), "app").unwrap();
        assert_eq!(
            (r.uid, r.gid, r.additional_gids.clone()),
            (1000, 1000, vec![10])
        );
        let r = resolve(t.path(), "1000").unwrap();
        assert_eq!(r.home, "/home/app");
        let r = resolve(t.path(), "4242:wheel").unwrap();
        assert_eq!((r.uid, r.gid), (4242, 10));
        assert_eq!(
            resolve(t.path(), "nobody"),
            Err(UserError::NoUser("nobody".into()))
        );
        assert_eq!(
            resolve(t.path(), "app:nogroup"),
            Err(UserError::NoGroup("nogroup".into()))
        );
    }
}
