//! The system images `ros-image-build` makes (image-build/spec.yml), built for real from
//! Debian packages and run for real on the engine — each in a way that touches nothing of
//! the host: udev in its own mount and network namespaces without coldplug (and once with
//! coldplug over an empty tmpfs where /sys would be), syslog without klogd, chronyd with `-x`
//! (never the clock) and only a loopback server, the console's sshd in a network namespace
//! of its own reached with `nsenter`, a getty only on /dev/null, the user engine in
//! its own network namespace without iptables.
//!
//! The build runs once per test binary into `<target>/system-images`, with the package cache
//! of the source tree (`.cache/image-build`): the first run downloads ~80 Debian packages
//! (~100 MB) and takes a few minutes; later runs reuse everything. Needs root (the engine,
//! the read-only store's owners and device nodes), apt with package lists, the docker CLI,
//! ssh and nsenter; skips loudly otherwise.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ros_tests::{
    bin_path, detach_mounts_under, fixtures, http_unix, kill_processes_referring_to, poll_for,
    poll_until, render_cmd, require_root, require_tool, run, Checks, Daemon, Output,
};

const BUILD_TIMEOUT: Duration = Duration::from_secs(20 * 60);
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The images of image-build/spec.yml.
const IMAGES: [&str; 6] = [
    "console",
    "docker",
    "ntp",
    "qemu-guest-agent",
    "syslog",
    "udev",
];

/// Progress where a human sees it: straight to the stderr handle, which libtest does not
/// capture.
fn say(msg: &str) {
    let _ = std::io::stderr()
        .lock()
        .write_all(format!("system_images: {msg}\n").as_bytes());
}

struct Build {
    /// `<target>/system-images`
    out: PathBuf,
    version: String,
    /// name → archive
    archives: BTreeMap<String, PathBuf>,
}

impl Build {
    fn tag(&self, name: &str) -> String {
        format!("ros/{name}:{}", self.version)
    }

    fn store(&self) -> PathBuf {
        self.out.join("images/store")
    }
}

fn prerequisites(test: &str) -> bool {
    require_root(test)
        && [
            "docker",
            "apt-get",
            "apt-cache",
            "dpkg-deb",
            "ssh",
            "ssh-keygen",
            "nsenter",
        ]
        .iter()
        .all(|t| require_tool(test, t))
}

/// Runs `ros-image-build` once (per test binary), showing its progress and its size table.
fn build(test: &str) -> Option<&'static Build> {
    static BUILD: OnceLock<Result<Build, String>> = OnceLock::new();
    if !prerequisites(test) {
        return None;
    }
    match BUILD.get_or_init(run_build) {
        Ok(b) => Some(b),
        Err(e) => panic!("{e}"),
    }
}

fn run_build() -> Result<Build, String> {
    let out = ros_tests::target_dir().join("system-images");
    let cache = ros_tests::workspace_dir().join(".cache/image-build");
    let mut cmd = Command::new(bin_path("ros-image-build"));
    cmd.arg("--out")
        .arg(&out)
        .arg("--cache")
        .arg(&cache)
        .arg("--no-disks")
        .env_remove("VERSION")
        .env_remove("SOURCE_DATE_EPOCH")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // Progress straight to the terminal: the first build downloads for minutes.
        .stderr(Stdio::inherit());
    say(&format!(
        "building the system images into {} (cache {}); the first build downloads ~100 MB",
        out.display(),
        cache.display()
    ));
    let rendered = render_cmd(&cmd);
    let start = Instant::now();
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {rendered}: {e}"))?;
    let output = wait_with_timeout(child, BUILD_TIMEOUT).map_err(|e| format!("{rendered}: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(format!(
            "{rendered} failed ({}) after {:?}; its errors are above. stdout:\n{stdout}",
            output.status,
            start.elapsed()
        ));
    }
    say(&format!(
        "build done in {:.1}s:\n{stdout}",
        start.elapsed().as_secs_f64()
    ));
    let manifest: serde_json::Value = serde_json::from_slice(
        &fs::read(out.join("manifest.json")).map_err(|e| format!("manifest.json: {e}"))?,
    )
    .map_err(|e| format!("manifest.json: {e}"))?;
    let version = manifest["version"]
        .as_str()
        .ok_or("manifest.json has no version")?
        .to_string();
    let mut archives = BTreeMap::new();
    for name in IMAGES {
        let file = manifest["images"][name]["file"]
            .as_str()
            .ok_or_else(|| format!("manifest.json lists no image {name}:\n{manifest:#}"))?;
        archives.insert(name.to_string(), out.join(file));
    }
    Ok(Build {
        out,
        version,
        archives,
    })
}

