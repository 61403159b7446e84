//! `ros service …` against a fresh system-docker daemon: the reconciler (dependency order,
//! jobs, create-only, idempotence, recreate-on-change, removal), the other subcommands, and
//! bad service YAML reported by name while the rest still starts.
//!
//! Each test gets its own daemon with busybox loaded and a `--root` tree holding an
//! `os-config.yml`, a catalog and the user's `cloud-config.yml`. Needs root, the docker CLI
//! (the daemon fixture checks the engine with it) and the image fixtures; skips loudly
//! without them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ros_tests::{
    bin_path, fixtures, poll_until, require_root, require_tool, run, Checks, Daemon, Output,
};

const UP_TIMEOUT: Duration = Duration::from_secs(60);

fn prerequisites(test: &str) -> bool {
    require_root(test) && require_tool(test, "docker") && fixtures(test).is_some()
}

fn ros(d: &Daemon, root: &Path, args: &[&str]) -> Output {
    ros_tests::ros_service(&d.host(), root, args, UP_TIMEOUT)
}

fn os_config(root: &Path) -> PathBuf {
    root.join("usr/share/ros/os-config.yml")
}

fn user_config(root: &Path) -> PathBuf {
    root.join("var/lib/ros/conf/cloud-config.yml")
}

/// A timestamp of inspect (`2024-05-01T10:00:00.123456789Z`) as (date, nanoseconds of the
/// day), comparable whatever number of fraction digits it has.
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

fn started(d: &Daemon, name: &str) -> Option<(String, u64)> {
    ts(&d.inspect("{{.State.StartedAt}}", name))
}

fn finished(d: &Daemon, name: &str) -> Option<(String, u64)> {
    ts(&d.inspect("{{.State.FinishedAt}}", name))
}

fn id(d: &Daemon, name: &str) -> String {
    d.inspect("{{.Id}}", name)
}

fn status(d: &Daemon, name: &str) -> String {
    d.inspect("{{.State.Status}}", name)
}

/// Five busybox services: `svc-a` → (`svc-b`, `svc-c`) → `svc-d`, where `svc-c` is a job
/// (`detach: false`) writing into a volume that `svc-d` reads through `volumes_from` of the
/// create-only `svc-vols`; `svc-a` and `svc-d` use the host network.
fn scenario_config(vol: &Path) -> String {
    let vol = vol.display();
    format!(
        r#"#cloud-config
rancher:
  services:
    svc-a:
      image: busybox:latest
      command: sleep 1000
      stop_grace_period: 1s
      net: host
      labels:
        io.rancher.os.scope: system
    svc-b:
      image: busybox:latest
      command: sleep 1000
      stop_grace_period: 1s
      labels:
        io.ros.after: svc-a
    svc-c:
      image: busybox:latest
      command: ["sh", "-c", "echo job-ran > /data/out"]
      volumes:
      - {vol}:/data
      labels:
        io.ros.after: svc-a
        io.ros.detach: "false"
    svc-d:
      image: busybox:latest
      command: sh -c 'cat /data/out; echo d-started; exec sleep 1000'
      stop_signal: KILL
      net: host
      volumes_from:
      - svc-vols
      labels:
        io.ros.after: svc-b, svc-c
    svc-vols:
      image: busybox:latest
      command: "true"
      volumes:
      - {vol}:/data:ro
      labels:
        io.rancher.os.createonly: "true"
"#
    )
}

const ALL: [&str; 5] = ["svc-a", "svc-b", "svc-c", "svc-d", "svc-vols"];

