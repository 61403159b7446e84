//! A Docker Engine API client over a unix socket: one HTTP/1.1 connection per request
//! (`hyper` handshake), API version negotiated once with `GET /_ping`, daemon errors
//! decoded from their JSON `message`, and hijacked (upgraded) connections for attach and
//! exec.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE, HOST, UPGRADE, USER_AGENT};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::UnixStream;

/// A request body as sent to the daemon.
pub type ReqBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// What can go wrong talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Cannot connect to the system-docker daemon at unix://{}. Is the daemon running?", .0.display())]
    Connect(PathBuf, #[source] std::io::Error),
    #[error("Error response from daemon: {message}")]
    Daemon { status: StatusCode, message: String },
    #[error("error during connect: {0}")]
    Http(#[from] hyper::Error),
    #[error("invalid response from the daemon: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("unsupported host {0:?}: only unix:// sockets are supported")]
    Host(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The daemon answered 404 (no such container, image or exec).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Daemon { status, .. } if *status == StatusCode::NOT_FOUND)
    }

    /// The daemon's message, without the "Error response from daemon" prefix.
    pub fn message(&self) -> String {
        match self {
            Error::Daemon { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

/// A request body: nothing, a JSON document or a byte stream of some content type.
pub enum Body {
    Empty,
    Json(Value),
    Stream(ReqBody, &'static str),
}

impl Body {
    fn into_parts(self) -> (ReqBody, Option<&'static str>) {
        match self {
            Body::Empty => (
                Empty::new().map_err(|never| match never {}).boxed_unsync(),
                None,
            ),
            Body::Json(v) => {
                let bytes = Bytes::from(serde_json::to_vec(&v).unwrap_or_default());
                (
                    Full::new(bytes)
                        .map_err(|never| match never {})
                        .boxed_unsync(),
                    Some("application/json"),
                )
            }
            Body::Stream(body, content_type) => (body, Some(content_type)),
        }
    }
}

/// A hijacked connection: the daemon's output and, when the connection was upgraded, a
/// writer for the container's stdin (shut it down to half-close).
pub struct Hijacked {
    pub reader: Pin<Box<dyn AsyncRead + Send>>,
    pub writer: Option<Pin<Box<dyn AsyncWrite + Send>>>,
}

/// A client of one daemon. Cloning is cheap; clones share the negotiated version.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    socket: PathBuf,
    api_version: tokio::sync::OnceCell<String>,
}

impl Client {
    /// A client for `host` (`unix:///path` or a plain socket path). It connects lazily.
    pub fn new(host: &str) -> Result<Self, Error> {
        let socket = match host.strip_prefix("unix://") {
            Some(path) if !path.is_empty() => path,
            None if host.starts_with('/') => host,
            _ => return Err(Error::Host(host.to_string())),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                socket: PathBuf::from(socket),
                api_version: tokio::sync::OnceCell::new(),
            }),
        })
    }

    /// The socket this client talks to.
    #[cfg(test)]
    pub fn socket(&self) -> &std::path::Path {
        &self.inner.socket
    }

    /// The API version in use: the lower of the daemon's (`Api-Version` of `/_ping`) and
    /// ours.
    pub async fn api_version(&self) -> Result<String, Error> {
        let v = self
            .inner
            .api_version
            .get_or_try_init(|| async {
                let server = self.ping().await?;
                Ok::<_, Error>(negotiate(server.as_deref(), crate::API_VERSION))
            })
            .await?;
        Ok(v.clone())
    }

    /// `GET /_ping`; returns the daemon's `Api-Version` header, if any.
    pub async fn ping(&self) -> Result<Option<String>, Error> {
        let req = self.build(Method::GET, "/_ping".into(), Body::Empty, false);
        let resp = self.send(req).await?;
        let version = resp
            .headers()
            .get("api-version")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if version.is_none() {
            check(resp).await?;
        }
        Ok(version)
    }

    fn build(&self, method: Method, uri: String, body: Body, upgrade: bool) -> Request<ReqBody> {
        let (body, content_type) = body.into_parts();
        let mut req = Request::new(body);
        *req.method_mut() = method;
        *req.uri_mut() = uri.parse().unwrap_or_else(|_| hyper::Uri::from_static("/"));
        let headers = req.headers_mut();
        // Go's HTTP server rejects HTTP/1.1 requests without a Host header.
        headers.insert(HOST, HeaderValue::from_static("api.moby.localhost"));
        let agent = format!("system-docker/{}", crate::VERSION);
        if let Ok(agent) = HeaderValue::from_str(&agent) {
            headers.insert(USER_AGENT, agent);
        }
        if let Some(ct) = content_type {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        if upgrade {
            headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
            headers.insert(UPGRADE, HeaderValue::from_static("tcp"));
        }
        req
    }

    async fn send(&self, req: Request<ReqBody>) -> Result<Response<Incoming>, Error> {
        let socket = &self.inner.socket;
        let stream = UnixStream::connect(socket)
            .await
            .map_err(|e| Error::Connect(socket.clone(), e))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, ReqBody>(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                log::debug!("connection to the daemon ended: {e}");
            }
        });
        Ok(sender.send_request(req).await?)
    }

    /// Sends `method path` (path without the version prefix, with its query) and returns
    /// the response if its status is a success.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<Response<Incoming>, Error> {
        let uri = format!("/v{}{path}", self.api_version().await?);
        let resp = self.send(self.build(method, uri, body, false)).await?;
        check(resp).await
    }

    /// A request whose whole response body is returned.
    pub async fn call(&self, method: Method, path: &str, body: Body) -> Result<Bytes, Error> {
        let resp = self.request(method, path, body).await?;
        Ok(resp.into_body().collect().await?.to_bytes())
    }

    /// `GET path`, decoded from JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        let bytes = self.call(Method::GET, path, Body::Empty).await?;
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// `GET path`, as the raw JSON text and its decoded value.
    pub async fn get_raw(&self, path: &str) -> Result<(Bytes, Value), Error> {
        let bytes = self.call(Method::GET, path, Body::Empty).await?;
        let value = serde_json::from_slice(&bytes)?;
        Ok((bytes, value))
    }

    /// `POST path` with an optional JSON body; the response decoded from JSON (`null` when
    /// the daemon sent no body).
    pub async fn post(&self, path: &str, body: Option<Value>) -> Result<Value, Error> {
        let body = body.map_or(Body::Empty, Body::Json);
        let bytes = self.call(Method::POST, path, body).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// `POST path` asking to take over the connection (`Upgrade: tcp`), as attach and exec
    /// start do. A daemon that answers 200 instead of 101 streams the output in the body.
    pub async fn hijack(&self, path: &str, body: Option<Value>) -> Result<Hijacked, Error> {
        let uri = format!("/v{}{path}", self.api_version().await?);
        let body = body.map_or(Body::Empty, Body::Json);
        let resp = check(self.send(self.build(Method::POST, uri, body, true)).await?).await?;
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            let upgraded = hyper::upgrade::on(resp).await?;
            let (reader, writer) = tokio::io::split(TokioIo::new(upgraded));
            return Ok(Hijacked {
                reader: Box::pin(reader),
                writer: Some(Box::pin(writer)),
            });
        }
        let data = resp
            .into_body()
            .into_data_stream()
            .map_err(std::io::Error::other);
        Ok(Hijacked {
            reader: Box::pin(tokio_util::io::StreamReader::new(data)),
            writer: None,
        })
    }
}

