//! Shared helpers of the end-to-end host tests (`tests/tests/*.rs`).
//!
//! - [`require_root`] / [`require_tool`]: skip a test *loudly* when the machine lacks what it
//!   needs (a `SKIP` line on the real stderr, which the test harness does not capture, and a
//!   line in `target/ros-tests-skipped.txt`). `ROS_TESTS_NO_SKIP=1` turns skips into failures.
//! - [`Daemon`]: the engine daemon on a socket in a tempdir, with temporary roots; killed (and
//!   its containers with it) on drop.
//! - [`Output`]: a finished command with everything an assertion message needs.
//! - [`poll_until`] / [`poll_for`]: waiting with deadlines, never fixed sleeps.
//! - [`fixtures`]: the images built by `tests/fixtures/build-images.sh`, once, under a lock.
//! - [`Checks`]: soft assertions, so one run of a long scenario reports every failure.
//!
//! Environment: `ROS_BIN_DIR` (where `system-docker` is; default: the target dir this test
//! was built in), `ROS_FIXTURES_DIR` (default `<target>/fixtures`), `ROS_TESTS_NO_SKIP=1`
//! (skips fail), `ROS_TESTS_KEEP=1` (keep each test's tempdir, with the daemon's log).

pub mod guest;
pub mod imds;
pub mod qemu;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Name of the engine binary in the target dir.
pub const ENGINE_BIN: &str = "system-docker";
/// The stock docker CLI (v28) used as the engine's client.
pub const DOCKER_CLI: &str = "docker";
/// How long an ordinary docker CLI command may take before the test calls it hung.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the daemon may take to answer after being spawned (debug build, 2 cores, loaded).
pub const DAEMON_START_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Skipping

/// Skips loudly: prints `SKIP <test>: <reason>` where a human sees it and records it in
/// `target/ros-tests-skipped.txt`. Panics instead when `ROS_TESTS_NO_SKIP=1` (CI that must
/// not pass by skipping).
pub fn skip(test: &str, reason: &str) {
    let line = format!("SKIP {test}: {reason}");
    if std::env::var_os("ROS_TESTS_NO_SKIP").is_some_and(|v| v == "1") {
        panic!("{line} (and ROS_TESTS_NO_SKIP=1 forbids skipping)");
    }
    // Writing to the stderr handle directly bypasses libtest's output capture (which only
    // intercepts the print macros), so the line shows even for a "passing" test.
    let banner = format!("\n!!!!! {line} !!!!!\n");
    let _ = io::stderr().lock().write_all(banner.as_bytes());
    if let Ok(mut f) = OpenOptions::new()
        .create(true)
        .append(true)
        .open(target_dir().join("ros-tests-skipped.txt"))
    {
        let _ = writeln!(f, "{line}");
    }
}

/// True when running as root; otherwise skips loudly and returns false.
pub fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    skip(
        test,
        "needs root (namespaces, mounts, cgroups); run the host tests as root: `sudo make test`",
    );
    false
}

/// True when `tool` is on PATH (or is an existing path); otherwise skips loudly.
pub fn require_tool(test: &str, tool: &str) -> bool {
    if which(tool).is_some() {
        return true;
    }
    skip(
        test,
        &format!("needs the tool `{tool}` (install it with `make deps`)"),
    );
    false
}

/// `tool` resolved against PATH.
pub fn which(tool: &str) -> Option<PathBuf> {
    if tool.contains('/') {
        let p = PathBuf::from(tool);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

// ---------------------------------------------------------------------------------------------
// Locations

/// The workspace root (the parent of this crate).
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The cargo target dir: `CARGO_TARGET_DIR`, else the one this test binary was built into
/// (`<target>/<profile>/deps/<test>`), else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        return if dir.is_absolute() {
            dir
        } else {
            workspace_dir().join(dir)
        };
    }
    if let Some(profile) = exe_profile_dir() {
        if let Some(target) = profile.parent() {
            return target.to_path_buf();
        }
    }
    workspace_dir().join("target")
}

/// `<target>/<profile>` of the running test binary, if it lives in `<profile>/deps`.
fn exe_profile_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent()?;
    if deps.file_name()? != "deps" {
        return None;
    }
    Some(deps.parent()?.to_path_buf())
}

