//! The default catalog (`services/catalog/os-config.yml`, unchanged) brought up by
//! `ros service up` on a fresh system-docker loaded with the real system images: udev,
//! syslog, ntp, console and docker run, in dependency order; the reconciler is idempotent
//! and recreates only a changed service; syslog, chrony, sshd (with sudo and the docker CLI)
//! and the user engine really work; bad service YAML is reported by service and field while
//! the defaults keep running.
//!
//! How the machine is kept out of it (both measures, not one or the other):
//! - **Host paths: a user config.** `T/var/lib/ros/conf/cloud-config.yml` redefines every
//!   default service's `volumes:` list (lists replace) with the same container paths over
//!   sources in the test's tempdir (`<tmp>/host/run`, `…/var/log`, `…/etc/passwd` — a
//!   minimal copy, `…/home`, an empty `…/lib/modules` so no udev rule can load a module, …),
//!   and sets the host-test switches: `ROS_UDEV_COLDPLUG=0`, `ROS_SYSLOG_KLOGD=0`,
//!   `ROS_NTP_NO_CLOCK=1` (chronyd -x) with only a loopback server, `ROS_CONSOLE_GETTY=""`
//!   (no getty), `ROS_DOCKER_ARGS=--iptables=false --ip6tables=false`. A bind-mount-over
//!   approach alone would not do: several of the catalog's sources (/var/lib/docker,
//!   /var/lib/ros, /usr/bin/ros) do not exist on a build machine and the engine would create
//!   them there.
//! - **Devices, network, hostname: namespaces.** The daemon runs under
//!   `unshare --net --mount --uts --ipc --propagation private`, which brings `lo` up and
//!   mounts a private tmpfs `/dev` (null, zero, full, random, urandom, tty, a new devpts
//!   instance, shm) before exec'ing the daemon: privileged containers bind the daemon's `/dev`,
//!   so syslogd's `/dev/log` and anything udevd would create land there, never in the
//!   machine's `/dev`. `net: host` / `uts: host` services share the test's network and UTS
//!   namespaces; sshd on port 22 is reached with `nsenter --net` into them. The daemon's
//!   socket, data and exec roots are in the tempdir.
//!
//! Cleanup (also on failure, from `Drop`): every container removed through the API, the
//! daemon SIGTERMed by PID (SIGKILL after 15 s), leftover processes referring to the tempdir
//! killed; the namespaces and their mounts go with their last process.
//!
//! Needs root, the docker CLI, unshare, nsenter, ip, ssh, ssh-keygen, apt (for a cold image
//! build) and the image fixtures; skips loudly otherwise. Warm: about 5 s.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ros_tests::{
    bin_path, detach_mounts_under, fixtures, http_unix, kill_processes_referring_to, poll_for,
    poll_until, render_cmd, require_root, require_tool, run, Checks, Output,
};

const T: &str = "default_services";
const BUILD_TIMEOUT: Duration = Duration::from_secs(20 * 60);
const UP_TIMEOUT: Duration = Duration::from_secs(120);
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The default services of the catalog.
const DEFAULTS: [&str; 6] = ["udev", "syslog", "network", "ntp", "console", "docker"];

fn say(msg: &str) {
    let _ = std::io::stderr()
        .lock()
        .write_all(format!("{T}: {msg}\n").as_bytes());
}

// ---------------------------------------------------------------------------------------------
// The images (as system_images.rs builds them: same output dir and package cache)

/// Runs `ros-image-build` (warm: seconds) and returns its read-only store.
fn build_store() -> PathBuf {
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
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let rendered = render_cmd(&cmd);
    say(&format!("$ {rendered}"));
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {rendered}: {e}"));
    let status = poll_for(BUILD_TIMEOUT, || child.try_wait().ok().flatten());
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{rendered}: timed out after {BUILD_TIMEOUT:?}");
    };
    assert!(
        status.success(),
        "{rendered} failed ({status}); its errors are above"
    );
    say(&format!(
        "images built in {:.1}s",
        start.elapsed().as_secs_f64()
    ));
    let store = out.join("images/store");
    assert!(
        store.join("repositories.json").is_file(),
        "the build made no store at {}",
        store.display()
    );
    store
}

