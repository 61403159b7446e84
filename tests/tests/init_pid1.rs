//! Black-box tests of PID 1: `target/debug/ros` run as `init` (multi-call via a symlink) as
//! PID 1 of a fresh PID + mount namespace (`unshare --pid --fork --mount-proc --kill-child`),
//! with busybox shell fixtures as its services (plan via `ROS_INIT_PLAN`). The outcome of a
//! shutdown is what the kernel makes of reboot(2) in a child PID namespace: init dies of
//! SIGHUP for a restart, SIGINT for halt/poweroff, and `unshare` re-raises it on itself.
//! Root only (loud skip otherwise).

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use ros_tests::{bin_path, poll_for, poll_until, require_root, require_tool, tempdir};
use serde_json::json;

const BB: &str = "/bin/busybox";
const UP: Duration = Duration::from_secs(20);

fn can_run(test: &str) -> bool {
    require_root(test) && require_tool(test, "unshare") && require_tool(test, BB)
}

/// A service: `sh -c script` with busybox.
fn svc(name: &str, script: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut v = json!({"name": name, "argv": [BB, "sh", "-c", script]});
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    v
}

/// An init in its own namespace; killed (with its namespace) on drop.
struct Ns {
    unshare: Child,
    init: i32,
    dir: PathBuf,
    ns: PathBuf,
}

