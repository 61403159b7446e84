//! `url:URL`: userdata at an http(s) URL. Unreachable within the deadline is "not present";
//! any answer but 200 is an error.

use super::http::Http;
use super::{Context, Datasource, DatasourceError, Fetched, Phase};
use crate::instance::Metadata;

pub(crate) struct Url {
    pub url: String,
}

/// Fetches `url` as userdata for the source `name`.
pub(crate) fn fetch_url(
    ctx: &Context,
    name: &str,
    url: &str,
) -> Result<Option<Fetched>, DatasourceError> {
    let http = Http::new(false).map_err(|message| DatasourceError::Http {
        url: url.to_owned(),
        message,
    })?;
    Ok(http.get_body(ctx, url)?.map(|body| Fetched {
        userdata: Some(body),
        metadata: Metadata {
            datasource: name.to_owned(),
            ..Metadata::default()
        },
    }))
}

impl Datasource for Url {
    fn name(&self) -> &'static str {
        "url"
    }

    fn phase(&self) -> Phase {
        Phase::Network
    }

    fn fetch(&self, ctx: &Context) -> Result<Option<Fetched>, DatasourceError> {
        fetch_url(ctx, self.name(), &self.url)
    }
}
