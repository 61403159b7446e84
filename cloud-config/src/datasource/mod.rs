//! Datasources: where an instance's userdata and metadata come from, and `ros cloud-init
//! save`, which fetches them and keeps them for the apply step.
//!
//! Providers sit behind one small trait ([`Datasource`]) and are tried in the configured
//! order (`ros.cloud_init.datasources`, default `[nocloud, configdrive, ec2, cmdline]`) until
//! one answers, in two phases (DESIGN.md §7): local sources (`nocloud`, `configdrive`,
//! `cmdline`, `file`) before the network starts, network sources (`ec2`, `url`, and
//! `cmdline` when it names a URL) after it.
//!
//! Spec strings, as configured or given to `--datasource`:
//!
//! | spec | what |
//! |---|---|
//! | `nocloud[:LABEL_OR_PATH]` | NoCloud seed: a disk labelled `cidata` (any case), or a directory / image file |
//! | `configdrive[:LABEL_OR_PATH]` | OpenStack config drive, label `config-2` |
//! | `ec2[:BASE_URL]` | EC2 IMDS (IMDSv2; v1 only when allowed), default `http://169.254.169.254` |
//! | `cmdline` | `ros.cloud_config=<base64>` or `ros.cloud_config_url=<url>` on the kernel command line |
//! | `url:URL` | userdata at an http(s) URL |
//! | `file:PATH` | userdata in a local file |
//!
//! A `LABEL_OR_PATH` with a `/` is a path; paths in specs are taken as given, not under the
//! root. What is read from the machine itself (`proc/cmdline`, `sys/class/dmi/id`,
//! `sys/class/block`, `dev`) is read under [`Context::root`].

mod cmdline;
mod configdrive;
mod ec2;
mod file;
mod http;
mod nocloud;
mod save;
mod seed;
mod url;

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use thiserror::Error;

use crate::instance::Metadata;
use crate::load::Loaded;

pub use save::{save, Answer, Attempt, SaveError, SaveOptions, SaveOutcome};

/// When a source can answer: before the network is up, or only after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Local,
    Network,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Phase::Local => "local",
            Phase::Network => "network",
        })
    }
}

/// What every provider is given.
#[derive(Clone, Debug)]
pub struct Context {
    /// The `--root`: `proc/cmdline`, `sys/class/dmi/id`, `sys/class/block` and `dev` are read
    /// under it.
    pub root: PathBuf,
    /// No provider waits (retries, timeouts) past this.
    pub deadline: Instant,
    /// Whether EC2's IMDSv1 (no session token) may be used when IMDSv2 is not offered.
    pub allow_imdsv1: bool,
}

/// What a source answered.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fetched {
    /// `None`: the source has no userdata (its metadata still counts).
    pub userdata: Option<Vec<u8>>,
    pub metadata: Metadata,
}

/// A provider of userdata and metadata.
pub trait Datasource {
    /// The name recorded in metadata.json and status.json (`nocloud`, `ec2`, …).
    fn name(&self) -> &'static str;
    fn phase(&self) -> Phase;
    /// `Ok(None)`: not present here (no seed disk, no IMDS answering). `Err`: present but
    /// broken.
    fn fetch(&self, ctx: &Context) -> Result<Option<Fetched>, DatasourceError>;
}

/// Why a present source could not be used.
#[derive(Debug, Error)]
pub enum DatasourceError {
    #[error("{} does not exist", .0.display())]
    NotFound(PathBuf),
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Image { path: PathBuf, message: String },
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error(
        "{base} does not offer IMDSv2 session tokens and IMDSv1 is refused; allow it with \
         --allow-imdsv1 or ros.cloud_init.allow_imdsv1=true"
    )]
    ImdsV1Refused { base: String },
    #[error("kernel command line: {0}")]
    Cmdline(String),
}

/// Where a seed filesystem is: a filesystem label to look for among block devices, or a path
/// (a directory or an image file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seed {
    Label(String),
    Path(PathBuf),
}

