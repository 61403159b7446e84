//! An EC2 instance metadata service (IMDS) for tests, on 127.0.0.1: IMDSv2 session tokens
//! (`PUT /latest/api/token` with a TTL header), tokens that can be made to expire (the next
//! GET gets 401), an IMDS without v2 (403 on the token, plain GETs), userdata, instance id,
//! hostname and public keys. Reached by the host's `ros` directly, or by a VM through QEMU's
//! `guestfwd` at 169.254.169.254.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What the emulator serves and has seen.
#[derive(Default)]
pub struct State {
    /// false: PUT /latest/api/token answers 403 (an IMDS without v2); GETs need no token.
    pub v2: bool,
    pub next_token: u32,
    pub tokens: Vec<String>,
    /// After this many successful GETs, every token issued so far expires (once).
    pub expire_after: Option<u32>,
    pub gets: u32,
    pub userdata: Option<Vec<u8>>,
    pub files: HashMap<String, String>,
    /// "METHOD PATH STATUS" per request.
    pub log: Vec<String>,
}

pub struct Imds {
    pub base: String,
    state: Arc<Mutex<State>>,
}

impl Imds {
    pub fn start(userdata: &str) -> Imds {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let mut files = HashMap::new();
        for (k, v) in [
            ("/latest/meta-data/instance-id", "i-0123456789abcdef0"),
            (
                "/latest/meta-data/local-hostname",
                "ip-10-0-0-7.ec2.internal",
            ),
            ("/latest/meta-data/public-keys/", "0=alice\n1=bob"),
            (
                "/latest/meta-data/public-keys/0/openssh-key",
                "ssh-ed25519 AAAAalice alice@laptop\n",
            ),
            (
                "/latest/meta-data/public-keys/1/openssh-key",
                "ssh-rsa AAAAbob bob@desk",
            ),
        ] {
            files.insert(k.to_owned(), v.to_owned());
        }
        let state = Arc::new(Mutex::new(State {
            v2: true,
            userdata: Some(userdata.as_bytes().to_vec()),
            files,
            ..State::default()
        }));
        let st = state.clone();
        thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let st = st.clone();
                thread::spawn(move || serve(conn, &st));
            }
        });
        Imds { base, state }
    }

    pub fn spec(&self) -> String {
        format!("ec2:{}", self.base)
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("imds state"))
    }

    pub fn log(&self) -> Vec<String> {
        self.with(|s| s.log.clone())
    }
}

fn serve(mut conn: TcpStream, st: &Mutex<State>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    let _ = reader.read_exact(&mut body);

    let (status, reply) = {
        let mut s = st.lock().expect("imds state");
        let (status, reply) = answer(&mut s, &method, &path, &headers);
        s.log.push(format!("{method} {path} {status}"));
        (status, reply)
    };
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        _ => "Other",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\
         Connection: close\r\n\r\n",
        reply.len()
    );
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(&reply);
}

fn answer(
    s: &mut State,
    method: &str,
    path: &str,
    headers: &HashMap<String, String>,
) -> (u16, Vec<u8>) {
    if method == "PUT" && path == "/latest/api/token" {
        if !s.v2 {
            return (403, Vec::new());
        }
        if !headers.contains_key("x-aws-ec2-metadata-token-ttl-seconds") {
            return (400, b"missing TTL".to_vec());
        }
        s.next_token += 1;
        let token = format!("token-{}", s.next_token);
        s.tokens.push(token.clone());
        return (200, token.into_bytes());
    }
    if method != "GET" {
        return (405, Vec::new());
    }
    if s.v2 {
        let ok = headers
            .get("x-aws-ec2-metadata-token")
            .is_some_and(|t| s.tokens.contains(t));
        if !ok {
            return (401, Vec::new());
        }
    }
    s.gets += 1;
    if s.expire_after == Some(s.gets) {
        s.expire_after = None;
        s.tokens.clear();
    }
    if path == "/latest/user-data" {
        return match &s.userdata {
            Some(d) => (200, d.clone()),
            None => (404, Vec::new()),
        };
    }
    match s.files.get(path) {
        Some(v) => (200, v.clone().into_bytes()),
        None => (404, Vec::new()),
    }
}