/// A binary of the workspace: `$ROS_BIN_DIR/<name>`, else the profile dir this test was built
/// in, else `<target>/debug`, `<target>/release`. Panics with a clear message when missing.
pub fn bin_path(name: &str) -> PathBuf {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("ROS_BIN_DIR") {
        let p = PathBuf::from(dir).join(name);
        if p.is_file() {
            return p;
        }
        panic!(
            "ROS_BIN_DIR is set but {} does not exist; build it (`cargo build -p {name}`) \
             or unset ROS_BIN_DIR",
            p.display()
        );
    }
    if let Some(profile) = exe_profile_dir() {
        candidates.push(profile.join(name));
    }
    let target = target_dir();
    candidates.push(target.join("debug").join(name));
    candidates.push(target.join("release").join(name));
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        warn_if_stale(name, found);
        return found.clone();
    }
    panic!(
        "binary `{name}` not found (looked at: {}). Build it first: `cargo build -p {name}` \
         (the Makefile's test target does), or point ROS_BIN_DIR at a dir holding it.",
        candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// A tempdir for one test (`/tmp/ros-test-XXXXXX`, short enough for socket paths). Kept for
/// inspection when `ROS_TESTS_KEEP=1`.
pub fn tempdir() -> tempfile::TempDir {
    let mut dir = tempfile::Builder::new()
        .prefix("ros-test-")
        .tempdir_in(std::env::temp_dir())
        .expect("create tempdir");
    if std::env::var_os("ROS_TESTS_KEEP").is_some_and(|v| v == "1") {
        dir.disable_cleanup(true);
        let _ = io::stderr()
            .lock()
            .write_all(format!("note: keeping {}\n", dir.path().display()).as_bytes());
    }
    dir
}

/// Warns (loudly, once per binary) when `bin` is older than a source file of its crate: the
/// tests would exercise stale code. `cargo test -p ros-tests` does not rebuild other crates'
/// binaries; the Makefile builds them first.
fn warn_if_stale(name: &str, bin: &Path) {
    static WARNED: OnceLock<()> = OnceLock::new();
    let Ok(bin_time) = fs::metadata(bin).and_then(|m| m.modified()) else {
        return;
    };
    let src = workspace_dir().join(name).join("src");
    let mut newer = None;
    let mut stack = vec![src];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(p),
                Ok(m) if m.modified().is_ok_and(|t| t > bin_time) => newer = Some(p),
                _ => {}
            }
        }
    }
    if let Some(p) = newer {
        WARNED.get_or_init(|| {
            let _ = io::stderr().lock().write_all(
                format!(
                    "\n!!!!! WARNING: {} is older than {}: testing a stale build; run \
                     `cargo build -p {name}` first !!!!!\n",
                    bin.display(),
                    p.display()
                )
                .as_bytes(),
            );
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Polling

/// Calls `f` until it returns true or `timeout` passes; returns whether it did. Backs off
/// from 5 ms to 100 ms between calls.
pub fn poll_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    poll_for(timeout, || f().then_some(())).is_some()
}

/// Calls `f` until it returns `Some` or `timeout` passes.
pub fn poll_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------------
// Commands

/// A finished command: what ran, how it ended, what it printed. `Display` shows all of it,
/// for assertion messages.
#[derive(Clone)]
pub struct Output {
    pub cmd: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub elapsed: Duration,
}

impl Output {
    /// The exit code; `None` when killed by a signal.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn success(&self) -> bool {
        self.status.success() && !self.timed_out
    }

    /// Panics (showing everything) unless the command succeeded; returns self for chaining.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert!(self.success(), "command failed:\n{self}");
        self
    }

    /// Panics unless the command failed (nonzero exit, not a hang).
    #[track_caller]
    pub fn fails(&self) -> &Self {
        assert!(!self.timed_out, "command hung:\n{self}");
        assert!(
            !self.status.success(),
            "command unexpectedly succeeded:\n{self}"
        );
        self
    }

    /// stdout without surrounding whitespace.
    pub fn out(&self) -> &str {
        self.stdout.trim()
    }

    /// stdout and stderr together (for "the message mentions X" checks).
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// stdout's non-empty lines, trimmed.
    pub fn lines(&self) -> Vec<String> {
        self.stdout
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "  $ {}", self.cmd)?;
        if self.timed_out {
            writeln!(f, "  TIMED OUT after {:?} (killed)", self.elapsed)?;
        } else {
            match (self.status.code(), self.status.signal()) {
                (Some(c), _) => writeln!(f, "  exit code {c} after {:?}", self.elapsed)?,
                (None, Some(s)) => writeln!(f, "  killed by signal {s}")?,
                _ => writeln!(f, "  status {:?}", self.status)?,
            }
        }
        writeln!(f, "  --- stdout ---\n{}", indent(&self.stdout))?;
        write!(f, "  --- stderr ---\n{}", indent(&self.stderr))
    }
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn indent(s: &str) -> String {
    let s = if s.len() > 8000 {
        format!(
            "[... {} bytes cut ...]\n{}",
            s.len() - 8000,
            tail_chars(s, 8000)
        )
    } else {
        s.to_string()
    };
    s.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn tail_chars(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// Shell-ish rendering of a command line, for messages.
pub fn render_cmd(cmd: &Command) -> String {
    let mut parts = vec![quote(cmd.get_program())];
    parts.extend(cmd.get_args().map(quote));
    parts.join(" ")
}

fn quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%{}".contains(c))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `ros --root ROOT -H HOST service ARGS…`, with a DOCKER_HOST that must be ignored (on a
/// ros host it points at the user's engine).
pub fn ros_service(host: &str, root: &Path, args: &[&str], timeout: Duration) -> Output {
    let mut cmd = Command::new(bin_path("ros"));
    cmd.env("DOCKER_HOST", "unix:///nonexistent/user-docker.sock")
        .arg("--root")
        .arg(root)
        .arg("-H")
        .arg(host)
        .arg("service")
        .args(args);
    run(&mut cmd, timeout)
}

/// Writes `text` to `path`, creating its parent directories.
pub fn write_file(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, text).expect("write");
}

/// Runs `cmd` with stdin closed, capturing output; kills it after `timeout`.
pub fn run(cmd: &mut Command, timeout: Duration) -> Output {
    run_input(cmd, None, timeout)
}

/// Runs `cmd` with `input` on its stdin (then closed), or stdin closed when `None`.
pub fn run_input(cmd: &mut Command, input: Option<&[u8]>, timeout: Duration) -> Output {
    let mut rendered = render_cmd(cmd);
    if let Some(input) = input {
        rendered = format!(
            "printf %s {} | {rendered}",
            quote(OsStr::new(&*String::from_utf8_lossy(input)))
        );
    }
    let start = Instant::now();
    let mut child = match cmd
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!("cannot run `{rendered}`: {e}"),
    };
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        let input = input.to_vec();
        // A writer thread: the child may not read before it writes (no pipe deadlock).
        thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let out_reader = spawn_reader(child.stdout.take());
    let err_reader = spawn_reader(child.stderr.take());
    let mut timed_out = false;
    let status = match poll_for(timeout, || child.try_wait().ok().flatten()) {
        Some(s) => s,
        None => {
            timed_out = true;
            let _ = child.kill();
            child.wait().unwrap_or_else(|_| ExitStatus::from_raw(9))
        }
    };
    Output {
        cmd: rendered,
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
        timed_out,
        elapsed: start.elapsed(),
    }
}

