//! `ros config …`: read and change the config (cloud-config). Thin: documents are read,
//! edited, checked and written by `ros_cloud_config`; this parses arguments, prints, and
//! picks the exit code (0 done, 1 refused or failed).

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use ros_cloud_config::edit::{self, EditError, LayerState, UserDoc};
use ros_cloud_config::load::{load, ConfigPaths};
use ros_cloud_config::{merge, parse_document};
use serde_json::Value;

#[derive(Args, Debug)]
pub struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Print a value of the running config: every layer merged (shipped defaults,
    /// cloud-config.d, the user's cloud-config.yml, the kernel command line)
    #[command(
        after_help = "KEY is dotted (hostname, ros.state.dev); rancher.* is an alias of \
                            ros.*; a number indexes a list (users.0.name). Scalars are printed \
                            bare, maps and lists as YAML. Exit 1 when KEY is not set."
    )]
    Get { key: String },
    /// Set a value in the user's cloud-config.yml (under --root:
    /// var/lib/ros/conf/cloud-config.yml)
    #[command(
        after_help = "VALUE is YAML: `ros config set ros.state.autoformat '[/dev/vda]'`. \
                            The whole new file is checked first; when it is invalid the error \
                            is printed and the file is left as it was. The file is rewritten \
                            from its parsed content, so its comments are not kept."
    )]
    Set { key: String, value: String },
    /// Merge a YAML document into the user's cloud-config.yml (maps merge, scalars and lists
    /// replace) and print the result
    #[command(
        after_help = "Checked and written like `set`: an invalid result changes nothing. \
                            The result is printed with secrets left out, as by `export`."
    )]
    Merge {
        /// Read the document from FILE instead of standard input
        #[arg(short, long, value_name = "FILE")]
        input: Option<PathBuf>,
    },
    /// Print the user's cloud-config.yml as a cloud-config, secrets left out
    #[command(
        after_help = "Left out unless --private: ros.ssh.keys; any key named private_key \
                            or containing _private; users[].passwd, hashed_passwd and \
                            plain_text_passwd; ros.docker keys starting with tls_ that contain \
                            `key`. What was left out is named on stderr."
    )]
    Export {
        /// Keep secret values (see below)
        #[arg(long)]
        private: bool,
        /// Print the whole running config (every layer merged, normalized) instead of the
        /// user's file
        #[arg(long)]
        full: bool,
        /// Write to FILE (atomically, mode 0600) instead of standard output
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Check a cloud-config document: print its errors and warnings (unknown keys, with the
    /// nearest known one) as file:line:column: path: message
    #[command(
        after_help = "Exit 1 when the document is invalid, 0 otherwise (warnings \
                            included)."
    )]
    Validate {
        /// Read the document from FILE instead of standard input
        #[arg(short, long, value_name = "FILE")]
        input: Option<PathBuf>,
    },
    /// Show each layer of the running config (applied, rejected with its error, or absent,
    /// with its warnings) and what the last `ros cloud-init save` recorded
    Status,
}

pub fn run(root: &Path, args: ConfigArgs) -> i32 {
    let paths = ConfigPaths::new(root);
    let result = match args.command {
        ConfigCommand::Get { key } => get(&paths, &key),
        ConfigCommand::Set { key, value } => set(&paths, &key, &value),
        ConfigCommand::Merge { input } => merge_in(&paths, input.as_deref()),
        ConfigCommand::Export {
            private,
            full,
            output,
        } => export(&paths, private, full, output.as_deref()),
        ConfigCommand::Validate { input } => validate(input.as_deref()),
        ConfigCommand::Status => status(&paths),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("ros: config: {message}");
            1
        }
    }
}

type Outcome = Result<i32, String>;

fn get(paths: &ConfigPaths, key: &str) -> Outcome {
    let loaded = load(paths);
    let value = edit::get(&loaded.value, key).map_err(|e| e.to_string())?;
    let Some(value) = value else {
        return Err(format!("{key} is not set"));
    };
    let text = match value {
        Value::String(s) => format!("{s}\n"),
        Value::Bool(_) | Value::Number(_) => format!("{value}\n"),
        other => edit::to_yaml(other),
    };
    print(&text)
}

fn print(text: &str) -> Outcome {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| format!("cannot write to standard output: {e}"))?;
    Ok(0)
}

/// Reads the user file for an edit; a file that is not YAML is reported with its location.
fn read_user(paths: &ConfigPaths) -> Result<UserDoc, String> {
    UserDoc::read(&paths.user()).map_err(|e| e.to_string())
}

/// Checks and writes `doc`, telling what happened on stderr.
fn save(doc: &UserDoc) -> Result<(), String> {
    let (checked, changed) = doc.save().map_err(|e| match e {
        EditError::Invalid(error) => {
            format!("{error}\nnot saved: {} is unchanged", doc.file.display())
        }
        other => other.to_string(),
    })?;
    for w in &checked.warnings {
        eprintln!("{w}");
    }
    if !changed {
        eprintln!("ros: config: {} already says so", doc.file.display());
    } else if doc.had_comments() {
        eprintln!(
            "ros: note: {} was rewritten from its parsed content: its comments and formatting \
             were not kept",
            doc.file.display()
        );
    }
    Ok(())
}

