//! OpenStack config drive (`config-2`): `openstack/latest/user_data`,
//! `openstack/latest/meta_data.json` (`uuid`, `hostname`, `public_keys` as name → key) and
//! `openstack/latest/network_data.json`.

use serde_json::Value;

use super::seed::{self, SeedFs};
use super::{scalar, strings_in, Context, Datasource, DatasourceError, Fetched, Phase, Seed};
use crate::instance::Metadata;

const DIR: &str = "openstack/latest";

pub(crate) struct ConfigDrive {
    pub seed: Seed,
}

impl Datasource for ConfigDrive {
    fn name(&self) -> &'static str {
        "configdrive"
    }

    fn phase(&self) -> Phase {
        Phase::Local
    }

    fn fetch(&self, ctx: &Context) -> Result<Option<Fetched>, DatasourceError> {
        let Some(mut fs) = seed::open(&ctx.root, &self.seed)? else {
            return Ok(None);
        };
        read_drive(&mut fs).map(Some)
    }
}

fn json(fs: &mut SeedFs, name: &str) -> Result<Option<Value>, DatasourceError> {
    let rel = format!("{DIR}/{name}");
    let Some(data) = fs.read(&rel)? else {
        return Ok(None);
    };
    serde_json::from_slice(&data)
        .map(Some)
        .map_err(|e| DatasourceError::Parse {
            file: fs.path().join(&rel).display().to_string(),
            message: e.to_string(),
        })
}

fn read_drive(fs: &mut SeedFs) -> Result<Fetched, DatasourceError> {
    let mut metadata = match json(fs, "meta_data.json")? {
        Some(v) => parse_meta_data(&v),
        None => Metadata::default(),
    };
    metadata.network_config = json(fs, "network_data.json")?;
    metadata.datasource = "configdrive".into();
    Ok(Fetched {
        userdata: fs.read(&format!("{DIR}/user_data"))?,
        metadata,
    })
}

/// `meta_data.json`: `uuid` is the instance id; `public_keys` maps key names to keys.
pub(crate) fn parse_meta_data(v: &Value) -> Metadata {
    let mut meta = Metadata {
        instance_id: scalar(v.get("uuid")).unwrap_or_default(),
        hostname: scalar(v.get("hostname")),
        ..Metadata::default()
    };
    if let Some(keys) = v.get("public_keys") {
        strings_in(keys, &mut meta.public_keys);
    }
    meta
}
