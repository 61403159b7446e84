//! `docker pull` through the engine from a real registry: Debian's `docker-registry`
//! (distribution 2.8) on loopback, storage in a tempdir, the busybox fixture pushed into it
//! with skopeo. One test without authentication; one with the registry's token
//! authentication, against a token server written here (Basic credentials in, a JWT signed
//! with a key whose self-signed certificate is the registry's `rootcertbundle` out, the
//! certificate carried in the JWT header's `x5c`; signing by the `openssl` CLI).
//!
//! Needs root, the docker CLI, docker-registry, skopeo (and openssl for the token test); skips
//! loudly without them.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ros_tests::{
    fixtures, parse_http_response, poll_until, require_root, require_tool, run, run_input, tempdir,
    Checks, Daemon, Fixtures, HttpResponse, Output, CMD_TIMEOUT,
};
use serde_json::{json, Value};

const REGISTRY_BIN: &str = "docker-registry";
/// A pull of the small fixture image; generous for a loaded 2-core machine.
const PULL_TIMEOUT: Duration = Duration::from_secs(60);
const SERVICE: &str = "ros-test-registry";
const ISSUER: &str = "ros-test-token-issuer";
const USER: &str = "user";
const PASSWORD: &str = "secret";

fn prerequisites(test: &str, tools: &[&str]) -> Option<&'static Fixtures> {
    if !require_root(test) {
        return None;
    }
    for tool in tools {
        if !require_tool(test, tool) {
            return None;
        }
    }
    fixtures(test)
}

// ---------------------------------------------------------------------------------------------
// Plain HTTP over TCP (the registry's and the token server's side)

/// One HTTP/1.1 GET to `addr` (`Connection: close`), with extra headers.
fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> io::Result<HttpResponse> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: ros-tests\r\nConnection: close\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_http_response(&raw)
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let from = all.len().saturating_sub(lines);
    format!(
        "  --- {} (last {lines} lines) ---\n{}",
        path.display(),
        all[from..].join("\n")
    )
}

// ---------------------------------------------------------------------------------------------
// The registry

/// The registry's token authentication settings.
struct TokenAuth {
    realm: String,
    root_cert: PathBuf,
}

/// `docker-registry serve` on 127.0.0.1:<free port>, storage under `dir`; killed on drop.
struct Registry {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Registry {
    fn start(dir: &Path, auth: Option<&TokenAuth>) -> Registry {
        let storage = dir.join("storage");
        fs::create_dir_all(&storage).expect("registry storage dir");
        let mut last_failure = String::new();
        // The port is free when picked but another process may take it before the registry
        // binds it: then the registry exits, and we try another.
        for _ in 0..3 {
            let addr: SocketAddr = format!("127.0.0.1:{}", free_port())
                .parse()
                .expect("socket address");
            let mut config = format!(
                "version: 0.1\n\
                 log:\n  level: info\n  accesslog:\n    disabled: false\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: {addr}\n  secret: ros-tests-not-secret\n",
                storage.display()
            );
            if let Some(a) = auth {
                config.push_str(&format!(
                    "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    \
                     issuer: {ISSUER}\n    rootcertbundle: {}\n",
                    a.realm,
                    a.root_cert.display()
                ));
            }
            let config_path = dir.join("registry.yml");
            fs::write(&config_path, config).expect("write registry config");
            let log = dir.join("registry.log");
            let out = fs::File::create(&log).expect("registry log");
            let err = out.try_clone().expect("dup registry log");
            let child = Command::new(REGISTRY_BIN)
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {REGISTRY_BIN}: {e}"));
            let mut reg = Registry { child, addr, log };
            let mut exited = false;
            let ready = poll_until(Duration::from_secs(20), || {
                if matches!(reg.child.try_wait(), Ok(Some(_))) {
                    exited = true;
                    return true;
                }
                // 200 without auth, 401 with a challenge with it.
                http_get(addr, "/v2/", &[]).is_ok_and(|r| r.status == 200 || r.status == 401)
            });
            if ready && !exited {
                return reg;
            }
            last_failure = format!(
                "registry on {addr} {}:\n{}",
                if exited {
                    "exited"
                } else {
                    "did not answer GET /v2/ within 20 s"
                },
                tail(&reg.log, 30)
            );
            // The drop kills it (when it still runs) and reaps it.
            drop(reg);
        }
        panic!("{last_failure}");
    }

