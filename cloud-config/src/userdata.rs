//! Userdata classification: what a datasource handed us, split into cloud-configs and scripts.
//!
//! Accepted forms are cloud-init's common ones: `#cloud-config` YAML, `#!` scripts (kept, run
//! once late in boot by the apply step), gzip (decompressed with a size cap, then classified
//! again) and MIME `multipart/mixed` with `text/cloud-config`, `text/x-shellscript` and
//! `text/plain` parts. Anything else is refused with a message that says what was received:
//! silently ignoring userdata was RancherOS users' top complaint.

use std::io::Read;

use base64::Engine;
use thiserror::Error;

/// Userdata above this size (after decompression) is refused.
pub const MAX_USERDATA: u64 = 16 << 20;
/// gzip-in-MIME-in-gzip is legitimate; deeper nesting is not.
const MAX_DEPTH: usize = 4;

/// One usable piece of userdata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    /// A `#cloud-config` document (header included; it is a YAML comment).
    CloudConfig { name: String, text: String },
    /// A script, kept byte for byte.
    Script { name: String, body: Vec<u8> },
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum UserdataError {
    #[error("userdata is larger than {MAX_USERDATA} bytes")]
    TooLarge,
    #[error("gzip: {0}")]
    Gzip(String),
    #[error("{0}: cloud-config is not UTF-8")]
    NotUtf8(String),
    #[error("{0}: nested too deeply (gzip/multipart)")]
    TooDeep(String),
    #[error("{name}: {form} is not supported")]
    Unsupported { name: String, form: String },
    #[error("{name}: YAML without the #cloud-config header (first line {first_line:?}); add `#cloud-config` as the first line")]
    MissingHeader { name: String, first_line: String },
    #[error("{name}: not a cloud-config, script, gzip or MIME multipart (starts with {start:?})")]
    Unrecognized { name: String, start: String },
    #[error("{name}: multipart: {message}")]
    Mime { name: String, message: String },
}

/// Decompresses gzip data, refusing output larger than `limit` bytes.
pub fn gunzip(data: &[u8], limit: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if out.len() as u64 > limit {
        return Err(format!("decompresses to more than {limit} bytes"));
    }
    Ok(out)
}

/// Splits userdata into parts. Empty userdata (only whitespace) has no parts.
pub fn classify(data: &[u8]) -> Result<Vec<Part>, UserdataError> {
    let mut parts = Vec::new();
    classify_into("user-data", data, 0, &mut parts)?;
    Ok(parts)
}

fn classify_into(
    name: &str,
    data: &[u8],
    depth: usize,
    out: &mut Vec<Part>,
) -> Result<(), UserdataError> {
    if depth > MAX_DEPTH {
        return Err(UserdataError::TooDeep(name.to_owned()));
    }
    if data.len() as u64 > MAX_USERDATA {
        return Err(UserdataError::TooLarge);
    }
    if data.starts_with(&[0x1f, 0x8b]) {
        let plain = gunzip(data, MAX_USERDATA).map_err(|e| {
            if e.starts_with("decompresses") {
                UserdataError::TooLarge
            } else {
                UserdataError::Gzip(e)
            }
        })?;
        return classify_into(name, &plain, depth + 1, out);
    }
    let data = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    if data.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let first_line = data.split(|b| *b == b'\n').next().unwrap_or_default();
    let first_line = String::from_utf8_lossy(first_line).trim_end().to_owned();
    if first_line == "#cloud-config" {
        let text = std::str::from_utf8(data).map_err(|_| UserdataError::NotUtf8(name.into()))?;
        out.push(Part::CloudConfig {
            name: name.to_owned(),
            text: text.to_owned(),
        });
        return Ok(());
    }
    if data.starts_with(b"#!") {
        out.push(Part::Script {
            name: name.to_owned(),
            body: data.to_vec(),
        });
        return Ok(());
    }
    for form in [
        "#cloud-config-archive",
        "#cloud-boothook",
        "#include",
        "#part-handler",
        "#upstart-job",
        "#cloud-config-jsonp",
    ] {
        if first_line == form || first_line.starts_with(&format!("{form} ")) {
            return Err(UserdataError::Unsupported {
                name: name.to_owned(),
                form: form.to_owned(),
            });
        }
    }
    let lower = first_line.to_ascii_lowercase();
    if lower.starts_with("content-type:") || lower.starts_with("mime-version:") {
        return multipart(name, data, depth, out);
    }
    if looks_like_yaml_map(data) {
        return Err(UserdataError::MissingHeader {
            name: name.to_owned(),
            first_line: first_line.chars().take(60).collect(),
        });
    }
    Err(UserdataError::Unrecognized {
        name: name.to_owned(),
        start: String::from_utf8_lossy(&data[..data.len().min(32)]).into_owned(),
    })
}

