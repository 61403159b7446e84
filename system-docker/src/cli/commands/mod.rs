//! One module per command group, and what they share: exit statuses, error reporting,
//! filters, and the "act on each name, print it, report failures at the end" loop.

mod config;
pub mod container;
pub mod exec;
pub mod image;
pub mod inspect;
pub mod run;
mod session;
pub mod system;

use std::collections::BTreeMap;
use std::future::Future;
use std::io::IsTerminal;

use serde_json::{json, Value};

/// A command outcome with a specific exit status; `message`, if any, goes to stderr.
#[derive(Debug)]
pub struct StatusError {
    pub code: i32,
    pub message: Option<String>,
}

impl std::fmt::Display for StatusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.message {
            Some(m) => f.write_str(m),
            None => write!(f, "exit status {}", self.code),
        }
    }
}

impl std::error::Error for StatusError {}

/// Fails with `code` after printing `message`.
pub fn fail(code: i32, message: impl Into<String>) -> anyhow::Error {
    StatusError {
        code,
        message: Some(message.into()),
    }
    .into()
}

/// Prints a command's error once and returns its exit status (1 unless it says otherwise).
pub fn report(e: anyhow::Error) -> i32 {
    match e.downcast_ref::<StatusError>() {
        Some(s) => {
            if let Some(m) = &s.message {
                eprintln!("{m}");
            }
            s.code
        }
        None => {
            eprintln!("{e}");
            1
        }
    }
}

/// `-f key=value` flags as the API's `filters` JSON (`{"key":{"value":true}}`, the form the
/// docker CLI sends); `None` without filters.
pub fn filters_json(filters: &[String]) -> anyhow::Result<Option<String>> {
    if filters.is_empty() {
        return Ok(None);
    }
    let mut map: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    for f in filters {
        let Some((k, v)) = f.split_once('=') else {
            return Err(fail(
                1,
                format!("bad format of filter (expected name=value): {f}"),
            ));
        };
        map.entry(k.trim().to_lowercase())
            .or_default()
            .insert(v.to_string(), true);
    }
    Ok(Some(json!(map).to_string()))
}

/// Runs `op` for each name, printing the name on success; failures are collected and
/// printed together at the end, making the exit status 1 (the docker CLI's behaviour for
/// `stop`, `kill`, `rm`, `restart`).
pub async fn for_each<F, Fut>(names: &[String], mut op: F) -> anyhow::Result<i32>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<(), crate::client::Error>>,
{
    let mut errors = Vec::new();
    for name in names {
        match op(name.clone()).await {
            Ok(()) => println!("{name}"),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(0)
    } else {
        Err(fail(1, errors.join("\n")))
    }
}

/// An I/O error as Go words it (`open /x: no such file or directory`), which is how docker's
/// messages read.
pub fn go_io_error(op: &str, path: &std::path::Path, e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    let text: String = match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    };
    format!("{op} {}: {text}", path.display())
}

/// A string field of an API object (empty when absent).
pub fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Whether our stdout is a terminal.
pub fn stdout_is_tty() -> bool {
    std::io::stdout().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_in_docker_form() {
        assert_eq!(filters_json(&[]).unwrap(), None);
        let f = filters_json(&[
            "status=exited".into(),
            "label=a=b".into(),
            "status=created".into(),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            f,
            r#"{"label":{"a=b":true},"status":{"created":true,"exited":true}}"#
        );
        assert!(filters_json(&["nokey".into()]).is_err());
    }

    #[test]
    fn io_errors_read_like_go() {
        let e = std::io::Error::from_raw_os_error(2);
        assert_eq!(
            go_io_error("open", std::path::Path::new("/x.tar"), &e),
            "open /x.tar: no such file or directory"
        );
    }
}
