//! Kernel command line overrides: `ros.<dotted.key>=<yaml value>` (DESIGN.md §4).
//!
//! A bare `ros.debug` is `true`; `rancher.` is accepted for `ros.`; a value may be quoted to
//! hold spaces (`ros.environment.GREETING="hello world"`); everything after `--` belongs to
//! init and is ignored. Values are YAML (`ros.cloud_init.datasources=[nocloud,ec2]`); a value
//! that is not valid YAML is taken as a string, since a typo on the command line must not stop
//! the boot. Each override is validated on its own: a bad one is reported and left out, the
//! others still apply.

use serde_json::Value;

use crate::node::{self, Key, Kind, Node, Pos};
use crate::{merge, to_json, validate, ConfigError, Warning};

/// Source name used in messages about the command line.
pub const SOURCE: &str = "cmdline";

/// One `ros.<key>=<value>` argument.
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    /// The key under `ros` (`["state", "dev"]` for `ros.state.dev`).
    pub key: Vec<String>,
    pub value: Node,
    /// 1-based column of the argument in the command line.
    pub column: u64,
}

/// Splits the command line into arguments with their 1-based columns, removing double quotes
/// the way the kernel's parser treats them (`a="b c"` is one argument `a=b c`).
pub fn split_args(cmdline: &str) -> Vec<(u64, String)> {
    let mut args = Vec::new();
    let mut cur: Option<(u64, String)> = None;
    let mut quoted = false;
    for (i, c) in cmdline.chars().enumerate() {
        if c.is_whitespace() && !quoted {
            args.extend(cur.take());
            continue;
        }
        let arg = cur.get_or_insert_with(|| (i as u64 + 1, String::new()));
        if c == '"' {
            quoted = !quoted;
        } else {
            arg.1.push(c);
        }
    }
    args.extend(cur);
    args
}

fn reposition(n: &mut Node, line: u64, base: u64) {
    // A value's own positions are relative to the value text; the line is always 1.
    n.pos = Pos {
        line,
        column: base + n.pos.column.saturating_sub(1),
    };
    match &mut n.kind {
        Kind::Seq(items) => items.iter_mut().for_each(|i| reposition(i, line, base)),
        Kind::Map(entries) => {
            for (k, v) in entries {
                k.pos = Pos {
                    line,
                    column: base + k.pos.column.saturating_sub(1),
                };
                reposition(v, line, base);
            }
        }
        _ => {}
    }
}

fn value_node(text: &str, column: u64) -> Node {
    let pos = Pos { line: 1, column };
    if text.trim().is_empty() {
        return Node {
            pos,
            kind: Kind::Str(text.to_owned()),
        };
    }
    match node::parse(text) {
        // An "empty document" here is a value that is only a comment (`#x`): a string.
        Ok(Node {
            kind: Kind::Map(m), ..
        }) if m.is_empty() => Node {
            pos,
            kind: Kind::Str(text.to_owned()),
        },
        Ok(mut n) => {
            reposition(&mut n, 1, column);
            n
        }
        Err(_) => Node {
            pos,
            kind: Kind::Str(text.to_owned()),
        },
    }
}

/// The `ros.`/`rancher.` arguments of a command line; malformed keys (`ros..x`) are warnings.
pub fn overrides(cmdline: &str) -> (Vec<Override>, Vec<Warning>) {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for (column, arg) in split_args(cmdline) {
        if arg == "--" {
            break;
        }
        let Some(rest) = arg
            .strip_prefix("ros.")
            .or_else(|| arg.strip_prefix("rancher."))
        else {
            continue;
        };
        let prefix_len = (arg.len() - rest.len()) as u64;
        let (key, value) = match rest.split_once('=') {
            Some((k, v)) => {
                let value_col = column + prefix_len + k.chars().count() as u64 + 1;
                (k, value_node(v, value_col))
            }
            None => (
                rest,
                Node {
                    pos: Pos { line: 1, column },
                    kind: Kind::Bool(true),
                },
            ),
        };
        let key: Vec<String> = key.split('.').map(str::to_owned).collect();
        if key.iter().any(String::is_empty) {
            warnings.push(Warning {
                source: SOURCE.into(),
                line: 1,
                column,
                path: arg.split('=').next().unwrap_or_default().to_owned(),
                message: "malformed key, ignored".into(),
            });
            continue;
        }
        out.push(Override { key, value, column });
    }
    (out, warnings)
}

impl Override {
    /// The override as a one-key document: `{ros: {state: {dev: …}}}`.
    pub fn to_document(&self) -> Node {
        let pos = Pos {
            line: 1,
            column: self.column,
        };
        let mut n = self.value.clone();
        for seg in self
            .key
            .iter()
            .rev()
            .chain(std::iter::once(&"ros".to_owned()))
        {
            n = Node {
                pos,
                kind: Kind::Map(vec![(
                    Key {
                        pos,
                        name: seg.clone(),
                    },
                    n,
                )]),
            };
        }
        n
    }
}

/// The command line as a config layer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CmdlineConfig {
    /// Normalized JSON of the valid overrides, later ones winning.
    pub value: Value,
    pub warnings: Vec<Warning>,
    /// Overrides that failed validation and were left out.
    pub errors: Vec<ConfigError>,
}

/// Parses `/proc/cmdline` text into a config layer.
pub fn parse(cmdline: &str) -> CmdlineConfig {
    let (list, mut warnings) = overrides(cmdline);
    let mut value = Value::Object(Default::default());
    let mut errors = Vec::new();
    for o in &list {
        match validate(SOURCE, &o.to_document()) {
            Ok(v) => {
                warnings.extend(v.warnings);
                merge::merge(&mut value, to_json(&v.config));
            }
            Err(e) => errors.push(e),
        }
    }
    warnings.sort_by_key(|w| w.column);
    CmdlineConfig {
        value,
        warnings,
        errors,
    }
}
