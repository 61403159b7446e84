//! Pull against an in-process registry speaking just enough of the HTTP API v2, with Bearer
//! token and Basic authentication.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::load::host_platform;
use super::tests::{config_for, gzip, is_root, sha, zstd, Fixture, Layer};
use super::*;

#[derive(Clone)]
enum AuthMode {
    Anonymous,
    /// Tokens from `/token`, which wants these Basic credentials when set.
    Bearer(Option<(String, String)>),
    Basic(String, String),
}

#[derive(Default)]
struct Content {
    /// `<repo>/<reference>` → (media type, body).
    manifests: HashMap<String, (String, Vec<u8>)>,
    blobs: HashMap<String, Vec<u8>>,
}

struct Mock {
    addr: String,
    requests: Arc<Mutex<Vec<String>>>,
}

fn basic(user: &str, pass: &str) -> String {
    // Minimal base64 for the test's ASCII credentials.
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = format!("{user}:{pass}").into_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

async fn serve(content: Arc<Content>, mode: AuthMode) -> Mock {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let (reqs, host) = (requests.clone(), addr.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (content, mode, reqs, host) =
                (content.clone(), mode.clone(), reqs.clone(), host.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&buf).into_owned();
                let mut lines = text.lines();
                let path = lines
                    .next()
                    .unwrap_or("")
                    .split(' ')
                    .nth(1)
                    .unwrap_or("")
                    .to_string();
                let auth = lines
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("authorization")
                            .then(|| v.trim().to_string())
                    })
                    .unwrap_or_default();
                reqs.lock().unwrap().push(format!("{path} {auth}"));
                let (status, ctype, body, extra) = respond(&content, &mode, &host, &path, &auth);
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body).await;
            });
        }
    });
    Mock { addr, requests }
}

fn respond(
    c: &Content,
    mode: &AuthMode,
    host: &str,
    path: &str,
    auth: &str,
) -> (String, String, Vec<u8>, String) {
    let json_err = |status: &str, code: &str| {
        let body =
            json!({"errors": [{"code": code, "message": code.to_lowercase().replace('_', " ")}]});
        (
            status.to_string(),
            "application/json".to_string(),
            body.to_string().into_bytes(),
            String::new(),
        )
    };
    if let Some(q) = path.strip_prefix("/token?") {
        if let AuthMode::Bearer(Some((u, p))) = mode {
            if auth != basic(u, p) {
                return json_err("401 Unauthorized", "UNAUTHORIZED");
            }
        }
        assert!(
            q.contains("service=mock") && q.contains("scope=repository"),
            "{q}"
        );
        return (
            "200 OK".into(),
            "application/json".into(),
            br#"{"token":"t0k3n"}"#.to_vec(),
            String::new(),
        );
    }
    let rest = path.strip_prefix("/v2/").unwrap_or("");
    let authorized = match mode {
        AuthMode::Anonymous => true,
        AuthMode::Bearer(_) => auth == "Bearer t0k3n",
        AuthMode::Basic(u, p) => auth == basic(u, p),
    };
    if !authorized {
        let repo = rest
            .split("/manifests/")
            .next()
            .unwrap_or("")
            .split("/blobs/")
            .next()
            .unwrap_or("");
        let challenge = match mode {
            AuthMode::Basic(..) => "Basic realm=\"mock\"".to_string(),
            _ => format!(
                "Bearer realm=\"http://{host}/token\",service=\"mock\",scope=\"repository:{repo}:pull\""
            ),
        };
        let (s, t, b, _) = json_err("401 Unauthorized", "UNAUTHORIZED");
        return (s, t, b, format!("WWW-Authenticate: {challenge}\r\n"));
    }
    if let Some((repo, reference)) = rest.split_once("/manifests/") {
        return match c.manifests.get(&format!("{repo}/{reference}")) {
            Some((mt, body)) => ("200 OK".into(), mt.clone(), body.clone(), String::new()),
            None => json_err("404 Not Found", "MANIFEST_UNKNOWN"),
        };
    }
    if let Some((_, digest)) = rest.split_once("/blobs/") {
        return match c.blobs.get(digest) {
            Some(b) => (
                "200 OK".into(),
                "application/octet-stream".into(),
                b.clone(),
                String::new(),
            ),
            None => json_err("404 Not Found", "BLOB_UNKNOWN"),
        };
    }
    json_err("404 Not Found", "NAME_UNKNOWN")
}