/// `resp` if its status is a success (or 101, 304), else the daemon's error.
async fn check(resp: Response<Incoming>) -> Result<Response<Incoming>, Error> {
    let status = resp.status();
    // 304: already started or stopped, which the docker CLI counts as success.
    if status.is_success()
        || status == StatusCode::SWITCHING_PROTOCOLS
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(resp);
    }
    let bytes = resp.into_body().collect().await?.to_bytes();
    Err(Error::Daemon {
        status,
        message: error_message(status, &bytes),
    })
}

fn error_message(status: StatusCode, body: &[u8]) -> String {
    let from_json = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_string));
    let message = from_json.unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    if message.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("unknown error")
            .to_lowercase()
    } else {
        message
    }
}

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (major, minor) = v.trim().split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The version to use with a daemon that reports `server`, when we speak `ours` at most.
pub fn negotiate(server: Option<&str>, ours: &str) -> String {
    match server.and_then(|s| Some((s, parse_version(s)?))) {
        Some((s, sv)) if parse_version(ours).is_some_and(|ov| sv < ov) => s.trim().to_string(),
        _ => ours.to_string(),
    }
}

/// A query string (`?a=1&b=x`) from the pairs whose value is present.
pub fn query<'a>(pairs: impl IntoIterator<Item = (&'a str, Option<String>)>) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in pairs {
        if let Some(v) = v {
            ser.append_pair(k, &v);
            any = true;
        }
    }
    if any {
        format!("?{}", ser.finish())
    } else {
        String::new()
    }
}