fn spawn_reader<R: Read + Send + 'static>(r: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Runs `program args…` with the default timeout.
pub fn sh(program: &str, args: &[&str]) -> Output {
    run(Command::new(program).args(args), CMD_TIMEOUT)
}

// ---------------------------------------------------------------------------------------------
// Soft assertions

/// Collects failed checks so a long scenario reports all of them at once;
/// [`Checks::finish`] panics with the list. Dropping unfinished checks with failures panics
/// too (unless already panicking).
pub struct Checks {
    name: String,
    failures: Vec<String>,
    passed: usize,
}

impl Checks {
    pub fn new(name: &str) -> Self {
        Checks {
            name: name.to_string(),
            failures: Vec::new(),
            passed: 0,
        }
    }

    /// Records a failure unless `cond`. `what` says what was expected; `detail` shows why.
    #[track_caller]
    pub fn check(&mut self, cond: bool, what: &str, detail: impl fmt::Display) -> bool {
        if cond {
            self.passed += 1;
        } else {
            let loc = std::panic::Location::caller();
            let msg = format!("[{}:{}] {what}\n{detail}", loc.file(), loc.line());
            let _ = io::stderr()
                .lock()
                .write_all(format!("CHECK FAILED {msg}\n").as_bytes());
            self.failures.push(msg);
        }
        cond
    }

    /// The command succeeded.
    #[track_caller]
    pub fn ok(&mut self, out: &Output, what: &str) -> bool {
        self.check(
            out.success(),
            &format!("{what}: command should succeed"),
            out,
        )
    }

    /// The command succeeded and its trimmed stdout equals `want`.
    #[track_caller]
    pub fn out_eq(&mut self, out: &Output, want: &str, what: &str) -> bool {
        self.check(
            out.success() && out.out() == want,
            &format!("{what}: expected success with stdout {want:?}"),
            out,
        )
    }

    /// The command exited with `code`.
    #[track_caller]
    pub fn code(&mut self, out: &Output, code: i32, what: &str) -> bool {
        self.check(
            !out.timed_out && out.code() == Some(code),
            &format!("{what}: expected exit code {code}"),
            out,
        )
    }