/// Adds an image to `c` as an OCI or Docker v2 manifest; returns (manifest bytes, config id).
fn add_image(
    c: &mut Content,
    layers: &[Vec<u8>],
    blobs: &[Vec<u8>],
    docker: bool,
) -> (Vec<u8>, String) {
    let refs: Vec<&[u8]> = layers.iter().map(|l| &l[..]).collect();
    let config = config_for(&refs, "2024-05-01T00:00:00Z");
    let id = sha(&config);
    let lmt = if docker {
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    } else {
        "application/vnd.oci.image.layer.v1.tar+zstd"
    };
    let ldescs: Vec<Value> = blobs
        .iter()
        .map(|b| json!({"mediaType": lmt, "digest": sha(b), "size": b.len()}))
        .collect();
    for b in blobs {
        c.blobs.insert(sha(b), b.clone());
    }
    c.blobs.insert(id.clone(), config.clone());
    let mt = if docker {
        super::load::MEDIA_DOCKER_LIST.replace(".list", "")
    } else {
        "application/vnd.oci.image.manifest.v1+json".to_string()
    };
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": mt,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": id, "size": config.len()},
        "layers": ldescs,
    }))
    .unwrap();
    (manifest, id)
}

#[test]
fn the_pull_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let f = Fixture::new();
    let mut progress = |_: Value| {};
    let fut = f.store.pull("localhost:1/x", None, &mut progress);
    assert_send(&fut);
}

fn statuses(p: &[Value]) -> Vec<String> {
    p.iter()
        .map(|v| v["status"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn pull_picks_the_host_platform_with_bearer_token_auth() {
    if !is_root() {
        eprintln!("SKIPPED: this test needs root (it unpacks layers)");
        return;
    }
    let mut c = Content::default();
    let host_layer = Layer::new().file("etc/which", b"host").build();
    let other_layer = Layer::new().file("etc/which", b"other").build();
    let (host_m, host_id) = add_image(
        &mut c,
        std::slice::from_ref(&host_layer),
        &[zstd(&host_layer)],
        false,
    );
    let (other_m, _) = add_image(
        &mut c,
        std::slice::from_ref(&other_layer),
        &[zstd(&other_layer)],
        false,
    );
    let (os, arch) = host_platform();
    let other_arch = if arch == "arm64" { "amd64" } else { "arm64" };
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(&other_m),
             "size": other_m.len(), "platform": {"os": os, "architecture": other_arch}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(&host_m),
             "size": host_m.len(), "platform": {"os": os, "architecture": arch}},
        ],
    }))
    .unwrap();
    let oci_m = "application/vnd.oci.image.manifest.v1+json".to_string();
    c.manifests.insert(
        format!("team/app/{}", sha(&host_m)),
        (oci_m.clone(), host_m.clone()),
    );
    c.manifests
        .insert(format!("team/app/{}", sha(&other_m)), (oci_m, other_m));
    let idx_mt = "application/vnd.oci.image.index.v1+json".to_string();
    c.manifests
        .insert("team/app/1".into(), (idx_mt.clone(), index.clone()));
    c.manifests
        .insert(format!("team/app/{}", sha(&index)), (idx_mt, index.clone()));
    let mock = serve(
        Arc::new(c),
        AuthMode::Bearer(Some(("u".into(), "p".into()))),
    )
    .await;

    let f = Fixture::new();
    let name = format!("{}/team/app:1", mock.addr);
    let auth = || {
        Some(RegistryAuth {
            username: "u".into(),
            password: "p".into(),
        })
    };

    // Without credentials the token server refuses.
    let mut progress = Vec::new();
    let e = f
        .store
        .pull(&name, None, &mut |v| progress.push(v))
        .await
        .unwrap_err();
    assert!(matches!(e, ImageError::Registry(_)), "{e:?}");

    let mut progress = Vec::new();
    let img = f
        .store
        .pull(&name, auth(), &mut |v| progress.push(v))
        .await
        .unwrap();
    assert_eq!(img.id, host_id);
    assert_eq!(img.repo_tags, vec![name.clone()]);
    assert_eq!(
        img.repo_digests,
        vec![format!("{}/team/app@{}", mock.addr, sha(&index))]
    );
    let p = f.store.layer_paths(&img).unwrap();
    assert_eq!(std::fs::read(p[0].join("etc/which")).unwrap(), b"host");
    let st = statuses(&progress);
    assert_eq!(st[0], "Pulling from team/app");
    assert_eq!(progress[0]["id"], "1");
    for s in [
        "Pulling fs layer",
        "Downloading",
        "Verifying Checksum",
        "Download complete",
        "Pull complete",
    ] {
        assert!(st.iter().any(|x| x == s), "{s} in {st:?}");
    }
    assert!(st.contains(&format!("Digest: {}", sha(&index))));
    assert_eq!(
        st.last().unwrap(),
        &format!("Status: Downloaded newer image for {name}")
    );
    assert!(mock
        .requests
        .lock()
        .unwrap()
        .iter()
        .any(|r| r.ends_with("Bearer t0k3n")));

    // Again, by digest: nothing to download.
    let mut progress = Vec::new();
    let by_digest = format!("{}/team/app@{}", mock.addr, sha(&index));
    let img2 = f
        .store
        .pull(&by_digest, auth(), &mut |v| progress.push(v))
        .await
        .unwrap();
    assert_eq!(img2.id, host_id);
    let st = statuses(&progress);
    assert!(st.contains(&"Already exists".to_string()), "{st:?}");
    assert!(!st.contains(&"Downloading".to_string()), "{st:?}");
    assert_eq!(f.store.get(&by_digest).unwrap().id, host_id);

    let e = f
        .store
        .pull(&format!("{}/team/app:2", mock.addr), auth(), &mut |_| {})
        .await
        .unwrap_err();
    assert!(matches!(e, ImageError::ManifestUnknown(_)), "{e:?}");
    f.assert_clean_tmp();
}

