//! `file:PATH`: userdata in a local file (a seed baked into an image, a test).

use std::fs;
use std::path::PathBuf;

use super::{Context, Datasource, DatasourceError, Fetched, Phase};
use crate::instance::Metadata;

pub(crate) struct File {
    pub path: PathBuf,
}

impl Datasource for File {
    fn name(&self) -> &'static str {
        "file"
    }

    fn phase(&self) -> Phase {
        Phase::Local
    }

    fn fetch(&self, _ctx: &Context) -> Result<Option<Fetched>, DatasourceError> {
        match fs::read(&self.path) {
            Ok(data) => Ok(Some(Fetched {
                userdata: Some(data),
                metadata: Metadata {
                    datasource: "file".into(),
                    ..Metadata::default()
                },
            })),
            // The user named the file: a missing one is worth an error, not a silent skip.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(DatasourceError::NotFound(self.path.clone()))
            }
            Err(source) => Err(DatasourceError::Read {
                path: self.path.clone(),
                source,
            }),
        }
    }
}
