//! `etc/passwd`, `etc/group` and `etc/shadow` as tables of lines. A line that does not parse
//! is kept verbatim and never matched, so a hand edit the reader does not understand survives.

use std::collections::BTreeSet;
use std::path::Path;

use super::{read_or_empty, write_in_place, ApplyError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Passwd,
    Group,
    Shadow,
}

impl Kind {
    fn fields(self) -> usize {
        match self {
            Kind::Passwd => 7,
            Kind::Group => 4,
            Kind::Shadow => 9,
        }
    }

    /// The numeric columns, which must parse for a line to be an entry.
    fn ids(self) -> &'static [usize] {
        match self {
            Kind::Passwd => &[2, 3],
            Kind::Group => &[2],
            Kind::Shadow => &[],
        }
    }

    fn path(self) -> &'static str {
        match self {
            Kind::Passwd => "etc/passwd",
            Kind::Group => "etc/group",
            Kind::Shadow => "etc/shadow",
        }
    }

    /// Mode if the file has to be made; an existing file keeps its own.
    fn mode(self) -> u32 {
        match self {
            Kind::Shadow => 0o600,
            _ => 0o644,
        }
    }
}

#[derive(Clone, Debug)]
pub(super) struct Table {
    kind: Kind,
    lines: Vec<String>,
    original: String,
}

impl Table {
    pub(super) fn read(root: &Path, kind: Kind) -> Result<Table, ApplyError> {
        Ok(Table::parse(kind, &read_or_empty(&root.join(kind.path()))?))
    }

    pub(super) fn parse(kind: Kind, text: &str) -> Table {
        Table {
            kind,
            lines: text.lines().map(str::to_owned).collect(),
            original: text.to_owned(),
        }
    }

    /// Where the table lives under a root.
    pub(super) fn path(&self) -> &'static str {
        self.kind.path()
    }

    /// The fields of line `i` if it is a well-formed entry.
    fn entry(&self, i: usize) -> Option<Vec<&str>> {
        let f: Vec<&str> = self.lines.get(i)?.split(':').collect();
        let ok = f.len() == self.kind.fields()
            && !f[0].is_empty()
            && self.kind.ids().iter().all(|&c| f[c].parse::<u32>().is_ok());
        ok.then_some(f)
    }

    fn find(&self, name: &str) -> Option<usize> {
        (0..self.lines.len()).find(|&i| self.entry(i).is_some_and(|f| f[0] == name))
    }

    /// The entry named `name`.
    pub(super) fn get(&self, name: &str) -> Option<Vec<&str>> {
        self.entry(self.find(name)?)
    }

    /// The entry whose id column holds `id`.
    pub(super) fn by_id(&self, id: u32) -> Option<Vec<&str>> {
        let col = *self.kind.ids().first()?;
        (0..self.lines.len())
            .filter_map(|i| self.entry(i))
            .find(|f| f[col].parse() == Ok(id))
    }

    /// The id (uid or gid) of `name`.
    pub(super) fn id(&self, name: &str) -> Option<u32> {
        let col = *self.kind.ids().first()?;
        self.get(name)?[col].parse().ok()
    }

    fn used_ids(&self) -> BTreeSet<u32> {
        let Some(&col) = self.kind.ids().first() else {
            return BTreeSet::new();
        };
        (0..self.lines.len())
            .filter_map(|i| self.entry(i)?[col].parse().ok())
            .collect()
    }

    /// The lowest id from `from` on that no entry uses.
    pub(super) fn free_id(&self, from: u32) -> Option<u32> {
        let used = self.used_ids();
        (from..u32::MAX).find(|id| !used.contains(id))
    }

    pub(super) fn is_free(&self, id: u32) -> bool {
        !self.used_ids().contains(&id)
    }

    /// Appends an entry. A field with `:` or a line break would corrupt the table: refused.
    pub(super) fn push(&mut self, fields: &[&str]) -> Result<(), ApplyError> {
        if fields.len() != self.kind.fields() {
            return Err(ApplyError::Invalid(format!(
                "{}: entry with {} fields",
                self.kind.path(),
                fields.len()
            )));
        }
        if let Some(bad) = fields.iter().find(|f| f.contains([':', '\n', '\r', '\0'])) {
            return Err(ApplyError::Invalid(format!(
                "{}: {bad:?} cannot be a field",
                self.kind.path()
            )));
        }
        self.lines.push(fields.join(":"));
        Ok(())
    }

    /// Adds `user` to the member list of group `group`; false if there is no such group.
    pub(super) fn add_member(&mut self, group: &str, user: &str) -> bool {
        let Some(i) = self.find(group) else {
            return false;
        };
        let mut f: Vec<String> = self.lines[i].split(':').map(str::to_owned).collect();
        let mut members: Vec<&str> = f[3].split(',').filter(|m| !m.is_empty()).collect();
        if !members.contains(&user) {
            members.push(user);
            f[3] = members.join(",");
            self.lines[i] = f.join(":");
        }
        true
    }

    pub(super) fn render(&self) -> String {
        let mut s = self.lines.join("\n");
        if !s.is_empty() {
            s.push('\n');
        }
        s
    }

    /// Writes the table back in place (these files are bind-mounted into the console), only
    /// when it changed. The new content is checked first: every line of the old one is still
    /// there.
    pub(super) fn save(&self, root: &Path) -> Result<bool, ApplyError> {
        let new = self.render();
        if new == self.original {
            return Ok(false);
        }
        let kept = self.original.lines().count();
        if self.lines.len() < kept {
            return Err(ApplyError::Invalid(format!(
                "{}: refusing to drop lines",
                self.kind.path()
            )));
        }
        write_in_place(
            &root.join(self.kind.path()),
            new.as_bytes(),
            self.kind.mode(),
        )?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_lines_are_kept_and_skipped() {
        let text = "root:x:0:0:root:/root:/bin/sh\n# comment\nbroken:x:zz:0::/:/bin/sh\n+nis\n";
        let mut t = Table::parse(Kind::Passwd, text);
        assert_eq!(t.id("root"), Some(0));
        assert_eq!(t.get("broken"), None);
        assert_eq!(t.free_id(0), Some(1));
        t.push(&["a", "x", "1101", "1101", "", "/home/a", "/bin/sh"])
            .unwrap();
        assert_eq!(
            t.render(),
            format!("{text}a:x:1101:1101::/home/a:/bin/sh\n")
        );
        assert!(t
            .push(&["b", "x", "1", "1", "x:y", "/home/b", "/bin/sh"])
            .is_err());
    }

    #[test]
    fn members() {
        let mut g = Table::parse(Kind::Group, "docker:x:1101:\nwheel:x:10:root\nbad\n");
        assert!(g.add_member("docker", "a"));
        assert!(g.add_member("wheel", "a"));
        assert!(g.add_member("wheel", "a"));
        assert!(!g.add_member("bad", "a"));
        assert_eq!(g.render(), "docker:x:1101:a\nwheel:x:10:root,a\nbad\n");
        assert_eq!(g.by_id(10).map(|f| f[0].to_owned()), Some("wheel".into()));
    }
}
