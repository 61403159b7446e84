//! The JSON message streams of `pull` and `load` shown as docker shows them: one line per
//! message when not on a terminal (progress bars left out), updated in place per layer id
//! on a terminal. An `error`/`errorDetail` message ends the stream with that error.

use std::collections::HashMap;
use std::io::Write;

use serde_json::Value;

use super::units;
use crate::client::{self, JsonStream};

/// Why a message stream failed.
#[derive(Debug, thiserror::Error)]
pub enum ProgressError {
    /// An error message in the stream, printed as is.
    #[error("{0}")]
    Stream(String),
    #[error(transparent)]
    Client(#[from] client::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Shows every message of `stream` on `out`.
pub async fn display(
    mut stream: JsonStream,
    out: &mut dyn Write,
    terminal: bool,
) -> Result<(), ProgressError> {
    let mut display = Display::new(terminal);
    while let Some(msg) = stream.next().await? {
        display.message(&msg, out)?;
        out.flush()?;
    }
    Ok(())
}

/// Display state: on a terminal, the line of each layer id relative to the bottom.
pub struct Display {
    terminal: bool,
    ids: HashMap<String, usize>,
}

impl Display {
    pub fn new(terminal: bool) -> Self {
        Self {
            terminal,
            ids: HashMap::new(),
        }
    }

    /// Shows one message.
    pub fn message(&mut self, msg: &Value, out: &mut dyn Write) -> Result<(), ProgressError> {
        if let Some(e) = error_of(msg) {
            return Err(ProgressError::Stream(e));
        }
        if msg.get("aux").is_some() {
            return Ok(());
        }
        let id = str_field(msg, "id");
        let has_progress = msg.get("progressDetail").is_some_and(Value::is_object)
            || !str_field(msg, "progress").is_empty();
        let mut diff = 0;
        if !id.is_empty() && has_progress {
            let line = match self.ids.get(id) {
                Some(&l) => l,
                None => {
                    let l = self.ids.len();
                    self.ids.insert(id.to_string(), l);
                    if self.terminal {
                        writeln!(out)?;
                    }
                    l
                }
            };
            diff = self.ids.len() - line;
            if self.terminal && diff > 0 {
                write!(out, "\x1b[{diff}A")?;
            }
        } else {
            // Anything else ends the block of in-place lines.
            self.ids.clear();
        }
        self.show(msg, out)?;
        if !id.is_empty() && self.terminal && diff > 0 {
            write!(out, "\x1b[{diff}B")?;
        }
        Ok(())
    }

    fn show(&self, msg: &Value, out: &mut dyn Write) -> std::io::Result<()> {
        let bar = msg
            .get("progressDetail")
            .map(progress_bar)
            .unwrap_or_default();
        let mut endl = "";
        if self.terminal
            && str_field(msg, "stream").is_empty()
            && msg.get("progressDetail").is_some()
        {
            write!(out, "\x1b[2K\r")?;
            endl = "\r";
        } else if !bar.is_empty() {
            // Progress bars only make sense on a terminal.
            return Ok(());
        }
        let id = str_field(msg, "id");
        if !id.is_empty() {
            write!(out, "{id}: ")?;
        }
        let from = str_field(msg, "from");
        if !from.is_empty() {
            write!(out, "(from {from}) ")?;
        }
        let status = str_field(msg, "status");
        let progress = str_field(msg, "progress");
        let stream = str_field(msg, "stream");
        if self.terminal && msg.get("progressDetail").is_some() {
            write!(out, "{status} {bar}{endl}")
        } else if !progress.is_empty() {
            write!(out, "{status} {progress}{endl}")
        } else if !stream.is_empty() {
            write!(out, "{stream}{endl}")
        } else {
            writeln!(out, "{status}{endl}")
        }
    }
}

fn str_field<'a>(msg: &'a Value, key: &str) -> &'a str {
    msg.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The error a message carries (`errorDetail.message`, else `error`).
pub fn error_of(msg: &Value) -> Option<String> {
    let detail = msg.get("errorDetail");
    if let Some(d) = detail {
        if d.get("code").and_then(Value::as_i64) == Some(401) {
            return Some("authentication is required".into());
        }
        if let Some(m) = d.get("message").and_then(Value::as_str) {
            return Some(m.to_string());
        }
    }
    msg.get("error")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| detail.map(|_| "unknown error".to_string()))
}