// ---------------------------------------------------------------------------------------------
// The daemon in its own network, mount, UTS and IPC namespaces

/// Run by `sh` inside the new namespaces before it execs the daemon (`"$@"`).
const NS_SETUP: &str = r#"set -eu
ip link set lo up
mount -t tmpfs -o mode=0755,size=65536k,nosuid ros-test-dev /dev
mk() { mknod -m 0666 "/dev/$1" c "$2" "$3"; }
mk null 1 3; mk zero 1 5; mk full 1 7; mk random 1 8; mk urandom 1 9; mk tty 5 0
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts
ln -s pts/ptmx /dev/ptmx
mount -t tmpfs -o mode=1777,nosuid,nodev shm /dev/shm
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
exec "$@"
"#;

struct NsDaemon {
    root: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl NsDaemon {
    fn start(root: &Path, store: &Path) -> NsDaemon {
        let socket = root.join("sd.sock");
        let log = root.join("daemon.log");
        fs::create_dir_all(root.join("docker-config")).expect("docker config dir");
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("daemon log");
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--net",
            "--mount",
            "--uts",
            "--ipc",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            NS_SETUP,
            "sh",
        ])
        .arg(bin_path(ros_tests::ENGINE_BIN))
        .arg("daemon")
        .arg("-H")
        .arg(format!("unix://{}", socket.display()))
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
        .stdout(out.try_clone().expect("dup log"))
        .stderr(out);
        let rendered = render_cmd(&cmd);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {rendered}: {e}"));
        let mut d = NsDaemon {
            root: root.to_path_buf(),
            socket,
            log,
            child: Some(child),
        };
        let mut exited = None;
        let up = poll_until(ros_tests::DAEMON_START_TIMEOUT, || {
            if let Some(Ok(Some(st))) = d.child.as_mut().map(Child::try_wait) {
                exited = Some(st);
                return true;
            }
            http_unix(&d.socket, "GET", "/_ping", None, b"").is_ok_and(|r| r.status == 200)
        });
        if let Some(st) = exited {
            d.child = None;
            panic!(
                "daemon exited during startup ({st}):\n  $ {rendered}\n{}",
                d.log_tail(40)
            );
        }
        assert!(
            up,
            "daemon did not start:\n  $ {rendered}\n{}",
            d.log_tail(40)
        );
        d
    }

    fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The daemon's PID: unshare and sh exec, so it is the child's; its network namespace
    /// is the services' `net: host`.
    fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("daemon runs")
    }

    fn docker(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(ros_tests::DOCKER_CLI);
        cmd.env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env("DOCKER_CONFIG", self.root.join("docker-config"))
            .env("DOCKER_CLI_HINTS", "false")
            .arg("-H")
            .arg(self.host())
            .args(args);
        run(&mut cmd, Duration::from_secs(60))
    }

    fn inspect(&self, format: &str, name: &str) -> String {
        let out = self.docker(&["inspect", "-f", format, name]);
        if out.success() {
            out.out().to_string()
        } else {
            format!("<docker inspect failed>\n{out}")
        }
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        format!(
            "  --- daemon log ({}) ---\n{}",
            self.log.display(),
            all[all.len().saturating_sub(lines)..].join("\n")
        )
    }
}

impl Drop for NsDaemon {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(None)) {
            let ids = self.docker(&["ps", "-aq"]);
            if ids.success() && !ids.lines().is_empty() {
                let lines = ids.lines();
                let mut args = vec!["rm", "-f"];
                args.extend(lines.iter().map(String::as_str));
                let _ = self.docker(&args);
            }
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        if poll_for(Duration::from_secs(15), || child.try_wait().ok().flatten()).is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        kill_processes_referring_to(&self.root);
        detach_mounts_under(&self.root);
    }
}

// ---------------------------------------------------------------------------------------------
// The ros tree and the user config