fn wait_with_timeout(mut child: Child, timeout: Duration) -> Result<std::process::Output, String> {
    let stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut s) = stdout {
            let _ = std::io::Read::read_to_end(&mut s, &mut buf);
        }
        buf
    });
    match poll_for(timeout, || child.try_wait().ok().flatten()) {
        Some(status) => Ok(std::process::Output {
            status,
            stdout: reader.join().unwrap_or_default(),
            stderr: Vec::new(),
        }),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!("timed out after {timeout:?}"))
        }
    }
}

/// Polls `cmd` until it succeeds and `ok` accepts it; returns the last output.
fn poll_cmd(
    timeout: Duration,
    mut cmd: impl FnMut() -> Output,
    ok: impl Fn(&Output) -> bool,
) -> Output {
    let mut last = None;
    poll_until(timeout, || {
        let out = cmd();
        let done = out.success() && ok(&out);
        last = Some(out);
        done
    });
    last.expect("polled at least once")
}

fn ssh(pid: u32, key: &Path, extra: &[&str], remote: &str) -> Output {
    let mut cmd = Command::new("nsenter");
    cmd.arg("-t")
        .arg(pid.to_string())
        .arg("-n")
        .arg("ssh")
        .args(ros_tests::guest::ssh_args(key, 22))
        .args(extra)
        .arg("rancher@127.0.0.1")
        .arg(remote);
    run(&mut cmd, Duration::from_secs(30))
}

/// Every image loaded with `docker load` into a fresh engine, and each one's real program
/// run: syslog, chrony, udev, sshd with sudo and the docker CLI, the user engine running a
/// container, qemu-ga.
#[test]
fn system_images_run() {
    const T: &str = "system_images_run";
    let Some(b) = build(T) else { return };
    let Some(fx) = fixtures(T) else { return };
    let tmp = ros_tests::tempdir();
    let d = Daemon::start(tmp.path());
    let mut c = Checks::new(T);

    let start = Instant::now();
    for (name, archive) in &b.archives {
        let out = d.load(archive);
        c.check(
            out.out().contains(&b.tag(name)),
            &format!("docker load names {}", b.tag(name)),
            &out,
        );
    }
    say(&format!(
        "loaded {} images in {:.1}s",
        b.archives.len(),
        start.elapsed().as_secs_f64()
    ));
    let images = d.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    for name in IMAGES {
        c.check(
            images.lines().contains(&b.tag(name)),
            &format!("docker images lists {}", b.tag(name)),
            &images,
        );
    }

    syslog(&d, b, &mut c);
    ntp(&d, b, &mut c);
    udev(&d, b, &mut c);
    // sshd in the container's own network namespace, reached through nsenter (never the
    // host's port 22); key-only; rancher with sudo and the docker CLI.
    console(&d, b, tmp.path(), &mut c);
    // The user engine, privileged but in its own network namespace, without iptables; its
    // socket reached through the /run volume.
    user_engine(&d, b, tmp.path(), &fx.busybox_tar, &mut c);

    // qemu-guest-agent (optional service): the agent runs.
    let tag = b.tag("qemu-guest-agent");
    let v = d.docker(&["run", "--rm", &tag, "qemu-ga", "--version"]);
    c.check(
        v.success() && v.out().contains("QEMU Guest Agent"),
        "qemu-ga --version",
        &v,
    );

    c.finish_with(|| d.log_tail(40));
}

/// `docker -H <d> …` with the words of `cmd` (none has spaces) as arguments.
fn dk(d: &Daemon, cmd: &str) -> Output {
    d.docker(&cmd.split_whitespace().collect::<Vec<_>>())
}