    /// The command failed and its output mentions one of `any_of` (case-insensitive).
    #[track_caller]
    pub fn fails_with(&mut self, out: &Output, any_of: &[&str], what: &str) -> bool {
        let all = out.all().to_lowercase();
        self.check(
            !out.timed_out
                && !out.status.success()
                && any_of.iter().any(|w| all.contains(&w.to_lowercase())),
            &format!("{what}: expected failure mentioning one of {any_of:?}"),
            out,
        )
    }

    pub fn failures(&self) -> &[String] {
        &self.failures
    }

    /// Panics listing every failure, if any.
    pub fn finish(self) {
        self.finish_with(String::new);
    }

    /// Like [`Checks::finish`], appending `context()` (say, the daemon's log) on failure.
    pub fn finish_with(mut self, context: impl FnOnce() -> String) {
        let failures = std::mem::take(&mut self.failures);
        if !failures.is_empty() {
            panic!(
                "{}: {} check(s) failed, {} passed:\n\n{}\n\n{}",
                self.name,
                failures.len(),
                self.passed,
                failures.join("\n\n"),
                context()
            );
        }
    }
}

impl Drop for Checks {
    fn drop(&mut self) {
        if !self.failures.is_empty() && !thread::panicking() {
            let failures = std::mem::take(&mut self.failures);
            panic!(
                "{}: unfinished checks failed:\n\n{}",
                self.name,
                failures.join("\n\n")
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP over the unix socket (for what the docker CLI hides: status codes, raw bodies)

/// A raw HTTP response.
#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The Docker-shaped error message (`{"message": "..."}`), if the body is one.
    pub fn message(&self) -> Option<String> {
        self.json()?.get("message")?.as_str().map(str::to_string)
    }
}

impl fmt::Display for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "HTTP {} {:?} body: {}",
            self.status,
            self.headers,
            self.text()
        )
    }
}

/// One HTTP/1.1 request on a fresh connection to `socket` (`Connection: close`).
pub fn http_unix(
    socket: &Path,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> io::Result<HttpResponse> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(CMD_TIMEOUT))?;
    stream.set_write_timeout(Some(CMD_TIMEOUT))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: ros-tests\r\n\
         Connection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(ct) = content_type {
        req.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_http_response(&raw)
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Parses a complete HTTP/1.1 response (body to EOF, by Content-Length, or chunked).
pub fn parse_http_response(raw: &[u8]) -> io::Result<HttpResponse> {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            bad(format!(
                "no header end in {:?}",
                String::from_utf8_lossy(raw)
            ))
        })?;
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let rest = &raw[head_end + 4..];
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.to_lowercase().contains("chunked")
    });
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(len) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        rest[..len.min(rest.len())].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| bad("truncated chunk size"))?;
        let size_str = String::from_utf8_lossy(&data[..line_end]);
        let size_str = size_str.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_str, 16)
            .map_err(|_| bad(format!("bad chunk size {size_str:?}")))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size {
            return Err(bad("truncated chunk"));
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size..];
        data = data.strip_prefix(b"\r\n").unwrap_or(data);
    }
}

// ---------------------------------------------------------------------------------------------
// The daemon

/// The engine daemon (`system-docker daemon`) on a socket in a tempdir, with its data and exec
/// roots there too. On drop: removes its containers, stops it, kills any process still
/// referring to the tempdir (containers outliving the daemon by design) and detaches mounts
/// left under it, so the tempdir can be deleted.
pub struct Daemon {
    root: PathBuf,
    socket: PathBuf,
    data_root: PathBuf,
    exec_root: PathBuf,
    docker_config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    starts: u32,
    /// Extra daemon flags ([`Daemon::start_with_args`]), passed on every (re)start.
    extra_args: Vec<String>,
}

impl Daemon {
    /// Starts a daemon with roots under `tmp` and waits until `docker version` answers.
    pub fn start(tmp: &Path) -> Daemon {
        Daemon::start_with_args(tmp, &[])
    }

