//! `inspect`: the daemon's JSON for containers and images, as an indented array (the
//! daemon's own field order kept, as docker's `json.Indent` keeps it) or through a template.

use clap::{Args, ValueEnum};
use serde_json::Value;

use super::super::format::Missing;
use super::fail;
use super::system::parse_template;
use crate::client::{self, Client};

/// The kinds of object `inspect` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Container,
    Image,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a custom template ('json' or a Go template)
    #[arg(short = 'f', long, value_name = "string")]
    format: Option<String>,
    /// Return JSON for specified type
    #[arg(long = "type", value_name = "string")]
    kind: Option<Kind>,
    /// Display total file sizes if the type is container
    #[arg(short = 's', long)]
    size: bool,
    #[arg(value_name = "NAME|ID", required = true)]
    names: Vec<String>,
}

/// `container inspect` / `image inspect`: no `--type`, the kind is implied.
#[derive(Args, Debug)]
pub struct TypedInspectArgs {
    /// Format output using a custom template ('json' or a Go template)
    #[arg(short = 'f', long, value_name = "string")]
    format: Option<String>,
    /// Display total file sizes (containers)
    #[arg(short = 's', long)]
    size: bool,
    #[arg(value_name = "NAME|ID", required = true)]
    names: Vec<String>,
}

impl TypedInspectArgs {
    pub fn with_type(self, kind: Kind) -> InspectArgs {
        InspectArgs {
            format: self.format,
            kind: Some(kind),
            size: self.size,
            names: self.names,
        }
    }
}

/// `system-docker inspect`.
pub async fn inspect(client: &Client, a: InspectArgs) -> anyhow::Result<i32> {
    let template = parse_template(&a.format)?;

    let mut found: Vec<(bytes::Bytes, Value)> = Vec::new();
    let mut errors = Vec::new();
    for name in &a.names {
        match lookup(client, name, a.kind, a.size).await {
            Ok(Some(obj)) => found.push(obj),
            Ok(None) => errors.push(format!("Error: No such object: {name}")),
            Err(e) => errors.push(e.to_string()),
        }
    }

    match &template {
        None => {
            let raw: Vec<&[u8]> = found.iter().map(|(b, _)| b.as_ref()).collect();
            println!("{}", indent_array(&raw));
        }
        Some(t) => {
            for (_, v) in &found {
                match t.render(v, Missing::NoValue) {
                    Ok(out) => println!("{out}"),
                    Err(e) => errors.push(e.inspect_status().1),
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(0)
    } else {
        Err(fail(1, errors.join("\n")))
    }
}

/// The object's raw JSON and value; `None` when no object of the asked kind(s) exists.
async fn lookup(
    client: &Client,
    name: &str,
    kind: Option<Kind>,
    size: bool,
) -> Result<Option<(bytes::Bytes, Value)>, client::Error> {
    let escaped = client::path_escape(name);
    let kinds: &[Kind] = match kind {
        Some(Kind::Container) => &[Kind::Container],
        Some(Kind::Image) => &[Kind::Image],
        None => &[Kind::Container, Kind::Image],
    };
    for k in kinds {
        let path = match k {
            Kind::Container if size => format!("/containers/{escaped}/json?size=1"),
            Kind::Container => format!("/containers/{escaped}/json"),
            Kind::Image => format!("/images/{escaped}/json"),
        };
        match client.get_raw(&path).await {
            Ok(obj) => return Ok(Some(obj)),
            // With an explicit --type the daemon's own message is shown.
            Err(e) if e.is_not_found() && kind.is_none() => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// The raw JSON documents as one array indented with four spaces, like Go's
/// `json.Indent(…, "", "    ")`: existing spacing is replaced, strings and key order are kept,
/// empty arrays and objects stay `[]` and `{}`.
pub fn indent_array(docs: &[&[u8]]) -> String {
    let mut joined = Vec::with_capacity(docs.iter().map(|d| d.len() + 1).sum::<usize>() + 2);
    joined.push(b'[');
    for (i, d) in docs.iter().enumerate() {
        if i > 0 {
            joined.push(b',');
        }
        joined.extend_from_slice(d);
    }
    joined.push(b']');
    indent(&joined, "    ")
}

fn indent(src: &[u8], unit: &str) -> String {
    let mut out: Vec<u8> = Vec::with_capacity(src.len() * 2);
    let mut depth = 0usize;
    let mut need_indent = false;
    let newline = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        for _ in 0..depth {
            out.extend_from_slice(unit.as_bytes());
        }
    };
    let mut i = 0;
    while i < src.len() {
        let c = src[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if need_indent && c != b']' && c != b'}' {
            need_indent = false;
            depth += 1;
            newline(&mut out, depth);
        }
        match c {
            b'"' => {
                let start = i;
                i += 1;
                while i < src.len() && src[i] != b'"' {
                    if src[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                let end = (i + 1).min(src.len());
                out.extend_from_slice(&src[start..end]);
            }
            b'{' | b'[' => {
                out.push(c);
                need_indent = true;
            }
            b',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            b':' => {
                out.extend_from_slice(b": ");
            }
            b'}' | b']' => {
                if need_indent {
                    // An empty object or array stays on one line.
                    need_indent = false;
                } else {
                    depth = depth.saturating_sub(1);
                    newline(&mut out, depth);
                }
                out.push(c);
            }
            _ => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indents_like_go() {
        let doc = br#"{"Id":"abc","Args":[],"Config":{"Labels":{},"Cmd":["sh","-c","echo \"a, b: {c}\""]},"N":1,"Ok":true,"Z":null}"#;
        assert_eq!(
            indent_array(&[doc]),
            r#"[
    {
        "Id": "abc",
        "Args": [],
        "Config": {
            "Labels": {},
            "Cmd": [
                "sh",
                "-c",
                "echo \"a, b: {c}\""
            ]
        },
        "N": 1,
        "Ok": true,
        "Z": null
    }
]"#
        );
    }

    #[test]
    fn empty_and_several() {
        assert_eq!(indent_array(&[]), "[]");
        assert_eq!(
            indent_array(&[b"{\"a\": 1}\n", b"{}"]),
            "[\n    {\n        \"a\": 1\n    },\n    {}\n]"
        );
    }
}