/// `<tmp>/host`: what the services get instead of the machine's paths.
struct HostDirs {
    base: PathBuf,
}

impl HostDirs {
    fn p(&self, rel: &str) -> PathBuf {
        self.base.join(rel.trim_start_matches('/'))
    }

    fn create(base: PathBuf) -> HostDirs {
        let h = HostDirs { base };
        for d in [
            "run",
            "var/log",
            "var/lib/ros/ntp",
            "var/lib/docker",
            "etc/docker",
            "home",
            "opt",
            "mnt",
            "media",
            "lib/modules",
            "lib/firmware",
        ] {
            fs::create_dir_all(h.p(d)).expect("host dir");
        }
        for (f, text, mode) in [
            ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644),
            ("etc/group", "root:x:0:\n", 0o644),
            ("etc/shadow", "root:*:19723:0:99999:7:::\n", 0o600),
            ("etc/resolv.conf", "nameserver 127.0.0.1\n", 0o644),
        ] {
            fs::write(h.p(f), text).expect("host file");
            fs::set_permissions(h.p(f), fs::Permissions::from_mode(mode)).expect("chmod");
        }
        h
    }

    /// `SRC:DEST[:opts]` with SRC under this dir (or an absolute path outside it).
    fn vol(&self, src: &str, dest: &str, opts: &str) -> String {
        let s = if src.starts_with("@bin/") {
            bin_path(src.trim_start_matches("@bin/"))
                .display()
                .to_string()
        } else {
            self.p(src).display().to_string()
        };
        if opts.is_empty() {
            format!("\"{s}:{dest}\"")
        } else {
            format!("\"{s}:{dest}:{opts}\"")
        }
    }
}

/// The user config: every default service's volumes over the tempdir, the host-test
/// switches, and `extra` appended under `ros.services`.
fn user_config(h: &HostDirs, ntp_extra_env: &str, extra: &str) -> String {
    let v = |src: &str, dest: &str, opts: &str| h.vol(src, dest, opts);
    let list = |vs: Vec<String>| {
        vs.iter()
            .map(|s| format!("        - {s}\n"))
            .collect::<String>()
    };
    format!(
        "#cloud-config\nros:\n  services:\n\
         \x20   udev:\n      environment:\n        ROS_UDEV_COLDPLUG: \"0\"\n      volumes:\n{}\
         \x20   syslog:\n      environment:\n        ROS_SYSLOG_KLOGD: \"0\"\n      volumes:\n{}\
         \x20   network:\n      volumes:\n{}\
         \x20   ntp:\n      environment:\n        ROS_NTP_NO_CLOCK: \"1\"\n        ROS_NTP_SERVERS: \"127.0.0.1\"\n{ntp_extra_env}      volumes:\n{}\
         \x20   console:\n      environment:\n        ROS_CONSOLE_GETTY: \"\"\n      volumes:\n{}\
         \x20   docker:\n      environment:\n        ROS_DOCKER_ARGS: \"--iptables=false --ip6tables=false\"\n      volumes:\n{}\
         {extra}",
        list(vec![
            v("lib/modules", "/lib/modules", "ro"),
            v("lib/firmware", "/lib/firmware", "ro"),
            v("run", "/run", ""),
        ]),
        list(vec![v("var/log", "/var/log", "")]),
        list(vec![
            v("@bin/ros", "/usr/bin/ros", "ro"),
            v("etc", "/host/etc", ""),
        ]),
        list(vec![v("var/lib/ros/ntp", "/var/lib/chrony", "")]),
        list(vec![
            v("etc/passwd", "/etc/passwd", ""),
            v("etc/group", "/etc/group", ""),
            v("etc/shadow", "/etc/shadow", ""),
            v("etc/resolv.conf", "/etc/resolv.conf", ""),
            v("home", "/home", "shared"),
            v("opt", "/opt", "shared"),
            v("mnt", "/mnt", "shared"),
            v("media", "/media", "shared"),
            v("run", "/run", ""),
            v("var/log", "/var/log", ""),
            v("var/lib/ros", "/var/lib/ros", ""),
            v("lib/modules", "/lib/modules", "ro"),
            v("@bin/ros", "/usr/bin/ros", "ro"),
            v("@bin/system-docker", "/usr/bin/system-docker", "ro"),
        ]),
        list(vec![
            v("var/lib/docker", "/var/lib/docker", ""),
            v("etc/docker", "/etc/docker", ""),
            v("run", "/run", ""),
            v("lib/modules", "/lib/modules", "ro"),
            v("home", "/home", "rshared"),
            v("opt", "/opt", "rshared"),
            v("mnt", "/mnt", "rshared"),
            v("media", "/media", "rshared"),
            v("@bin/ros", "/usr/bin/ros", "ro"),
            v("@bin/system-docker", "/usr/bin/system-docker", "ro"),
        ]),
    )
}