/// docker's progress bar (`[=====>      ]  1.2MB/3.4MB`) for a `progressDetail`; empty when
/// it carries no numbers.
pub fn progress_bar(detail: &Value) -> String {
    let current = detail.get("current").and_then(Value::as_i64).unwrap_or(0);
    let total = detail.get("total").and_then(Value::as_i64).unwrap_or(0);
    let units_name = detail.get("units").and_then(Value::as_str).unwrap_or("");
    if current <= 0 && total <= 0 {
        return String::new();
    }
    let size4 = |n: i64| {
        let (v, unit) = scale_decimal(n as f64);
        format!("{}{unit}", units::format_g(v, 4))
    };
    if total <= 0 {
        return if units_name.is_empty() {
            format!("{:>8}", size4(current))
        } else {
            format!("{current} {units_name}")
        };
    }
    let percentage = ((current as f64 / total as f64 * 100.0) as i64 / 2).clamp(0, 50) as usize;
    let bar = format!(
        "[{}>{}] ",
        "=".repeat(percentage),
        " ".repeat(50 - percentage)
    );
    let numbers = if !units_name.is_empty() {
        format!("{current}/{total} {units_name}")
    } else if current > total {
        format!("{:>8}", size4(current))
    } else {
        format!("{:>8}/{}", size4(current), size4(total))
    };
    bar + &numbers
}

fn scale_decimal(mut size: f64) -> (f64, &'static str) {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut i = 0;
    while size >= 1000.0 && i < UNITS.len() - 1 {
        size /= 1000.0;
        i += 1;
    }
    (size, UNITS[i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(msgs: &[Value], terminal: bool) -> Result<String, String> {
        let mut d = Display::new(terminal);
        let mut out = Vec::new();
        for m in msgs {
            d.message(m, &mut out).map_err(|e| e.to_string())?;
        }
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn plain_output_skips_progress_bars() {
        let msgs = [
            json!({"status": "Pulling from library/busybox", "id": "latest"}),
            json!({"status": "Pulling fs layer", "progressDetail": {}, "id": "a1b2"}),
            json!({"status": "Downloading", "progressDetail": {"current": 10, "total": 100},
                   "progress": "[==>  ]", "id": "a1b2"}),
            json!({"status": "Pull complete", "progressDetail": {}, "id": "a1b2"}),
            json!({"status": "Digest: sha256:abc"}),
            json!({"status": "Status: Downloaded newer image for busybox:latest"}),
        ];
        assert_eq!(
            run(&msgs, false).unwrap(),
            "latest: Pulling from library/busybox\na1b2: Pulling fs layer\na1b2: Pull complete\n\
             Digest: sha256:abc\nStatus: Downloaded newer image for busybox:latest\n"
        );
    }

    #[test]
    fn load_streams_and_errors() {
        let msgs = [json!({"stream": "Loaded image: busybox:latest\n"})];
        assert_eq!(run(&msgs, false).unwrap(), "Loaded image: busybox:latest\n");
        let msgs = [json!({"errorDetail": {"message": "bad tar"}, "error": "bad tar"})];
        assert_eq!(run(&msgs, false).unwrap_err(), "bad tar");
        let msgs = [json!({"error": "boom"})];
        assert_eq!(run(&msgs, false).unwrap_err(), "boom");
    }

    #[test]
    fn terminal_output_updates_lines_in_place() {
        let msgs = [
            json!({"status": "Pulling fs layer", "progressDetail": {}, "id": "a"}),
            json!({"status": "Pulling fs layer", "progressDetail": {}, "id": "b"}),
            json!({"status": "Pull complete", "progressDetail": {}, "id": "a"}),
        ];
        let out = run(&msgs, true).unwrap();
        assert_eq!(
            out,
            "\n\x1b[1A\x1b[2K\ra: Pulling fs layer \r\x1b[1B\
             \n\x1b[1A\x1b[2K\rb: Pulling fs layer \r\x1b[1B\
             \x1b[2A\x1b[2K\ra: Pull complete \r\x1b[2B"
        );
    }

    #[test]
    fn bars() {
        assert_eq!(progress_bar(&json!({})), "");
        let bar = progress_bar(&json!({"current": 1_200_000, "total": 3_400_000}));
        assert!(bar.starts_with("[=================>"), "{bar}");
        assert!(bar.ends_with("   1.2MB/3.4MB"), "{bar}");
    }
}
