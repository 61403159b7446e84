//! Image references (`busybox`, `foo/bar:1`, `localhost:5000/x@sha256:…`) normalized the way
//! the docker CLI does: `docker.io` is the default registry and `library/` the default
//! namespace there; the "familiar" form drops both again.

/// The registry docker assumes when a reference names none.
const DEFAULT_DOMAIN: &str = "docker.io";

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub domain: String,
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    /// Parses `value`; errors read like docker's (`invalid reference format…`).
    pub fn parse(value: &str) -> Result<Self, String> {
        let invalid = || "invalid reference format".to_string();
        let (name, digest) = match value.split_once('@') {
            Some((n, d)) => {
                if !d.contains(':') {
                    return Err(invalid());
                }
                (n, Some(d.to_string()))
            }
            None => (value, None),
        };
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(i) => {
                let (n, t) = name.split_at(last_slash + i);
                (n, Some(t[1..].to_string()))
            }
            None => (name, None),
        };
        if let Some(t) = &tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
                && !t.starts_with(['.', '-']);
            if !ok {
                return Err(invalid());
            }
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first != first.to_lowercase() =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
        };
        if path.is_empty() || path.split('/').any(str::is_empty) {
            return Err(invalid());
        }
        if path != path.to_lowercase() {
            return Err("invalid reference format: repository name must be lowercase".into());
        }
        let path_ok = path.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-' | '/')
        });
        if !path_ok {
            return Err(invalid());
        }
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        Ok(Self {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// With `latest` as the tag when neither a tag nor a digest is given.
    pub fn with_default_tag(mut self) -> Self {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some("latest".into());
        }
        self
    }

    /// The repository in its short form (`busybox`, `foo/bar`, `localhost:5000/x`).
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            self.path
                .strip_prefix("library/")
                .filter(|rest| !rest.contains('/'))
                .unwrap_or(&self.path)
                .to_string()
        } else {
            format!("{}/{}", self.domain, self.path)
        }
    }

    /// The short form with tag and digest (`busybox:latest`).
    pub fn familiar_string(&self) -> String {
        self.with_suffix(self.familiar_name())
    }

    /// The fully qualified form (`docker.io/library/busybox:latest`).
    pub fn full_string(&self) -> String {
        self.with_suffix(format!("{}/{}", self.domain, self.path))
    }

    fn with_suffix(&self, mut s: String) -> String {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_docker() {
        let r = Reference::parse("busybox").unwrap().with_default_tag();
        assert_eq!(r.full_string(), "docker.io/library/busybox:latest");
        assert_eq!(r.familiar_string(), "busybox:latest");
        let r = Reference::parse("foo/bar:1.2").unwrap();
        assert_eq!(r.full_string(), "docker.io/foo/bar:1.2");
        assert_eq!(r.familiar_name(), "foo/bar");
        let r = Reference::parse("localhost:5000/x/y")
            .unwrap()
            .with_default_tag();
        assert_eq!(r.full_string(), "localhost:5000/x/y:latest");
        assert_eq!(r.familiar_name(), "localhost:5000/x/y");
        let r = Reference::parse("docker.io/library/alpine@sha256:abc").unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some("sha256:abc"));
        assert_eq!(r.familiar_string(), "alpine@sha256:abc");
    }

    #[test]
    fn rejects_bad_names() {
        assert!(Reference::parse("Busybox").is_err());
        assert!(Reference::parse("a//b").is_err());
        assert!(Reference::parse("busybox:").is_err());
        assert!(Reference::parse("").is_err());
    }
}