    /// Like [`Daemon::start`], with `extra` daemon flags (e.g. `["--image-store", dir]`),
    /// which [`Daemon::restart`] passes again.
    pub fn start_with_args(tmp: &Path, extra: &[&str]) -> Daemon {
        let root = tmp
            .canonicalize()
            .unwrap_or_else(|e| panic!("{}: {e}", tmp.display()));
        let socket = root.join("sd.sock");
        // sockaddr_un.sun_path is 108 bytes.
        assert!(
            socket.as_os_str().len() < 100,
            "socket path {} too long for a unix socket; use a shorter TMPDIR",
            socket.display()
        );
        let mut d = Daemon {
            data_root: root.join("data"),
            exec_root: root.join("exec"),
            docker_config: root.join("docker-config"),
            log: root.join("daemon.log"),
            socket,
            root,
            child: None,
            starts: 0,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
        };
        fs::create_dir_all(&d.docker_config).expect("create docker config dir");
        d.spawn();
        d
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "daemon already running");
        let bin = bin_path(ENGINE_BIN);
        self.starts += 1;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open daemon log");
        let mut log2 = log.try_clone().expect("dup daemon log");
        let _ = writeln!(log2, "===== ros-tests: daemon start #{} =====", self.starts);
        let mut cmd = Command::new(&bin);
        cmd.arg("daemon")
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .arg("--data-root")
            .arg(&self.data_root)
            .arg("--exec-root")
            .arg(&self.exec_root)
            .arg("--pidfile")
            .arg(self.root.join("sd.pid"))
            .arg("--log-level")
            .arg("debug")
            .args(&self.extra_args)
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let rendered = render_cmd(&cmd);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn `{rendered}`: {e}"));
        self.child = Some(child);
        self.wait_ready(&rendered);
    }

    fn wait_ready(&mut self, rendered: &str) {
        let start = Instant::now();
        let mut exited = None;
        // Cheap probe first (a raw /_ping), then the real client.
        let pinged = poll_until(DAEMON_START_TIMEOUT, || {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(Child::try_wait) {
                exited = Some(st);
                return true;
            }
            http_unix(&self.socket, "GET", "/_ping", None, b"").is_ok_and(|r| r.status == 200)
        });
        if let Some(st) = exited {
            self.child = None;
            panic!(
                "daemon exited during startup ({st}):\n  $ {rendered}\n{}",
                self.log_tail(60)
            );
        }
        assert!(
            pinged,
            "daemon did not answer GET /_ping on {} within {DAEMON_START_TIMEOUT:?}:\n  \
             $ {rendered}\n{}",
            self.socket.display(),
            self.log_tail(60)
        );
        let left = DAEMON_START_TIMEOUT
            .saturating_sub(start.elapsed())
            .max(Duration::from_secs(5));
        let mut last = None;
        let ok = poll_until(left, || {
            let out = self.docker_t(&["version"], Duration::from_secs(10));
            let ok = out.success();
            last = Some(out);
            ok
        });
        assert!(
            ok,
            "daemon answers /_ping but `docker version` fails:\n{}\n{}",
            last.map(|o| o.to_string()).unwrap_or_default(),
            self.log_tail(40)
        );
    }

    /// `unix:///…/sd.sock`
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn data_root(&self) -> &Path {
        &self.data_root
    }

    pub fn exec_root(&self) -> &Path {
        &self.exec_root
    }

    /// The tempdir holding everything of this daemon.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The daemon's PID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the daemon process is still alive.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// The last `lines` lines of the daemon's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let from = all.len().saturating_sub(lines);
        format!(
            "  --- daemon log ({}, last {lines} lines) ---\n{}",
            self.log.display(),
            all[from..]
                .iter()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    }

    /// A docker CLI command against this daemon (config in the tempdir, `DOCKER_HOST` unset).
    pub fn docker_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(DOCKER_CLI);
        cmd.env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .env_remove("DOCKER_API_VERSION")
            .env("DOCKER_CONFIG", &self.docker_config)
            .env("DOCKER_CLI_HINTS", "false")
            .arg("-H")
            .arg(self.host())
            .args(args);
        cmd
    }

    /// `docker -H <this daemon> args…`
    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_t(args, CMD_TIMEOUT)
    }

    /// `docker -H <this daemon> args…` with a timeout.
    pub fn docker_t(&self, args: &[&str], timeout: Duration) -> Output {
        run(&mut self.docker_cmd(args), timeout)
    }

    /// `docker -H <this daemon> args…` with `input` on stdin.
    pub fn docker_input(&self, args: &[&str], input: &[u8]) -> Output {
        run_input(&mut self.docker_cmd(args), Some(input), CMD_TIMEOUT)
    }

    /// The engine's own client: `system-docker -H <this daemon> args…`
    pub fn sd(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(bin_path(ENGINE_BIN));
        cmd.env_remove("DOCKER_HOST")
            .arg("-H")
            .arg(self.host())
            .args(args);
        run(&mut cmd, CMD_TIMEOUT)
    }

    /// A raw API request. Panics when the daemon does not answer at all.
    pub fn api(&self, method: &str, path: &str, json_body: Option<&str>) -> HttpResponse {
        let ct = json_body.map(|_| "application/json");
        let body = json_body.unwrap_or("").as_bytes();
        http_unix(&self.socket, method, path, ct, body).unwrap_or_else(|e| {
            panic!(
                "{method} {path}: no HTTP answer: {e}\n{}",
                self.log_tail(30)
            )
        })
    }

    /// `docker load -i tar`, asserted to succeed.
    #[track_caller]
    pub fn load(&self, tar: &Path) -> Output {
        let out = self.docker(&["load", "-i", &tar.to_string_lossy()]);
        assert!(
            out.success(),
            "docker load failed:\n{out}\n{}",
            self.log_tail(30)
        );
        out
    }

    /// `docker inspect -f FORMAT NAME`: trimmed stdout, or on failure a text starting with
    /// `<docker inspect failed>` and showing the command's output (so it can be compared with
    /// `==` and printed in the same assertion).
    pub fn inspect(&self, format: &str, name: &str) -> String {
        let out = self.docker(&["inspect", "-f", format, name]);
        if out.success() {
            out.out().to_string()
        } else {
            format!("<docker inspect failed>\n{out}")
        }
    }

    /// The host PID of a running container's init (`.State.Pid`), if it runs.
    pub fn container_pid(&self, name: &str) -> Option<u32> {
        self.inspect("{{.State.Pid}}", name)
            .parse()
            .ok()
            .filter(|&p| p > 0)
    }

    /// Stops the daemon with SIGTERM (SIGKILL after 15 s). Containers are left to the engine.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            if poll_for(Duration::from_secs(15), || child.try_wait().ok().flatten()).is_none() {
                let _ = io::stderr().lock().write_all(
                    format!("WARNING: daemon {} ignored SIGTERM for 15 s\n", child.id()).as_bytes(),
                );
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// SIGKILLs the daemon (a crash) and reaps it; containers are left as they are.
    pub fn kill_hard(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the daemon again on the same roots (after [`Daemon::stop`] or
    /// [`Daemon::kill_hard`]); waits until it answers.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        self.spawn();
    }

    /// Best-effort: removes every container (so the engine unmounts and kills them itself).
    fn remove_all_containers(&self) {
        let ids = self.docker_t(&["ps", "-aq"], Duration::from_secs(20));
        if !ids.success() {
            return;
        }
        let ids = ids.lines();
        if ids.is_empty() {
            return;
        }
        let mut args = vec!["rm", "-f"];
        args.extend(ids.iter().map(String::as_str));
        let _ = self.docker_t(&args, Duration::from_secs(30));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.is_running() {
            self.remove_all_containers();
        }
        self.stop();
        let killed = kill_processes_referring_to(&self.root);
        if !killed.is_empty() && std::env::var_os("ROS_TESTS_VERBOSE").is_some() {
            let _ = io::stderr().lock().write_all(
                format!(
                    "note: killed leftover processes {killed:?} of {}\n",
                    self.root.display()
                )
                .as_bytes(),
            );
        }
        detach_mounts_under(&self.root);
    }
}