    /// `127.0.0.1:PORT`
    fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `127.0.0.1:PORT/library/busybox:TAG`
    fn image(&self, tag: &str) -> String {
        format!("{}/library/busybox:{tag}", self.host())
    }

    fn log_tail(&self) -> String {
        tail(&self.log, 40)
    }

    /// The digest the registry gives the manifest of `library/busybox:TAG` (no auth).
    fn manifest_digest(&self, tag: &str) -> Option<String> {
        let r = http_get(
            self.addr,
            &format!("/v2/library/busybox/manifests/{tag}"),
            &[(
                "Accept",
                "application/vnd.oci.image.manifest.v1+json, \
                 application/vnd.docker.distribution.manifest.v2+json",
            )],
        )
        .ok()?;
        (r.status == 200)
            .then(|| r.header("docker-content-digest").map(str::to_string))
            .flatten()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pushes the busybox fixture (OCI layout, tag `busybox`) to `registry` as
/// `library/busybox:TAG` with skopeo.
fn push(fx: &Fixtures, registry: &Registry, tag: &str, creds: Option<&str>, dir: &Path) -> Output {
    let mut cmd = Command::new("skopeo");
    cmd.arg("--insecure-policy")
        // No credentials from the machine: only those given here.
        .env("REGISTRY_AUTH_FILE", dir.join("skopeo-auth.json"))
        .env_remove("DOCKER_CONFIG")
        .arg("copy")
        .arg("--dest-tls-verify=false");
    if let Some(c) = creds {
        cmd.arg("--dest-creds").arg(c);
    }
    cmd.arg(format!("oci:{}:busybox", fx.oci_layout.display()))
        .arg(format!("docker://{}", registry.image(tag)));
    run(&mut cmd, Duration::from_secs(60))
}

/// A docker CLI command against `daemon` with its client config (credentials) in `config`.
fn docker_in(daemon: &Daemon, config: &Path, args: &[&str], input: Option<&[u8]>) -> Output {
    let mut cmd = daemon.docker_cmd(args);
    cmd.env("DOCKER_CONFIG", config);
    let timeout = if args.first().is_some_and(|a| *a == "pull" || *a == "run") {
        PULL_TIMEOUT
    } else {
        CMD_TIMEOUT
    };
    run_input(&mut cmd, input, timeout)
}

// ---------------------------------------------------------------------------------------------
// Without authentication

/// Pull by tag and digest, `docker images`, `docker run` of a pulled image and of one not yet
/// local (pulled on the fly), and the errors for a missing tag and a missing repository.
#[test]
fn pull_from_a_local_registry() {
    const TEST: &str = "engine_registry::pull_from_a_local_registry";
    let Some(fx) = prerequisites(TEST, &["docker", REGISTRY_BIN, "skopeo"]) else {
        return;
    };
    let tmp = tempdir();
    let reg_dir = tmp.path().join("registry");
    let registry = Registry::start(&reg_dir, None);
    for tag in ["latest", "auto"] {
        let out = push(fx, &registry, tag, None, tmp.path());
        assert!(
            out.success(),
            "skopeo push failed:\n{out}\n{}",
            registry.log_tail()
        );
    }
    let digest = registry.manifest_digest("latest").unwrap_or_else(|| {
        panic!(
            "no manifest digest from the registry\n{}",
            registry.log_tail()
        )
    });
    let daemon_dir = tmp.path().join("d");
    fs::create_dir_all(&daemon_dir).expect("daemon dir");
    let daemon = Daemon::start(&daemon_dir);
    let mut c = Checks::new(TEST);
    let latest = registry.image("latest");
    let repo = format!("{}/library/busybox", registry.host());

    // A missing tag: Docker says `manifest for … not found: manifest unknown`, exit code 1.
    let out = daemon.docker_t(&["pull", &registry.image("nope")], PULL_TIMEOUT);
    c.fails_with(
        &out,
        &["manifest unknown", "not found"],
        "pull of a missing tag",
    );
    c.code(&out, 1, "pull of a missing tag");
    // A missing repository.
    let out = daemon.docker_t(
        &[
            "pull",
            &format!("{}/library/nothing-here:latest", registry.host()),
        ],
        PULL_TIMEOUT,
    );
    c.fails_with(
        &out,
        &["not found", "name unknown", "does not exist"],
        "pull of a missing repository",
    );
    c.code(&out, 1, "pull of a missing repository");

    // `docker run` of an image not yet local pulls it.
    let out = daemon.docker_t(
        &["run", "--rm", &registry.image("auto"), "echo", "auto"],
        PULL_TIMEOUT,
    );
    c.out_eq(&out, "auto", "docker run of a not-yet-local image");
    c.check(
        out.stderr.contains("Unable to find image")
            && out.stderr.contains("auto: Pulling from library/busybox"),
        "docker run of a not-yet-local image says `Unable to find image` and pulls it",
        &out,
    );

    // Pull by tag.
    let out = daemon.docker_t(&["pull", &latest], PULL_TIMEOUT);
    c.ok(&out, "docker pull from the local registry");
    c.check(
        out.stdout.contains(&format!("Digest: {digest}"))
            && out
                .stdout
                .contains(&format!("Status: Downloaded newer image for {latest}")),
        "docker pull prints the manifest digest and `Downloaded newer image`",
        &out,
    );
    let out = daemon.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    c.check(
        out.success() && out.lines().contains(&latest),
        "docker images lists the pulled image",
        &out,
    );
    let out = daemon.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}", &repo]);
    c.check(
        out.success() && out.lines().contains(&latest) && out.lines().len() == 2,
        "docker images REGISTRY:PORT/library/busybox (a reference filter with a port) lists \
         its two tags",
        &out,
    );
    let repo_digests = daemon.inspect("{{json .RepoDigests}}", &latest);
    c.check(
        repo_digests.contains(&format!("{repo}@{digest}")),
        "inspect: RepoDigests holds repo@digest of the pulled manifest",
        &repo_digests,
    );
    let out = daemon.docker(&["run", "--rm", &repo, "echo", "pulled"]);
    c.out_eq(
        &out,
        "pulled",
        "docker run of the pulled image (implicit :latest)",
    );

    // Again: nothing to download.
    let out = daemon.docker_t(&["pull", &latest], PULL_TIMEOUT);
    c.check(
        out.success() && out.stdout.contains("Image is up to date"),
        "a second pull says `Image is up to date`",
        &out,
    );
    // By digest.
    let by_digest = format!("{repo}@{digest}");
    let out = daemon.docker_t(&["pull", &by_digest], PULL_TIMEOUT);
    c.ok(&out, "docker pull by digest");
    let out = daemon.docker(&["run", "--rm", &by_digest, "echo", "digest"]);
    c.out_eq(&out, "digest", "docker run by digest");
    // A digest the registry does not have.
    let out = daemon.docker_t(
        &["pull", &format!("{repo}@sha256:{}", "0".repeat(64))],
        PULL_TIMEOUT,
    );
    c.fails_with(
        &out,
        &["manifest unknown", "not found"],
        "pull of an unknown digest",
    );

    c.finish_with(|| format!("{}\n{}", daemon.log_tail(60), registry.log_tail()));
}

// ---------------------------------------------------------------------------------------------
// Token authentication

/// One request the token server answered.
#[derive(Clone, Debug)]
struct TokenRequest {
    user_agent: String,
    /// The Basic user, when credentials came.
    user: Option<String>,
    scopes: Vec<String>,
    /// `granted`, `anonymous` (a token without access), `denied` (401).
    outcome: &'static str,
}

/// The key and self-signed certificate tokens are signed with (RS256; made by openssl).
struct SigningKey {
    key: PathBuf,
    cert: PathBuf,
    /// The certificate's DER, standard base64: the JWT header's `x5c`.
    cert_b64: String,
    dir: PathBuf,
    counter: AtomicU64,
}

impl SigningKey {
    fn generate(dir: &Path) -> SigningKey {
        fs::create_dir_all(dir).expect("key dir");
        let key = dir.join("token.key");
        let cert = dir.join("token.crt");
        let out = run(
            Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                ])
                .args(["-subj", "/CN=ros-test-token-issuer", "-keyout"])
                .arg(&key)
                .arg("-out")
                .arg(&cert),
            Duration::from_secs(60),
        );
        assert!(out.success(), "openssl could not make a key:\n{out}");
        let pem = fs::read_to_string(&cert).expect("read cert");
        let cert_b64: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>();
        SigningKey {
            key,
            cert,
            cert_b64,
            dir: dir.to_path_buf(),
            counter: AtomicU64::new(0),
        }
    }