/// busybox syslogd on /dev/log → /var/log/messages (no klogd: the host's kernel log is not
/// ours to read).
fn syslog(d: &Daemon, b: &Build, c: &mut Checks) {
    const MESSAGE: &str = "ros-test: hello from the system_images test";
    let tag = b.tag("syslog");
    let run = dk(
        d,
        &format!("run -d --name syslog -e ROS_SYSLOG_KLOGD=0 {tag}"),
    );
    if c.ok(&run, "start syslog") {
        let started = poll_cmd(
            START_TIMEOUT,
            || dk(d, "exec syslog cat /var/log/messages"),
            |o| o.stdout.contains("syslogd started"),
        );
        c.check(
            started.stdout.contains("syslogd started"),
            "syslogd writes /var/log/messages",
            &started,
        );
        let logger = d.docker(&[
            "exec",
            "syslog",
            "logger",
            "-t",
            "ros-test",
            "hello from the system_images test",
        ]);
        c.ok(&logger, "logger in the syslog container");
        let got = poll_cmd(
            Duration::from_secs(20),
            || dk(d, "exec syslog cat /var/log/messages"),
            |o| o.stdout.contains(MESSAGE),
        );
        c.check(
            got.stdout.contains(MESSAGE),
            "the logger message reaches /var/log/messages",
            &got,
        );
    }
}

/// chronyd -x (never the clock), a loopback server only.
fn ntp(d: &Daemon, b: &Build, c: &mut Checks) {
    let tag = b.tag("ntp");
    let run = dk(
        d,
        &format!("run -d --name ntp -e ROS_NTP_NO_CLOCK=1 -e ROS_NTP_SERVERS=127.0.0.1 {tag}"),
    );
    if c.ok(&run, "start ntp") {
        let tracking = poll_cmd(
            START_TIMEOUT,
            || dk(d, "exec ntp chronyc -n tracking"),
            |o| o.stdout.contains("Reference ID"),
        );
        c.check(
            tracking.success() && tracking.stdout.contains("Reference ID"),
            "chronyc tracking answers",
            &tracking,
        );
        let sources = dk(d, "exec ntp chronyc -n sources");
        c.check(
            sources.success() && sources.stdout.contains("127.0.0.1"),
            "chronyc sources lists the configured server",
            &sources,
        );
        let logs = d.docker(&["logs", "ntp"]);
        c.check(
            logs.all().contains("Disabled control of system clock"),
            "chronyd runs with -x (never touches the clock)",
            &logs,
        );
    }
}

/// udevadm runs; systemd-udevd starts without coldplug in the container's own mount
/// namespace (read-only /sys, private /dev) and network namespace (no uevents).
fn udev(d: &Daemon, b: &Build, c: &mut Checks) {
    let tag = b.tag("udev");
    let version = d.docker(&["run", "--rm", &tag, "udevadm", "--version"]);
    c.check(
        version.success() && version.out().parse::<u32>().is_ok_and(|v| v >= 252),
        "udevadm --version prints systemd's version",
        &version,
    );
    let run = dk(
        d,
        &format!("run -d --name udev -e ROS_UDEV_COLDPLUG=0 {tag}"),
    );
    if c.ok(&run, "start udev") {
        let ping = poll_cmd(
            START_TIMEOUT,
            || dk(d, "exec udev udevadm control --ping"),
            |_| true,
        );
        c.ok(&ping, "systemd-udevd answers udevadm control --ping");
        let logs = d.docker(&["logs", "udev"]);
        c.check(
            logs.all().contains("coldplug skipped"),
            "coldplug skipped (ROS_UDEV_COLDPLUG=0)",
            &logs,
        );
        let ps = dk(d, "exec udev ps -o comm");
        c.check(
            ps.stdout.contains("systemd-udevd"),
            "systemd-udevd is the running program",
            &ps,
        );
    }
    // The coldplug path itself, over an empty tmpfs where /sys would be: trigger finds no
    // device to write to, so it touches nothing, but the entrypoint runs as it will at boot.
    let run = dk(
        d,
        &format!("run -d --name udev-coldplug --tmpfs /sys {tag}"),
    );
    if c.ok(&run, "start udev with coldplug over an empty /sys") {
        let done = poll_cmd(
            START_TIMEOUT,
            || d.docker(&["logs", "udev-coldplug"]),
            |o| o.all().contains("coldplug done"),
        );
        c.check(
            done.all().contains("coldplug done"),
            "coldplug runs to the end",
            &done,
        );
        let marker = dk(d, "exec udev-coldplug test -e /run/udev/ros-coldplug-done");
        c.ok(&marker, "coldplug leaves its marker");
        let ping = dk(d, "exec udev-coldplug udevadm control --ping");
        c.ok(&ping, "the same systemd-udevd still runs after coldplug");
        let t = Instant::now();
        let stop = dk(d, "stop -t 20 udev-coldplug");
        c.check(
            stop.success() && t.elapsed() < Duration::from_secs(10),
            "docker stop reaches systemd-udevd through the entrypoint (no kill after the timeout)",
            format!("{stop}\nafter {:?}", t.elapsed()),
        );
    }
}