impl Seed {
    fn parse(arg: &str) -> Seed {
        if arg.contains('/') {
            Seed::Path(PathBuf::from(arg))
        } else {
            Seed::Label(arg.to_owned())
        }
    }
}

impl fmt::Display for Seed {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Seed::Label(l) => f.write_str(l),
            Seed::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The default IMDS address.
pub const EC2_BASE: &str = "http://169.254.169.254";
pub const NOCLOUD_LABEL: &str = "cidata";
pub const CONFIGDRIVE_LABEL: &str = "config-2";

/// A configured datasource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Spec {
    NoCloud(Seed),
    ConfigDrive(Seed),
    Ec2 { base_url: String },
    Cmdline,
    Url(String),
    File(PathBuf),
}

/// A spec string that names no datasource.
#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "bad datasource {spec:?}: {reason} (expected nocloud[:LABEL|PATH], \
     configdrive[:LABEL|PATH], ec2[:URL], cmdline, url:URL or file:PATH)"
)]
pub struct SpecError {
    pub spec: String,
    pub reason: String,
}

fn http_url(spec: &str, url: &str) -> Result<String, SpecError> {
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !url.chars().any(char::is_whitespace) => {
            Ok(url.to_owned())
        }
        _ => Err(SpecError {
            spec: spec.to_owned(),
            reason: format!("{url:?} is not an http:// or https:// URL"),
        }),
    }
}

impl Spec {
    /// Parses a spec string (`nocloud`, `ec2:http://10.0.0.1`, `file:/seed/user-data`).
    pub fn parse(spec: &str) -> Result<Spec, SpecError> {
        let s = spec.trim();
        let (kind, arg) = match s.split_once(':') {
            Some((k, a)) => (k, Some(a)),
            None => (s, None),
        };
        let bad = |reason: &str| SpecError {
            spec: spec.to_owned(),
            reason: reason.to_owned(),
        };
        let arg = match arg {
            Some("") => return Err(bad("empty argument after ':'")),
            a => a,
        };
        match (kind.to_ascii_lowercase().as_str(), arg) {
            ("nocloud", a) => Ok(Spec::NoCloud(Seed::parse(a.unwrap_or(NOCLOUD_LABEL)))),
            ("configdrive" | "config-drive" | "config_drive", a) => Ok(Spec::ConfigDrive(
                Seed::parse(a.unwrap_or(CONFIGDRIVE_LABEL)),
            )),
            ("ec2", a) => Ok(Spec::Ec2 {
                base_url: http_url(spec, a.unwrap_or(EC2_BASE))?
                    .trim_end_matches('/')
                    .to_owned(),
            }),
            ("cmdline", None) => Ok(Spec::Cmdline),
            ("cmdline", Some(_)) => Err(bad("cmdline takes no argument")),
            ("url", Some(a)) => Ok(Spec::Url(http_url(spec, a)?)),
            ("url", None) => Err(bad("url needs a URL (url:https://…)")),
            ("file", Some(a)) => Ok(Spec::File(PathBuf::from(a))),
            ("file", None) => Err(bad("file needs a path (file:/path/user-data)")),
            ("", _) => Err(bad("empty")),
            (k, _) => Err(bad(&format!("unknown datasource {k:?}"))),
        }
    }

