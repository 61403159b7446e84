//! EC2 instance metadata service (IMDS).
//!
//! IMDSv2 first: `PUT /latest/api/token` with a TTL, then every GET carries the token; a 401
//! (the token expired) gets one new token and one retry. When the PUT is refused with 403,
//! 404 or 405 the service does not offer v2; token-less v1 GETs are used only when allowed,
//! because v1 is what SSRF attacks on instance credentials exploit. Nothing answering within
//! the retries and the deadline means "not on EC2" (not present).

use reqwest::Method;

use super::http::{Failure, Http};
use super::{Context, Datasource, DatasourceError, Fetched, Phase};
use crate::instance::Metadata;

pub const TOKEN_PATH: &str = "/latest/api/token";
pub const TTL_HEADER: &str = "X-aws-ec2-metadata-token-ttl-seconds";
pub const TOKEN_HEADER: &str = "X-aws-ec2-metadata-token";
/// Six hours, as the AWS CLI and cloud-init ask for.
const TOKEN_TTL: &str = "21600";

pub(crate) struct Ec2 {
    pub base: String,
}

struct Session<'a> {
    ctx: &'a Context,
    http: Http,
    base: &'a str,
    /// `None`: IMDSv1.
    token: Option<String>,
}

enum Token {
    V2(String),
    V1,
}

impl Session<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn http_error(&self, path: &str, message: String) -> DatasourceError {
        DatasourceError::Http {
            url: self.url(path),
            message,
        }
    }

    /// A new session token; `Ok(None)` when nothing answers.
    fn token(&self) -> Result<Option<Token>, DatasourceError> {
        let url = self.url(TOKEN_PATH);
        let resp = match self
            .http
            .request(self.ctx, Method::PUT, &url, &[(TTL_HEADER, TOKEN_TTL)])
        {
            Ok(r) => r,
            Err(Failure::Unreachable(m)) => {
                log::info!("{url}: {m}");
                return Ok(None);
            }
            Err(Failure::Broken(m)) => return Err(self.http_error(TOKEN_PATH, m)),
        };
        match resp.status {
            200 => {
                let token = String::from_utf8_lossy(&resp.body).trim().to_owned();
                if token.is_empty() {
                    return Err(self.http_error(TOKEN_PATH, "empty session token".into()));
                }
                Ok(Some(Token::V2(token)))
            }
            403..=405 if self.ctx.allow_imdsv1 => {
                log::warn!(
                    "{}: no IMDSv2 (HTTP {}); using IMDSv1 as allowed",
                    self.base,
                    resp.status
                );
                Ok(Some(Token::V1))
            }
            403..=405 => Err(DatasourceError::ImdsV1Refused {
                base: self.base.to_owned(),
            }),
            status => Err(DatasourceError::Status { url, status }),
        }
    }

    /// GETs `path`; `None` on 404.
    fn get(&mut self, path: &str) -> Result<Option<Vec<u8>>, DatasourceError> {
        let mut refreshed = false;
        loop {
            let url = self.url(path);
            let headers: Vec<(&str, &str)> = match &self.token {
                Some(t) => vec![(TOKEN_HEADER, t.as_str())],
                None => Vec::new(),
            };
            let resp = match self.http.request(self.ctx, Method::GET, &url, &headers) {
                Ok(r) => r,
                Err(Failure::Unreachable(m) | Failure::Broken(m)) => {
                    return Err(self.http_error(path, m))
                }
            };
            match resp.status {
                200 => return Ok(Some(resp.body)),
                404 => return Ok(None),
                401 if self.token.is_some() && !refreshed => {
                    log::info!("{url}: session token expired, getting a new one");
                    refreshed = true;
                    self.token = match self.token()? {
                        Some(Token::V2(t)) => Some(t),
                        // Asked for v2 a moment ago and now refused: not something to
                        // paper over with v1.
                        Some(Token::V1) | None => {
                            return Err(self.http_error(
                                TOKEN_PATH,
                                "could not renew the session token".into(),
                            ))
                        }
                    };
                }
                status => return Err(DatasourceError::Status { url, status }),
            }
        }
    }

    fn get_text(&mut self, path: &str) -> Result<Option<String>, DatasourceError> {
        Ok(self
            .get(path)?
            .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
            .filter(|s| !s.is_empty()))
    }
}

/// Indexes of `public-keys/`: lines `0=my-key`.
pub(crate) fn key_indexes(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|l| {
            let idx = l.split('=').next()?.trim().trim_end_matches('/');
            (!idx.is_empty() && idx.chars().all(|c| c.is_ascii_digit())).then(|| idx.to_owned())
        })
        .collect()
}

impl Datasource for Ec2 {
    fn name(&self) -> &'static str {
        "ec2"
    }

    fn phase(&self) -> Phase {
        Phase::Network
    }

    fn fetch(&self, ctx: &Context) -> Result<Option<Fetched>, DatasourceError> {
        let http = Http::new(true).map_err(|message| DatasourceError::Http {
            url: self.base.clone(),
            message,
        })?;
        let mut s = Session {
            ctx,
            http,
            base: &self.base,
            token: None,
        };
        s.token = match s.token()? {
            None => return Ok(None),
            Some(Token::V2(t)) => Some(t),
            Some(Token::V1) => None,
        };
        let userdata = s.get("/latest/user-data")?;
        let mut metadata = Metadata {
            datasource: "ec2".into(),
            instance_id: s
                .get_text("/latest/meta-data/instance-id")?
                .unwrap_or_default(),
            ..Metadata::default()
        };
        metadata.hostname = match s.get_text("/latest/meta-data/local-hostname")? {
            Some(h) => Some(h),
            None => s.get_text("/latest/meta-data/hostname")?,
        };
        if let Some(listing) = s.get_text("/latest/meta-data/public-keys/")? {
            for idx in key_indexes(&listing) {
                let path = format!("/latest/meta-data/public-keys/{idx}/openssh-key");
                if let Some(key) = s.get_text(&path)? {
                    metadata.public_keys.extend(key.lines().map(str::to_owned));
                }
            }
        }
        Ok(Some(Fetched { userdata, metadata }))
    }
}
