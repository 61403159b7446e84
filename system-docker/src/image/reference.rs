//! Image references: `[domain[:port]/]path[:tag][@digest]`, parsed and normalized the way
//! the Docker distribution grammar (`github.com/distribution/reference`) does it.
//!
//! `busybox` normalizes to `docker.io/library/busybox`, and its familiar (short) form is
//! `busybox` again; `localhost:5000/app` stays as it is. The store keys its tags by the
//! familiar form, as Docker's `repositories.json` does.

use std::fmt;

use super::ImageError;

/// The registry of unqualified names.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The host that serves the registry API for [`DEFAULT_DOMAIN`].
pub const DEFAULT_REGISTRY_HOST: &str = "registry-1.docker.io";
/// The tag used when a reference names none.
pub const DEFAULT_TAG: &str = "latest";
const LEGACY_DOMAIN: &str = "index.docker.io";
const OFFICIAL_PREFIX: &str = "library/";
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

fn invalid(s: &str) -> ImageError {
    ImageError::InvalidReference(s.to_string())
}

impl Reference {
    /// Parses a reference in any form the docker CLI accepts (`busybox`, `busybox:1.36`,
    /// `docker.io/library/busybox@sha256:…`, `localhost:5000/x:y`) and normalizes its name.
    /// No tag is added: see [`Reference::with_default_tag`].
    pub fn parse(s: &str) -> Result<Reference, ImageError> {
        if s.is_empty() {
            return Err(invalid(s));
        }
        if is_hex64(s) {
            return Err(ImageError::InvalidReference(format!(
                "invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
            )));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                if !valid_digest(d) {
                    return Err(invalid(s));
                }
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        // A tag is the part after the last ':' that comes after the last '/'; a ':' before
        // the last '/' belongs to a registry port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let i = last_slash + i;
                (&rest[..i], Some(rest[i + 1..].to_string()))
            }
            None => (rest, None),
        };
        if let Some(t) = &tag {
            if !valid_tag(t) {
                return Err(invalid(s));
            }
        }
        let (mut domain, mut path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
        };
        if domain == LEGACY_DOMAIN {
            domain = DEFAULT_DOMAIN.to_string();
        }
        if domain == DEFAULT_DOMAIN && !path.contains('/') {
            path = format!("{OFFICIAL_PREFIX}{path}");
        }
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(ImageError::InvalidReference(format!(
                "repository name must be lowercase: {s}"
            )));
        }
        if !valid_domain(&domain) || !path.split('/').all(valid_path_component) {
            return Err(invalid(s));
        }
        if domain.len() + 1 + path.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ImageError::InvalidReference(format!(
                "repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters: {s}"
            )));
        }
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// The same reference with tag `latest` when it has neither tag nor digest.
    pub fn with_default_tag(mut self) -> Reference {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some(DEFAULT_TAG.to_string());
        }
        self
    }

    /// The same repository with `tag` and no digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        }
    }

    /// The same repository with `digest` and no tag.
    pub fn with_digest(&self, digest: &str) -> Reference {
        Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: Some(digest.to_string()),
        }
    }

    /// The registry domain, e.g. `docker.io` or `localhost:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path inside the registry, e.g. `library/busybox`.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The full repository name, e.g. `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The repository name as the docker CLI shows it, e.g. `busybox`,
    /// `someone/app`, `localhost:5000/app`.
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            self.path
                .strip_prefix(OFFICIAL_PREFIX)
                .filter(|p| !p.contains('/'))
                .unwrap_or(&self.path)
                .to_string()
        } else {
            self.name()
        }
    }

    /// The whole reference in familiar form, e.g. `busybox:latest` or `busybox@sha256:…`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }

    /// The host (and port) that serves the registry HTTP API for this reference.
    pub fn registry_host(&self) -> &str {
        if self.domain == DEFAULT_DOMAIN {
            DEFAULT_REGISTRY_HOST
        } else {
            &self.domain
        }
    }
}