#[tokio::test]
async fn pull_refuses_a_corrupt_blob_and_leaves_the_store_unchanged() {
    if !is_root() {
        eprintln!("SKIPPED: this test needs root (it unpacks layers)");
        return;
    }
    let mut c = Content::default();
    let good = Layer::new().file("good", b"g").build();
    let bad = Layer::new().file("bad", b"b").build();
    let (m, _) = add_image(
        &mut c,
        &[good.clone(), bad.clone()],
        &[gzip(&good), gzip(&bad)],
        true,
    );
    // The registry serves other bytes under the second layer's digest.
    let mut evil = gzip(&bad);
    let mid = evil.len() / 2;
    evil[mid] ^= 0xff;
    c.blobs.insert(sha(&gzip(&bad)), evil);
    c.manifests.insert(
        "x/latest".into(),
        (
            "application/vnd.docker.distribution.manifest.v2+json".into(),
            m,
        ),
    );
    let mock = serve(Arc::new(c), AuthMode::Basic("u".into(), "p".into())).await;
    let f = Fixture::new();
    let before = f.snapshot();
    let auth = Some(RegistryAuth {
        username: "u".into(),
        password: "p".into(),
    });
    let e = f
        .store
        .pull(&format!("{}/x", mock.addr), auth, &mut |_| {})
        .await
        .unwrap_err();
    assert!(matches!(e, ImageError::DigestMismatch { .. }), "{e:?}");
    assert_eq!(f.snapshot(), before);
    f.assert_clean_tmp();

    // Basic challenge without credentials.
    let e = f
        .store
        .pull(&format!("{}/x", mock.addr), None, &mut |_| {})
        .await
        .unwrap_err();
    assert!(e.to_string().contains("authentication required"), "{e}");
    let anon = serve(Arc::new(Content::default()), AuthMode::Anonymous).await;
    let e = f
        .store
        .pull(&format!("{}/none:1", anon.addr), None, &mut |_| {})
        .await
        .unwrap_err();
    assert!(matches!(e, ImageError::ManifestUnknown(_)), "{e:?}");
}
