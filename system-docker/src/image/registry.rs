//! `docker pull` over the registry HTTP API v2: manifests (Docker v2, OCI, manifest lists and
//! OCI indexes, from which this host's platform is picked), blobs verified against their
//! digests, anonymous / Bearer token / Basic authentication.
//!
//! Registries on loopback and those listed as insecure are spoken to over plain HTTP, others
//! over HTTPS. Layers are downloaded into the store's `tmp/`, verified, unpacked like
//! [`super::load`] does and committed in one step.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::auth::{parse_challenges, Challenge, RegistryAuth};
use super::commit::NewImage;
use super::extract;
use super::load::{is_index, pick_platform, sha256_digest, verify};
use super::reference::Reference;
use super::store::{config_diff_ids, io_err, sha256_hex, Image, ImageError, ImageStore};

const MANIFEST_ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";
const MANIFEST_LIMIT: u64 = 4 << 20;
const CONFIG_LIMIT: u64 = 64 << 20;
const MAX_INDEX_DEPTH: usize = 4;
/// Bytes between two "Downloading" progress messages.
const PROGRESS_STEP: u64 = 512 << 10;

/// `host` of `host[:port]` or `[v6]:port`.
fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(h, _)| h)
    } else {
        registry.rsplit_once(':').map_or(registry, |(h, _)| h)
    }
}