fn ros(d: &NsDaemon, root: &Path, args: &[&str]) -> Output {
    ros_tests::ros_service(&d.host(), root, args, UP_TIMEOUT)
}

/// `(service, after)` pairs from the catalog's `io.ros.after` labels (a line reader for
/// its two-space-indented layout: services at four spaces under `ros: services:`).
fn catalog_after(catalog: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = None;
    for line in catalog.lines() {
        let text = line.trim_start();
        if text.starts_with('#') || text.is_empty() {
            continue;
        }
        let indent = line.len() - text.len();
        if indent == 4 && text.ends_with(':') {
            current = Some(text.trim_end_matches(':').to_string());
        } else if let (Some(svc), Some(after)) = (&current, text.strip_prefix("io.ros.after:")) {
            for a in after.split(',').map(str::trim).filter(|a| !a.is_empty()) {
                out.push((svc.clone(), a.to_string()));
            }
        }
    }
    out
}

/// A timestamp of inspect as (date, nanoseconds of the day).
fn ts(s: &str) -> Option<(String, u64)> {
    let (date, time) = s.trim().split_once('T')?;
    let time = time.trim_end_matches('Z');
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut parts = hms.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, sec) = (parts.next()??, parts.next()??, parts.next()??);
    let frac: String = frac.chars().chain("000000000".chars()).take(9).collect();
    Some((
        date.to_string(),
        ((h * 60 + m) * 60 + sec) * 1_000_000_000 + frac.parse::<u64>().ok()?,
    ))
}

fn ids(d: &NsDaemon) -> BTreeMap<String, String> {
    DEFAULTS
        .iter()
        .map(|s| (s.to_string(), d.inspect("{{.Id}}", s)))
        .collect()
}

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

// ---------------------------------------------------------------------------------------------
// The test

