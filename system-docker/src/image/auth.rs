//! Registry credentials and `WWW-Authenticate` challenges (RFC 7235), as the registry HTTP
//! API v2 token and Basic authentication use them.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

/// Credentials for a registry, as the `X-Registry-Auth` header carries them.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RegistryAuth {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
}

impl fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// One challenge of a `WWW-Authenticate` header (RFC 7235).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Lower-cased: `bearer`, `basic`.
    pub scheme: String,
    /// Parameter names lower-cased.
    pub params: BTreeMap<String, String>,
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~/".contains(c)
}

/// Parses a `WWW-Authenticate` value: one or more challenges, each a scheme followed by
/// comma-separated `name=value` or `name="quoted, value"` parameters.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let s: Vec<char> = header.chars().collect();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < s.len() && (s[*i] == ' ' || s[*i] == '\t') {
            *i += 1;
        }
    };
    let token = |i: &mut usize| {
        let start = *i;
        while *i < s.len() && is_tchar(s[*i]) {
            *i += 1;
        }
        s[start..*i].iter().collect::<String>()
    };
    let mut out: Vec<Challenge> = Vec::new();
    loop {
        while i < s.len() && (s[i] == ',' || s[i] == ' ' || s[i] == '\t') {
            i += 1;
        }
        if i >= s.len() {
            break;
        }
        let scheme = token(&mut i);
        if scheme.is_empty() {
            // Not a token: skip the character to make progress.
            i += 1;
            continue;
        }
        let mut params = BTreeMap::new();
        loop {
            skip_ws(&mut i);
            let save = i;
            let name = token(&mut i);
            skip_ws(&mut i);
            if name.is_empty() || i >= s.len() || s[i] != '=' {
                // The start of the next challenge (or the end).
                i = save;
                break;
            }
            i += 1;
            skip_ws(&mut i);
            let value = if i < s.len() && s[i] == '"' {
                i += 1;
                let mut v = String::new();
                while i < s.len() && s[i] != '"' {
                    if s[i] == '\\' && i + 1 < s.len() {
                        i += 1;
                    }
                    v.push(s[i]);
                    i += 1;
                }
                i += 1;
                v
            } else {
                let start = i;
                while i < s.len() && s[i] != ',' && s[i] != ' ' && s[i] != '\t' {
                    i += 1;
                }
                s[start..i].iter().collect()
            };
            params.insert(name.to_ascii_lowercase(), value);
            skip_ws(&mut i);
            if i < s.len() && s[i] == ',' {
                i += 1;
            }
        }
        out.push(Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge_with_quoted_commas() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].params["realm"], "https://auth.docker.io/token");
        assert_eq!(c[0].params["service"], "registry.docker.io");
        assert_eq!(c[0].params["scope"], "repository:library/busybox:pull,push");
    }

    #[test]
    fn several_challenges_and_odd_spacing() {
        let c = parse_challenges(
            r#"Basic realm="Registry Realm", Bearer realm = "http://127.0.0.1:5001/auth" , service=registry,error="invalid_token""#,
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].params["realm"], "Registry Realm");
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].params["realm"], "http://127.0.0.1:5001/auth");
        assert_eq!(c[1].params["service"], "registry");
        assert_eq!(c[1].params["error"], "invalid_token");

        let c = parse_challenges(r#"basic realm="a \"quoted\" realm""#);
        assert_eq!(c[0].params["realm"], r#"a "quoted" realm"#);
        assert!(parse_challenges("").is_empty());
        assert_eq!(parse_challenges("Negotiate")[0].scheme, "negotiate");
    }

    #[test]
    fn auth_debug_hides_the_password() {
        let a = RegistryAuth {
            username: "u".into(),
            password: "secret".into(),
        };
        assert!(!format!("{a:?}").contains("secret"));
    }
}
