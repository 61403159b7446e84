//! HTTP for the network sources (`ec2`, `url`, `cmdline` with a URL): blocking requests with
//! bounded retries and backoff that never wait past the [`Context`] deadline.

use std::io::Read;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use reqwest::Method;

use super::Context;
use crate::userdata::MAX_USERDATA;

/// Tries per request; with the backoff below, about 4 s of waiting in all.
const ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// No single request waits longer than this (IMDS answers in milliseconds).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

pub(crate) enum Failure {
    /// Nothing answered (refused, unreachable, timed out) within the attempts and deadline.
    Unreachable(String),
    /// Something answered, wrongly (TLS, a cut-off or oversized body).
    Broken(String),
}

pub(crate) struct Http {
    client: Client,
}

/// An error with its causes, which reqwest keeps out of its own message.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        cur = s.source();
    }
    out
}

impl Http {
    /// `direct`: ignore proxy settings (IMDS is link-local; a proxy cannot reach it).
    pub(crate) fn new(direct: bool) -> Result<Http, String> {
        let mut b = Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .user_agent(concat!("ros/", env!("CARGO_PKG_VERSION")));
        if direct {
            b = b.no_proxy();
        }
        b.build()
            .map(|client| Http { client })
            .map_err(|e| chain(&e))
    }

    /// Sends a request; connection failures, timeouts and 5xx answers are retried with
    /// backoff. A 5xx on the last attempt is returned as it is.
    pub(crate) fn request(
        &self,
        ctx: &Context,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Response, Failure> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let remaining = ctx.deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(Failure::Unreachable("deadline passed".into()));
            }
            let last = attempt >= ATTEMPTS;
            let mut req = self
                .client
                .request(method.clone(), url)
                .timeout(remaining.min(REQUEST_TIMEOUT));
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            match req.send() {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    if status >= 500 && !last {
                        log::debug!("{method} {url}: HTTP {status}, retrying");
                    } else {
                        let mut body = Vec::new();
                        resp.take(MAX_USERDATA + 1)
                            .read_to_end(&mut body)
                            .map_err(|e| Failure::Broken(format!("reading the body: {e}")))?;
                        if body.len() as u64 > MAX_USERDATA {
                            return Err(Failure::Broken(format!(
                                "body larger than {MAX_USERDATA} bytes"
                            )));
                        }
                        return Ok(Response { status, body });
                    }
                }
                Err(e) if e.is_connect() || e.is_timeout() => {
                    if last {
                        return Err(Failure::Unreachable(chain(&e)));
                    }
                    log::debug!("{method} {url}: {}, retrying", chain(&e));
                }
                Err(e) => return Err(Failure::Broken(chain(&e))),
            }
            let remaining = ctx.deadline.saturating_duration_since(Instant::now());
            std::thread::sleep(backoff.min(remaining));
            backoff = (backoff * 2).min(MAX_BACKOFF);
            attempt += 1;
        }
    }

    /// GET of a whole body: `Ok(None)` when nothing answered, an error for any status but
    /// 200.
    pub(crate) fn get_body(
        &self,
        ctx: &Context,
        url: &str,
    ) -> Result<Option<Vec<u8>>, super::DatasourceError> {
        match self.request(ctx, Method::GET, url, &[]) {
            Ok(r) if r.status == 200 => Ok(Some(r.body)),
            Ok(r) => Err(super::DatasourceError::Status {
                url: url.to_owned(),
                status: r.status,
            }),
            Err(Failure::Unreachable(m)) => {
                log::info!("{url}: {m}");
                Ok(None)
            }
            Err(Failure::Broken(message)) => Err(super::DatasourceError::Http {
                url: url.to_owned(),
                message,
            }),
        }
    }
}