#[test]
fn services_reconcile_and_commands() {
    const T: &str = "services_reconcile_and_commands";
    if !prerequisites(T) {
        return;
    }
    let fx = fixtures(T).expect("fixtures");
    let tmp = ros_tests::tempdir();
    let d = Daemon::start(tmp.path());
    d.load(&fx.busybox_tar);
    let root = tmp.path().join("root");
    let vol = tmp.path().join("vol");
    fs::create_dir_all(&vol).expect("mkdir vol");
    ros_tests::write_file(&os_config(&root), &scenario_config(&vol));
    ros_tests::write_file(
        &root.join("usr/share/ros/catalog/extra.yml"),
        "services:\n  svc-extra:\n    image: busybox:latest\n    command: sleep 1000\n    \
         stop_grace_period: 1s\n",
    );
    let mut c = Checks::new(T);

    // --- first up: everything created, in dependency order
    let up = ros(&d, &root, &["up"]);
    if !c.ok(&up, "first up") {
        c.finish_with(|| d.log_tail(60));
        return;
    }
    for (svc, line) in [
        ("svc-a", "svc-a: created, started"),
        ("svc-b", "svc-b: created, started"),
        ("svc-c", "svc-c: created, started (ran to completion)"),
        ("svc-d", "svc-d: created, started"),
        ("svc-vols", "svc-vols: created (create only)"),
    ] {
        c.check(
            up.stdout.contains(line),
            &format!("{svc} reported as {line:?}"),
            &up,
        );
    }
    for svc in ["svc-a", "svc-b", "svc-d"] {
        c.check(
            status(&d, svc) == "running",
            &format!("{svc} runs"),
            status(&d, svc),
        );
    }
    c.check(
        d.inspect("{{.State.Status}} {{.State.ExitCode}}", "svc-c") == "exited 0",
        "the job ran to completion",
        d.inspect("{{.State.Status}} {{.State.ExitCode}}", "svc-c"),
    );
    c.check(
        status(&d, "svc-vols") == "created",
        "create-only is not started",
        status(&d, "svc-vols"),
    );
    let (sa, sb, sc, sd) = (
        started(&d, "svc-a"),
        started(&d, "svc-b"),
        started(&d, "svc-c"),
        started(&d, "svc-d"),
    );
    let fc = finished(&d, "svc-c");
    let order = format!("a {sa:?}\nb {sb:?}\nc {sc:?} (finished {fc:?})\nd {sd:?}");
    c.check(
        sa.is_some() && sa < sb && sa < sc && sb < sd && fc.is_some() && fc <= sd,
        "started in dependency order (a < b, c; b < d; c finished before d started)",
        &order,
    );
    c.check(
        d.inspect("{{.HostConfig.NetworkMode}}", "svc-a") == "host",
        "net: host reaches HostConfig.NetworkMode",
        d.inspect("{{.HostConfig.NetworkMode}}", "svc-a"),
    );
    c.check(
        d.inspect("{{index .Config.Labels \"io.ros.service\"}}", "svc-b") == "svc-b"
            && d.inspect("{{index .Config.Labels \"io.ros.config-hash\"}}", "svc-b")
                .len()
                == 64
            && d.inspect("{{index .Config.Labels \"io.ros.scope\"}}", "svc-a") == "system",
        "service, config-hash and the service's own (normalized) labels",
        d.inspect("{{json .Config.Labels}}", "svc-a"),
    );
    let mut logs = ros(&d, &root, &["logs", "svc-d"]);
    poll_until(Duration::from_secs(10), || {
        logs = ros(&d, &root, &["logs", "svc-d"]);
        logs.stdout.contains("d-started")
    });
    c.check(
        logs.success() && logs.stdout.contains("job-ran\nd-started"),
        "logs: svc-d read what the job wrote before it started",
        &logs,
    );
    let ps = ros(&d, &root, &["ps"]);
    c.check(
        ps.success()
            && ALL.iter().all(|s| ps.stdout.contains(s))
            && ps
                .lines()
                .iter()
                .any(|l| l.starts_with("svc-a") && l.contains("running"))
            && ps
                .lines()
                .iter()
                .any(|l| l.starts_with("svc-vols") && l.contains("created")),
        "ps lists the service containers with their state",
        &ps,
    );

    // --- second up: nothing changes
    let ids: Vec<String> = ALL.iter().map(|s| id(&d, s)).collect();
    let up2 = ros(&d, &root, &["up"]);
    c.ok(&up2, "second up");
    c.check(
        ALL.iter()
            .all(|s| up2.stdout.contains(&format!("{s}: unchanged"))),
        "second up leaves every service unchanged",
        &up2,
    );
    let ids2: Vec<String> = ALL.iter().map(|s| id(&d, s)).collect();
    c.check(
        ids == ids2,
        "same containers after a second up",
        format!("{ids:?}\n{ids2:?}"),
    );

    // --- a changed field in the user config recreates only that service
    ros_tests::write_file(
        &user_config(&root),
        "#cloud-config\n# the user's own file\nhostname: box\nros:\n  services:\n    svc-b:\n      command: sleep 2000\n",
    );
    let up3 = ros(&d, &root, &["up"]);
    c.ok(&up3, "up after editing svc-b");
    c.check(
        up3.stdout
            .contains("svc-b: recreated (definition changed), started"),
        "svc-b recreated",
        &up3,
    );
    let ids3: Vec<String> = ALL.iter().map(|s| id(&d, s)).collect();
    c.check(
        ids3[1] != ids[1] && ids3[0] == ids[0] && ids3[2..] == ids[2..],
        "only svc-b has a new container",
        format!("{ids:?}\n{ids3:?}"),
    );
    c.check(
        d.inspect("{{json .Config.Cmd}}", "svc-b") == r#"["sleep","2000"]"#,
        "svc-b runs the new command",
        d.inspect("{{json .Config.Cmd}}", "svc-b"),
    );

    // --- list, enable, disable
    let list = ros(&d, &root, &["list"]);
    let row = |out: &Output, svc: &str| {
        out.lines()
            .into_iter()
            .find(|l| l.split_whitespace().next() == Some(svc))
            .unwrap_or_default()
    };
    c.check(
        list.success()
            && row(&list, "svc-a").split_whitespace().collect::<Vec<_>>()
                == ["svc-a", "enabled", "running", "os-config.yml"]
            && row(&list, "svc-extra")
                .split_whitespace()
                .collect::<Vec<_>>()
                == ["svc-extra", "disabled", "-", "catalog:extra"],
        "list shows configured and catalog services",
        &list,
    );
    let bad = ros(&d, &root, &["enable", "nope"]);
    c.fails_with(
        &bad,
        &["no catalog service named \"nope\""],
        "enable refuses unknown names",
    );
    let bad = ros(&d, &root, &["enable", "svc-a"]);
    c.fails_with(
        &bad,
        &["not an optional catalog service"],
        "enable refuses default services",
    );
    let en = ros(&d, &root, &["enable", "extra"]);
    c.ok(&en, "enable extra");
    let text = fs::read_to_string(user_config(&root)).unwrap_or_default();
    c.check(
        text.starts_with("#cloud-config\n# the user's own file\nhostname: box\nros:\n")
            && text.contains("  services_include:\n    extra: true\n")
            && text.contains("    svc-b:\n      command: sleep 2000\n"),
        "enable persists services_include.extra and keeps the rest of the file",
        &text,
    );
    let up4 = ros(&d, &root, &["up"]);
    c.check(
        up4.success() && up4.stdout.contains("svc-extra: created, started"),
        "up starts the enabled catalog service",
        &up4,
    );
    let list = ros(&d, &root, &["list"]);
    c.check(
        row(&list, "svc-extra")
            .split_whitespace()
            .collect::<Vec<_>>()
            == ["svc-extra", "enabled", "running", "catalog:extra"],
        "list shows it enabled and running",
        &list,
    );
    c.ok(&ros(&d, &root, &["disable", "extra"]), "disable extra");
    let up5 = ros(&d, &root, &["up"]);
    c.check(
        up5.success()
            && up5
                .stdout
                .contains("svc-extra: removed (no longer configured)"),
        "up removes the disabled service",
        &up5,
    );
    c.check(
        status(&d, "svc-extra").starts_with("<docker inspect failed>"),
        "its container is gone",
        status(&d, "svc-extra"),
    );

    // --- restart, down, up NAME
    let before = started(&d, "svc-a");
    let rs = ros(&d, &root, &["restart", "svc-a"]);
    c.check(
        rs.success() && rs.stdout.contains("svc-a: restarted") && started(&d, "svc-a") > before,
        "restart restarts",
        &rs,
    );
    let down = ros(&d, &root, &["down", "svc-b"]);
    c.check(
        down.success() && down.stdout.contains("svc-b: removed"),
        "down removes",
        &down,
    );
    let ps = ros(&d, &root, &["ps"]);
    c.check(
        !ps.stdout.contains("svc-b"),
        "ps no longer lists svc-b",
        &ps,
    );
    let upb = ros(&d, &root, &["up", "svc-b"]);
    c.check(
        upb.success()
            && upb.stdout.contains("svc-b: created, started")
            && upb.stdout.contains("svc-a: unchanged")
            && !upb.stdout.contains("svc-d"),
        "up NAME brings up the service and its dependencies only",
        &upb,
    );
    let unknown = ros(&d, &root, &["up", "nope"]);
    c.fails_with(
        &unknown,
        &["no service named \"nope\""],
        "up refuses unknown names",
    );
    let nolog = ros(&d, &root, &["logs", "nope"]);
    c.fails_with(
        &nolog,
        &["has no container"],
        "logs of a service without container",
    );

    // --- --root relocates the default socket too
    let mut cmd = Command::new(bin_path("ros"));
    cmd.arg("--root").arg(&root).args(["service", "ps"]);
    let relocated = run(&mut cmd, UP_TIMEOUT);
    c.fails_with(
        &relocated,
        &[&format!("{}/run/system-docker.sock", root.display())],
        "without -H, the socket is under --root",
    );

    c.finish_with(|| d.log_tail(60));
}