    /// A JWT (RS256, `x5c` header) carrying `claims`.
    fn sign(&self, claims: &Value) -> Result<String, String> {
        let header = json!({"typ": "JWT", "alg": "RS256", "x5c": [self.cert_b64]});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let input_path = self.dir.join(format!("jwt-{n}.in"));
        let sig_path = self.dir.join(format!("jwt-{n}.sig"));
        fs::write(&input_path, &input).map_err(|e| e.to_string())?;
        let out = run(
            Command::new("openssl")
                .args(["dgst", "-sha256", "-sign"])
                .arg(&self.key)
                .arg("-out")
                .arg(&sig_path)
                .arg(&input_path),
            Duration::from_secs(20),
        );
        if !out.success() {
            return Err(format!("openssl dgst -sign failed:\n{out}"));
        }
        let sig = fs::read(&sig_path).map_err(|e| e.to_string())?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

/// The token server: `GET /token?service=…&scope=…` with optional Basic credentials. Right
/// credentials get the requested repository actions, no credentials a token without access
/// (as Docker Hub's anonymous tokens), wrong ones 401. Stopped on drop.
struct TokenServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<TokenRequest>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl TokenServer {
    fn start(key: SigningKey) -> TokenServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind token server");
        let addr = listener.local_addr().expect("token server address");
        let stop = Arc::new(AtomicBool::new(false));
        let requests: Arc<Mutex<Vec<TokenRequest>>> = Arc::default();
        let thread = {
            let stop = stop.clone();
            let requests = requests.clone();
            thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(conn) = conn {
                        let _ = serve_token(conn, &key, &requests);
                    }
                }
            })
        };
        TokenServer {
            addr,
            stop,
            requests,
            thread: Some(thread),
        }
    }

    fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    fn requests(&self) -> Vec<TokenRequest> {
        self.requests.lock().expect("token log").clone()
    }

    fn summary(&self) -> String {
        let lines: Vec<String> = self.requests().iter().map(|r| format!("  {r:?}")).collect();
        format!("  --- token requests ---\n{}", lines.join("\n"))
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `%XX` and `+` decoding of a query component.
fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn respond(conn: &mut TcpStream, status: &str, body: &str) -> io::Result<()> {
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(resp.as_bytes())?;
    conn.flush()?;
    let _ = conn.shutdown(Shutdown::Write);
    Ok(())
}

fn serve_token(
    mut conn: TcpStream,
    key: &SigningKey,
    requests: &Mutex<Vec<TokenRequest>>,
) -> io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    conn.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        raw.extend_from_slice(&buf[..n]);
        if raw.len() > 64 << 10 {
            return respond(&mut conn, "431 Request Header Fields Too Large", "{}");
        }
    }
    let head = String::from_utf8_lossy(&raw).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let headers: BTreeMap<String, String> = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if method != "GET" || path != "/token" {
        return respond(&mut conn, "404 Not Found", r#"{"details":"not found"}"#);
    }
    let params: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (url_decode(k), url_decode(v))
        })
        .collect();
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_string))
        .filter(|s| !s.is_empty())
        .collect();
    let service = params
        .iter()
        .find(|(k, _)| k == "service")
        .map(|(_, v)| v.as_str());
    let creds = headers
        .get("authorization")
        .and_then(|a| {
            a.strip_prefix("Basic ")
                .or_else(|| a.strip_prefix("basic "))
        })
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let user = creds
        .as_deref()
        .map(|c| c.split_once(':').map_or(c, |(u, _)| u).to_string());
    let mut record = TokenRequest {
        user_agent: headers.get("user-agent").cloned().unwrap_or_default(),
        user: user.clone(),
        scopes: scopes.clone(),
        outcome: "denied",
    };
    let authorized = match creds.as_deref() {
        None => false,
        Some(c) if c == format!("{USER}:{PASSWORD}") => true,
        Some(_) => {
            requests.lock().expect("token log").push(record);
            return respond(
                &mut conn,
                "401 Unauthorized",
                r#"{"details":"incorrect username or password"}"#,
            );
        }
    };
    if service.is_some_and(|s| s != SERVICE) {
        requests.lock().expect("token log").push(record);
        return respond(
            &mut conn,
            "400 Bad Request",
            r#"{"details":"unknown service"}"#,
        );
    }
    // `repository:NAME:ACTION,ACTION` (NAME may hold a `:port`-free path only here).
    let access: Vec<Value> = if authorized {
        scopes
            .iter()
            .filter_map(|s| {
                let mut it = s.splitn(3, ':');
                let (typ, name, actions) = (it.next()?, it.next()?, it.next()?);
                Some(json!({
                    "type": typ,
                    "name": name,
                    "actions": actions.split(',').collect::<Vec<_>>(),
                }))
            })
            .collect()
    } else {
        Vec::new()
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = json!({
        "iss": ISSUER,
        "sub": user.clone().unwrap_or_default(),
        "aud": SERVICE,
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now,
        "jti": format!("ros-test-{now}-{}", key.counter.load(Ordering::Relaxed)),
        "access": access,
    });
    match key.sign(&claims) {
        Ok(token) => {
            record.outcome = if authorized { "granted" } else { "anonymous" };
            requests.lock().expect("token log").push(record);
            let body = json!({
                "token": token,
                "access_token": token,
                "expires_in": 300,
                "issued_at": rfc3339(now),
            });
            respond(&mut conn, "200 OK", &body.to_string())
        }
        Err(e) => {
            requests.lock().expect("token log").push(record);
            respond(
                &mut conn,
                "500 Internal Server Error",
                &json!({ "details": e }).to_string(),
            )
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a Unix time (civil-from-days, proleptic Gregorian).
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Writes `config.json` in `config` with credentials for `host`, as `docker login` stores them.
fn write_auth(config: &Path, host: &str, user: &str, password: &str) {
    let auth = STANDARD.encode(format!("{user}:{password}"));
    fs::write(
        config.join("config.json"),
        json!({ "auths": { host: { "auth": auth } } }).to_string(),
    )
    .expect("write config.json");
}

/// The registry behind token authentication: anonymous pulls refused, `docker login` with
/// wrong and right passwords, a pull with the stored credentials (the CLI hands them to the
/// engine in `X-Registry-Auth`, the engine to the token server), wrong stored credentials
/// refused, and `docker logout`.
#[test]
fn pull_with_token_auth() {
    const TEST: &str = "engine_registry::pull_with_token_auth";
    let Some(fx) = prerequisites(TEST, &["docker", REGISTRY_BIN, "skopeo", "openssl"]) else {
        return;
    };
    let tmp = tempdir();
    let key = SigningKey::generate(&tmp.path().join("token"));
    let root_cert = key.cert.clone();
    let tokens = TokenServer::start(key);
    let registry = Registry::start(
        &tmp.path().join("registry"),
        Some(&TokenAuth {
            realm: tokens.realm(),
            root_cert,
        }),
    );
    let context = |daemon: Option<&Daemon>| {
        format!(
            "{}\n{}\n{}",
            daemon.map(|d| d.log_tail(60)).unwrap_or_default(),
            registry.log_tail(),
            tokens.summary()
        )
    };
    // Pushing needs a token too: this checks the token server against a third-party client.
    let out = push(fx, &registry, "anon", None, tmp.path());
    assert!(
        !out.success(),
        "an anonymous push to the token-auth registry should be refused:\n{out}\n{}",
        context(None)
    );
    for tag in ["latest", "v1"] {
        let out = push(
            fx,
            &registry,
            tag,
            Some(&format!("{USER}:{PASSWORD}")),
            tmp.path(),
        );
        assert!(
            out.success(),
            "skopeo push with credentials failed (the token server or registry config is \
             wrong):\n{out}\n{}",
            context(None)
        );
    }

    let daemon_dir = tmp.path().join("d");
    fs::create_dir_all(&daemon_dir).expect("daemon dir");
    let daemon = Daemon::start(&daemon_dir);
    let mut c = Checks::new(TEST);
    let config = tmp.path().join("docker-config");
    fs::create_dir_all(&config).expect("docker config dir");
    let host = registry.host();
    let latest = registry.image("latest");
    let v1 = registry.image("v1");

    // Anonymous: the token grants nothing, the registry refuses.
    let out = docker_in(&daemon, &config, &["pull", &latest], None);
    c.fails_with(
        &out,
        &[
            "pull access denied",
            "unauthorized",
            "authentication required",
        ],
        "anonymous pull from a token-auth registry",
    );
    c.code(&out, 1, "anonymous pull from a token-auth registry");
    c.check(
        tokens
            .requests()
            .iter()
            .any(|r| r.user_agent.starts_with("system-docker") && r.outcome == "anonymous"),
        "the engine asked the token server for an anonymous token",
        tokens.summary(),
    );

    // docker login: a wrong password is refused, the right one stored.
    let out = docker_in(
        &daemon,
        &config,
        &["login", &host, "-u", USER, "--password-stdin"],
        Some(b"wrong\n"),
    );
    c.fails_with(
        &out,
        &["unauthorized", "incorrect", "denied", "401"],
        "docker login with a wrong password",
    );
    let out = docker_in(
        &daemon,
        &config,
        &["login", &host, "-u", USER, "--password-stdin"],
        Some(format!("{PASSWORD}\n").as_bytes()),
    );
    let logged_in = c.check(
        out.success() && out.stdout.contains("Login Succeeded"),
        "docker login with the right password succeeds (the CLI posts /auth to the engine, \
         which checks the credentials with the registry)",
        &out,
    );
    if !logged_in {
        // Store what a successful login stores, so the pull with credentials is still tested.
        write_auth(&config, &host, USER, PASSWORD);
    }

    // Pull with the stored credentials.
    let before = tokens.requests().len();
    let out = docker_in(&daemon, &config, &["pull", &latest], None);
    c.check(
        out.success() && out.stdout.contains("Downloaded newer image"),
        "pull after docker login",
        &out,
    );
    let engine_grants: Vec<TokenRequest> = tokens.requests()[before..]
        .iter()
        .filter(|r| r.user_agent.starts_with("system-docker"))
        .cloned()
        .collect();
    c.check(
        engine_grants.iter().any(|r| {
            r.outcome == "granted"
                && r.user.as_deref() == Some(USER)
                && r.scopes
                    .iter()
                    .any(|s| s == "repository:library/busybox:pull")
        }),
        "the engine got its token with the credentials of X-Registry-Auth, for \
         repository:library/busybox:pull",
        tokens.summary(),
    );
    let out = docker_in(
        &daemon,
        &config,
        &["run", "--rm", &latest, "echo", "authed"],
        None,
    );
    c.out_eq(&out, "authed", "docker run of the image pulled with auth");
    c.check(
        !out.stderr.contains("Unable to find image"),
        "the pulled image is local (no second pull)",
        &out,
    );
    // `docker run` of a tag not yet local pulls it with the stored credentials too.
    let out = docker_in(&daemon, &config, &["run", "--rm", &v1, "echo", "v1"], None);
    c.out_eq(
        &out,
        "v1",
        "docker run of a not-yet-local image from the token-auth registry",
    );
    let _ = daemon.docker(&["rmi", &v1]);

    // Wrong stored credentials: the token server answers 401, the pull fails.
    let wrong = tmp.path().join("docker-config-wrong");
    fs::create_dir_all(&wrong).expect("docker config dir");
    write_auth(&wrong, &host, USER, "not-the-password");
    let out = docker_in(&daemon, &wrong, &["pull", &v1], None);
    c.fails_with(
        &out,
        &["unauthorized", "401", "incorrect", "denied"],
        "pull with wrong stored credentials",
    );
    c.code(&out, 1, "pull with wrong stored credentials");
    c.check(
        tokens.requests().iter().any(|r| {
            r.user_agent.starts_with("system-docker")
                && r.outcome == "denied"
                && r.user.as_deref() == Some(USER)
        }),
        "the engine sent the wrong credentials to the token server (and got 401)",
        tokens.summary(),
    );

    // docker logout: anonymous again.
    let out = docker_in(&daemon, &config, &["logout", &host], None);
    c.ok(&out, "docker logout");
    let out = docker_in(&daemon, &config, &["pull", &v1], None);
    c.fails_with(
        &out,
        &[
            "pull access denied",
            "unauthorized",
            "authentication required",
        ],
        "pull after docker logout",
    );

    c.finish_with(|| context(Some(&daemon)));
}