fn console(d: &Daemon, b: &Build, tmp: &Path, c: &mut Checks) {
    let home = tmp.join("home");
    let keys = tmp.join("ssh-host-keys");
    let ssh_dir = home.join("rancher/.ssh");
    fs::create_dir_all(&ssh_dir).expect("home");
    fs::create_dir_all(&keys).expect("keys dir");
    let key = tmp.join("id_ed25519");
    let kg = run(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "ros-test", "-f"])
            .arg(&key),
        Duration::from_secs(30),
    );
    if !c.ok(&kg, "ssh-keygen for the test key") {
        return;
    }
    fs::copy(key.with_extension("pub"), ssh_dir.join("authorized_keys")).expect("authorized_keys");
    for p in [
        home.join("rancher"),
        ssh_dir.clone(),
        ssh_dir.join("authorized_keys"),
    ] {
        nix::unistd::chown(&p, Some(1100.into()), Some(1100.into())).expect("chown");
    }
    fs::set_permissions(&ssh_dir, fs::Permissions::from_mode(0o700)).expect("chmod");

    let tag = b.tag("console");
    let home_v = format!("{}:/home", home.display());
    let keys_v = format!("{}:/var/lib/ros/ssh", keys.display());
    // sudo is setuid: the engine's no_new_privs default would stop it (the catalog runs the
    // console privileged; here it stays unprivileged, off the host's /dev).
    let run = dk(
        d,
        &format!(
            "run -d --name console --security-opt no-new-privileges:false -v {home_v} \
             -v {keys_v} {tag}"
        ),
    );
    if !c.ok(&run, "start console") {
        return;
    }
    let Some(pid) = poll_for(START_TIMEOUT, || {
        let logs = d.docker(&["logs", "console"]);
        logs.all()
            .contains("Server listening")
            .then(|| d.container_pid("console"))
            .flatten()
    }) else {
        c.check(
            false,
            "sshd listens in the console",
            d.docker(&["logs", "console"]),
        );
        return;
    };
    // The RSA key is made after sshd started (it is slow on small machines), for sshd's
    // next start: sshd is not reloaded for it (a reload re-executes sshd, and a connection
    // made in that moment would be refused).
    let made = poll_for(START_TIMEOUT, || {
        let logs = d.docker(&["logs", "console"]).all();
        logs.contains("generated SSH host key /var/lib/ros/ssh/ssh_host_rsa_key")
            .then_some(logs)
    });
    c.check(
        made.as_ref()
            .is_some_and(|logs| logs.matches("Server listening on 0.0.0.0").count() == 1),
        "the RSA host key is made after sshd starts, which keeps listening (no reload)",
        d.docker(&["logs", "console"]),
    );
    let sshd_t = d.docker(&["exec", "console", "/usr/sbin/sshd", "-t"]);
    c.ok(&sshd_t, "sshd -t accepts the configuration");
    for t in ["ed25519", "ecdsa", "rsa"] {
        let k = keys.join(format!("ssh_host_{t}_key"));
        c.check(
            fs::metadata(&k).is_ok_and(|m| m.len() > 0 && m.mode() & 0o077 == 0),
            &format!("host key {t} made at first start in the volume, private"),
            k.display(),
        );
    }
    let out = ssh(
        pid,
        &key,
        &[],
        "id -un; id -Gn; sudo -n id -u; docker --version",
    );
    let lines = out.lines();
    c.check(
        out.success()
            && lines.first().map(String::as_str) == Some("rancher")
            && lines
                .get(1)
                .is_some_and(|g| g.split(' ').any(|g| g == "docker"))
            && lines.get(2).map(String::as_str) == Some("0")
            && lines
                .get(3)
                .is_some_and(|l| l.starts_with("Docker version")),
        "ssh rancher@ (key) → rancher, in group docker, passwordless sudo, docker CLI",
        &out,
    );
    let pw = ssh(
        pid,
        &key,
        &[
            "-o",
            "PreferredAuthentications=password,keyboard-interactive",
            "-o",
            "PubkeyAuthentication=no",
        ],
        "true",
    );
    c.check(!pw.success(), "no password logins", &pw);
    let ps = dk(d, "exec console ps -o comm");
    c.check(
        ps.success() && !ps.stdout.contains("getty"),
        "no getty without ROS_CONSOLE_GETTY",
        &ps,
    );
    // With gettys the entrypoint supervises them and sshd; `null` stands in for a terminal
    // (getty fails on it and is respawned), so no real console is touched.
    let run = dk(
        d,
        &format!(
            "run -d --name console-getty -e ROS_CONSOLE_GETTY=null -e ROS_SSH_PORT=2222 \
             -v {keys_v} {tag}"
        ),
    );
    if c.ok(&run, "start a console with a getty") {
        let ps = poll_cmd(
            START_TIMEOUT,
            || dk(d, "exec console-getty ps -o comm"),
            |o| o.stdout.contains("sshd"),
        );
        c.check(
            ps.stdout.contains("sshd"),
            "sshd runs beside the getty loop",
            &ps,
        );
        let t = Instant::now();
        let stop = dk(d, "stop -t 20 console-getty");
        c.check(
            stop.success() && t.elapsed() < Duration::from_secs(10),
            "docker stop ends sshd and the gettys through the entrypoint",
            format!("{stop}\nafter {:?}", t.elapsed()),
        );
    }
    // Host keys are kept across restarts (they are per host, made once).
    let before = fs::read(keys.join("ssh_host_ed25519_key.pub")).unwrap_or_default();
    // (Listening once already, since the start.)
    let restart = d.docker(&["restart", "console"]);
    c.ok(&restart, "restart console");
    poll_until(START_TIMEOUT, || {
        d.docker(&["logs", "console"])
            .all()
            .matches("Server listening on 0.0.0.0")
            .count()
            >= 2
    });
    let after = fs::read(keys.join("ssh_host_ed25519_key.pub")).unwrap_or_default();
    c.check(
        !before.is_empty() && before == after,
        "host keys survive a restart",
        d.docker(&["logs", "console"]),
    );
}