/// Whether `registry` (`host[:port]`) is on this host: `localhost`, 127.0.0.0/8 or ::1.
pub fn is_loopback(registry: &str) -> bool {
    let host = host_of(registry);
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether `registry` (`host[:port]`) is reached over plain HTTP: loopback, or listed in
/// `insecure` (by `host[:port]`, host, or CIDR network of its address).
pub fn is_plain_http(registry: &str, insecure: &[String]) -> bool {
    if is_loopback(registry) {
        return true;
    }
    let host = host_of(registry);
    let ip = host.parse::<IpAddr>().ok();
    insecure.iter().any(|entry| {
        let e = entry
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .trim_end_matches('/');
        if e == registry || e == host {
            return true;
        }
        match (e.split_once('/'), ip) {
            (Some((net, bits)), Some(ip)) => in_network(ip, net, bits),
            _ => false,
        }
    })
}

fn in_network(ip: IpAddr, net: &str, bits: &str) -> bool {
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// `1.23MB`, as Docker's `units.HumanSize` prints sizes.
fn human_size(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    // Four significant digits, as Go's "%.4g".
    let int_digits = if v < 1.0 {
        1
    } else {
        (v.log10().floor() as usize) + 1
    };
    let s = format!("{v:.*}", 4usize.saturating_sub(int_digits));
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    format!("{s}{}", UNITS[u])
}

fn progress_bar(current: u64, total: u64) -> String {
    const WIDTH: u64 = 50;
    if total == 0 {
        return human_size(current);
    }
    let filled = (current.min(total) * WIDTH / total) as usize;
    let bar = if filled >= WIDTH as usize {
        "=".repeat(WIDTH as usize)
    } else {
        format!(
            "{}>{}",
            "=".repeat(filled),
            " ".repeat(WIDTH as usize - filled - 1)
        )
    };
    format!("[{bar}] {}/{}", human_size(current), human_size(total))
}

enum Auth {
    None,
    Bearer(String),
    Basic,
}

/// A client for one repository of one registry, keeping the credentials it negotiated.
struct Client {
    http: reqwest::Client,
    base: String,
    repo: String,
    creds: Option<RegistryAuth>,
    auth: Auth,
}

fn registry_err(what: &str, e: impl fmt::Display) -> ImageError {
    ImageError::Registry(format!("{what}: {e}"))
}

/// `code: message` of a registry error body, or the raw body.
fn error_text(body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let errors = parsed
        .as_ref()
        .and_then(|v| v.get("errors"))
        .and_then(Value::as_array);
    match errors {
        Some(errs) if !errs.is_empty() => errs
            .iter()
            .map(|e| {
                let code = e.get("code").and_then(Value::as_str).unwrap_or("");
                let msg = e.get("message").and_then(Value::as_str).unwrap_or("");
                format!("{}: {msg}", code.to_ascii_lowercase().replace('_', " "))
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => String::from_utf8_lossy(body)
            .trim()
            .chars()
            .take(200)
            .collect(),
    }
}

impl Client {
    /// `direct`: never through an HTTP proxy from the environment (loopback registries).
    fn new(
        base: String,
        repo: &str,
        creds: Option<RegistryAuth>,
        direct: bool,
    ) -> Result<Client, ImageError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(format!("system-docker/{}", crate::VERSION))
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(300));
        if direct {
            builder = builder.no_proxy();
        }
        let http = builder
            .build()
            .map_err(|e| registry_err("http client", e))?;
        Ok(Client {
            http,
            base,
            repo: repo.to_string(),
            creds: creds.filter(|c| !c.username.is_empty() || !c.password.is_empty()),
            auth: Auth::None,
        })
    }

    /// GET `url`, authenticating once when the registry answers 401.
    async fn get(
        &mut self,
        url: &str,
        accept: Option<&str>,
    ) -> Result<reqwest::Response, ImageError> {
        let mut retried = false;
        loop {
            let mut req = self.http.get(url);
            if let Some(a) = accept {
                req = req.header(ACCEPT, a);
            }
            req = match (&self.auth, &self.creds) {
                (Auth::Bearer(t), _) => req.bearer_auth(t),
                (Auth::Basic, Some(c)) => req.basic_auth(&c.username, Some(&c.password)),
                _ => req,
            };
            let resp = req.send().await.map_err(|e| registry_err(url, e))?;
            if resp.status() != StatusCode::UNAUTHORIZED || retried {
                return Ok(resp);
            }
            let challenges: Vec<Challenge> = resp
                .headers()
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(parse_challenges)
                .collect();
            self.auth = self.authenticate(&challenges).await?;
            retried = true;
        }
    }

    async fn authenticate(&self, challenges: &[Challenge]) -> Result<Auth, ImageError> {
        if let Some(c) = challenges.iter().find(|c| c.scheme == "bearer") {
            let realm = c
                .params
                .get("realm")
                .ok_or_else(|| ImageError::Registry("bearer challenge without realm".into()))?;
            let mut url = url::Url::parse(realm).map_err(|e| registry_err(realm, e))?;
            {
                let mut q = url.query_pairs_mut();
                if let Some(s) = c.params.get("service") {
                    q.append_pair("service", s);
                }
                // A login asks for a token without a scope: it only proves the credentials.
                let scope = c.params.get("scope").cloned().or_else(|| {
                    (!self.repo.is_empty()).then(|| format!("repository:{}:pull", self.repo))
                });
                if let Some(scope) = scope {
                    q.append_pair("scope", &scope);
                }
            }
            let mut req = self.http.get(url.clone());
            if let Some(cr) = &self.creds {
                req = req.basic_auth(&cr.username, Some(&cr.password));
            }
            let resp = req.send().await.map_err(|e| registry_err(realm, e))?;
            let status = resp.status();
            let body = resp.bytes().await.map_err(|e| registry_err(realm, e))?;
            if !status.is_success() {
                return Err(ImageError::Registry(format!(
                    "getting a token from {realm}: {status}: {}",
                    error_text(&body)
                )));
            }
            let v: Value = serde_json::from_slice(&body)
                .map_err(|e| registry_err(&format!("token from {realm}"), e))?;
            let token = v
                .get("token")
                .or_else(|| v.get("access_token"))
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| ImageError::Registry(format!("{realm}: answer has no token")))?;
            return Ok(Auth::Bearer(token.to_string()));
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            return match self.creds {
                Some(_) => Ok(Auth::Basic),
                None => Err(ImageError::Registry(format!(
                    "{}: unauthorized: authentication required",
                    self.base
                ))),
            };
        }
        Err(ImageError::Registry(format!(
            "{}: unauthorized, and no supported authentication challenge",
            self.base
        )))
    }

    async fn read_limited(
        &self,
        mut resp: reqwest::Response,
        url: &str,
        limit: u64,
    ) -> Result<Vec<u8>, ImageError> {
        let mut out = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| registry_err(url, e))? {
            out.extend_from_slice(&chunk);
            if out.len() as u64 > limit {
                return Err(ImageError::Registry(format!(
                    "{url}: answer larger than {limit} bytes"
                )));
            }
        }
        Ok(out)
    }

    async fn fail(&self, resp: reqwest::Response, url: &str, what: &str) -> ImageError {
        let status = resp.status();
        let body = self
            .read_limited(resp, url, 64 << 10)
            .await
            .unwrap_or_default();
        let text = error_text(&body);
        match status {
            StatusCode::NOT_FOUND => {
                ImageError::ManifestUnknown(format!("{what} not found: {text}"))
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ImageError::Registry(format!(
                "pull access denied for {}, repository does not exist or may require \
                 'docker login': {text}",
                self.repo
            )),
            s => ImageError::Registry(format!("{url}: {s}: {text}")),
        }
    }

    /// The manifest `reference` (tag or digest): its bytes and media type.
    async fn manifest(
        &mut self,
        reference: &str,
        what: &str,
    ) -> Result<(Vec<u8>, String), ImageError> {
        let url = format!("{}/v2/{}/manifests/{reference}", self.base, self.repo);
        let resp = self.get(&url, Some(MANIFEST_ACCEPT)).await?;
        if !resp.status().is_success() {
            return Err(self.fail(resp, &url, &format!("manifest for {what}")).await);
        }
        let ct = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_string())
            .unwrap_or_default();
        let body = self.read_limited(resp, &url, MANIFEST_LIMIT).await?;
        Ok((body, ct))
    }

    /// A small blob (a config), verified.
    async fn blob(&mut self, digest: &str) -> Result<Vec<u8>, ImageError> {
        let url = format!("{}/v2/{}/blobs/{digest}", self.base, self.repo);
        let resp = self.get(&url, None).await?;
        if !resp.status().is_success() {
            let status = resp.status();
            return Err(
                match self.fail(resp, &url, &format!("blob {digest}")).await {
                    ImageError::ManifestUnknown(m) => {
                        ImageError::Registry(format!("{status}: {m}"))
                    }
                    e => e,
                },
            );
        }
        let body = self.read_limited(resp, &url, CONFIG_LIMIT).await?;
        verify(&format!("{}@{digest}", self.repo), digest, &body)?;
        Ok(body)
    }

    /// Downloads blob `digest` into `dest`, verifying it, with docker-style progress.
    async fn download(
        &mut self,
        digest: &str,
        size: Option<u64>,
        dest: &Path,
        short: &str,
        progress: &mut (dyn FnMut(Value) + Send),
    ) -> Result<(), ImageError> {
        let url = format!("{}/v2/{}/blobs/{digest}", self.base, self.repo);
        let mut resp = self.get(&url, None).await?;
        if !resp.status().is_success() {
            let status = resp.status();
            return Err(
                match self.fail(resp, &url, &format!("blob {digest}")).await {
                    ImageError::ManifestUnknown(m) => {
                        ImageError::Registry(format!("{status}: {m}"))
                    }
                    e => e,
                },
            );
        }
        let total = size.or(resp.content_length()).unwrap_or(0);
        let mut file = tokio::fs::File::create(dest).await.map_err(io_err(dest))?;
        let mut hasher = Sha256::new();
        let mut n = 0u64;
        let mut reported = 0u64;
        while let Some(chunk) = resp.chunk().await.map_err(|e| registry_err(&url, e))? {
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io_err(dest))?;
            n += chunk.len() as u64;
            if size.is_some_and(|s| n > s) {
                return Err(ImageError::Registry(format!(
                    "blob {digest} is larger than the {total} bytes its manifest says"
                )));
            }
            if n - reported >= PROGRESS_STEP || n == total {
                reported = n;
                progress(json!({
                    "status": "Downloading",
                    "progressDetail": {"current": n, "total": total},
                    "progress": progress_bar(n, total),
                    "id": short,
                }));
            }
        }
        file.flush().await.map_err(io_err(dest))?;
        progress(json!({"status": "Verifying Checksum", "progressDetail": {}, "id": short}));
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual != digest {
            return Err(ImageError::DigestMismatch {
                blob: format!("{}@{digest}", self.repo),
                expected: digest.to_string(),
                actual,
            });
        }
        progress(json!({"status": "Download complete", "progressDetail": {}, "id": short}));
        Ok(())
    }
}

