//! ros cloud-config: from userdata bytes to a validated, merged config document, and from
//! that document to a configured host.
//!
//! Owns: classifying userdata ([`userdata`]), the typed schema ([`schema`], [`types`]) and
//! its checker with located errors and unknown-key warnings ([`mod@validate`]), merging
//! layers by precedence ([`merge`]) and kernel command line overrides ([`cmdline`]), loading
//! the layers of a host ([`load`]), editing and showing documents for `ros config`
//! ([`edit`]), the datasources that fetch userdata and metadata and what a save keeps
//! ([`datasource`], [`instance`]), reading ISO 9660 and FAT seed images in userspace
//! ([`fsimage`]), and applying a config to a host root ([`apply`]). Does not own: the
//! network (netconf), starting containers, or the CLIs.

pub mod apply;
pub mod cmdline;
#[cfg(feature = "datasources")]
pub mod datasource;
pub mod edit;
pub mod fsimage;
pub mod instance;
pub mod load;
pub mod merge;
pub mod netcfg;
pub mod network;
pub mod node;
pub mod schema;
pub mod types;
pub mod userdata;
pub mod validate;

use std::fmt;

pub use schema::CloudConfig;
pub use validate::{validate, Validated};

/// An invalid value, located: `user-data:7:18: write_files[2].permissions: expected octal
/// mode, got "rwx"`. The path is empty for YAML syntax errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub source: String,
    pub line: u64,
    pub column: u64,
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.source, self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Something accepted but worth telling the user, such as an unknown key (which is not
/// applied).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    pub source: String,
    pub line: u64,
    pub column: u64,
    pub path: String,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: warning: {}: {}",
            self.source, self.line, self.column, self.path, self.message
        )
    }
}

/// Parses and validates one cloud-config document (the `#cloud-config` header is a YAML
/// comment and may be present). `source` names it in messages.
pub fn parse_document(source: &str, text: &str) -> Result<Validated, ConfigError> {
    let root = node::parse(text).map_err(|e| ConfigError {
        source: source.to_owned(),
        line: e.pos.line,
        column: e.pos.column,
        path: String::new(),
        message: e.message,
    })?;
    validate(source, &root)
}

/// The normalized JSON form of a config: what layers are merged as, and what golden tests
/// compare.
pub fn to_json(config: &CloudConfig) -> serde_json::Value {
    // Every field serializes to JSON infallibly (string keys, finite numbers).
    serde_json::to_value(config).unwrap_or(serde_json::Value::Null)
}