/// Bad service YAML: each problem is reported naming the service and field (or the file's
/// line and column), and every other service still starts.
#[test]
fn bad_definitions_are_reported_and_the_rest_starts() {
    const T: &str = "bad_definitions_are_reported_and_the_rest_starts";
    if !prerequisites(T) {
        return;
    }
    let fx = fixtures(T).expect("fixtures");
    let tmp = ros_tests::tempdir();
    let d = Daemon::start(tmp.path());
    d.load(&fx.busybox_tar);
    let root = tmp.path().join("root");
    ros_tests::write_file(
        &os_config(&root),
        r#"ros:
  services:
    good-1:
      image: busybox:latest
      command: sleep 1000
    good-2:
      image: busybox:latest
      command: sleep 1000
      labels:
        io.ros.after: good-1
    cyc-x:
      image: busybox:latest
      command: sleep 1000
      labels:
        io.ros.after: cyc-y
    cyc-y:
      image: busybox:latest
      command: sleep 1000
      labels:
        io.ros.after: cyc-x
    dangling:
      image: busybox:latest
      command: sleep 1000
      labels:
        io.ros.after: no-such-svc
    typo:
      image: busybox:latest
      command: sleep 1000
      privilegd: true
    wrongtype:
      image: busybox:latest
      command: sleep 1000
      privileged: maybe
    needs-typo:
      image: busybox:latest
      command: sleep 1000
      labels:
        io.ros.after: typo
    no-image:
      image: nosuch:1
      command: sleep 1000
"#,
    );
    let broken = root.join("var/lib/ros/conf/cloud-config.d/50-broken.yml");
    ros_tests::write_file(&broken, "ros:\n  services:\n    good-1: [\n");
    let mut c = Checks::new(T);

    let up = ros(&d, &root, &["up"]);
    c.code(&up, 1, "up reports failure");
    let all = up.all();
    for want in [
        "cyc-x: failed: dependency cycle: cyc-x → cyc-y → cyc-x".to_string(),
        "cyc-y: failed: dependency cycle: cyc-y → cyc-x → cyc-y".to_string(),
        "dangling: failed: io.ros.after names unknown service \"no-such-svc\"".to_string(),
        "service \"typo\": field \"privilegd\": unknown field (did you mean \"privileged\"?)"
            .to_string(),
        "service \"wrongtype\": field \"privileged\": invalid value: string \"maybe\", expected a boolean"
            .to_string(),
        "needs-typo: skipped: dependency \"typo\" failed".to_string(),
        "no-image: failed: image \"nosuch:1\" is not in system-docker's image store".to_string(),
        format!("{}:3:", broken.display()),
        "good-1: created, started".to_string(),
        "good-2: created, started".to_string(),
    ] {
        c.check(all.contains(&want), &format!("output mentions {want:?}"), &up);
    }
    for svc in ["good-1", "good-2"] {
        c.check(
            status(&d, svc) == "running",
            &format!("{svc} runs"),
            status(&d, svc),
        );
    }
    for svc in [
        "cyc-x",
        "cyc-y",
        "dangling",
        "typo",
        "wrongtype",
        "needs-typo",
        "no-image",
    ] {
        c.check(
            status(&d, svc).starts_with("<docker inspect failed>"),
            &format!("{svc} has no container"),
            status(&d, svc),
        );
    }
    let list = ros(&d, &root, &["list"]);
    c.check(
        list.success()
            && list
                .lines()
                .iter()
                .any(|l| l.starts_with("typo ") && l.contains("invalid")),
        "list marks invalid services",
        &list,
    );
    c.finish_with(|| d.log_tail(60));
}
