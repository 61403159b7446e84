//! The typed cloud-config: what a validated document holds ([`crate::validate()`] builds it).
//!
//! The `ros:` namespace (`rancher:` accepted as an alias) keeps `services`,
//! `docker`, `state`, `upgrade`, `agent` and `vms` as raw values: their own readers own those
//! schemas. Here they are only required to be maps.

use std::collections::BTreeMap;

use base64::Engine;
use serde::Serialize;
use serde_json::Value;

use crate::network::Network;
use crate::types::{AbsPath, Hostname, OctalMode, SingleLine, UserName};

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CloudConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<Hostname>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fqdn: Option<Hostname>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preserve_hostname: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_authorized_keys: Option<Vec<SingleLine>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<User>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_files: Option<Vec<WriteFile>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runcmd: Option<Vec<Command>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootcmd: Option<Vec<Command>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mounts: Option<Vec<Vec<SingleLine>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ntp: Option<Ntp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<SingleLine>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_certs: Option<CaCerts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ros: Option<Ros>,
}

/// A `users:` entry. The string form (`- default`, `- alice`) is a user with only a name.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct User {
    pub name: UserName,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gecos: Option<SingleLine>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_group: Option<UserName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<UserName>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub homedir: Option<AbsPath>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shell: Option<AbsPath>,
    /// sudoers rules; `sudo: false` is an empty list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sudo: Option<Vec<SingleLine>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_passwd: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_authorized_keys: Option<Vec<SingleLine>>,
}

impl User {
    /// A user with only a name (the string form of a `users:` entry).
    pub fn named(name: UserName) -> User {
        User {
            name,
            gecos: None,
            primary_group: None,
            groups: None,
            homedir: None,
            shell: None,
            sudo: None,
            lock_passwd: None,
            uid: None,
            ssh_authorized_keys: None,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    #[default]
    Text,
    Base64,
    Gzip,
    #[serde(rename = "gzip+base64")]
    GzipBase64,
}

/// `owner: user[:group]`. Serialized in that form, so the normalized JSON of a config is
/// itself a valid config (apply re-reads it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub user: SingleLine,
    pub group: Option<SingleLine>,
}

impl Serialize for Owner {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.group {
            Some(g) => s.serialize_str(&format!("{}:{}", self.user.as_str(), g.as_str())),
            None => s.serialize_str(self.user.as_str()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WriteFile {
    pub path: AbsPath,
    /// As written; [`WriteFile::decoded`] applies the encoding (checked at validation).
    pub content: String,
    pub encoding: Encoding,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<OctalMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    pub append: bool,
    pub defer: bool,
}

/// Decompressed `write_files` content is capped, so a small config cannot fill the disk.
pub const MAX_FILE_CONTENT: u64 = 16 << 20;

impl WriteFile {
    /// The bytes to write.
    pub fn decoded(&self) -> Result<Vec<u8>, String> {
        decode_content(&self.content, self.encoding)
    }
}

pub(crate) fn decode_content(content: &str, encoding: Encoding) -> Result<Vec<u8>, String> {
    // No content is an empty file whatever the encoding: a missing `content:` and the
    // explicit `content: ""` of a normalized config must mean the same.
    if content.is_empty() {
        return Ok(Vec::new());
    }
    let b64 = |s: &str| {
        let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|e| format!("not valid base64: {e}"))
    };
    match encoding {
        Encoding::Text => Ok(content.as_bytes().to_vec()),
        Encoding::Base64 => b64(content),
        Encoding::Gzip => crate::userdata::gunzip(content.as_bytes(), MAX_FILE_CONTENT)
            .map_err(|e| format!("not valid gzip: {e}")),
        Encoding::GzipBase64 => crate::userdata::gunzip(&b64(content)?, MAX_FILE_CONTENT)
            .map_err(|e| format!("not valid gzip: {e}")),
    }
}

/// A `runcmd`/`bootcmd` item: a string run by `sh -c`, or an argv list run as is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Command {
    Shell(String),
    Argv(Vec<String>),
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Ntp {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub servers: Option<Vec<SingleLine>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pools: Option<Vec<SingleLine>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CaCerts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remove_defaults: Option<bool>,
    /// PEM certificates (multi-line by nature).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CloudInit {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datasources: Option<Vec<SingleLine>>,
    /// EC2: use IMDSv1 (no session token) when IMDSv2 is not offered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_imdsv1: Option<bool>,
}

/// The `ros:` namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Ros {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub services: Option<BTreeMap<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub services_include: Option<BTreeMap<String, bool>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub console: Option<SingleLine>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sysctl: Option<BTreeMap<String, SingleLine>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modules: Option<Vec<SingleLine>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<BTreeMap<String, SingleLine>>,
    /// Compressed swap in RAM (see [`crate::types::ZramSize`]), as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zram: Option<SingleLine>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vms: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_init: Option<CloudInit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_config_url: Option<SingleLine>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_config: Option<SingleLine>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub debug: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery: Option<bool>,
    /// Seconds from boot until the ready line is due; past it init reports `degraded`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_timeout: Option<u64>,
    /// Seconds a service gets to stop at shutdown before it is killed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_timeout: Option<u64>,
    /// Consoles (`ttyS0`, `tty1`, comma-separated) that get a root shell without a login:
    /// the live ISO's physical consoles; never set on an installed host unless asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autologin: Option<SingleLine>,
    /// Where the system images are (`LABEL=ROS_A`, a device, or a squashfs file): set by
    /// the boot loader for the slot it booted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images: Option<SingleLine>,
}