fn looks_like_yaml_map(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    matches!(
        crate::node::parse(text).map(|n| n.kind),
        Ok(crate::node::Kind::Map(m)) if !m.is_empty()
    )
}

/// Header name (lowercased) and value, with folded continuation lines joined.
fn headers(block: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in block.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    out
}

fn header<'h>(h: &'h [(String, String)], name: &str) -> Option<&'h str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The media type (lowercased) and the named parameter of a header value.
fn param(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().trim_matches('"').to_owned())
    })
}

fn media_type(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Splits "headers, blank line, body"; LF, CRLF and a mix of both occur in the wild.
fn split_head(text: &str) -> (&str, &str) {
    let mut start = 0;
    while start < text.len() {
        let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        if text[start..end].trim_end_matches('\r').is_empty() {
            return (&text[..start], text.get(end + 1..).unwrap_or(""));
        }
        start = end + 1;
    }
    (text, "")
}

fn multipart(
    name: &str,
    data: &[u8],
    depth: usize,
    out: &mut Vec<Part>,
) -> Result<(), UserdataError> {
    let mime = |message: String| UserdataError::Mime {
        name: name.to_owned(),
        message,
    };
    let text = std::str::from_utf8(data).map_err(|_| mime("not UTF-8 text".into()))?;
    let (head, body) = split_head(text);
    let h = headers(head);
    let ct = header(&h, "content-type").ok_or_else(|| mime("no Content-Type header".into()))?;
    if !media_type(ct).starts_with("multipart/") {
        return Err(mime(format!(
            "expected a multipart Content-Type, got {ct:?}"
        )));
    }
    let boundary = param(ct, "boundary")
        .filter(|b| !b.is_empty())
        .ok_or_else(|| mime("Content-Type has no boundary".into()))?;
    let delimiter = format!("--{boundary}");
    let mut sections = body.split(delimiter.as_str());
    // Before the first delimiter is the preamble, which MIME says to ignore.
    sections.next();
    let mut closed = false;
    for (i, section) in sections.enumerate() {
        if section.starts_with("--") {
            closed = true;
            break;
        }
        let section = section
            .strip_prefix("\r\n")
            .or_else(|| section.strip_prefix('\n'))
            .unwrap_or(section);
        // The line break before a delimiter belongs to the delimiter (RFC 2046 §5.1.1).
        let section = section
            .strip_suffix("\r\n")
            .or_else(|| section.strip_suffix('\n'))
            .unwrap_or(section);
        let (phead, pbody) = split_head(section);
        let ph = headers(phead);
        let pct = header(&ph, "content-type").unwrap_or("text/plain");
        let pname = header(&ph, "content-disposition")
            .and_then(|d| param(d, "filename"))
            .unwrap_or_else(|| format!("part-{:03}", i + 1));
        let pname = format!("{name}/{pname}");
        let bytes = match header(&ph, "content-transfer-encoding").map(str::to_ascii_lowercase) {
            Some(e) if e == "base64" => {
                let compact: String = pbody.chars().filter(|c| !c.is_ascii_whitespace()).collect();
                base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .map_err(|e| mime(format!("{pname}: bad base64: {e}")))?
            }
            None => pbody.as_bytes().to_vec(),
            Some(e) if ["7bit", "8bit", "binary"].contains(&e.as_str()) => {
                pbody.as_bytes().to_vec()
            }
            Some(e) => {
                return Err(mime(format!(
                    "{pname}: unsupported transfer encoding {e:?}"
                )))
            }
        };
        match media_type(pct).as_str() {
            "text/cloud-config" => {
                let text =
                    String::from_utf8(bytes).map_err(|_| UserdataError::NotUtf8(pname.clone()))?;
                out.push(Part::CloudConfig { name: pname, text });
            }
            "text/x-shellscript" => out.push(Part::Script {
                name: pname,
                body: bytes,
            }),
            "text/plain" | "application/x-gzip" | "application/gzip" | "multipart/mixed" => {
                // Classified by content, as cloud-init does for text/plain. A nested multipart
                // carries its own headers, so the part is re-read whole.
                let inner = if media_type(pct) == "multipart/mixed" {
                    section.as_bytes().to_vec()
                } else {
                    bytes
                };
                classify_into(&pname, &inner, depth + 1, out)?;
            }
            other => {
                return Err(UserdataError::Unsupported {
                    name: pname,
                    form: format!("MIME part type {other}"),
                })
            }
        }
    }
    if !closed {
        return Err(mime(format!("no closing boundary {delimiter}--")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn cloud_config_and_script() {
        let p = classify(b"#cloud-config\nhostname: a\n").unwrap();
        assert!(matches!(&p[..], [Part::CloudConfig { text, .. }] if text.contains("hostname")));
        let p = classify(b"#!/bin/sh\necho hi\n").unwrap();
        assert!(matches!(&p[..], [Part::Script { body, .. }] if body.starts_with(b"#!")));
        assert_eq!(classify(b"  \n").unwrap(), vec![]);
    }

    #[test]
    fn gzip_is_classified_again() {
        let p = classify(&gz(b"#cloud-config\nhostname: a\n")).unwrap();
        assert!(matches!(&p[..], [Part::CloudConfig { .. }]));
        let p = classify(&gz(&gz(b"#!/bin/sh\n"))).unwrap();
        assert!(matches!(&p[..], [Part::Script { .. }]));
        let bomb = gz(&vec![b'#'; (MAX_USERDATA + 10) as usize]);
        assert_eq!(classify(&bomb).unwrap_err(), UserdataError::TooLarge);
        let mut broken = gz(b"#cloud-config\n");
        broken.truncate(12);
        assert!(matches!(classify(&broken), Err(UserdataError::Gzip(_))));
    }

    #[test]
    fn refusals_say_what_was_received() {
        let e = classify(b"hostname: a\n").unwrap_err().to_string();
        assert!(e.contains("YAML without the #cloud-config header"), "{e}");
        assert!(e.contains("hostname: a"), "{e}");
        let e = classify(b"\x00\x01binary junk").unwrap_err().to_string();
        assert!(e.contains("starts with"), "{e}");
        let e = classify(b"#cloud-config-archive\n- type: x\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "user-data: #cloud-config-archive is not supported");
        let e = classify(b"#include\nhttp://x\n").unwrap_err().to_string();
        assert!(e.contains("#include is not supported"), "{e}");
    }

    fn mime(parts: &[(&str, &str, &str)], crlf: bool) -> Vec<u8> {
        let nl = if crlf { "\r\n" } else { "\n" };
        let mut s = format!(
            "Content-Type: multipart/mixed; boundary=\"===b==\"{nl}MIME-Version: 1.0{nl}{nl}preamble{nl}"
        );
        for (ct, extra, body) in parts {
            s += &format!("--===b=={nl}Content-Type: {ct}{nl}{extra}{nl}{body}{nl}");
        }
        s += &format!("--===b==--{nl}");
        s.into_bytes()
    }

    #[test]
    fn multipart_parts() {
        for crlf in [false, true] {
            let data = mime(
                &[
                    (
                        "text/cloud-config; charset=\"us-ascii\"",
                        "Content-Disposition: attachment; filename=\"a.yml\"\n",
                        "#cloud-config\nhostname: a",
                    ),
                    ("text/x-shellscript", "", "#!/bin/sh\necho hi"),
                    (
                        "text/cloud-config",
                        "Content-Transfer-Encoding: base64\n",
                        "I2Nsb3VkLWNvbmZpZwpmcWRuOiBiLmV4YW1wbGUK",
                    ),
                    ("text/plain", "", "#!/bin/bash\ntrue"),
                ],
                crlf,
            );
            let p = classify(&data).unwrap();
            assert_eq!(p.len(), 4, "{p:?}");
            assert_eq!(
                p[0],
                Part::CloudConfig {
                    name: "user-data/a.yml".into(),
                    text: "#cloud-config\nhostname: a".into()
                }
            );
            assert_eq!(
                p[1],
                Part::Script {
                    name: "user-data/part-002".into(),
                    body: b"#!/bin/sh\necho hi".to_vec()
                }
            );
            assert!(
                matches!(&p[2], Part::CloudConfig { text, .. } if text == "#cloud-config\nfqdn: b.example\n")
            );
            assert!(matches!(&p[3], Part::Script { .. }));
            // gzip of a multipart works too
            assert_eq!(classify(&gz(&data)).unwrap(), p);
        }
    }

    #[test]
    fn multipart_refusals() {
        let e = classify(&mime(&[("text/cloud-config-archive", "", "- a")], false))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "user-data/part-001: MIME part type text/cloud-config-archive is not supported"
        );
        let e = classify(&mime(&[("text/plain", "", "a: b")], false))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("user-data/part-001: YAML without the #cloud-config header"),
            "{e}"
        );
        let e = classify(b"Content-Type: multipart/mixed\n\nx")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "user-data: multipart: Content-Type has no boundary");
        let e = classify(b"Content-Type: multipart/mixed; boundary=x\n\n--x\n\n#!/bin/sh\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "user-data: multipart: no closing boundary --x--");
    }
}
