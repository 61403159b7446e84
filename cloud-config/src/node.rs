//! A YAML document as a tree whose every node and key keeps its line and column.
//!
//! The tree is read with serde-saphyr: `serde_yaml` is archived upstream (unmaintained since
//! 2024), while serde-saphyr is maintained, panic-free on malformed input, reads YAML 1.1
//! booleans (`yes`/`on`) as cloud-init users write them.
//!
//! Numbers with a leading zero (`0644`) are kept as the string the user wrote rather than
//! read with the legacy-octal option (which would make `0644` the integer 420): the typed layer
//! reads them as octal where a mode is expected (`permissions: 0644` is mode 0o644, as in
//! cloud-init's runtime), while elsewhere the spelling survives — `UMASK: 022` in
//! `environment` stays `022` instead of silently becoming `18`, and raw sections (services)
//! reach their own reader exactly as written, which reads them the same way.
//!
//! The schema ([`crate::schema`]) is checked by walking this tree rather than by deriving
//! `Deserialize`: that is what lets every error name its key path and position, and lets
//! unknown keys become warnings instead of silent drops or hard failures.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A 1-based position in the source text (0 when unknown).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

/// One YAML node and where it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub kind: Kind,
}

/// A mapping key and where it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    pub pos: Pos,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

impl Kind {
    /// What a user would call this kind of value, for "expected X, got Y" messages.
    pub fn describe(&self) -> String {
        match self {
            Kind::Null => "null".into(),
            Kind::Bool(b) => format!("boolean {b}"),
            Kind::Int(i) => format!("integer {i}"),
            Kind::Float(f) => format!("number {f}"),
            Kind::Str(s) => format!("{s:?}"),
            Kind::Seq(_) => "a list".into(),
            Kind::Map(_) => "a map".into(),
        }
    }
}

impl Node {
    /// The node as JSON, for parts of the config kept as raw values.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Int(i) => {
                if let Ok(v) = i64::try_from(*i) {
                    Value::from(v)
                } else if let Ok(v) = u64::try_from(*i) {
                    Value::from(v)
                } else {
                    Value::String(i.to_string())
                }
            }
            Kind::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(f.to_string())),
            Kind::Str(s) => Value::String(s.clone()),
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

fn pos(loc: &serde_saphyr::Location) -> Pos {
    Pos {
        line: loc.line(),
        column: loc.column(),
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Spanned::<Kind>::deserialize(d)?;
        Ok(Node {
            pos: pos(&s.referenced),
            kind: s.value,
        })
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Spanned::<Kind>::deserialize(d)?;
        let name = match s.value {
            Kind::Str(s) => s,
            Kind::Null => "null".into(),
            Kind::Bool(b) => b.to_string(),
            Kind::Int(i) => i.to_string(),
            Kind::Float(f) => f.to_string(),
            Kind::Seq(_) | Kind::Map(_) => {
                return Err(de::Error::custom("a mapping key must be a scalar"));
            }
        };
        Ok(Key {
            pos: pos(&s.referenced),
            name,
        })
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(KindVisitor)
    }
}

struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = Kind;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }
    fn visit_none<E>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Kind, D::Error> {
        Kind::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Kind, E> {
        Ok(Kind::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Kind, E> {
        Ok(Kind::Int(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Kind, E> {
        Ok(Kind::Int(v.into()))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Kind, E> {
        Ok(Kind::Int(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Kind, E> {
        i128::try_from(v)
            .map(Kind::Int)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Kind, E> {
        Ok(Kind::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Kind, E> {
        Ok(Kind::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Kind, E> {
        Ok(Kind::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Kind, E> {
        String::from_utf8(v.to_vec())
            .map(Kind::Str)
            .map_err(|_| E::custom("binary value is not UTF-8"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Kind, A::Error> {
        let mut items = Vec::new();
        while let Some(n) = seq.next_element::<Node>()? {
            items.push(n);
        }
        Ok(Kind::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Kind, A::Error> {
        let mut entries = Vec::new();
        while let Some(k) = map.next_key::<Key>()? {
            let v = map.next_value::<Node>()?;
            entries.push((k, v));
        }
        Ok(Kind::Map(entries))
    }
}

/// A YAML syntax error (or a document the tree cannot hold) with its position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Parses one YAML document. An empty document is an empty map (cloud-init treats a bare
/// `#cloud-config` header as an empty config).
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let options = serde_saphyr::options! {
        leading_zero_numbers_as_strings: true,
    };
    let parsed: Option<Node> = serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let p = e.location().map(|l| pos(&l)).unwrap_or_default();
        let mut message = e.without_snippet().to_string();
        // The position is printed as source:line:col; do not repeat it.
        let suffix = format!(" at line {}, column {}", p.line, p.column);
        if let Some(m) = message.strip_suffix(&suffix) {
            message = m.to_string();
        }
        // Advice aimed at the programmer, not at whoever wrote the YAML.
        if let Some(i) = message.find(", set DuplicateKeyPolicy") {
            message.truncate(i);
        }
        SyntaxError { pos: p, message }
    })?;
    Ok(parsed.unwrap_or(Node {
        pos: Pos { line: 1, column: 1 },
        kind: Kind::Map(Vec::new()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_yaml_1_1_scalars() {
        let n = parse("a: 0644\nc: 0x10\nb:\n  - yes\n  - \"0644\"\n").unwrap();
        let Kind::Map(m) = &n.kind else {
            panic!("{n:?}")
        };
        assert_eq!(m[0].0.name, "a");
        assert_eq!(m[0].0.pos, Pos { line: 1, column: 1 });
        assert_eq!(m[0].1.kind, Kind::Str("0644".into()));
        assert_eq!(m[0].1.pos, Pos { line: 1, column: 4 });
        assert_eq!(m[1].1.kind, Kind::Int(16));
        let Kind::Seq(s) = &m[2].1.kind else { panic!() };
        assert_eq!(s[0].kind, Kind::Bool(true));
        assert_eq!(s[0].pos.line, 4);
        assert_eq!(s[1].kind, Kind::Str("0644".into()));
    }

    #[test]
    fn empty_is_empty_map() {
        assert_eq!(parse("").unwrap().kind, Kind::Map(vec![]));
        assert_eq!(parse("# only a comment\n").unwrap().kind, Kind::Map(vec![]));
    }

    #[test]
    fn syntax_error_located() {
        let e = parse("a: [1, 2\nb: c\n").unwrap_err();
        assert!(e.pos.line >= 1, "{e:?}");
    }
}
