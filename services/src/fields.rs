//! Field types of a service definition as people write them in YAML: a boolean may be `yes`
//! or `on` (YAML 1.1, as cloud-init and RancherOS configs use them), a string may have been
//! read as a number (`user: 1000`), a list may be a single string, `environment` and `labels`
//! may be a list of `K=V` or a map, sizes are `512m`, durations `1m30s`.
//!
//! Each type deserializes leniently (with a message saying what was expected, which
//! `serde_path_to_error` prefixes with the field) and serializes in one canonical form that
//! deserializes back to the same value, so definitions can be merged as plain trees.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Unexpected, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A YAML 1.1 boolean spelling (`true/false, yes/no, on/off, y/n`, any case), if it is one.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "y" => Some(true),
        "false" | "no" | "off" | "n" => Some(false),
        _ => None,
    }
}

const BOOL_EXPECTED: &str = "a boolean (true/false, yes/no, on/off)";

/// A boolean, also spelled `yes`, `on`, … .
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Flag(pub bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Flag;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(BOOL_EXPECTED)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Flag, E> {
                Ok(Flag(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Flag, E> {
                parse_bool(v)
                    .map(Flag)
                    .ok_or_else(|| E::invalid_value(Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

/// A scalar taken as text: a string, or a number or boolean the YAML reader typed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Text(pub String);

struct TextVisitor;

impl Visitor<'_> for TextVisitor {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor).map(Text)
    }
}

/// A list of strings, or one string standing for a list of one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TextList(pub Vec<String>);

impl<'de> Deserialize<'de> for TextList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TextList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of strings (or one string)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TextList, E> {
                Ok(TextList(vec![v.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TextList, A::Error> {
                let mut out = Vec::new();
                while let Some(Text(s)) = seq.next_element()? {
                    out.push(s);
                }
                Ok(TextList(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// A command line: one string (split as a shell would, without running one) or a list of
/// arguments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Words {
    Line(String),
    List(Vec<String>),
}

impl Words {
    /// The arguments; `Err` names what could not be split.
    pub fn to_args(&self) -> Result<Vec<String>, String> {
        match self {
            Words::List(v) => Ok(v.clone()),
            Words::Line(s) => shlex::split(s)
                .ok_or_else(|| format!("cannot split {s:?} into arguments (unbalanced quotes?)")),
        }
    }
}

impl<'de> Deserialize<'de> for Words {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Words;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a command line (a string or a list of strings)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Words, E> {
                Ok(Words::Line(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Words, E> {
                // `command: true` runs true(1).
                Ok(Words::Line(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Words, E> {
                Ok(Words::Line(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Words, E> {
                Ok(Words::Line(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Words, A::Error> {
                let mut out = Vec::new();
                while let Some(Text(s)) = seq.next_element()? {
                    out.push(s);
                }
                Ok(Words::List(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// `environment` and `labels`: a map (`K: V`, `K:` with no value) or a list (`K=V`, `K`).
/// Both forms become one map, so definitions from several files merge key by key, as
/// docker-compose merges these two fields across override files.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Pairs(pub BTreeMap<String, Option<String>>);

impl<'de> Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Pairs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of KEY: value, or a list of KEY=value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Pairs, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(Text(item)) = seq.next_element()? {
                    match item.split_once('=') {
                        Some((k, v)) => out.insert(k.to_string(), Some(v.to_string())),
                        None => out.insert(item, None),
                    };
                }
                Ok(Pairs(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pairs, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(Text(k)) = map.next_key()? {
                    let v: Option<Text> = map.next_value()?;
                    out.insert(k, v.map(|t| t.0));
                }
                Ok(Pairs(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// `extra_hosts`: a list of `host:ip` or a map `host: ip`, kept as `host:ip`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct HostList(pub Vec<String>);

impl<'de> Deserialize<'de> for HostList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = HostList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of host:ip, or a map of host: ip")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<HostList, A::Error> {
                let mut out = Vec::new();
                while let Some(Text(s)) = seq.next_element()? {
                    out.push(s);
                }
                Ok(HostList(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<HostList, A::Error> {
                let mut out = Vec::new();
                while let Some(Text(k)) = map.next_key()? {
                    let Text(v) = map.next_value()?;
                    out.push(format!("{k}:{v}"));
                }
                Ok(HostList(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// An integer, also as a numeric string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Int(pub i64);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Int;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int, E> {
                Ok(Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int, E> {
                i64::try_from(v)
                    .map(Int)
                    .map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Int, E> {
                v.trim()
                    .replace('_', "")
                    .parse()
                    .map(Int)
                    .map_err(|_| E::invalid_value(Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

/// A number (`cpus: 0.5`), also as a numeric string.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Float(pub f64);

impl<'de> Deserialize<'de> for Float {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Float;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Float, E> {
                Ok(Float(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Float, E> {
                Ok(Float(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Float, E> {
                Ok(Float(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Float, E> {
                v.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(Float)
                    .ok_or_else(|| E::invalid_value(Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

/// A size in bytes: a number, or `512m`, `1g`, `100k`, `64mb`, `1.5g`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Bytes(pub i64);

/// Parses `512m`, `1g`, `100k`, `1024`, `64MB`, `1.5g` (binary units, as docker's).
pub fn parse_size(s: &str) -> Option<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.char_indices().last()? {
        (i, 'k') => (&t[..i], 1i64 << 10),
        (i, 'm') => (&t[..i], 1 << 20),
        (i, 'g') => (&t[..i], 1 << 30),
        (i, 't') => (&t[..i], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num.trim().parse().ok()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let bytes = n * mult as f64;
    (bytes <= i64::MAX as f64).then_some(bytes as i64)
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size (bytes, or a number with k, m or g, like 512m)")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Bytes, E> {
                if v < 0 {
                    return Err(E::invalid_value(Unexpected::Signed(v), &self));
                }
                Ok(Bytes(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Bytes, E> {
                i64::try_from(v)
                    .map(Bytes)
                    .map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Bytes, E> {
                parse_size(v)
                    .map(Bytes)
                    .ok_or_else(|| E::invalid_value(Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration in nanoseconds. Written as Go durations are (`30s`, `1m30s`, `500ms`, `1h`)
/// or as a number of seconds; serialized as `<n>ns` so it reads back the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nanos(pub i64);

impl Serialize for Nanos {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ns", self.0))
    }
}

/// Parses a Go-style duration (`1h2m3s`, `1.5s`, `500ms`, `10us`, `7ns`) to nanoseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    if let Ok(secs) = t.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then_some((secs * 1e9) as i64);
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * scale;
    }
    (total <= i64::MAX as f64).then_some(total as i64)
}

impl<'de> Deserialize<'de> for Nanos {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Nanos;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration (like 30s, 1m30s or 500ms)")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Nanos, E> {
                v.checked_mul(1_000_000_000)
                    .filter(|n| *n >= 0)
                    .map(Nanos)
                    .ok_or_else(|| E::invalid_value(Unexpected::Signed(v), &self))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Nanos, E> {
                i64::try_from(v)
                    .ok()
                    .and_then(|v| v.checked_mul(1_000_000_000))
                    .map(Nanos)
                    .ok_or_else(|| E::invalid_value(Unexpected::Unsigned(v), &self))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Nanos, E> {
                parse_duration(&v.to_string())
                    .map(Nanos)
                    .ok_or_else(|| E::invalid_value(Unexpected::Float(v), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Nanos, E> {
                parse_duration(v)
                    .map(Nanos)
                    .ok_or_else(|| E::invalid_value(Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

/// A restart policy: `no`, `always`, `unless-stopped`, `on-failure` or `on-failure:N`.
/// An unquoted `no` is a YAML 1.1 boolean, so `false` means `no` too.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Restart(pub String);

impl Restart {
    /// The Docker API's `RestartPolicy` name and retry count.
    pub fn policy(&self) -> (String, i64) {
        match self.0.split_once(':') {
            Some((name, n)) => (name.to_string(), n.parse().unwrap_or(0)),
            None => (self.0.clone(), 0),
        }
    }
}

fn valid_restart(s: &str) -> bool {
    match s.split_once(':') {
        Some(("on-failure", n)) => n.parse::<u32>().is_ok(),
        Some(_) => false,
        None => matches!(s, "no" | "always" | "unless-stopped" | "on-failure"),
    }
}

impl<'de> Deserialize<'de> for Restart {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Restart;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a restart policy (no, always, unless-stopped, on-failure[:N])")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Restart, E> {
                if v {
                    return Err(E::invalid_value(Unexpected::Bool(v), &self));
                }
                Ok(Restart("no".into()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Restart, E> {
                let t = v.trim();
                if parse_bool(t) == Some(false) {
                    return Ok(Restart("no".into()));
                }
                if !valid_restart(t) {
                    return Err(E::invalid_value(Unexpected::Str(v), &self));
                }
                Ok(Restart(t.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn de<T: for<'de> Deserialize<'de>>(v: serde_json::Value) -> Result<T, String> {
        T::deserialize(v).map_err(|e| e.to_string())
    }

    #[test]
    fn yaml11_booleans() {
        for (v, want) in [
            (json!(true), true),
            (json!("yes"), true),
            (json!("On"), true),
            (json!("off"), false),
            (json!("NO"), false),
        ] {
            assert_eq!(de::<Flag>(v).unwrap(), Flag(want));
        }
        let e = de::<Flag>(json!("maybe")).unwrap_err();
        assert!(e.contains("\"maybe\"") && e.contains("a boolean"), "{e}");
        assert!(de::<Flag>(json!(1)).is_err());
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("512m"), Some(512 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("64MB"), Some(64 << 20));
        assert_eq!(parse_size("1.5k"), Some(1536));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_duration("500ms"), Some(500_000_000));
        assert_eq!(parse_duration("2"), Some(2_000_000_000));
        assert_eq!(parse_duration("5x"), None);
        // The canonical form reads back the same.
        let n = de::<Nanos>(json!("1h")).unwrap();
        let back = de::<Nanos>(serde_json::to_value(n).unwrap()).unwrap();
        assert_eq!(n, back);
        assert_eq!(de::<Nanos>(json!(10)).unwrap(), Nanos(10_000_000_000));
    }

    #[test]
    fn pairs_from_list_or_map() {
        let a: Pairs = de(json!(["A=1", "B=x=y", "C"])).unwrap();
        let b: Pairs = de(json!({"A": 1, "B": "x=y", "C": null})).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.0["B"].as_deref(), Some("x=y"));
        assert_eq!(a.0["C"], None);
        assert!(de::<Pairs>(json!("A=1")).is_err());
    }

    #[test]
    fn restart_policies() {
        assert_eq!(de::<Restart>(json!(false)).unwrap().0, "no");
        assert_eq!(de::<Restart>(json!("no")).unwrap().0, "no");
        assert_eq!(
            de::<Restart>(json!("on-failure:3")).unwrap().policy(),
            ("on-failure".into(), 3)
        );
        let e = de::<Restart>(json!("sometimes")).unwrap_err();
        assert!(e.contains("restart policy"), "{e}");
    }

    #[test]
    fn words_split_like_a_shell() {
        let w: Words = de(json!("sh -c 'echo a b'")).unwrap();
        assert_eq!(w.to_args().unwrap(), ["sh", "-c", "echo a b"]);
        assert!(Words::Line("echo 'x".into()).to_args().is_err());
        let w: Words = de(json!(["a", 1])).unwrap();
        assert_eq!(w.to_args().unwrap(), ["a", "1"]);
    }
}