/// SIGKILLs every process (but this one) whose command line, or whose root mount (the
/// overlay options name the store's dirs), mentions `dir`. Returns their PIDs.
pub fn kill_processes_referring_to(dir: &Path) -> Vec<i32> {
    let needle = dir.to_string_lossy().into_owned();
    let me = std::process::id() as i32;
    let mut killed = Vec::new();
    // Two rounds: a restarting container or a shim may spawn a child between reads.
    for _ in 0..2 {
        let Ok(entries) = fs::read_dir("/proc") else {
            return killed;
        };
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if pid == me || pid == 1 {
                continue;
            }
            let cmdline = fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmd_hit = String::from_utf8_lossy(&cmdline).contains(&needle);
            let root_hit = !cmd_hit
                && fs::read_to_string(e.path().join("mountinfo")).is_ok_and(|mi| {
                    mi.lines()
                        .any(|l| l.split_whitespace().nth(4) == Some("/") && l.contains(&needle))
                });
            if (cmd_hit || root_hit) && kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok() {
                killed.push(pid);
            }
        }
    }
    // Give the kernel a moment to tear them down before mounts are detached.
    poll_until(Duration::from_secs(5), || {
        killed
            .iter()
            .all(|p| !Path::new(&format!("/proc/{p}")).exists() || is_zombie(*p as u32))
    });
    killed
}

/// Whether `pid` is a zombie (state Z).
pub fn is_zombie(pid: u32) -> bool {
    proc_state(pid) == Some('Z')
}

