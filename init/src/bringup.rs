//! The services at boot, in phases — the local datasources, udev, network, the network
//! datasources and the apply of cloud-config ([`crate::cloudinit`]), then the rest — and the
//! ready line (DESIGN.md §4); and their ordered stop at shutdown.
//!
//! Run by PID 1 as a one-shot child (`ros service boot`), so a failure here can never take
//! PID 1 down. The ready line is printed once, when every enabled long-running service's
//! container is running — and healthy, where the service has a `healthcheck` (its test is
//! run here with `exec`, every `interval`, until it passes: the user engine counts once
//! `docker info` answers) — create-only services created, `detach: false` jobs finished:
//! `ros: ready in 7.42s (kernel 1.71s, userland 5.71s)`. When `ros.boot_timeout` passes
//! first: `ros: degraded: <service>[,…]`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use ros_cloud_config::datasource::Phase;
use ros_cloud_config::load::{load, ConfigPaths};
use ros_services::model::Healthcheck;
use ros_services::reconcile::{self, Desired, Outcome, UpOptions};
use ros_services::{order, DockerEngine, Engine, Paths, ServicesConfig};

use crate::boot::{boot_log, set_oom_score_adj, SYSTEM_SOCKET};
use crate::early::{uptime, KERNEL_SECONDS_ENV};

/// The boot phases: each a service brought up (with what it needs) before the next;
/// cloud-init's network sources and its apply come after them, before the rest.
const PHASES: [&str; 2] = ["udev", "network"];
/// Default `ros.boot_timeout`, seconds since the kernel started.
const BOOT_TIMEOUT: u64 = 300;

/// `ros: ready in …` from uptimes in seconds.
pub fn ready_line(total: f64, kernel: f64) -> String {
    format!(
        "ros: ready in {total:.2}s (kernel {kernel:.2}s, userland {:.2}s)",
        (total - kernel).max(0.0)
    )
}

/// `ros: degraded: a,b`.
pub fn degraded_line(missing: &BTreeSet<String>) -> String {
    format!(
        "ros: degraded: {}",
        missing.iter().cloned().collect::<Vec<_>>().join(",")
    )
}

fn say(line: &str) {
    println!("{line}");
    boot_log(line);
}

/// The consoles `ros.autologin` names carry PID 1's root shell: the console service's
/// gettys (`ROS_CONSOLE_GETTY`) leave them alone, or both would read the same terminal.
pub fn leave_ttys_to_init(desired: &mut Desired, autologin: &str) {
    let taken: BTreeSet<&str> = autologin
        .split(',')
        .map(|t| t.trim().trim_start_matches("/dev/"))
        .collect();
    for svc in desired.services.values_mut().flatten() {
        for var in &mut svc.environment {
            if let Some(list) = var.strip_prefix("ROS_CONSOLE_GETTY=") {
                let kept: Vec<&str> = list
                    .split(',')
                    .filter(|t| !taken.contains(t.trim()))
                    .collect();
                *var = format!("ROS_CONSOLE_GETTY={}", kept.join(","));
            }
        }
    }
}

/// Brings the services up and prints the ready (or degraded) line. Exit code: 0 ready,
/// 1 degraded.
pub fn run() -> i32 {
    // Before the network starts, so a seed's settings are there when it does.
    let local = crate::cloudinit::save(Path::new("/"), Phase::Local);
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        say(&degraded_line(&["services".to_string()].into()));
        return 1;
    };
    rt.block_on(bring_up(local))
}

/// Runs `f` on a thread of its own: the datasources' HTTP client blocks and must not run
/// inside the runtime.
async fn off_runtime(f: impl FnOnce() + Send + 'static) {
    let _ = tokio::task::spawn_blocking(move || std::thread::spawn(f).join()).await;
}