#[test]
fn default_services() {
    if !require_root(T)
        || ![
            "docker",
            "unshare",
            "nsenter",
            "ip",
            "ssh",
            "ssh-keygen",
            "apt-get",
            "dpkg-deb",
        ]
        .iter()
        .all(|t| require_tool(T, t))
    {
        return;
    }
    let Some(fx) = fixtures(T) else { return };
    let started_at = Instant::now();
    let store = build_store();

    let tmp = ros_tests::tempdir();
    let base = tmp.path().canonicalize().expect("tempdir");
    let h = HostDirs::create(base.join("host"));
    let root = base.join("root");
    let catalog_text =
        fs::read_to_string(ros_tests::workspace_dir().join("services/catalog/os-config.yml"))
            .expect("catalog");
    ros_tests::write_file(&root.join("usr/share/ros/os-config.yml"), &catalog_text);
    let user_path = root.join("var/lib/ros/conf/cloud-config.yml");
    ros_tests::write_file(&user_path, &user_config(&h, "", ""));

    // rancher's key, where the console expects it: /home/rancher/.ssh/authorized_keys.
    let key = base.join("id_ed25519");
    let kg = run(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "ros-test", "-f"])
            .arg(&key),
        Duration::from_secs(30),
    );
    assert!(kg.success(), "ssh-keygen: {kg}");
    let ssh_dir = h.p("home/rancher/.ssh");
    fs::create_dir_all(&ssh_dir).expect("ssh dir");
    fs::copy(key.with_extension("pub"), ssh_dir.join("authorized_keys")).expect("authorized_keys");
    for p in [
        h.p("home/rancher"),
        ssh_dir.clone(),
        ssh_dir.join("authorized_keys"),
    ] {
        nix::unistd::chown(&p, Some(1100.into()), Some(1100.into())).expect("chown");
    }
    fs::set_permissions(&ssh_dir, fs::Permissions::from_mode(0o700)).expect("chmod");
    fs::set_permissions(h.p("home/rancher"), fs::Permissions::from_mode(0o750)).expect("chmod");

    let d = NsDaemon::start(&base, &store);
    let mut c = Checks::new(T);
    let netns = format!("/proc/{}/ns/net", d.pid());
    c.check(
        fs::read_link(&netns).ok() != fs::read_link("/proc/self/ns/net").ok(),
        "the daemon runs in a network namespace of its own",
        format!("{:?}", fs::read_link(&netns)),
    );

    // --- first up: the default services, in dependency order
    let up = ros(&d, &root, &["up"]);
    c.ok(&up, "ros service up (default catalog)");
    for s in DEFAULTS {
        let want = format!("{s}: created, started");
        c.check(
            up.stdout.contains(&want),
            &format!("up reports {want:?}"),
            &up,
        );
    }
    let ps = d.docker(&["ps", "--format", "{{.Names}} {{.State}}"]);
    for s in DEFAULTS {
        c.check(
            ps.lines().contains(&format!("{s} running")),
            &format!("docker ps shows {s} running"),
            &ps,
        );
    }
    let sd_ps = {
        let mut cmd = Command::new(bin_path(ros_tests::ENGINE_BIN));
        cmd.env_remove("DOCKER_HOST").arg("-H").arg(d.host()).args([
            "ps",
            "--format",
            "{{.Names}}",
        ]);
        run(&mut cmd, Duration::from_secs(30))
    };
    c.check(
        sd_ps.success()
            && DEFAULTS
                .iter()
                .all(|s| sd_ps.lines().contains(&s.to_string())),
        "system-docker ps lists the default services",
        &sd_ps,
    );
    let after = catalog_after(&catalog_text);
    c.check(
        after.len() >= 3,
        "the catalog orders its services with io.ros.after",
        format!("{after:?}"),
    );
    let mut order = String::new();
    let mut in_order = true;
    for (svc, dep) in &after {
        let (a, b) = (
            ts(&d.inspect("{{.State.StartedAt}}", dep)),
            ts(&d.inspect("{{.State.StartedAt}}", svc)),
        );
        order.push_str(&format!("{dep} {a:?} < {svc} {b:?}\n"));
        in_order &= a.is_some() && b.is_some() && a < b;
    }
    c.check(
        in_order,
        "started in the catalog's io.ros.after order",
        &order,
    );

    // --- second up: nothing changes
    let ids1 = ids(&d);
    let up2 = ros(&d, &root, &["up"]);
    c.ok(&up2, "second up");
    c.check(
        DEFAULTS
            .iter()
            .all(|s| up2.stdout.contains(&format!("{s}: unchanged"))),
        "second up leaves every service unchanged",
        &up2,
    );
    let ids2 = ids(&d);
    c.check(
        ids1 == ids2,
        "same containers after a second up",
        format!("{ids1:?}\n{ids2:?}"),
    );

    // --- a changed env var of ntp recreates ntp only
    ros_tests::write_file(
        &user_path,
        &user_config(&h, "        ROS_TEST_MARK: \"changed\"\n", ""),
    );
    let up3 = ros(&d, &root, &["up"]);
    c.ok(&up3, "up after changing ntp's environment");
    c.check(
        up3.stdout
            .contains("ntp: recreated (definition changed), started")
            && DEFAULTS
                .iter()
                .filter(|s| **s != "ntp")
                .all(|s| up3.stdout.contains(&format!("{s}: unchanged"))),
        "only ntp is recreated",
        &up3,
    );
    let ids3 = ids(&d);
    c.check(
        DEFAULTS
            .iter()
            .all(|s| (ids3[*s] == ids2[*s]) == (*s != "ntp"))
            && !ids3["ntp"].starts_with('<'),
        "ntp has a new container, the others keep theirs",
        format!("{ids2:?}\n{ids3:?}"),
    );
    c.check(
        d.inspect("{{.State.Status}}", "ntp") == "running"
            && d.inspect("{{json .Config.Env}}", "ntp")
                .contains("ROS_TEST_MARK=changed"),
        "the new ntp runs with the changed environment",
        d.inspect("{{.State.Status}} {{json .Config.Env}}", "ntp"),
    );

    behaviour(&d, &h, &key, &fx.busybox_tar, &mut c);
    bad_yaml(&d, &root, &h, &user_path, &mut c);

    say(&format!(
        "done in {:.1}s",
        started_at.elapsed().as_secs_f64()
    ));
    c.finish_with(|| {
        let mut s = d.log_tail(40);
        for svc in DEFAULTS {
            s.push_str(&format!(
                "\n  --- logs {svc} ---\n{}",
                d.docker(&["logs", "--tail", "15", svc]).all()
            ));
        }
        s
    });
    drop(d);
}

