//! Validated newtypes for config values that end up in files or on command lines.
//!
//! Each `parse` returns the message shown after the key path, in the form
//! "expected X, got Y", so a user sees what was wrong with what they wrote.

use std::fmt;

use serde::Serialize;

/// An RFC 1123 host name: dot-separated labels of 1–63 letters, digits and hyphens, not
/// starting or ending with a hyphen, at most 253 characters. Used for `hostname` and `fqdn`,
/// which end up in /etc/hostname, /etc/hosts and `hostname(1)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Hostname(String);

impl Hostname {
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("expected host name (RFC 1123), got {s:?}");
        let t = s.strip_suffix('.').unwrap_or(s);
        if t.is_empty() || t.len() > 253 {
            return Err(bad());
        }
        for label in t.split('.') {
            let ok = !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !ok {
                return Err(bad());
            }
        }
        Ok(Hostname(t.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Text without line breaks or NUL: safe to put on one line of a file (authorized_keys,
/// /etc/environment, sysctl.conf) or into one argument.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SingleLine(String);

impl SingleLine {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.contains(['\n', '\r', '\0']) {
            return Err(format!("expected a single line, got {s:?}"));
        }
        Ok(SingleLine(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A file mode of at most 0o7777. Accepted as YAML integer (an unquoted `0644`, read as octal
/// the way cloud-init's runtime does, or `420`) or as an octal string (`"0644"`, `"0o644"`,
/// `"644"`). Symbolic modes (`rwx`) are refused: cloud-init's schema lets them through but its
/// runtime cannot use them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OctalMode(u32);

impl OctalMode {
    pub fn from_int(v: i128) -> Result<Self, String> {
        match u32::try_from(v) {
            Ok(m) if m <= 0o7777 => Ok(OctalMode(m)),
            _ => Err(format!("expected octal mode (at most 07777), got {v}")),
        }
    }
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("expected octal mode, got {s:?}");
        let digits = s.strip_prefix("0o").unwrap_or(s);
        if digits.is_empty()
            || digits.len() > 5
            || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
        {
            return Err(bad());
        }
        let m = u32::from_str_radix(digits, 8).map_err(|_| bad())?;
        if m > 0o7777 {
            return Err(bad());
        }
        Ok(OctalMode(m))
    }
    pub fn bits(self) -> u32 {
        self.0
    }
}

impl fmt::Display for OctalMode {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

/// Serialized as the conventional octal string (`"0644"`), which is what a reader expects.
impl Serialize for OctalMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An absolute, normalized-enough path: starts with `/`, no `..` component, no NUL or line
/// break. Paths reach `open(2)` under the config root, so `..` could escape it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct AbsPath(String);

impl AbsPath {
    pub fn parse(s: &str) -> Result<Self, String> {
        if !s.starts_with('/') {
            return Err(format!("expected absolute path, got {s:?}"));
        }
        if s.contains(['\n', '\r', '\0']) {
            return Err(format!("expected a path on one line, got {s:?}"));
        }
        if s.split('/').any(|c| c == "..") {
            return Err(format!("expected a path without \"..\", got {s:?}"));
        }
        Ok(AbsPath(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A login name as `useradd(8)` accepts it by default: lowercase letters, digits, `_`, `-`,
/// starting with a letter or `_`, at most 32 characters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct UserName(String);

impl UserName {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut bytes = s.bytes();
        let ok = s.len() <= 32
            && bytes
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
            && bytes
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(UserName(s.to_owned()))
        } else {
            Err(format!("expected user name, got {s:?}"))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `ros.zram`: how big a compressed swap in RAM init sets up. `auto` (the default): half the
/// memory on a machine with less than [`ZramSize::AUTO_BELOW_MIB`]; `off`/`false`: none;
/// `on`/`true`: half the memory whatever its size; a size (`256M`, `1G`, `1048576` bytes)
/// or a share of the memory (`25%`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZramSize {
    Auto,
    Off,
    Bytes(u64),
    Percent(u8),
}

impl ZramSize {
    /// Below this much memory (MiB), `auto` sets up zram swap.
    pub const AUTO_BELOW_MIB: u64 = 512;
    /// The share of the memory `auto` and `on` use.
    pub const DEFAULT_PERCENT: u8 = 50;
    /// The smallest size given in bytes that is taken (smaller is surely a mistake).
    pub const MIN_BYTES: u64 = 1 << 20;
    /// At most this many times the memory: zram's own table costs ~0.5% of its size in
    /// RAM before anything is stored, so a mistyped unit (`64G` for `64M`) must not reach
    /// the kernel.
    pub const MAX_TIMES_MEMORY: u64 = 2;

    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "expected auto, on, off, a size (256M, 1G) or a share of the memory (50%), \
                 got {s:?}"
            )
        };
        let t = s.trim();
        match t.to_ascii_lowercase().as_str() {
            "auto" => return Ok(ZramSize::Auto),
            "off" | "false" | "no" | "0" => return Ok(ZramSize::Off),
            "on" | "true" | "yes" => return Ok(ZramSize::Percent(Self::DEFAULT_PERCENT)),
            _ => {}
        }
        let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(digits_end);
        if digits.is_empty() {
            return Err(bad());
        }
        let unit = unit.trim().to_ascii_uppercase();
        if unit == "%" {
            return match digits.parse::<u8>() {
                Ok(0) => Ok(ZramSize::Off),
                Ok(n) if n <= 100 => Ok(ZramSize::Percent(n)),
                _ => Err(bad()),
            };
        }
        let shift = match unit.as_str() {
            "" | "B" => 0,
            "K" | "KB" | "KIB" => 10,
            "M" | "MB" | "MIB" => 20,
            "G" | "GB" | "GIB" => 30,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        match n.checked_mul(1 << shift) {
            Some(0) => Ok(ZramSize::Off),
            Some(bytes) if bytes < Self::MIN_BYTES => Err(format!(
                "expected at least 1M of zram swap (or off), got {s:?}"
            )),
            Some(bytes) => Ok(ZramSize::Bytes(bytes)),
            None => Err(bad()),
        }
    }

    /// The swap size for a machine with `mem_bytes` of memory; `None` for no swap.
    pub fn bytes(self, mem_bytes: u64) -> Option<u64> {
        let share = |p: u8| mem_bytes / 100 * u64::from(p);
        match self {
            ZramSize::Off => None,
            ZramSize::Auto if mem_bytes < Self::AUTO_BELOW_MIB << 20 => {
                Some(share(Self::DEFAULT_PERCENT))
            }
            ZramSize::Auto => None,
            ZramSize::Percent(p) => Some(share(p)),
            ZramSize::Bytes(b) => Some(b),
        }
    }

    /// The size for a machine with `mem_bytes`, refused (with why) when it is more than
    /// [`Self::MAX_TIMES_MEMORY`] times the memory.
    pub fn checked_bytes(self, mem_bytes: u64) -> Result<Option<u64>, String> {
        match self.bytes(mem_bytes) {
            Some(b) if b > mem_bytes.saturating_mul(Self::MAX_TIMES_MEMORY) => Err(format!(
                "{} MiB is more than {} times this machine's {} MiB of memory",
                b >> 20,
                Self::MAX_TIMES_MEMORY,
                mem_bytes >> 20
            )),
            other => Ok(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zram_size() {
        assert_eq!(ZramSize::parse("auto"), Ok(ZramSize::Auto));
        assert_eq!(ZramSize::parse("false"), Ok(ZramSize::Off));
        assert_eq!(ZramSize::parse("0"), Ok(ZramSize::Off));
        assert_eq!(ZramSize::parse("true"), Ok(ZramSize::Percent(50)));
        assert_eq!(ZramSize::parse("25%"), Ok(ZramSize::Percent(25)));
        assert_eq!(ZramSize::parse("256M"), Ok(ZramSize::Bytes(256 << 20)));
        assert_eq!(ZramSize::parse("1GiB"), Ok(ZramSize::Bytes(1 << 30)));
        assert_eq!(ZramSize::parse("512 MB"), Ok(ZramSize::Bytes(512 << 20)));
        assert_eq!(ZramSize::parse("1048576"), Ok(ZramSize::Bytes(1 << 20)));
        assert_eq!(ZramSize::parse("0%"), Ok(ZramSize::Off));
        assert_eq!(ZramSize::parse("0M"), Ok(ZramSize::Off));
        let too_small = ZramSize::parse("4096").unwrap_err();
        assert!(too_small.starts_with("expected at least 1M"), "{too_small}");
        for bad in [
            "",
            "big",
            "101%",
            "12T",
            "-1M",
            "+50%",
            "1.5G",
            "256iB",
            "M",
            "%",
            "99999999999999999999G",
        ] {
            let e = ZramSize::parse(bad).unwrap_err();
            assert!(e.starts_with("expected auto, on, off"), "{bad}: {e}");
        }
        let mib = |m: u64| m << 20;
        assert_eq!(ZramSize::Auto.bytes(mib(200)), Some(mib(100)));
        assert_eq!(ZramSize::Auto.bytes(mib(1000)), None);
        assert_eq!(ZramSize::Off.bytes(mib(100)), None);
        assert_eq!(ZramSize::Percent(25).bytes(mib(1000)), Some(mib(250)));
        assert_eq!(ZramSize::Bytes(mib(64)).bytes(mib(1000)), Some(mib(64)));
        assert_eq!(
            ZramSize::Bytes(mib(64)).checked_bytes(mib(200)),
            Ok(Some(mib(64)))
        );
        assert_eq!(
            ZramSize::Bytes(mib(64 << 10)).checked_bytes(mib(256)),
            Err("65536 MiB is more than 2 times this machine's 256 MiB of memory".into())
        );
        assert_eq!(ZramSize::Off.checked_bytes(mib(256)), Ok(None));
    }

    #[test]
    fn hostname() {
        assert!(Hostname::parse("node-1").is_ok());
        assert_eq!(
            Hostname::parse("a.example.com.").unwrap().as_str(),
            "a.example.com"
        );
        for bad in ["", "-a", "a-", "a..b", "a_b", "a b", &"x".repeat(64)] {
            assert!(Hostname::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn octal_mode() {
        assert_eq!(OctalMode::parse("0644").unwrap().bits(), 0o644);
        assert_eq!(OctalMode::parse("0o755").unwrap().bits(), 0o755);
        assert_eq!(OctalMode::parse("600").unwrap().to_string(), "0600");
        assert_eq!(OctalMode::from_int(420).unwrap().bits(), 0o644);
        assert!(OctalMode::parse("rwx").is_err());
        assert!(OctalMode::parse("0888").is_err());
        assert!(OctalMode::parse("17777").is_err());
        assert!(OctalMode::from_int(-1).is_err());
        assert!(OctalMode::from_int(0o10000).is_err());
    }

    #[test]
    fn paths_and_lines() {
        assert!(AbsPath::parse("/etc/x").is_ok());
        assert!(AbsPath::parse("etc/x").is_err());
        assert!(AbsPath::parse("/etc/../x").is_err());
        assert!(SingleLine::parse("a\nb").is_err());
        assert!(UserName::parse("rancher").is_ok());
        assert!(UserName::parse("Root").is_err());
        assert!(UserName::parse("a b").is_err());
    }
}