    /// The provider for this spec. `root` is where `cmdline` reads `proc/cmdline` (to know
    /// its phase).
    pub fn provider(&self, root: &Path) -> Box<dyn Datasource> {
        match self {
            Spec::NoCloud(seed) => Box::new(nocloud::NoCloud { seed: seed.clone() }),
            Spec::ConfigDrive(seed) => Box::new(configdrive::ConfigDrive { seed: seed.clone() }),
            Spec::Ec2 { base_url } => Box::new(ec2::Ec2 {
                base: base_url.clone(),
            }),
            Spec::Cmdline => Box::new(cmdline::Cmdline::read(root)),
            Spec::Url(u) => Box::new(url::Url { url: u.clone() }),
            Spec::File(p) => Box::new(file::File { path: p.clone() }),
        }
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Spec::NoCloud(Seed::Label(l)) if l == NOCLOUD_LABEL => f.write_str("nocloud"),
            Spec::NoCloud(s) => write!(f, "nocloud:{s}"),
            Spec::ConfigDrive(Seed::Label(l)) if l == CONFIGDRIVE_LABEL => {
                f.write_str("configdrive")
            }
            Spec::ConfigDrive(s) => write!(f, "configdrive:{s}"),
            Spec::Ec2 { base_url } if base_url == EC2_BASE => f.write_str("ec2"),
            Spec::Ec2 { base_url } => write!(f, "ec2:{base_url}"),
            Spec::Cmdline => f.write_str("cmdline"),
            Spec::Url(u) => write!(f, "url:{u}"),
            Spec::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

/// Parses a configured list, stopping at the first bad spec.
pub fn parse_specs<S: AsRef<str>>(specs: &[S]) -> Result<Vec<Spec>, SpecError> {
    specs.iter().map(|s| Spec::parse(s.as_ref())).collect()
}

/// Whether SMBIOS (`sys/class/dmi/id` under `root`) says this is an EC2 instance: a vendor
/// containing "Amazon" (Nitro), or a product UUID / asset tag starting with `ec2` / `i-`
/// (Xen-based instances, whose vendor is "Xen").
pub fn smbios_is_ec2(root: &Path) -> bool {
    let dmi = root.join("sys/class/dmi/id");
    let read = |f: &str| {
        fs::read_to_string(dmi.join(f))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    };
    if ["sys_vendor", "bios_vendor"]
        .iter()
        .any(|f| read(f).contains("Amazon"))
    {
        return true;
    }
    ["product_uuid", "board_asset_tag"].iter().any(|f| {
        let v = read(f).to_ascii_lowercase();
        v.starts_with("ec2") || v.starts_with("i-")
    })
}

/// The default order, `[nocloud, configdrive, ec2, cmdline]`, with `ec2` only when SMBIOS
/// says EC2: asking a link-local address that nobody answers would cost every non-EC2 boot
/// the whole timeout.
pub fn default_specs(root: &Path) -> Vec<Spec> {
    let mut out = vec![
        Spec::NoCloud(Seed::Label(NOCLOUD_LABEL.into())),
        Spec::ConfigDrive(Seed::Label(CONFIGDRIVE_LABEL.into())),
    ];
    if smbios_is_ec2(root) {
        out.push(Spec::Ec2 {
            base_url: EC2_BASE.into(),
        });
    }
    out.push(Spec::Cmdline);
    out
}

/// The sources a host is configured to try: `ros.cloud_init.datasources` of the merged
/// config (the kernel command line included), else [`default_specs`]. The flag says whether
/// the list was configured (then a source that does not answer is worth an error).
pub fn configured_specs(root: &Path, loaded: &Loaded) -> Result<(Vec<Spec>, bool), SpecError> {
    let configured = loaded.ros_strings("cloud_init.datasources");
    if configured.is_empty() {
        Ok((default_specs(root), false))
    } else {
        parse_specs(&configured).map(|s| (s, true))
    }
}

/// The save options of a host's config: `ros.cloud_init.allow_imdsv1`.
pub fn configured_options(loaded: &Loaded, timeout: std::time::Duration) -> SaveOptions {
    SaveOptions {
        timeout,
        allow_imdsv1: loaded.ros_flag("cloud_init.allow_imdsv1"),
    }
}

/// Strings found in a metadata value: a string, or the strings of a list or map (nested),
/// the shapes `public-keys` comes in.
fn strings_in(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => {
            let s = s.trim();
            if !s.is_empty() {
                out.push(s.to_owned());
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| strings_in(i, out)),
        serde_json::Value::Object(map) => map.values().for_each(|i| strings_in(i, out)),
        _ => {}
    }
}

/// A scalar metadata value as a string (an instance id may be written as a number).
fn scalar(v: Option<&serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
