//! NoCloud: a seed holding `user-data`, `meta-data` (YAML: `instance-id`, `local-hostname`,
//! `public-keys`) and optionally `network-config` — the `cidata` disk Vagrant, libvirt and
//! many clouds attach, or a directory / image file named in the spec.

use serde_json::Value;

use super::seed::{self, SeedFs};
use super::{scalar, strings_in, Context, Datasource, DatasourceError, Fetched, Phase, Seed};
use crate::instance::Metadata;

pub(crate) struct NoCloud {
    pub seed: Seed,
}

impl Datasource for NoCloud {
    fn name(&self) -> &'static str {
        "nocloud"
    }

    fn phase(&self) -> Phase {
        Phase::Local
    }

    fn fetch(&self, ctx: &Context) -> Result<Option<Fetched>, DatasourceError> {
        let Some(mut fs) = seed::open(&ctx.root, &self.seed)? else {
            return Ok(None);
        };
        read_seed(&mut fs).map(Some)
    }
}

fn read_seed(fs: &mut SeedFs) -> Result<Fetched, DatasourceError> {
    let file = |name: &str, fs: &SeedFs| fs.path().join(name).display().to_string();
    let mut metadata = match fs.read("meta-data")? {
        Some(data) => parse_meta_data(&file("meta-data", fs), &data)?,
        None => Metadata::default(),
    };
    if let Some(data) = fs.read("network-config")? {
        metadata.network_config = Some(parse_yaml(&file("network-config", fs), &data)?);
    }
    metadata.datasource = "nocloud".into();
    Ok(Fetched {
        userdata: fs.read("user-data")?,
        metadata,
    })
}

fn parse_yaml(file: &str, data: &[u8]) -> Result<Value, DatasourceError> {
    let text = std::str::from_utf8(data).map_err(|_| DatasourceError::Parse {
        file: file.to_owned(),
        message: "not UTF-8".into(),
    })?;
    crate::node::parse(text)
        .map(|n| n.to_json())
        .map_err(|e| DatasourceError::Parse {
            file: file.to_owned(),
            message: format!("{}:{}: {}", e.pos.line, e.pos.column, e.message),
        })
}

/// Reads NoCloud `meta-data`: YAML (or JSON) with `instance-id`, `local-hostname` (or
/// `hostname`) and `public-keys` as a string, a list, or a map of name → key(s).
pub(crate) fn parse_meta_data(file: &str, data: &[u8]) -> Result<Metadata, DatasourceError> {
    let v = parse_yaml(file, data)?;
    let map = match &v {
        Value::Object(m) => m,
        Value::Null => return Ok(Metadata::default()),
        other => {
            return Err(DatasourceError::Parse {
                file: file.to_owned(),
                message: format!("expected a map, got {}", kind(other)),
            })
        }
    };
    let mut meta = Metadata {
        instance_id: scalar(map.get("instance-id").or_else(|| map.get("instance_id")))
            .unwrap_or_default(),
        hostname: scalar(map.get("local-hostname").or_else(|| map.get("hostname"))),
        ..Metadata::default()
    };
    if let Some(keys) = map.get("public-keys").or_else(|| map.get("public_keys")) {
        strings_in(keys, &mut meta.public_keys);
    }
    Ok(meta)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}