impl fmt::Display for Reference {
    /// The fully qualified form, e.g. `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Whether `s` is exactly 64 lower-case hex digits (an image id without its algorithm).
pub fn is_hex64(s: &str) -> bool {
    s.len() == 64 && is_lower_hex(s)
}

pub(crate) fn is_lower_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `algorithm:hex` as the OCI descriptor grammar has it; sha256 needs exactly 64 lower-case
/// hex digits, sha512 128.
pub fn valid_digest(d: &str) -> bool {
    let Some((alg, hex)) = d.split_once(':') else {
        return false;
    };
    match alg {
        "sha256" => hex.len() == 64 && is_lower_hex(hex),
        "sha512" => hex.len() == 128 && is_lower_hex(hex),
        _ => {
            !alg.is_empty()
                && alg.starts_with(|c: char| c.is_ascii_alphabetic())
                && alg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_+.".contains(c))
                && hex.len() >= 32
                && hex.chars().all(|c| c.is_ascii_hexdigit())
        }
    }
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(t: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    !t.is_empty()
        && t.len() <= 128
        && t.starts_with(word)
        && t.chars().all(|c| word(c) || c == '.' || c == '-')
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `host[:port]` where host is DNS labels separated by dots or a bracketed IPv6 address.
fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.is_empty() || !v6.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => ("", Some(port)),
                None => return false,
            },
        }
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    if d.starts_with('[') {
        return true;
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn p(s: &str) -> Reference {
        Reference::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn official_images_normalize_to_docker_io_library() {
        let r = p("busybox");
        assert_eq!(r.domain(), "docker.io");
        assert_eq!(r.path(), "library/busybox");
        assert_eq!(r.tag(), None);
        assert_eq!(
            r.clone().with_default_tag().to_string(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(r.with_default_tag().familiar(), "busybox:latest");
        assert_eq!(
            p("docker.io/library/busybox:1.36").familiar(),
            "busybox:1.36"
        );
        assert_eq!(
            p("index.docker.io/library/busybox").familiar_name(),
            "busybox"
        );
        assert_eq!(p("library/busybox").familiar_name(), "busybox");
        assert_eq!(p("busybox").registry_host(), "registry-1.docker.io");
    }

    #[test]
    fn user_repositories_and_registries_with_ports() {
        let r = p("someone/app:v1");
        assert_eq!(r.name(), "docker.io/someone/app");
        assert_eq!(r.familiar(), "someone/app:v1");

        let r = p("localhost:5000/busybox:latest");
        assert_eq!(r.domain(), "localhost:5000");
        assert_eq!(r.path(), "busybox");
        assert_eq!(r.tag(), Some("latest"));
        assert_eq!(r.familiar(), "localhost:5000/busybox:latest");
        assert_eq!(r.registry_host(), "localhost:5000");

        let r = p("localhost:5000/busybox");
        assert_eq!(r.tag(), None);
        assert_eq!(r.path(), "busybox");

        let r = p("localhost/app");
        assert_eq!(r.domain(), "localhost");

        let r = p("quay.io/org/sub/app:1.0-rc.1");
        assert_eq!(r.domain(), "quay.io");
        assert_eq!(r.path(), "org/sub/app");
        assert_eq!(r.tag(), Some("1.0-rc.1"));

        let r = p("[::1]:5000/app:x");
        assert_eq!(r.domain(), "[::1]:5000");
        assert_eq!(r.tag(), Some("x"));
    }

    #[test]
    fn digests() {
        let r = p(&format!("busybox@{D}"));
        assert_eq!(r.digest(), Some(D));
        assert_eq!(r.tag(), None);
        assert_eq!(r.familiar(), format!("busybox@{D}"));
        assert_eq!(r.clone().with_default_tag().tag(), None);
        let r = p(&format!("localhost:5000/a/b:t@{D}"));
        assert_eq!(r.tag(), Some("t"));
        assert_eq!(r.to_string(), format!("localhost:5000/a/b:t@{D}"));
        assert!(Reference::parse("busybox@sha256:abc").is_err());
    }

    #[test]
    fn invalid_references_are_refused() {
        for s in [
            "",
            "Busybox",
            "busybox:",
            "busybox:-x",
            "a//b",
            "a/b/",
            "/a",
            "a b",
            "a..b",
            "-a",
            "a-",
            "a___b",
            "busybox@",
            "localhost:abc/x",
            &"a".repeat(300),
        ] {
            assert!(
                matches!(Reference::parse(s), Err(ImageError::InvalidReference(_))),
                "{s:?} must be refused"
            );
        }
        let hex = &D["sha256:".len()..];
        assert!(
            Reference::parse(hex).is_err(),
            "a bare 64-hex id is not a name"
        );
        // Upper case is allowed in the domain only.
        assert_eq!(p("Example.COM/app").domain(), "Example.COM");
        for ok in ["a__b", "a.b", "a---b", "a_b-c.d", "x/y/z:TAG_1.2-3"] {
            p(ok);
        }
    }
}
