//! A layer's file tree, held in memory: filled from packages and the spec, compared with
//! the layers below it, and written as a reproducible tar (sorted entries, one mtime,
//! numeric owners only).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Dir,
    File(Arc<Vec<u8>>),
    Symlink(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub node: Node,
    /// Permission bits with setuid/setgid/sticky (no file type).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl Entry {
    pub fn dir(mode: u32) -> Entry {
        Entry {
            node: Node::Dir,
            mode,
            uid: 0,
            gid: 0,
        }
    }

    pub fn file(data: Vec<u8>, mode: u32) -> Entry {
        Entry {
            node: Node::File(Arc::new(data)),
            mode,
            uid: 0,
            gid: 0,
        }
    }

    pub fn symlink(target: &str) -> Entry {
        Entry {
            node: Node::Symlink(target.to_string()),
            mode: 0o777,
            uid: 0,
            gid: 0,
        }
    }

    /// What a layer above compares with: kind, owner, mode and a digest of the content.
    pub fn index(&self) -> IndexEntry {
        let (kind, digest, size) = match &self.node {
            Node::Dir => ('d', String::new(), 0),
            Node::File(d) => (
                'f',
                hex::encode(Sha256::digest(d.as_slice())),
                d.len() as u64,
            ),
            Node::Symlink(t) => ('l', t.clone(), 0),
        };
        IndexEntry {
            kind,
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            digest,
            size,
        }
    }
}

/// One path of the merged view of a stack of layers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// `d`, `f` or `l`.
    pub kind: char,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// sha256 of a file's content, a symlink's target; empty for a directory.
    pub digest: String,
    pub size: u64,
}