fn parse_manifest(bytes: &[u8], what: &str) -> Result<Value, ImageError> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| ImageError::Registry(format!("manifest of {what}: bad JSON: {e}")))?;
    if v.get("schemaVersion").and_then(Value::as_u64) == Some(1) {
        return Err(ImageError::Registry(format!(
            "{what}: schema 1 manifests are not supported"
        )));
    }
    Ok(v)
}

fn media_type<'a>(content_type: &'a str, doc: &'a Value) -> &'a str {
    doc.get("mediaType")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .unwrap_or(content_type)
}

/// Pulls `reference` into `store`.
/// Checks credentials the way `docker login` does: `GET /v2/`, answering the registry's
/// challenge with them.
pub(super) async fn login(
    store: &ImageStore,
    server: &str,
    auth: RegistryAuth,
) -> Result<(), ImageError> {
    let bare = server
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = bare.split('/').next().unwrap_or(bare);
    let host = match host {
        "" | "docker.io" | "index.docker.io" => "registry-1.docker.io",
        h => h,
    };
    let scheme = if is_plain_http(host, &store.insecure_registries()) {
        "http"
    } else {
        "https"
    };
    let mut client = Client::new(
        format!("{scheme}://{host}"),
        "",
        Some(auth),
        is_loopback(host),
    )?;
    let url = format!("{scheme}://{host}/v2/");
    let refused = || {
        ImageError::Unauthorized(format!(
            "login to {host}: unauthorized: incorrect username or password"
        ))
    };
    let resp = match client.get(&url, None).await {
        Ok(r) => r,
        Err(ImageError::Registry(m)) if m.contains("401") || m.contains("unauthorized") => {
            return Err(refused())
        }
        Err(e) => return Err(e),
    };
    match resp.status() {
        s if s.is_success() => Ok(()),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(refused()),
        s => Err(ImageError::Registry(format!("login to {host}: {url}: {s}"))),
    }
}

