//! `cmdline`: userdata named on the kernel command line — `ros.cloud_config=<base64>` inline
//! (a local source), or `ros.cloud_config_url=<url>` (a network source, fetched like `url:`).
//! `rancher.` is accepted for `ros.`; the last occurrence wins, as for any kernel argument.

use std::path::Path;

use base64::Engine;

use super::url::fetch_url;
use super::{Context, Datasource, DatasourceError, Fetched, Phase};
use crate::instance::Metadata;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Cmdline {
    /// Neither argument (or no `proc/cmdline`).
    Absent,
    Inline(String),
    Url(String),
}

impl Cmdline {
    /// Reads `proc/cmdline` under `root`.
    pub(crate) fn read(root: &Path) -> Cmdline {
        match std::fs::read_to_string(root.join("proc/cmdline")) {
            Ok(text) => Cmdline::parse(&text),
            Err(_) => Cmdline::Absent,
        }
    }

    pub(crate) fn parse(text: &str) -> Cmdline {
        let mut out = Cmdline::Absent;
        for (_, arg) in crate::cmdline::split_args(text) {
            if arg == "--" {
                break;
            }
            let Some((key, value)) = arg.split_once('=') else {
                continue;
            };
            let key = key
                .strip_prefix("rancher.")
                .or_else(|| key.strip_prefix("ros."));
            match key {
                Some("cloud_config_url") => out = Cmdline::Url(value.to_owned()),
                Some("cloud_config") => out = Cmdline::Inline(value.to_owned()),
                _ => {}
            }
        }
        out
    }
}

fn decode(text: &str) -> Result<Vec<u8>, DatasourceError> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let engines = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    engines
        .iter()
        .find_map(|e| e.decode(&compact).ok())
        .ok_or_else(|| {
            DatasourceError::Cmdline("ros.cloud_config is not base64 (standard or URL-safe)".into())
        })
}

impl Datasource for Cmdline {
    fn name(&self) -> &'static str {
        "cmdline"
    }

    fn phase(&self) -> Phase {
        match self {
            Cmdline::Url(_) => Phase::Network,
            _ => Phase::Local,
        }
    }

    fn fetch(&self, ctx: &Context) -> Result<Option<Fetched>, DatasourceError> {
        match self {
            Cmdline::Absent => Ok(None),
            Cmdline::Inline(b64) => Ok(Some(Fetched {
                userdata: Some(decode(b64)?),
                metadata: Metadata {
                    datasource: self.name().into(),
                    ..Metadata::default()
                },
            })),
            Cmdline::Url(url) => {
                let lower = url.to_ascii_lowercase();
                if !lower.starts_with("http://") && !lower.starts_with("https://") {
                    return Err(DatasourceError::Cmdline(format!(
                        "ros.cloud_config_url={url:?} is not an http:// or https:// URL"
                    )));
                }
                fetch_url(ctx, self.name(), url)
            }
        }
    }
}