/// syslog, chrony, sshd with sudo and the docker CLI, the user engine.
fn behaviour(d: &NsDaemon, h: &HostDirs, key: &Path, busybox_tar: &Path, c: &mut Checks) {
    // syslog: logger in the syslog container and in the console (which shares /dev/log
    // through the privileged /dev) reaches <host>/var/log/messages.
    let messages = h.p("var/log/messages");
    for (svc, msg) in [
        ("syslog", "hello from the syslog container"),
        ("console", "hello from the console container"),
    ] {
        let logger = poll_cmd(
            START_TIMEOUT,
            || d.docker(&["exec", svc, "logger", "-t", "ros-test", msg]),
            |_| true,
        );
        c.ok(&logger, &format!("logger in {svc}"));
        let want = format!("ros-test: {msg}");
        let got = poll_until(Duration::from_secs(20), || {
            fs::read_to_string(&messages).is_ok_and(|m| m.contains(&want))
        });
        c.check(
            got,
            &format!("the logger message from {svc} reaches /var/log/messages"),
            fs::read_to_string(&messages)
                .unwrap_or_else(|e| format!("{}: {e}", messages.display())),
        );
    }

    // chrony answers; -x (never the clock).
    let tracking = poll_cmd(
        START_TIMEOUT,
        || d.docker(&["exec", "ntp", "chronyc", "-n", "tracking"]),
        |o| o.stdout.contains("Reference ID"),
    );
    c.check(
        tracking.success() && tracking.stdout.contains("Reference ID"),
        "chronyc tracking answers in the ntp container",
        &tracking,
    );
    let sources = d.docker(&["exec", "ntp", "chronyc", "-n", "sources"]);
    c.check(
        sources.success() && sources.stdout.contains("127.0.0.1"),
        "chronyc sources lists the configured server",
        &sources,
    );
    let logs = d.docker(&["logs", "ntp"]);
    c.check(
        logs.all().contains("Disabled control of system clock"),
        "chronyd runs with -x",
        &logs,
    );

    // The user engine: /run/docker.sock, 0660 root:docker.
    let sock = h.p("run/docker.sock");
    let ready = poll_until(START_TIMEOUT, || {
        http_unix(&sock, "GET", "/_ping", None, b"").is_ok_and(|r| r.status == 200)
    });
    c.check(
        ready,
        "the user engine answers on /run/docker.sock",
        d.docker(&["logs", "--tail", "30", "docker"]),
    );
    let md = fs::metadata(&sock);
    c.check(
        md.as_ref()
            .is_ok_and(|m| m.mode() & 0o777 == 0o660 && m.uid() == 0 && m.gid() == 1101),
        "docker.sock is 0660 root:docker",
        format!("{md:?}"),
    );

    // sshd on port 22 of the test's network namespace, key only; rancher has sudo and the
    // docker CLI talks to the user engine.
    let listening = poll_until(START_TIMEOUT, || {
        d.docker(&["logs", "console"])
            .all()
            .contains("Server listening")
    });
    c.check(listening, "sshd listens", d.docker(&["logs", "console"]));
    let ssh = |remote: &str| {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/proc/{}/ns/net", d.pid()))
            .arg("ssh")
            .args(ros_tests::guest::ssh_args(key, 22))
            .arg("rancher@127.0.0.1")
            .arg(remote);
        run(&mut cmd, Duration::from_secs(60))
    };
    let out = ssh("id -un; sudo -n true && echo sudo-ok; docker version --format '{{.Server.Os}}'");
    c.check(
        out.success() && out.lines() == ["rancher", "sudo-ok", "linux"],
        "ssh -p 22 rancher@127.0.0.1: rancher, sudo -n, docker version against the user engine",
        &out,
    );

    // docker run in the user engine.
    let user = |args: &[&str]| {
        let mut cmd = Command::new(ros_tests::DOCKER_CLI);
        cmd.env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env("DOCKER_CONFIG", h.base.join("docker-config"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .args(args);
        run(&mut cmd, Duration::from_secs(90))
    };
    let load = user(&["load", "-i", &busybox_tar.to_string_lossy()]);
    if c.ok(&load, "docker load busybox into the user engine") {
        let echo = user(&["run", "--rm", "busybox", "echo", "ok"]);
        c.out_eq(
            &echo,
            "ok",
            "docker run --rm busybox echo ok in the user engine",
        );
    }
}

/// Bad extra services in the user config: each reported by service and field; the defaults
/// keep running, unchanged.
fn bad_yaml(d: &NsDaemon, root: &Path, h: &HostDirs, user_path: &Path, c: &mut Checks) {
    let before = ids(d);
    let extra = "    cyc-x:\n      image: ros/syslog:0.1.0\n      labels:\n        io.ros.after: cyc-y\n\
                 \x20   cyc-y:\n      image: ros/syslog:0.1.0\n      labels:\n        io.ros.after: cyc-x\n\
                 \x20   dangling:\n      image: ros/syslog:0.1.0\n      labels:\n        io.ros.after: no-such-svc\n\
                 \x20   typo:\n      image: ros/syslog:0.1.0\n      privilegd: true\n\
                 \x20   wrongtype:\n      image: ros/syslog:0.1.0\n      privileged: maybe\n";
    ros_tests::write_file(
        user_path,
        &user_config(h, "        ROS_TEST_MARK: \"changed\"\n", extra),
    );
    let up = ros(d, root, &["up"]);
    c.code(&up, 1, "up with bad service YAML reports failure");
    let all = up.all();
    for want in [
        "cyc-x: failed: dependency cycle: cyc-x → cyc-y → cyc-x",
        "cyc-y: failed: dependency cycle: cyc-y → cyc-x → cyc-y",
        "dangling: failed: io.ros.after names unknown service \"no-such-svc\"",
        "service \"typo\": field \"privilegd\": unknown field (did you mean \"privileged\"?)",
        "service \"wrongtype\": field \"privileged\": invalid value: string \"maybe\", expected a boolean",
    ] {
        c.check(all.contains(want), &format!("up reports {want:?}"), &up);
    }
    for s in DEFAULTS {
        c.check(
            up.stdout.contains(&format!("{s}: unchanged"))
                && d.inspect("{{.State.Status}}", s) == "running",
            &format!("{s} still runs, unchanged, beside the bad services"),
            &up,
        );
    }
    c.check(
        ids(d) == before,
        "the default services keep their containers",
        format!("{before:?}\n{:?}", ids(d)),
    );
    for s in ["cyc-x", "cyc-y", "dangling", "typo", "wrongtype"] {
        c.check(
            d.inspect("{{.State.Status}}", s)
                .starts_with("<docker inspect failed>"),
            &format!("{s} has no container"),
            d.inspect("{{.State.Status}}", s),
        );
    }
}