/// The state letter of `/proc/PID/stat` (R, S, Z, …); `None` when it is gone.
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parens: the state follows the last ')'.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Whether `pid` is alive (exists and is not a zombie).
pub fn pid_alive(pid: u32) -> bool {
    matches!(proc_state(pid), Some(s) if s != 'Z' && s != 'X')
}

/// Lazily detaches every mount at or under `dir` in this mount namespace, deepest first.
pub fn detach_mounts_under(dir: &Path) {
    let Ok(mi) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = dir.to_string_lossy().into_owned();
    let mut points: BTreeSet<String> = BTreeSet::new();
    for line in mi.lines() {
        if let Some(mp) = line.split_whitespace().nth(4) {
            let mp = unescape_mountinfo(mp);
            if mp == prefix || mp.starts_with(&format!("{prefix}/")) {
                points.insert(mp);
            }
        }
    }
    let mut points: Vec<String> = points.into_iter().collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = nix::mount::umount2(p.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let digits = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(digits, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------------------------
// cgroups

/// The host path of a cgroup control file of process `pid`: on cgroup v2 (`v2_file` in the
/// unified hierarchy, when it exists there) or else on the v1 hierarchy carrying
/// `v1_controller` (`v1_file`). Paths are resolved through this process's mountinfo, so it
/// works with v2 at /sys/fs/cgroup or /sys/fs/cgroup/unified and with hybrid layouts.
pub fn cgroup_file(
    pid: u32,
    v1_controller: &str,
    v1_file: &str,
    v2_file: &str,
) -> Result<PathBuf, String> {
    let cg = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map_err(|e| format!("/proc/{pid}/cgroup: {e}"))?;
    let mi = fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    let mut tried = Vec::new();
    // (mount root, mount point, fstype, super options)
    let mounts: Vec<(String, String, String, String)> = mi
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let pre: Vec<&str> = pre.split_whitespace().collect();
            let post: Vec<&str> = post.split_whitespace().collect();
            Some((
                unescape_mountinfo(pre.get(3)?),
                unescape_mountinfo(pre.get(4)?),
                post.first()?.to_string(),
                post.get(2).unwrap_or(&"").to_string(),
            ))
        })
        .collect();
    let join = |mount_root: &str, mount_point: &str, cg_path: &str, file: &str| -> PathBuf {
        let rel = cg_path.strip_prefix(mount_root).unwrap_or(cg_path);
        let rel = rel.trim_start_matches('/');
        Path::new(mount_point).join(rel).join(file)
    };
    for line in cg.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if id == "0" && ctrls.is_empty() {
            for (mroot, mp, fstype, _) in &mounts {
                if fstype == "cgroup2" {
                    let p = join(mroot, mp, path, v2_file);
                    if p.exists() {
                        return Ok(p);
                    }
                    tried.push(p.display().to_string());
                }
            }
        }
    }
    for line in cg.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if !ctrls.split(',').any(|c| c == v1_controller) {
            continue;
        }
        for (mroot, mp, fstype, opts) in &mounts {
            if fstype == "cgroup" && opts.split(',').any(|o| o == v1_controller) {
                let p = join(mroot, mp, path, v1_file);
                if p.exists() {
                    return Ok(p);
                }
                tried.push(p.display().to_string());
            }
        }
    }
    Err(format!(
        "no cgroup file for pid {pid}; /proc/{pid}/cgroup:\n{cg}\ntried: {tried:?}"
    ))
}

/// The content of [`cgroup_file`], trimmed.
pub fn cgroup_value(
    pid: u32,
    v1_controller: &str,
    v1_file: &str,
    v2_file: &str,
) -> Result<String, String> {
    let p = cgroup_file(pid, v1_controller, v1_file, v2_file)?;
    fs::read_to_string(&p)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("{}: {e}", p.display()))
}

/// A capability mask line (`CapEff`, `CapBnd`, …) of this process, as 16 hex digits.
pub fn own_cap_mask(field: &str) -> Option<String> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/// The images built by `tests/fixtures/build-images.sh` (see the script for their content).
#[derive(Clone, Debug)]
pub struct Fixtures {
    pub dir: PathBuf,
    /// OCI layout with tags `busybox` and `layered`.
    pub oci_layout: PathBuf,
    /// docker-save archive, `busybox:latest`, plain layers.
    pub busybox_tar: PathBuf,
    /// OCI archive, `busybox-oci:latest`, gzip layers.
    pub busybox_oci_tar: PathBuf,
    /// OCI archive, `busybox-zstd:latest`, zstd layers.
    pub busybox_zstd_tar: PathBuf,
    /// docker-save archive, `layered:latest`: a second layer whites out /etc/motd, /opt/gone.
    pub layered_tar: PathBuf,
    /// OCI archive of the same, `layered-oci:latest`.
    pub layered_oci_tar: PathBuf,
    /// runc bundle of the busybox rootfs, args `["true"]`.
    pub bundle: PathBuf,
}