fn set(paths: &ConfigPaths, key: &str, value: &str) -> Outcome {
    let value = edit::parse_value(value).map_err(|e| e.to_string())?;
    let mut doc = read_user(paths)?;
    edit::set(&mut doc.value, key, value).map_err(|e| e.to_string())?;
    save(&doc)?;
    Ok(0)
}

fn read_input(input: Option<&Path>) -> Result<(String, String), String> {
    match input {
        Some(file) => std::fs::read_to_string(file)
            .map(|t| (file.display().to_string(), t))
            .map_err(|e| format!("cannot read {}: {e}", file.display())),
        None => {
            let mut text = String::new();
            io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| format!("cannot read standard input: {e}"))?;
            Ok(("stdin".to_owned(), text))
        }
    }
}

fn merge_in(paths: &ConfigPaths, input: Option<&Path>) -> Outcome {
    let (source, text) = read_input(input)?;
    // Checked on its own first, so that an error points into what the user wrote.
    parse_document(&source, &text).map_err(|e| e.to_string())?;
    let mut incoming = edit::parse_raw(&source, &text).map_err(|e| e.to_string())?;
    if !incoming.is_object() {
        return Err(format!("{source}: expected a map at the top"));
    }
    edit::normalize_alias(&mut incoming);
    let mut doc = read_user(paths)?;
    merge::merge(&mut doc.value, incoming);
    save(&doc)?;
    let mut shown = doc.value.clone();
    if !edit::strip_secrets(&mut shown).is_empty() {
        eprintln!("ros: config: secrets are left out of what is shown (`ros config export --private` shows them)");
    }
    print(&edit::to_document(&shown))
}

fn export(paths: &ConfigPaths, private: bool, full: bool, output: Option<&Path>) -> Outcome {
    let mut value = if full {
        let loaded = load(paths);
        for e in &loaded.errors {
            eprintln!("ros: config: left out of the running config: {e}");
        }
        loaded.value
    } else {
        read_user(paths)?.value
    };
    if !private {
        let removed = edit::strip_secrets(&mut value);
        if !removed.is_empty() {
            eprintln!(
                "ros: config: secrets left out ({}); --private includes them",
                removed.join(", ")
            );
        }
    }
    let text = edit::to_document(&value);
    match output {
        None => print(&text),
        Some(file) => {
            edit::write_atomic(file, text.as_bytes(), 0o600)
                .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
            Ok(0)
        }
    }
}

fn validate(input: Option<&Path>) -> Outcome {
    let (source, text) = read_input(input)?;
    // The same test as userdata classification: a BOM may precede the header line.
    let first_line = text
        .strip_prefix('\u{feff}')
        .unwrap_or(&text)
        .lines()
        .next()
        .unwrap_or_default();
    if first_line.trim_end() != "#cloud-config" {
        println!(
            "{source}:1:1: warning: no #cloud-config header: as userdata this document would be \
             refused"
        );
    }
    match parse_document(&source, &text) {
        Ok(v) => {
            for w in &v.warnings {
                println!("{w}");
            }
            println!("{source}: valid");
            Ok(0)
        }
        Err(e) => {
            // The check stops at the first error; warnings show once the document is valid.
            println!("{e}");
            Ok(1)
        }
    }
}

fn status(paths: &ConfigPaths) -> Outcome {
    let loaded = load(paths);
    let mut text = String::new();
    for layer in edit::layer_status(paths, &loaded) {
        let state = match &layer.state {
            LayerState::Applied => "applied".to_owned(),
            LayerState::Rejected(e) => format!("rejected: {}", e),
            LayerState::Absent => "absent".to_owned(),
            LayerState::Empty => "no ros.* settings".to_owned(),
            LayerState::Ignored => "ignored: only *.yml and *.yaml are read".to_owned(),
        };
        text.push_str(&format!("{}: {state}\n", layer.source));
        for e in &layer.errors {
            text.push_str(&format!("  rejected: {}\n", e));
        }
        for w in &layer.warnings {
            text.push_str(&format!("  {w}\n"));
        }
    }
    let file = edit::status_path(&paths.root);
    match edit::read_status(&paths.root) {
        Ok(None) => text.push_str(&format!(
            "cloud-init save: no record ({} absent)\n",
            file.display()
        )),
        Ok(Some(s)) => {
            text.push_str(&format!(
                "cloud-init save ({}): datasource {}, fetched at {}\n",
                file.display(),
                if s.datasource.is_empty() {
                    "unknown"
                } else {
                    &s.datasource
                },
                if s.fetched_at.is_empty() {
                    "unknown"
                } else {
                    &s.fetched_at
                },
            ));
            for r in &s.rejected {
                // The error is usually located already (`user-data:3:1: …`).
                if r.error.starts_with(&r.source) {
                    text.push_str(&format!("  rejected: {}\n", r.error));
                } else {
                    text.push_str(&format!("  rejected: {}: {}\n", r.source, r.error));
                }
            }
        }
        Err(e) => text.push_str(&format!("cloud-init save: unreadable record: {e}\n")),
    }
    print(&text)
}