/// The user's runcmd and scripts, after the ready (or degraded) line. The bring-up is
/// spared by the OOM killer until then (its plan entry: -900); what the user runs (bootcmd,
/// runcmd, and what they leave running) is not.
async fn run_late() {
    set_oom_score_adj(0);
    off_runtime(|| crate::cloudinit::run_late(Path::new("/"))).await;
}

async fn bring_up(local_answered: bool) -> i32 {
    let loaded = load(&ConfigPaths::new("/"));
    let timeout = loaded.ros_u64("boot_timeout").unwrap_or(BOOT_TIMEOUT) as f64;
    let kernel: f64 = std::env::var(KERNEL_SECONDS_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let remaining = || Duration::from_secs_f64((timeout - uptime().unwrap_or(0.0)).max(0.0));

    let engine = match DockerEngine::new(&format!("unix://{SYSTEM_SOCKET}")) {
        Ok(e) => e,
        Err(e) => {
            say(&format!("ros: system-docker: {e}"));
            say(&degraded_line(&["system-docker".to_string()].into()));
            return 1;
        }
    };
    let answered = tokio::time::timeout(remaining(), async {
        loop {
            if engine.client().ping().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    if answered.is_err() {
        say(&degraded_line(&["system-docker".to_string()].into()));
        return 1;
    }

    let cfg = ServicesConfig::load(&Paths::new("/"));
    for issue in &cfg.issues {
        say(&format!("ros: config: {issue}"));
    }
    let mut desired = Desired::from(&cfg);
    if let Some(ttys) = loaded.ros_str("autologin") {
        leave_ttys_to_init(&mut desired, ttys);
    }
    let mut settled = BTreeSet::new();
    let mut outcomes: BTreeMap<String, Outcome> = BTreeMap::new();
    let phases: Vec<Vec<String>> = PHASES
        .iter()
        .filter(|p| desired.services.contains_key(**p))
        .map(|p| vec![p.to_string()])
        .chain(std::iter::once(Vec::new()))
        .collect();
    for only in phases {
        if only.is_empty() {
            let step = off_runtime(move || {
                let root = Path::new("/");
                if !local_answered {
                    crate::cloudinit::save(root, Phase::Network);
                }
                set_oom_score_adj(0);
                crate::cloudinit::apply_at_boot(root);
                set_oom_score_adj(-900);
            });
            if tokio::time::timeout(remaining(), step).await.is_err() {
                say("ros: cloud-init: still running at the boot timeout; the services start without it");
            }
            // What the datasource saved and the apply wrote may change the services.
            let cfg = ServicesConfig::load(&Paths::new("/"));
            for issue in &cfg.issues {
                say(&format!("ros: config: {issue}"));
            }
            desired = Desired::from(&cfg);
            if let Some(ttys) = load(&ConfigPaths::new("/")).ros_str("autologin") {
                leave_ttys_to_init(&mut desired, ttys);
            }
        }
        let opts = UpOptions {
            only: only.clone(),
            fresh: true,
            settled: settled.clone(),
        };
        match tokio::time::timeout(remaining(), reconcile::up(&engine, &desired, &opts)).await {
            Ok(Ok(report)) => {
                for r in report.services {
                    settled.insert(r.name.clone());
                    outcomes.insert(r.name, r.outcome);
                }
            }
            Ok(Err(e)) => log::error!("services {only:?}: {e}"),
            Err(_) => break,
        }
    }

    // Ready when every long-running service runs; jobs and create-only ones count once
    // the reconciler said they succeeded.
    let long_running: BTreeSet<String> = desired
        .services
        .iter()
        .filter(|(_, s)| s.as_ref().map_or(true, |s| s.detach() && !s.createonly()))
        .map(|(n, _)| n.clone())
        .collect();
    let others_ok = desired
        .services
        .keys()
        .filter(|n| !long_running.contains(*n))
        .filter(|n| {
            outcomes
                .get(*n)
                .is_none_or(|o| o.is_failure() || matches!(o, Outcome::Skipped(_)))
        })
        .cloned()
        .collect::<BTreeSet<String>>();
    let checks: BTreeMap<&String, &Healthcheck> = desired
        .services
        .iter()
        .filter_map(|(n, s)| Some((n, s.as_ref().ok()?.healthcheck.as_ref()?)))
        .filter(|(_, h)| h.test.first().is_some_and(|t| t != "NONE"))
        .collect();
    let mut healthy: BTreeSet<String> = BTreeSet::new();
    let mut next_check: BTreeMap<String, Instant> = BTreeMap::new();
    let mut missing = long_running.clone();
    loop {
        if let Ok(list) = engine.list().await {
            let mut running: BTreeSet<&str> = BTreeSet::new();
            for c in list.iter().filter(|c| c.running()) {
                let name = &c.service;
                if let Some(check) = checks.get(name) {
                    if !healthy.contains(name.as_str()) {
                        let due = next_check
                            .get(name.as_str())
                            .is_none_or(|t| Instant::now() >= *t);
                        if !due {
                            continue;
                        }
                        let interval = Duration::from_nanos(
                            check.interval.unwrap_or(1_000_000_000).max(100_000_000) as u64,
                        );
                        next_check.insert(name.clone(), Instant::now() + interval);
                        if !passes(&engine, &c.id, check).await {
                            continue;
                        }
                        log::info!("{name}: healthy");
                        healthy.insert(name.clone());
                    }
                }
                running.insert(name.as_str());
            }
            missing = long_running
                .iter()
                .filter(|n| !running.contains(n.as_str()))
                .cloned()
                .collect();
        }
        if missing.is_empty() && others_ok.is_empty() {
            let total = uptime().unwrap_or(0.0);
            say(&ready_line(total, kernel));
            run_late().await;
            return 0;
        }
        if remaining().is_zero() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    missing.extend(others_ok);
    for name in &missing {
        if let Some(o) = outcomes.get(name) {
            say(&format!("ros: {name}: {o:?}"));
        }
    }
    say(&degraded_line(&missing));
    run_late().await;
    1
}

/// The command a compose `healthcheck.test` runs.
pub fn health_command(test: &[String]) -> Option<Vec<String>> {
    match test.split_first()? {
        (kind, rest) if kind == "CMD" => Some(rest.to_vec()).filter(|r| !r.is_empty()),
        (kind, rest) if kind == "CMD-SHELL" => {
            Some(vec!["/bin/sh".into(), "-c".into(), rest.join(" ")])
        }
        (kind, _) if kind == "NONE" => None,
        _ => Some(test.to_vec()),
    }
}

/// Runs a service's health test once in its container; true when it exits 0 in time.
async fn passes(engine: &DockerEngine, id: &str, check: &Healthcheck) -> bool {
    let Some(cmd) = health_command(&check.test) else {
        return true;
    };
    let client = engine.client();
    let Ok(created) = client
        .post(
            &format!("/containers/{id}/exec"),
            Some(json!({"Cmd": cmd, "AttachStdout": false, "AttachStderr": false})),
        )
        .await
    else {
        return false;
    };
    let Some(exec) = created
        .get("Id")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
    else {
        return false;
    };
    if client
        .post(
            &format!("/exec/{exec}/start"),
            Some(json!({"Detach": true})),
        )
        .await
        .is_err()
    {
        return false;
    }
    let timeout = Duration::from_nanos(check.timeout.unwrap_or(30_000_000_000).max(0) as u64);
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(v) = client
            .get::<serde_json::Value>(&format!("/exec/{exec}/json"))
            .await
        {
            if v.get("Running").and_then(|r| r.as_bool()) == Some(false) {
                return v.get("ExitCode").and_then(|c| c.as_i64()) == Some(0);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Timed out: the probe is killed, as Docker does, with whatever it started (a shell's
    // `docker info`), or slow probes would pile up on a machine already short of time.
    if let Ok(v) = client
        .get::<serde_json::Value>(&format!("/exec/{exec}/json"))
        .await
    {
        // Only while it runs: the PID of one that just ended may be another process's now.
        let running = v.get("Running").and_then(|r| r.as_bool()) == Some(true);
        if let Some(pid) = v
            .get("Pid")
            .and_then(|p| p.as_i64())
            .filter(|p| running && *p > 1)
        {
            log::warn!("health check of {id:.12} timed out after {timeout:?}: killed");
            kill_tree(pid as i32);
        }
    }
    false
}

/// `pid` and its descendants (from /proc), each as `(pid, parent)`.
fn process_tree(pid: i32, procs: &[(i32, i32)]) -> Vec<i32> {
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            procs
                .iter()
                .filter(|(p, pp)| *pp == parent && !tree.contains(p))
                .map(|(p, _)| *p)
                .collect::<Vec<_>>(),
        );
        i += 1;
    }
    tree
}

/// SIGKILLs `pid` and its descendants.
fn kill_tree(pid: i32) {
    let procs: Vec<(i32, i32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let p: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            // `pid (comm) state ppid …`: comm may hold spaces and parentheses.
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((p, ppid))
        })
        .collect();
    for p in process_tree(pid, &procs) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Stops every service container, dependents before what they depend on, each within
/// `timeout` seconds. Exit code 0 when all stopped.
pub fn stop_all(timeout: i64) -> i32 {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return 1;
    };
    rt.block_on(async {
        let engine = match DockerEngine::new(&format!("unix://{SYSTEM_SOCKET}")) {
            Ok(e) => e,
            Err(_) => return 1,
        };
        let Ok(list) = engine.list().await else {
            return 1;
        };
        let cfg = ServicesConfig::load(&Paths::new("/"));
        let desired = Desired::from(&cfg);
        let nodes = desired
            .services
            .iter()
            .map(|(n, s)| (n.clone(), s.as_ref().ok()))
            .collect();
        let (graph, _) = order::graph(&nodes, &desired.optional);
        let start_order = graph.topological();
        let rank = |name: &str| start_order.iter().position(|n| n == name);
        let mut running: Vec<_> = list.into_iter().filter(|c| c.running()).collect();
        // Unknown (unconfigured) containers first, then reverse start order.
        running.sort_by_key(|c| std::cmp::Reverse(rank(&c.service).unwrap_or(usize::MAX)));
        let mut code = 0;
        for c in running {
            let t = desired.stop_timeout(&c.service).unwrap_or(timeout);
            log::info!("stopping {} ({t}s)", c.service);
            if let Err(e) = engine.stop(&c.id, Some(t)).await {
                log::warn!("stopping {}: {e}", c.service);
                code = 1;
            }
        }
        code
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_tree_is_the_process_and_its_descendants() {
        let procs = [
            (1, 0),
            (10, 1),
            (11, 10),
            (12, 11),
            (13, 10),
            (20, 1),
            (21, 20),
        ];
        let mut t = process_tree(10, &procs);
        t.sort();
        assert_eq!(t, [10, 11, 12, 13]);
        assert_eq!(process_tree(99, &procs), [99]);
    }

    #[test]
    fn health_commands() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            health_command(&v(&["CMD", "docker", "info"])),
            Some(v(&["docker", "info"]))
        );
        assert_eq!(
            health_command(&v(&["CMD-SHELL", "docker info >/dev/null"])),
            Some(v(&["/bin/sh", "-c", "docker info >/dev/null"]))
        );
        assert_eq!(health_command(&v(&["NONE"])), None);
        assert_eq!(health_command(&v(&["CMD"])), None);
    }

    #[test]
    fn lines() {
        assert_eq!(
            ready_line(7.4249, 1.71),
            "ros: ready in 7.42s (kernel 1.71s, userland 5.71s)"
        );
        assert_eq!(
            degraded_line(&["ntp".to_string(), "docker".to_string()].into()),
            "ros: degraded: docker,ntp"
        );
    }
}