fn user_engine(d: &Daemon, b: &Build, tmp: &Path, busybox_tar: &Path, c: &mut Checks) {
    let data = tmp.join("docker-data");
    let runp = tmp.join("docker-run");
    fs::create_dir_all(&data).expect("docker data");
    fs::create_dir_all(&runp).expect("docker run");
    let tag = b.tag("docker");
    let data_v = format!("{}:/var/lib/docker", data.display());
    let run_v = format!("{}:/run", runp.display());
    let run = d.docker(&[
        "run",
        "-d",
        "--name",
        "docker",
        "--privileged",
        "-e",
        "ROS_DOCKER_ARGS=--iptables=false --ip6tables=false",
        "-v",
        &data_v,
        "-v",
        &run_v,
        &tag,
    ]);
    if !c.ok(&run, "start the user engine") {
        return;
    }
    let sock = runp.join("docker.sock");
    let host = format!("unix://{}", sock.display());
    let user = |args: &[&str], timeout: Duration| {
        let mut cmd = Command::new("docker");
        cmd.env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env("DOCKER_CONFIG", tmp.join("docker-config"))
            .arg("-H")
            .arg(&host)
            .args(args);
        ros_tests::run(&mut cmd, timeout)
    };
    let ready = poll_until(START_TIMEOUT, || {
        http_unix(&sock, "GET", "/_ping", None, b"").is_ok_and(|r| r.status == 200)
    });
    if !c.check(
        ready,
        "dockerd answers on /run/docker.sock",
        d.docker(&["logs", "--tail", "30", "docker"]),
    ) {
        return;
    }
    let md = fs::metadata(&sock);
    c.check(
        md.as_ref()
            .is_ok_and(|m| m.mode() & 0o777 == 0o660 && m.uid() == 0 && m.gid() == 1101),
        "docker.sock is 0660 root:docker (gid 1101)",
        format!("{md:?}"),
    );
    let load = user(
        &["load", "-i", &busybox_tar.to_string_lossy()],
        Duration::from_secs(60),
    );
    if !c.ok(&load, "docker load into the user engine") {
        return;
    }
    let echo = user(
        &["run", "--rm", "busybox", "echo", "ok"],
        Duration::from_secs(60),
    );
    c.out_eq(
        &echo,
        "ok",
        "docker run --rm busybox echo ok in the user engine",
    );
    let info = user(
        &["info", "--format", "{{.Driver}}"],
        Duration::from_secs(30),
    );
    c.out_eq(
        &info,
        "overlay2",
        "the user engine stores images with overlay2",
    );
    // The archives are what the stock engine loads too (Debian's dockerd 20.10 here).
    let syslog = &b.archives["syslog"];
    let load = user(
        &["load", "-i", &syslog.to_string_lossy()],
        Duration::from_secs(60),
    );
    if c.ok(&load, "stock dockerd loads a ros-image-build archive") {
        let tag = b.tag("syslog");
        let echo = user(
            &["run", "--rm", &tag, "echo", "from dockerd"],
            Duration::from_secs(60),
        );
        c.out_eq(
            &echo,
            "from dockerd",
            "the loaded image runs on stock dockerd",
        );
    }
}

