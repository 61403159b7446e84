//! Path patterns of the spec (`drop`, `only`): absolute paths where `*` matches within one
//! component and `**` any number of components. A pattern matches a path when it matches
//! the path itself or one of its ancestors, so a directory's pattern covers what it holds.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    parts: Vec<String>,
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.text)
    }
}

impl Pattern {
    pub fn new(text: &str) -> Result<Pattern, String> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!("pattern {text:?} is not an absolute path"));
        };
        let parts: Vec<String> = rest
            .split('/')
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect();
        if parts.is_empty() {
            return Err(format!("pattern {text:?} would match everything"));
        }
        if parts.iter().any(|c| c == "." || c == "..") {
            return Err(format!("pattern {text:?} has a . or .. component"));
        }
        Ok(Pattern {
            text: text.to_string(),
            parts,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `path` (relative to the root: `usr/bin/x`) or one of its ancestors matches.
    pub fn matches(&self, path: &str) -> bool {
        let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        prefix_match(&self.parts, &comps)
    }

    /// Whether `path` is an ancestor of something this pattern could match (so a directory
    /// on the way to an `only` path is kept).
    pub fn leads_to(&self, path: &str) -> bool {
        let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        leads(&self.parts, &comps)
    }
}

/// The pattern matches all of `path`, or a leading part of it.
fn prefix_match(pat: &[String], path: &[&str]) -> bool {
    match pat.split_first() {
        None => true,
        Some((p, rest)) if p == "**" => (0..=path.len()).any(|i| prefix_match(rest, &path[i..])),
        Some((p, rest)) => match path.split_first() {
            None => false,
            Some((c, path_rest)) => component_match(p, c) && prefix_match(rest, path_rest),
        },
    }
}

/// `path` is consumed entirely by a leading part of the pattern.
fn leads(pat: &[String], path: &[&str]) -> bool {
    match (pat.split_first(), path.split_first()) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some((p, _)), Some(_)) if p == "**" => true,
        (Some((p, rest)), Some((c, path_rest))) => component_match(p, c) && leads(rest, path_rest),
    }
}

/// `*` matches any run of characters (none included) within one component.
fn component_match(pat: &str, s: &str) -> bool {
    let p = pat.as_bytes();
    let s = s.as_bytes();
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, path: &str) -> bool {
        Pattern::new(p).unwrap().matches(path)
    }

    #[test]
    fn matches_paths_and_what_is_below() {
        assert!(m("/usr/share/doc", "usr/share/doc"));
        assert!(m("/usr/share/doc", "usr/share/doc/udev/copyright"));
        assert!(!m("/usr/share/doc", "usr/share/docs"));
        assert!(!m("/usr/share/doc", "usr/share"));
        assert!(m("/etc/rc*.d", "etc/rc2.d/S01x"));
        assert!(m("/etc/cron.*", "etc/cron.daily"));
        assert!(!m("/etc/cron.*", "etc/crontab"));
        assert!(m("/usr/**/locale", "usr/share/locale/de"));
        assert!(m("/usr/**/locale", "usr/locale"));
        assert!(m("/a/*b*c", "a/xxbyyc"));
        assert!(!m("/a/*b*c", "a/xxbyy"));
    }

    #[test]
    fn leads_to_keeps_ancestors() {
        let p = Pattern::new("/usr/bin/docker").unwrap();
        assert!(p.leads_to("usr"));
        assert!(p.leads_to("usr/bin"));
        assert!(p.leads_to("usr/bin/docker"));
        assert!(!p.leads_to("usr/sbin"));
        assert!(!p.leads_to("usr/bin/docker/x"));
    }

    #[test]
    fn refuses_bad_patterns() {
        assert!(Pattern::new("usr").is_err());
        assert!(Pattern::new("/").is_err());
        assert!(Pattern::new("/a/../b").is_err());
    }
}