/// The merged view of the layers below (path → entry).
pub type Index = BTreeMap<String, IndexEntry>;

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{0}")]
    Conflict(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> TreeError + '_ {
    move |source| TreeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Paths are relative to the root, without leading or trailing `/` (`usr/bin/x`).
#[derive(Default, Debug)]
pub struct Tree {
    pub entries: BTreeMap<String, Entry>,
}

/// The parent directories of `path`, outermost first (`a`, `a/b` for `a/b/c`).
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

impl Tree {
    /// Adds or replaces `path`. A directory never replaces a directory (the first one's
    /// owner and mode stay, as dpkg keeps them); anything else replaces what was there.
    pub fn insert(&mut self, path: &str, entry: Entry) {
        if entry.node == Node::Dir {
            if let Some(old) = self.entries.get(path) {
                if old.node == Node::Dir {
                    return;
                }
            }
        }
        if !matches!(entry.node, Node::Dir) {
            // A file over a directory: what was below it goes too.
            let prefix = format!("{path}/");
            let below: Vec<String> = self
                .entries
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(k, _)| k.clone())
                .collect();
            for k in below {
                self.entries.remove(&k);
            }
        }
        self.entries.insert(path.to_string(), entry);
    }

    /// Copies a directory of the source tree in: owner root, directories and executables
    /// 0755, other files 0644; symlinks as they are.
    pub fn add_dir(&mut self, src: &Path) -> Result<(), TreeError> {
        let mut stack = vec![(src.to_path_buf(), String::new())];
        while let Some((dir, rel)) = stack.pop() {
            let mut names: Vec<_> = fs::read_dir(&dir)
                .map_err(io_err(&dir))?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<Result<_, _>>()
                .map_err(io_err(&dir))?;
            names.sort();
            for name in names {
                let p = dir.join(&name);
                let name = name.to_string_lossy().into_owned();
                let r = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                let md = fs::symlink_metadata(&p).map_err(io_err(&p))?;
                if md.file_type().is_symlink() {
                    let t = fs::read_link(&p).map_err(io_err(&p))?;
                    self.insert(&r, Entry::symlink(&t.to_string_lossy()));
                } else if md.is_dir() {
                    self.insert(&r, Entry::dir(0o755));
                    stack.push((p, r));
                } else if md.is_file() {
                    let data = fs::read(&p).map_err(io_err(&p))?;
                    let mode = if md.permissions().mode() & 0o111 != 0 {
                        0o755
                    } else {
                        0o644
                    };
                    self.insert(&r, Entry::file(data, mode));
                } else {
                    return Err(TreeError::Conflict(format!(
                        "{}: only files, directories and symlinks may be copied in",
                        p.display()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Adds every tar entry of `archive` (a package's data) that `keep` accepts, in the
    /// deb's own owners and modes. Hard links become copies (the tar is re-sorted, so a
    /// link could come before its target).
    pub fn add_tar<R: Read>(
        &mut self,
        archive: R,
        what: &str,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<(), TreeError> {
        let bad = |e: io::Error| TreeError::Io {
            path: PathBuf::from(what),
            source: e,
        };
        let mut ar = tar::Archive::new(archive);
        let mut seen: BTreeMap<String, Arc<Vec<u8>>> = BTreeMap::new();
        for entry in ar.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            let raw = entry.path().map_err(bad)?.to_string_lossy().into_owned();
            let Some(path) = normalize(&raw) else {
                continue;
            };
            let h = entry.header();
            let mode = h.mode().map_err(bad)? & 0o7777;
            let uid = h.uid().map_err(bad)? as u32;
            let gid = h.gid().map_err(bad)? as u32;
            let kind = h.entry_type();
            let node = if kind.is_dir() {
                Node::Dir
            } else if kind.is_file() {
                let mut data = Vec::with_capacity(entry.size() as usize);
                entry.read_to_end(&mut data).map_err(bad)?;
                let data = Arc::new(data);
                seen.insert(path.clone(), data.clone());
                Node::File(data)
            } else if kind.is_symlink() {
                let t = entry.link_name().map_err(bad)?.unwrap_or_default();
                Node::Symlink(t.to_string_lossy().into_owned())
            } else if kind.is_hard_link() {
                let t = entry.link_name().map_err(bad)?.unwrap_or_default();
                let t = normalize(&t.to_string_lossy()).unwrap_or_default();
                let data = seen.get(&t).cloned().ok_or_else(|| {
                    TreeError::Conflict(format!("{what}: hard link {path} to unknown {t}"))
                })?;
                Node::File(data)
            } else {
                log::warn!("{what}: skipping {path}: unsupported tar entry type {kind:?}");
                continue;
            };
            if !keep(&path) {
                continue;
            }
            self.insert(
                &path,
                Entry {
                    node,
                    mode,
                    uid,
                    gid,
                },
            );
        }
        Ok(())
    }

    /// The sum of the sizes of the regular files.
    pub fn file_bytes(&self) -> u64 {
        self.entries
            .values()
            .map(|e| match &e.node {
                Node::File(d) => d.len() as u64,
                _ => 0,
            })
            .sum()
    }

    /// What this tree adds to `lower`: entries equal to the ones below are left out
    /// (overlayfs shows the lower ones), and every parent directory is present, with the
    /// owner and mode the layers below give it (or root 0755 when it is new). Fails when a
    /// path would go through a symlink of a lower layer (an upper directory would hide the
    /// link).
    pub fn diff(&self, lower: &Index) -> Result<Tree, TreeError> {
        let mut out = Tree::default();
        for (path, e) in &self.entries {
            for a in ancestors(path) {
                if let Some(l) = lower.get(a) {
                    if l.kind != 'd' {
                        return Err(TreeError::Conflict(format!(
                            "/{path} lies below /{a}, which a lower layer has as {}",
                            if l.kind == 'l' {
                                format!("a symlink to {}", l.digest)
                            } else {
                                "a file".to_string()
                            }
                        )));
                    }
                }
                if let Some(own) = self.entries.get(a) {
                    if own.node != Node::Dir {
                        return Err(TreeError::Conflict(format!(
                            "/{path} lies below /{a}, which is not a directory"
                        )));
                    }
                }
            }
            if lower.get(path).is_some_and(|l| *l == e.index()) {
                continue;
            }
            out.entries.insert(path.clone(), e.clone());
        }
        let needed: BTreeSet<String> = out
            .entries
            .keys()
            .flat_map(|p| ancestors(p).map(str::to_string).collect::<Vec<_>>())
            .collect();
        for a in needed {
            if out.entries.contains_key(&a) {
                continue;
            }
            let e = match (self.entries.get(&a), lower.get(&a)) {
                (Some(own), _) => own.clone(),
                (None, Some(l)) => Entry {
                    node: Node::Dir,
                    mode: l.mode,
                    uid: l.uid,
                    gid: l.gid,
                },
                (None, None) => Entry::dir(0o755),
            };
            out.entries.insert(a, e);
        }
        Ok(out)
    }

    /// `lower` with this tree's entries over it.
    pub fn merged_index(&self, lower: &Index) -> Index {
        let mut idx = lower.clone();
        for (p, e) in &self.entries {
            idx.insert(p.clone(), e.index());
        }
        idx
    }

    /// Writes the tree as a tar: sorted by path, every mtime `mtime`, numeric owners only.
    pub fn write_tar<W: Write>(&self, w: W, mtime: u64) -> io::Result<W> {
        let mut b = tar::Builder::new(w);
        b.mode(tar::HeaderMode::Deterministic);
        for (path, e) in &self.entries {
            let mut h = tar::Header::new_gnu();
            h.set_mtime(mtime);
            h.set_uid(e.uid.into());
            h.set_gid(e.gid.into());
            h.set_mode(e.mode);
            match &e.node {
                Node::Dir => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    b.append_data(&mut h, format!("{path}/"), io::empty())?;
                }
                Node::File(d) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(d.len() as u64);
                    b.append_data(&mut h, path, d.as_slice())?;
                }
                Node::Symlink(t) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    b.append_link(&mut h, path, t)?;
                }
            }
        }
        b.into_inner()
    }
}

/// `./usr/bin/x` → `usr/bin/x`; `None` for the root and for paths leaving it.
pub fn normalize(raw: &str) -> Option<String> {
    let parts: Vec<&str> = raw
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if parts.is_empty() || parts.contains(&"..") {
        return None;
    }
    Some(parts.join("/"))
}

/// Mode bits of a file on the build machine (for tests).
#[cfg(test)]
fn mode_of(p: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(p).map(|m| m.mode() & 0o7777).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(s: &str) -> Entry {
        Entry::file(s.as_bytes().to_vec(), 0o644)
    }

    fn tar_paths(t: &Tree) -> Vec<String> {
        let data = t.write_tar(Vec::new(), 7).unwrap();
        let mut ar = tar::Archive::new(data.as_slice());
        ar.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                assert_eq!(e.header().mtime().unwrap(), 7);
                e.path().unwrap().to_string_lossy().into_owned()
            })
            .collect()
    }

    #[test]
    fn writes_sorted_reproducible_tars() {
        let mut t = Tree::default();
        t.insert("usr", Entry::dir(0o755));
        t.insert("usr/bin", Entry::dir(0o755));
        t.insert("usr/bin/b", file("b"));
        t.insert("usr/bin-x", file("x"));
        t.insert("usr/bin/a", Entry::symlink("b"));
        let long = format!("usr/{}", "l".repeat(150));
        t.insert(&long, file("long"));
        assert_eq!(
            tar_paths(&t),
            [
                "usr/".to_string(),
                "usr/bin/".into(),
                // Byte order: '-' sorts before '/', and parents still come first.
                "usr/bin-x".into(),
                "usr/bin/a".into(),
                "usr/bin/b".into(),
                long.clone()
            ]
        );
        let a = t.write_tar(Vec::new(), 7).unwrap();
        let b = t.write_tar(Vec::new(), 7).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn diff_leaves_out_what_lower_layers_have() {
        let mut lower = Tree::default();
        lower.insert("etc", Entry::dir(0o755));
        lower.insert("var", Entry::dir(0o755));
        lower.insert(
            "var/lib",
            Entry {
                node: Node::Dir,
                mode: 0o700,
                uid: 5,
                gid: 6,
            },
        );
        lower.insert("etc/same", file("same"));
        lower.insert("etc/changed", file("old"));
        lower.insert("run", Entry::dir(0o755));
        lower.insert("var/run", Entry::symlink("/run"));
        let idx = lower.merged_index(&Index::new());

        let mut upper = Tree::default();
        upper.insert("etc", Entry::dir(0o755));
        upper.insert("etc/same", file("same"));
        upper.insert("etc/changed", file("new"));
        upper.insert("var/lib/x/y", file("y"));
        let d = upper.diff(&idx).unwrap();
        let keys: Vec<&str> = d.entries.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "etc",
                "etc/changed",
                "var",
                "var/lib",
                "var/lib/x",
                "var/lib/x/y"
            ]
        );
        assert_eq!(d.entries["var/lib"].mode, 0o700);
        assert_eq!(d.entries["var/lib"].uid, 5);
        assert_eq!(d.entries["var/lib/x"].mode, 0o755);

        let mut bad = Tree::default();
        bad.insert("var/run/sshd", Entry::dir(0o755));
        let err = bad.diff(&idx).unwrap_err().to_string();
        assert!(err.contains("symlink to /run"), "{err}");
    }

    #[test]
    fn files_replace_directories_and_directories_keep_first_owner() {
        let mut t = Tree::default();
        t.insert("a", Entry::dir(0o700));
        t.insert("a/b", file("b"));
        t.insert("a", Entry::dir(0o755));
        assert_eq!(t.entries["a"].mode, 0o700);
        t.insert("a", file("a"));
        assert!(!t.entries.contains_key("a/b"));
    }

    #[test]
    fn copies_source_directories_with_plain_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("usr/local/bin");
        fs::create_dir_all(&bin).unwrap();
        fs::write(bin.join("run"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(bin.join("run"), fs::Permissions::from_mode(0o700)).unwrap();
        fs::write(tmp.path().join("conf"), "x").unwrap();
        assert_eq!(mode_of(&bin.join("run")), 0o700);
        let mut t = Tree::default();
        t.add_dir(tmp.path()).unwrap();
        assert_eq!(t.entries["usr/local/bin/run"].mode, 0o755);
        assert_eq!(t.entries["conf"].mode, 0o644);
        assert_eq!(t.entries["usr/local"].node, Node::Dir);
    }

    #[test]
    fn normalizes_tar_paths() {
        assert_eq!(normalize("./usr/bin/").as_deref(), Some("usr/bin"));
        assert_eq!(normalize("./"), None);
        assert_eq!(normalize("../etc"), None);
    }
}
