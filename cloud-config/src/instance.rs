//! What a datasource says about the instance besides its userdata, kept in
//! `var/lib/ros/conf/metadata.json` by `ros cloud-init save` and read by `ros cloud-init
//! apply`:
//!
//! ```json
//! {"datasource": "nocloud", "instance_id": "i-0abc", "hostname": "web1",
//!  "public_keys": ["ssh-ed25519 AAAA… me@laptop"]}
//! ```
//!
//! The instance id decides what runs once: `runcmd` and userdata scripts run again only when
//! it changes (a new instance made from the same disk).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::edit::write_atomic;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// The datasource that answered (`nocloud`, `configdrive`, `ec2`, `cmdline`, `url`,
    /// `file`).
    #[serde(default)]
    pub datasource: String,
    /// `instance-id` (NoCloud), `uuid` (config-drive), `instance-id` (EC2); empty when the
    /// source has none, which counts as one fixed instance.
    #[serde(default)]
    pub instance_id: String,
    /// `local-hostname` / `hostname`; the userdata's `hostname:` wins over it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// SSH public keys for the default user (`rancher`), added to those of the userdata.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub public_keys: Vec<String>,
    /// The source's network configuration as it gave it (NoCloud network-config v1/v2,
    /// config-drive network_data.json), for netconf to translate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_config: Option<Value>,
}

/// Where [`Metadata`] lives under `root`.
pub fn metadata_path(root: &Path) -> PathBuf {
    root.join("var/lib/ros/conf/metadata.json")
}

/// The metadata the last save kept; `None` before any save.
pub fn read(root: &Path) -> io::Result<Option<Metadata>> {
    match fs::read(metadata_path(root)) {
        Ok(data) => serde_json::from_slice(&data)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Keeps `meta` atomically (mode 0600: hostnames and keys are not secret, but the network
/// configuration may carry addresses the user did not mean to publish).
pub fn write(root: &Path, meta: &Metadata) -> io::Result<()> {
    let mut data = serde_json::to_vec_pretty(meta).map_err(io::Error::other)?;
    data.push(b'\n');
    write_atomic(&metadata_path(root), &data, 0o600)
}