/// A name or id made safe for a URL path segment (image names keep their `/` and `:`).
pub fn path_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/@+".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The next chunk of a response body (trailers skipped), `None` at its end.
pub async fn next_chunk(body: &mut Incoming) -> Result<Option<Bytes>, Error> {
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            return Ok(Some(data));
        }
    }
    Ok(None)
}

/// A stream of JSON documents in a response body (events, pull and load progress).
pub struct JsonStream {
    body: Incoming,
    buf: Vec<u8>,
    done: bool,
}

impl JsonStream {
    pub fn new(body: Incoming) -> Self {
        Self {
            body,
            buf: Vec::new(),
            done: false,
        }
    }

    /// The next document, `None` at the end of the body.
    pub async fn next(&mut self) -> Result<Option<Value>, Error> {
        loop {
            if let Some(v) = take_document(&mut self.buf)? {
                return Ok(Some(v));
            }
            if self.done {
                return Ok(None);
            }
            match next_chunk(&mut self.body).await? {
                Some(data) => self.buf.extend_from_slice(&data),
                None => self.done = true,
            }
        }
    }
}

/// Removes and returns the first complete JSON document of `buf`, if there is one.
fn take_document(buf: &mut Vec<u8>) -> Result<Option<Value>, Error> {
    let mut docs = serde_json::Deserializer::from_slice(buf).into_iter::<Value>();
    match docs.next() {
        Some(Ok(v)) => {
            let used = docs.byte_offset();
            buf.drain(..used);
            Ok(Some(v))
        }
        Some(Err(e)) if e.is_eof() => Ok(None),
        Some(Err(e)) => Err(e.into()),
        None => {
            buf.clear();
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_negotiation_takes_the_lower() {
        assert_eq!(negotiate(Some("1.41"), "1.43"), "1.41");
        assert_eq!(negotiate(Some("1.45"), "1.43"), "1.43");
        assert_eq!(negotiate(Some("1.43"), "1.43"), "1.43");
        assert_eq!(negotiate(Some("1.9"), "1.43"), "1.9");
        assert_eq!(negotiate(None, "1.43"), "1.43");
        assert_eq!(negotiate(Some("garbage"), "1.43"), "1.43");
    }

    #[test]
    fn hosts() {
        assert_eq!(
            Client::new("unix:///tmp/d.sock").unwrap().socket(),
            std::path::Path::new("/tmp/d.sock")
        );
        assert_eq!(
            Client::new("/run/x.sock").unwrap().socket(),
            std::path::Path::new("/run/x.sock")
        );
        assert!(Client::new("tcp://1.2.3.4:2375").is_err());
    }

    #[test]
    fn daemon_error_messages() {
        assert_eq!(
            error_message(
                StatusCode::NOT_FOUND,
                br#"{"message":"No such container: x"}"#
            ),
            "No such container: x"
        );
        assert_eq!(
            error_message(StatusCode::NOT_FOUND, b"page not found\n"),
            "page not found"
        );
        assert_eq!(error_message(StatusCode::BAD_GATEWAY, b""), "bad gateway");
    }

    #[test]
    fn queries_and_paths() {
        assert_eq!(
            query([
                ("all", Some("1".into())),
                ("x", None),
                ("f", Some("{\"a\":1}".into()))
            ]),
            "?all=1&f=%7B%22a%22%3A1%7D"
        );
        assert_eq!(query([("x", None)]), "");
        assert_eq!(path_escape("foo/bar:1"), "foo/bar:1");
        assert_eq!(path_escape("a b?"), "a%20b%3F");
    }

    #[test]
    fn documents_are_split_from_a_buffer() {
        let mut buf = br#"{"a":1}
{"b":2}{"c""#
            .to_vec();
        assert_eq!(
            take_document(&mut buf).unwrap(),
            Some(serde_json::json!({"a":1}))
        );
        assert_eq!(
            take_document(&mut buf).unwrap(),
            Some(serde_json::json!({"b":2}))
        );
        assert_eq!(take_document(&mut buf).unwrap(), None);
        assert_eq!(buf, br#"{"c""#);
    }
}