/// A daemon started with `--image-store <out>/images/store` lists and runs the system
/// images without loading anything.
#[test]
fn readonly_store() {
    const T: &str = "readonly_store";
    let Some(b) = build(T) else { return };
    let store = b.store();
    assert!(
        store.join("repositories.json").is_file(),
        "the build made no store at {}",
        store.display()
    );
    let tmp = ros_tests::tempdir();
    let d = StoreDaemon::start(tmp.path(), &store);
    let mut c = Checks::new(T);
    let images = d.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    for name in IMAGES {
        c.check(
            images.lines().contains(&b.tag(name)),
            &format!("the store's {} is listed", b.tag(name)),
            &images,
        );
    }
    let udev = d.docker(&["run", "--rm", &b.tag("udev"), "udevadm", "--version"]);
    c.check(
        udev.success() && udev.out().parse::<u32>().is_ok(),
        "udevadm runs from the store",
        &udev,
    );
    let ssh = d.docker(&["run", "--rm", &b.tag("console"), "ssh", "-V"]);
    c.check(
        ssh.all().contains("OpenSSH"),
        "ssh runs from the store",
        &ssh,
    );
    let dockerd = d.docker(&["run", "--rm", &b.tag("docker"), "dockerd", "--version"]);
    c.check(
        dockerd.success() && dockerd.out().starts_with("Docker version"),
        "dockerd runs from the store",
        &dockerd,
    );
    let loaded = fs::read_dir(tmp.path().join("data/image/layers/sha256"))
        .map(|rd| rd.count())
        .unwrap_or(0);
    c.check(
        loaded == 0,
        "nothing was unpacked into the writable store",
        format!("{loaded} layer(s) in the writable store"),
    );
    c.finish_with(|| d.log_tail());
}

/// The engine daemon with a read-only image store (the fixture's `Daemon` takes no extra
/// flags); cleaned up like it on drop.
struct StoreDaemon {
    root: PathBuf,
    child: Child,
}

impl StoreDaemon {
    fn start(tmp: &Path, store: &Path) -> StoreDaemon {
        let root = tmp.canonicalize().expect("tempdir");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.join("daemon.log"))
            .expect("daemon log");
        let mut cmd = Command::new(bin_path(ros_tests::ENGINE_BIN));
        cmd.arg("daemon")
            .arg("-H")
            .arg(format!("unix://{}", root.join("sd.sock").display()))
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("exec"))
            .arg("--pidfile")
            .arg(root.join("sd.pid"))
            .arg("--image-store")
            .arg(store)
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        let rendered = render_cmd(&cmd);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {rendered}: {e}"));
        let d = StoreDaemon { root, child };
        let up = poll_until(ros_tests::DAEMON_START_TIMEOUT, || {
            http_unix(&d.root.join("sd.sock"), "GET", "/_ping", None, b"")
                .is_ok_and(|r| r.status == 200)
        });
        assert!(
            up,
            "daemon did not start:\n  $ {rendered}\n{}",
            d.log_tail()
        );
        d
    }

    fn docker(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(ros_tests::DOCKER_CLI);
        cmd.env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env("DOCKER_CONFIG", self.root.join("docker-config"))
            .arg("-H")
            .arg(format!("unix://{}", self.root.join("sd.sock").display()))
            .args(args);
        run(&mut cmd, Duration::from_secs(60))
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(self.root.join("daemon.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for StoreDaemon {
    fn drop(&mut self) {
        let ids = self.docker(&["ps", "-aq"]);
        if ids.success() && !ids.lines().is_empty() {
            let mut args = vec!["rm", "-f"];
            let lines = ids.lines();
            args.extend(lines.iter().map(String::as_str));
            let _ = self.docker(&args);
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        if poll_for(Duration::from_secs(15), || {
            self.child.try_wait().ok().flatten()
        })
        .is_none()
        {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        kill_processes_referring_to(&self.root);
        detach_mounts_under(&self.root);
    }
}