impl Ns {
    fn start(dir: &Path, services: Vec<serde_json::Value>) -> Ns {
        let plan = json!({"services": services, "shutdown_grace_ms": 1000});
        fs::write(dir.join("plan.json"), plan.to_string()).unwrap();
        std::os::unix::fs::symlink(bin_path("ros"), dir.join("init")).unwrap();
        let unshare = Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
            .arg(dir.join("init"))
            .env("ROS_INIT_PLAN", dir.join("plan.json"))
            .env("LOG", dir.join("log"))
            .stdin(Stdio::null())
            .stdout(fs::File::create(dir.join("stdout")).unwrap())
            .stderr(fs::File::create(dir.join("stderr")).unwrap())
            .spawn()
            .unwrap();
        let upid = unshare.id();
        let mut ns = Ns {
            unshare,
            init: 0,
            dir: dir.to_owned(),
            ns: PathBuf::new(),
        };
        ns.init = poll_for(UP, || {
            fs::read_to_string(format!("/proc/{upid}/task/{upid}/children"))
                .ok()?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .expect("unshare forks init");
        ns.ns = fs::read_link(format!("/proc/{}/ns/pid", ns.init)).unwrap();
        assert!(
            poll_until(UP, || ns.stderr().contains("service(s)")),
            "init did not come up:\n{}",
            ns.stderr()
        );
        ns
    }

    fn stderr(&self) -> String {
        fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }

    fn log(&self) -> Vec<String> {
        fs::read_to_string(self.dir.join("log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// (host pid, state letter) of every process of the namespace but init.
    fn procs(&self) -> Vec<(i32, char)> {
        let mut out = Vec::new();
        for e in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if pid == self.init
                || fs::read_link(e.path().join("ns/pid")).ok() != Some(self.ns.clone())
            {
                continue;
            }
            let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // `pid (comm) S ...`: the state follows the last ')'.
            if let Some(state) = stat
                .rsplit_once(')')
                .and_then(|(_, r)| r.trim().chars().next())
            {
                out.push((pid, state));
            }
        }
        out
    }

    fn zombies(&self) -> usize {
        self.procs().iter().filter(|(_, s)| *s == 'Z').count()
    }

    fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.init), sig).unwrap();
    }

    fn wait_end(&mut self, timeout: Duration) -> ExitStatus {
        let st = poll_for(timeout, || self.unshare.try_wait().ok().flatten());
        st.unwrap_or_else(|| panic!("init did not end in {timeout:?}:\n{}", self.stderr()))
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        // --kill-child: init (and so the namespace) dies with unshare.
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

/// The namespace's init died of `sig` (unshare re-raises it on itself).
fn died_of(st: ExitStatus, sig: Signal) -> bool {
    st.signal() == Some(sig as i32) || st.code() == Some(128 + sig as i32)
}

#[test]
fn zombies_and_orphaned_grandchildren_are_reaped() {
    if !can_run("zombies_and_orphaned_grandchildren_are_reaped") {
        return;
    }
    let dir = tempdir();
    // Children exit while their parent (exec'd into sleep) never waits: zombies; then the
    // parent exits and they are orphans of init. A grandchild outlives its parent too.
    let factory = format!(
        "for i in 1 2 3 4 5 6 7 8; do {BB} true & done; \
         {BB} sh -c '{BB} sleep 0.5; echo grandchild >> $LOG' & \
         exec {BB} sleep 1.5"
    );
    let mut ns = Ns::start(dir.path(), vec![svc("factory", &factory, json!({}))]);
    assert!(
        poll_until(UP, || ns.zombies() > 0),
        "fixture makes no zombies: {:?}",
        ns.procs()
    );
    assert!(
        poll_until(UP, || ns.log() == ["grandchild"]),
        "{:?}",
        ns.log()
    );
    assert!(
        poll_until(UP, || ns.procs().is_empty()),
        "left in the namespace: {:?}\n{}",
        ns.procs(),
        ns.stderr()
    );
    ns.signal(Signal::SIGUSR2);
    let st = ns.wait_end(UP);
    assert!(died_of(st, Signal::SIGINT), "poweroff outcome, got {st:?}");
}

#[test]
fn sigchld_storm_leaves_no_zombies_and_init_responsive() {
    if !can_run("sigchld_storm_leaves_no_zombies_and_init_responsive") {
        return;
    }
    let dir = tempdir();
    let storm = format!(
        "i=0; while [ $i -lt 500 ]; do {BB} true & i=$((i+1)); done; echo forked >> $LOG; \
         exec {BB} sleep 1000"
    );
    let mut ns = Ns::start(dir.path(), vec![svc("storm", &storm, json!({}))]);
    assert!(poll_until(Duration::from_secs(60), || ns.log() == ["forked"]));
    // The storm parent (sleeping) never waits: its 500 zombies are init's only after it
    // dies. Stopping it hands them all over at once.
    let procs = ns.procs();
    assert!(procs.len() > 1, "{procs:?}");
    let t0 = Instant::now();
    ns.signal(Signal::SIGUSR2);
    let st = ns.wait_end(UP);
    assert!(
        died_of(st, Signal::SIGINT),
        "poweroff outcome, got {st:?}\n{}",
        ns.stderr()
    );
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "slow: {:?}",
        t0.elapsed()
    );
}

#[test]
fn sigchld_storm_of_orphans_is_reaped() {
    if !can_run("sigchld_storm_of_orphans_is_reaped") {
        return;
    }
    let dir = tempdir();
    // Each short child is orphaned at once (its subshell parent exits): init reaps 500.
    let storm = format!(
        "i=0; while [ $i -lt 500 ]; do ({BB} true &) ; i=$((i+1)); done; echo forked >> $LOG; \
         exec {BB} sleep 1000"
    );
    let mut ns = Ns::start(dir.path(), vec![svc("storm", &storm, json!({}))]);
    assert!(poll_until(Duration::from_secs(60), || ns.log() == ["forked"]));
    assert!(
        poll_until(UP, || ns.zombies() == 0 && ns.procs().len() == 1),
        "{:?}",
        ns.procs()
    );
    ns.signal(Signal::SIGTERM);
    let st = ns.wait_end(UP);
    assert!(
        died_of(st, Signal::SIGHUP),
        "reboot outcome, got {st:?}\n{}",
        ns.stderr()
    );
}

#[test]
fn shutdown_is_reverse_start_order_and_sigterm_ignorer_is_killed() {
    if !can_run("shutdown_is_reverse_start_order_and_sigterm_ignorer_is_killed") {
        return;
    }
    let dir = tempdir();
    let polite = |n: &str| {
        format!(
            "trap 'echo stop {n} >> $LOG; exit 0' TERM; echo start {n} >> $LOG; \
             while :; do {BB} sleep 0.05; done"
        )
    };
    let deaf = format!("trap '' TERM; echo start deaf >> $LOG; while :; do {BB} sleep 0.05; done");
    // File order differs from start order: `after` decides.
    let mut ns = Ns::start(
        dir.path(),
        vec![
            svc(
                "deaf",
                &deaf,
                json!({"after": ["c"], "stop_timeout_ms": 700}),
            ),
            svc("c", &polite("c"), json!({"after": ["b"]})),
            svc("b", &polite("b"), json!({"after": ["a"]})),
            svc("a", &polite("a"), json!({})),
        ],
    );
    assert!(poll_until(UP, || ns.log().len() == 4), "{:?}", ns.log());
    let mut started = ns.log();
    started.sort();
    assert_eq!(started, ["start a", "start b", "start c", "start deaf"]);
    let t0 = Instant::now();
    ns.signal(Signal::SIGTERM);
    let st = ns.wait_end(UP);
    let took = t0.elapsed();
    assert!(
        died_of(st, Signal::SIGHUP),
        "reboot outcome, got {st:?}\n{}",
        ns.stderr()
    );
    let log = ns.log();
    assert_eq!(log[4..], ["stop c", "stop b", "stop a"], "{log:?}");
    assert!(
        took >= Duration::from_millis(700),
        "deaf not given its timeout: {took:?}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
    let err = ns.stderr();
    assert!(
        err.contains("deaf: still running after 700ms: SIGKILL"),
        "{err}"
    );
    let pos = |s: &str| err.find(s).unwrap_or_else(|| panic!("no {s:?} in\n{err}"));
    assert!(pos("deaf: stopping") < pos("c: stopping"));
    assert!(pos("c: stopping") < pos("b: stopping") && pos("b: stopping") < pos("a: stopping"));
}

#[test]
fn crashing_services_restart_per_policy_with_backoff() {
    if !can_run("crashing_services_restart_per_policy_with_backoff") {
        return;
    }
    let dir = tempdir();
    let backoff = json!({"restart": "always", "backoff_initial_ms": 100, "backoff_max_ms": 400});
    let mut ns = Ns::start(
        dir.path(),
        vec![
            svc("crash", "echo crash >> $LOG; exit 3", backoff),
            svc(
                "once",
                "echo once >> $LOG; exit 0",
                json!({"restart": "on-failure"}),
            ),
            svc(
                "never",
                "echo never >> $LOG; exit 1",
                json!({"restart": "no"}),
            ),
        ],
    );
    let t0 = Instant::now();
    let crashes = |ns: &Ns| ns.log().iter().filter(|l| *l == "crash").count();
    assert!(poll_until(UP, || crashes(&ns) >= 5), "{:?}", ns.log());
    // Delays 100 + 200 + 400 + 400 ms between the five runs.
    assert!(
        t0.elapsed() >= Duration::from_millis(1000),
        "no backoff: {:?}",
        t0.elapsed()
    );
    let log = ns.log();
    assert_eq!(log.iter().filter(|l| *l == "once").count(), 1, "{log:?}");
    assert_eq!(log.iter().filter(|l| *l == "never").count(), 1, "{log:?}");
    assert!(
        ns.stderr().contains("crash: restarting in 400ms"),
        "{}",
        ns.stderr()
    );
    ns.signal(Signal::SIGUSR1);
    let st = ns.wait_end(UP);
    assert!(
        died_of(st, Signal::SIGINT),
        "halt outcome, got {st:?}\n{}",
        ns.stderr()
    );
}

#[test]
fn ctrl_alt_del_reboots_and_other_signals_are_ignored() {
    if !can_run("ctrl_alt_del_reboots_and_other_signals_are_ignored") {
        return;
    }
    let dir = tempdir();
    let mut ns = Ns::start(dir.path(), vec![]);
    ns.signal(Signal::SIGHUP);
    assert!(poll_until(UP, || ns.stderr().contains("SIGHUP: ignored")));
    assert!(
        ns.unshare.try_wait().unwrap().is_none(),
        "init ended on SIGHUP"
    );
    ns.signal(Signal::SIGINT);
    let st = ns.wait_end(UP);
    assert!(
        died_of(st, Signal::SIGHUP),
        "reboot outcome, got {st:?}\n{}",
        ns.stderr()
    );
}