/// The fixture script's exit code for "a tool is missing".
const FIXTURE_MISSING_TOOL: i32 = 3;

enum FixtureState {
    Ready(Fixtures),
    MissingTools(String),
    Failed(String),
}

/// The fixtures, built once (per machine: cached in `<target>/fixtures`, or
/// `$ROS_FIXTURES_DIR`) under a file lock so parallel test binaries don't race. Skips loudly
/// (returns `None`) when the tools to build them are missing; panics when building fails.
pub fn fixtures(test: &str) -> Option<&'static Fixtures> {
    static STATE: OnceLock<FixtureState> = OnceLock::new();
    match STATE.get_or_init(build_fixtures) {
        FixtureState::Ready(f) => Some(f),
        FixtureState::MissingTools(msg) => {
            skip(test, &format!("cannot build image fixtures: {msg}"));
            None
        }
        FixtureState::Failed(msg) => panic!("building the image fixtures failed:\n{msg}"),
    }
}

fn build_fixtures() -> FixtureState {
    let dir = std::env::var_os("ROS_FIXTURES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("fixtures"));
    if let Err(e) = fs::create_dir_all(&dir) {
        return FixtureState::Failed(format!("{}: {e}", dir.display()));
    }
    let lock_path = target_dir().join("fixtures.lock");
    let lock = match File::create(&lock_path) {
        Ok(f) => f,
        Err(e) => return FixtureState::Failed(format!("{}: {e}", lock_path.display())),
    };
    if let Err(e) = lock.lock() {
        return FixtureState::Failed(format!("lock {}: {e}", lock_path.display()));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/build-images.sh");
    let out = run(
        Command::new("bash").arg(&script).arg(&dir),
        Duration::from_secs(300),
    );
    drop(lock);
    if out.code() == Some(FIXTURE_MISSING_TOOL) {
        return FixtureState::MissingTools(out.stderr.trim().to_string());
    }
    if !out.success() {
        return FixtureState::Failed(out.to_string());
    }
    let f = Fixtures {
        oci_layout: dir.join("oci"),
        busybox_tar: dir.join("busybox.tar"),
        busybox_oci_tar: dir.join("busybox-oci.tar"),
        busybox_zstd_tar: dir.join("busybox-zstd.tar"),
        layered_tar: dir.join("layered.tar"),
        layered_oci_tar: dir.join("layered-oci.tar"),
        bundle: dir.join("bundle"),
        dir,
    };
    for p in [
        &f.oci_layout,
        &f.busybox_tar,
        &f.busybox_oci_tar,
        &f.busybox_zstd_tar,
        &f.layered_tar,
        &f.layered_oci_tar,
        &f.bundle,
    ] {
        if !p.exists() {
            return FixtureState::Failed(format!("fixture {} missing after:\n{out}", p.display()));
        }
    }
    FixtureState::Ready(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_responses() {
        let r = parse_http_response(
            b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"message\":1}xx",
        )
        .unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(r.text(), "{\"message\":1}");
        let r = parse_http_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.text(), "Wikipedia");
        assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    }

    #[test]
    fn unescapes_mountinfo() {
        assert_eq!(unescape_mountinfo(r"/a\040b\134c"), "/a b\\c");
        assert_eq!(unescape_mountinfo(r"/plain\04"), r"/plain\04");
    }

    #[test]
    fn polls_with_deadline() {
        let mut n = 0;
        assert!(poll_until(Duration::from_secs(5), || {
            n += 1;
            n == 3
        }));
        assert!(!poll_until(Duration::from_millis(30), || false));
    }

    #[test]
    fn output_shows_command_and_streams() {
        let out = sh("sh", &["-c", "echo out; echo err >&2; exit 3"]);
        assert_eq!(out.code(), Some(3));
        let shown = out.to_string();
        assert!(
            shown.contains("$ sh -c 'echo out; echo err >&2; exit 3'"),
            "{shown}"
        );
        assert!(shown.contains("exit code 3") && shown.contains("out") && shown.contains("err"));
        let hung = run(Command::new("sleep").arg("10"), Duration::from_millis(100));
        assert!(hung.timed_out && !hung.success(), "{hung}");
    }

    #[test]
    fn proc_state_of_self() {
        assert!(pid_alive(std::process::id()));
        assert_eq!(proc_state(u32::MAX), None);
    }
}