pub(super) async fn pull(
    store: &ImageStore,
    reference: &str,
    auth: Option<RegistryAuth>,
    progress: &mut (dyn FnMut(Value) + Send),
) -> Result<Image, ImageError> {
    let r = Reference::parse(reference)?.with_default_tag();
    let familiar = r.familiar();
    let host = r.registry_host();
    let scheme = if is_plain_http(host, &store.insecure_registries()) {
        "http"
    } else {
        "https"
    };
    let mut client = Client::new(
        format!("{scheme}://{host}"),
        r.path(),
        auth,
        is_loopback(host),
    )?;
    let wanted = r
        .digest()
        .or(r.tag())
        .unwrap_or(super::reference::DEFAULT_TAG);
    progress(json!({"status": format!("Pulling from {}", r.path()), "id": wanted}));

    let (bytes, ct) = client.manifest(wanted, &familiar).await?;
    let top_digest = sha256_digest(&bytes);
    if let Some(d) = r.digest() {
        verify(&familiar, d, &bytes)?;
    }
    let mut doc = parse_manifest(&bytes, &familiar)?;
    let mut mt = media_type(&ct, &doc).to_string();
    let mut depth = 0;
    while is_index(&mt, &doc) {
        depth += 1;
        if depth > MAX_INDEX_DEPTH {
            return Err(ImageError::Registry(format!(
                "{familiar}: indexes nested too deep"
            )));
        }
        let picked = pick_platform(&doc, &familiar).map_err(|e| {
            ImageError::ManifestUnknown(e.to_string().replace("invalid image archive: ", ""))
        })?;
        let digest = picked
            .get("digest")
            .and_then(Value::as_str)
            .ok_or_else(|| ImageError::Registry(format!("{familiar}: index entry without digest")))?
            .to_string();
        let (bytes, ct) = client.manifest(&digest, &familiar).await?;
        verify(&format!("{familiar} manifest"), &digest, &bytes)?;
        doc = parse_manifest(&bytes, &familiar)?;
        mt = media_type(&ct, &doc).to_string();
    }

    let cfg_digest = doc
        .get("config")
        .and_then(|c| c.get("digest"))
        .and_then(Value::as_str)
        .ok_or_else(|| ImageError::Registry(format!("{familiar}: manifest has no config")))?
        .to_string();
    if sha256_hex(&cfg_digest).is_none() {
        return Err(ImageError::Registry(format!(
            "{familiar}: unsupported digest {cfg_digest}"
        )));
    }
    let config = client.blob(&cfg_digest).await?;
    let id_hex = cfg_digest["sha256:".len()..].to_string();
    let config_json: Value = serde_json::from_slice(&config)
        .map_err(|e| ImageError::Registry(format!("{familiar}: image config: bad JSON: {e}")))?;
    let diff_ids = config_diff_ids(&config_json, &familiar)?;
    let layers: Vec<&Value> = doc
        .get("layers")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    if layers.len() != diff_ids.len() {
        return Err(ImageError::Registry(format!(
            "{familiar}: manifest has {} layers but the config lists {} diff ids",
            layers.len(),
            diff_ids.len()
        )));
    }

    let mut staging = store.staging("pull")?;
    let mut todo = Vec::new();
    for (l, diff_id) in layers.iter().zip(&diff_ids) {
        let digest = l
            .get("digest")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let Some(hex) = sha256_hex(&digest) else {
            return Err(ImageError::Registry(format!(
                "{familiar}: unsupported layer digest {digest:?}"
            )));
        };
        if l.get("mediaType")
            .and_then(Value::as_str)
            .is_some_and(|m| m.contains("encrypted"))
        {
            return Err(ImageError::Registry(format!(
                "{familiar}: encrypted layers are not supported"
            )));
        }
        let short = hex[..12].to_string();
        let diff_hex = sha256_hex(diff_id).unwrap_or_default().to_string();
        let queued = todo
            .iter()
            .any(|(_, _, d, _): &(String, _, String, _)| *d == diff_hex);
        if queued || staging.layer_available(&diff_hex) {
            progress(json!({"status": "Already exists", "progressDetail": {}, "id": short}));
            continue;
        }
        progress(json!({"status": "Pulling fs layer", "progressDetail": {}, "id": short}));
        let size = l.get("size").and_then(Value::as_u64);
        todo.push((digest, size, diff_hex, short));
    }
    for (i, (digest, size, diff_hex, short)) in todo.into_iter().enumerate() {
        let blob = staging.dir().join(format!("blob-{i}"));
        client
            .download(&digest, size, &blob, &short, progress)
            .await?;
        let dir = staging.new_dir("layer")?;
        progress(json!({"status": "Extracting", "progressDetail": {}, "id": short}));
        let what = format!("{familiar}: layer {digest}");
        let (blob2, dir2) = (blob.clone(), dir.clone());
        let u = tokio::task::spawn_blocking(move || {
            let f = std::fs::File::open(&blob2).map_err(io_err(&blob2))?;
            extract::unpack_layer(std::io::BufReader::new(f), &dir2, &what)
        })
        .await
        .map_err(|e| ImageError::Registry(format!("unpacking layer {digest}: {e}")))??;
        if u.blob_digest != digest {
            return Err(ImageError::DigestMismatch {
                blob: format!("{familiar}: layer"),
                expected: digest,
                actual: u.blob_digest,
            });
        }
        let expected = format!("sha256:{diff_hex}");
        if u.diff_id != expected {
            return Err(ImageError::DigestMismatch {
                blob: format!("{familiar}: layer {digest} (uncompressed)"),
                expected,
                actual: u.diff_id,
            });
        }
        let _ = std::fs::remove_file(&blob);
        staging.add_layer(&diff_hex, dir, u.size);
        progress(json!({"status": "Pull complete", "progressDetail": {}, "id": short}));
    }

    let id = format!("sha256:{id_hex}");
    let up_to_date =
        store.has_image(&id_hex) && store.lookup_ref(&r).as_deref() == Some(id.as_str());
    let image = NewImage {
        config,
        id_hex: id_hex.clone(),
        diff_ids,
        tags: r.tag().map(|t| r.with_tag(t)).into_iter().collect(),
        digests: vec![r.with_digest(&top_digest)],
    };
    let s = store.clone();
    tokio::task::spawn_blocking(move || {
        let mut staging = staging;
        s.commit(&mut staging, &[image])
    })
    .await
    .map_err(|e| ImageError::Registry(format!("committing {familiar}: {e}")))??;
    progress(json!({"status": format!("Digest: {top_digest}")}));
    let status = if up_to_date {
        format!("Status: Image is up to date for {familiar}")
    } else {
        format!("Status: Downloaded newer image for {familiar}")
    };
    progress(json!({"status": status}));
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.image_by_hex(&id_hex))
        .await
        .map_err(|e| ImageError::Registry(format!("reading {id}: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_for_loopback_and_insecure_registries() {
        assert!(is_plain_http("localhost:5000", &[]));
        assert!(is_plain_http("127.0.0.1:5000", &[]));
        assert!(is_plain_http("127.1.2.3", &[]));
        assert!(is_plain_http("[::1]:5000", &[]));
        assert!(!is_plain_http("registry-1.docker.io", &[]));
        assert!(!is_plain_http("10.0.0.5:5000", &[]));
        let insecure = vec!["myreg:5000".to_string(), "10.1.0.0/16".to_string()];
        assert!(is_plain_http("myreg:5000", &insecure));
        assert!(!is_plain_http("myreg:5001", &insecure));
        assert!(is_plain_http("10.1.2.3:5000", &insecure));
        assert!(!is_plain_http("10.2.2.3:5000", &insecure));
    }

    #[test]
    fn progress_text() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(1_234_567), "1.235MB");
        assert_eq!(human_size(999), "999B");
        let bar = progress_bar(50, 100);
        assert!(bar.starts_with("[=========================>"), "{bar}");
        assert!(bar.ends_with("] 50B/100B"), "{bar}");
        assert_eq!(progress_bar(100, 100).matches('=').count(), 50);
    }

    #[test]
    fn registry_error_bodies() {
        let b =
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(error_text(b), "manifest unknown: manifest unknown");
        assert_eq!(error_text(b"plain text\n"), "plain text");
    }
}
