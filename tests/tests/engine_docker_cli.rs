//! The stock docker CLI (v28) drives the engine daemon (`system-docker daemon`).
//!
//! Few daemons, many assertions each: every test starts one daemon on temporary roots and
//! runs a whole scenario against it, collecting failed checks (so one run reports all of
//! them) and stopping early only when a prerequisite fails. Needs root and the image fixtures
//! (`tests/fixtures/build-images.sh`); skips loudly without them.

use std::fs;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use ros_tests::{
    cgroup_value, fixtures, own_cap_mask, pid_alive, poll_for, poll_until, require_root,
    require_tool, Checks, Daemon, Fixtures, Output,
};

/// Docker's default capability set for non-privileged containers (moby `caps.DefaultCapabilities`):
/// CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE NET_RAW
/// SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP.
const DOCKER_DEFAULT_CAPS: u64 = 0x0000_0000_a804_25fb;
const CAP_NET_ADMIN: u64 = 1 << 12;

fn prerequisites(test: &str) -> Option<&'static Fixtures> {
    if !require_root(test) || !require_tool(test, "docker") {
        return None;
    }
    fixtures(test)
}

/// The `CapEff` mask a command in the container printed (`grep CapEff /proc/self/status`).
fn cap_eff(out: &Output) -> Option<u64> {
    let line = out.stdout.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).ok()
}

/// The image ID Docker assigns to a docker-save archive: the digest of its config blob, which
/// manifest.json names `<hex>.json`.
fn expected_image_id(docker_save_tar: &Path) -> String {
    let mut archive = tar::Archive::new(fs::File::open(docker_save_tar).expect("open fixture"));
    for entry in archive.entries().expect("read fixture") {
        let mut entry = entry.expect("fixture entry");
        if entry.path().expect("entry path").to_str() == Some("manifest.json") {
            let manifest: serde_json::Value =
                serde_json::from_reader(&mut entry).expect("manifest.json is JSON");
            let config = manifest[0]["Config"].as_str().expect("manifest has Config");
            let hex = config
                .trim_start_matches("blobs/sha256/")
                .trim_end_matches(".json");
            return format!("sha256:{hex}");
        }
    }
    panic!("{} has no manifest.json", docker_save_tar.display());
}

/// Loading every archive format, listing and tagging images, and `docker run` options
/// (env, user, workdir, hostname, volumes, read-only, tmpfs, network, capabilities, cgroup
/// limits, layered images with whiteouts).
#[test]
fn images_and_run_options() {
    const T: &str = "images_and_run_options";
    let Some(fx) = prerequisites(T) else { return };
    let tmp = ros_tests::tempdir();
    let d = Daemon::start(tmp.path());
    let mut c = Checks::new(T);

    // --- version, info
    let v = d.docker(&[
        "version",
        "--format",
        "{{.Server.APIVersion}}|{{.Server.Version}}",
    ]);
    let api_ok = v.success()
        && v.out()
            .split('|')
            .next()
            .and_then(|a| a.split_once('.'))
            .and_then(|(maj, min)| Some((maj.parse::<u32>().ok()?, min.parse::<u32>().ok()?)))
            .is_some_and(|ver| ver >= (1, 41));
    c.check(
        api_ok,
        "docker version reports a server API version >= 1.41",
        &v,
    );
    let info = d.docker(&["info"]);
    c.check(
        info.success() && info.stdout.contains("Containers:") && info.stdout.contains("Images:"),
        "docker info shows Containers: and Images:",
        &info,
    );

    // --- load: docker-save (plain layers), OCI archive (gzip), OCI archive (zstd), layered
    let out = d.load(&fx.busybox_tar);
    c.check(
        out.stdout.contains("busybox:latest"),
        "load prints `Loaded image: busybox:latest`",
        &out,
    );
    let out = d.load(&fx.busybox_oci_tar);
    c.check(
        out.stdout.contains("busybox-oci"),
        "load of the OCI archive names busybox-oci",
        &out,
    );
    let out = d.load(&fx.busybox_zstd_tar);
    c.check(
        out.stdout.contains("busybox-zstd"),
        "load of the zstd OCI archive names it",
        &out,
    );
    d.load(&fx.layered_tar);
    d.load(&fx.layered_oci_tar);

    let images = d.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    c.ok(&images, "docker images");
    for want in [
        "busybox:latest",
        "busybox-oci:latest",
        "busybox-zstd:latest",
        "layered:latest",
        "layered-oci:latest",
    ] {
        c.check(
            images.lines().iter().any(|l| l == want),
            &format!("images lists {want}"),
            &images,
        );
    }
    // The same config in three archive formats is the same image (ID = config digest).
    let want_id = expected_image_id(&fx.busybox_tar);
    for name in ["busybox", "busybox-oci", "busybox-zstd"] {
        let id = d.docker(&["image", "inspect", "-f", "{{.Id}}", name]);
        c.check(
            id.out() == want_id,
            &format!("image ID of {name} is {want_id}"),
            &id,
        );
    }
    let layers = d.docker(&[
        "image",
        "inspect",
        "-f",
        "{{len .RootFS.Layers}}",
        "layered",
    ]);
    c.out_eq(&layers, "2", "layered has 2 layers");

    // --- run --rm, output, exit codes
    // Gate: everything below runs containers; without a working `docker run` each check
    // would only wait for its timeout.
    let out = d.docker_t(
        &["run", "--rm", "busybox", "echo", "hi"],
        Duration::from_secs(20),
    );
    assert!(
        out.success() && out.out() == "hi",
        "`docker run --rm busybox echo hi` must print hi; the remaining checks need it.\n\
         Failed so far: {:#?}\n{out}\n{}",
        c.failures(),
        d.log_tail(30)
    );
    let ps = d.docker(&["ps", "-aq"]);
    c.check(
        ps.success() && ps.out().is_empty(),
        "run --rm leaves no container",
        &ps,
    );
    let out = d.docker(&["run", "--rm", "busybox", "sh", "-c", "exit 3"]);
    c.code(&out, 3, "exit code of the container is docker run's");
    let out = d.docker(&["run", "--rm", "busybox", "nosuchcommand"]);
    c.check(
        matches!(out.code(), Some(126 | 127)) && out.all().contains("nosuchcommand"),
        "run of a missing command fails with 126/127 naming it",
        &out,
    );
    let out = d.docker(&["run", "--rm", "busybox", "false"]);
    c.code(&out, 1, "run busybox false");
    let out = d.docker(&["run", "--rm", "busybox-oci", "echo", "from-oci"]);
    c.out_eq(&out, "from-oci", "run the image loaded from an OCI archive");
    let out = d.docker(&["run", "--rm", "busybox-zstd", "echo", "from-zstd"]);
    c.out_eq(&out, "from-zstd", "run the image loaded with zstd layers");
    let out = d.docker(&["run", "--rm", "busybox", "cat", "/etc/motd"]);
    c.out_eq(
        &out,
        "welcome to the ros test busybox",
        "busybox has /etc/motd",
    );
    for img in ["layered", "layered-oci"] {
        let out = d.docker(&[
            "run",
            "--rm",
            img,
            "sh",
            "-c",
            "test ! -e /etc/motd && test ! -e /opt/gone && test -d /opt && cat /etc/layer2",
        ]);
        c.out_eq(
            &out,
            "added by layer 2",
            &format!("{img}: whiteouts delete, layer 2 adds"),
        );
    }

    // --- env, user, workdir, hostname
    let out = d.docker(&[
        "run",
        "--rm",
        "-e",
        "FOO=bar baz",
        "busybox",
        "sh",
        "-c",
        "echo $FOO",
    ]);
    c.out_eq(&out, "bar baz", "-e FOO=...");
    let out = d.docker(&["run", "--rm", "busybox", "sh", "-c", "echo $PATH"]);
    c.check(
        out.success() && out.out().contains("/bin"),
        "the image's PATH is set",
        &out,
    );
    let out = d.docker(&["run", "--rm", "-u", "1000", "busybox", "id"]);
    c.check(
        out.success() && out.out().starts_with("uid=1000(app) gid=1000(app)"),
        "-u 1000 runs as app (uid and gid from /etc/passwd)",
        &out,
    );
    let out = d.docker(&["run", "--rm", "-u", "nobody", "busybox", "id", "-u"]);
    c.out_eq(&out, "65534", "-u nobody");
    let out = d.docker(&[
        "run",
        "--rm",
        "-u",
        "1000",
        "busybox",
        "sh",
        "-c",
        "touch /root/x",
    ]);
    c.check(
        !out.success(),
        "-u 1000 cannot write /root (mode 700, root's)",
        &out,
    );
    let out = d.docker(&["run", "--rm", "busybox", "id", "-u"]);
    c.out_eq(&out, "0", "default user is root");
    let out = d.docker(&["run", "--rm", "-w", "/tmp", "busybox", "pwd"]);
    c.out_eq(&out, "/tmp", "-w /tmp");
    let out = d.docker(&["run", "--rm", "-w", "/new/dir", "busybox", "pwd"]);
    c.out_eq(&out, "/new/dir", "-w creates a missing workdir");
    let out = d.docker(&["run", "--rm", "--hostname", "h", "busybox", "hostname"]);
    c.out_eq(&out, "h", "--hostname h");
    // The daemon's own OOM protection is not passed on; --oom-score-adj sets the score.
    let out = d.docker(&["run", "--rm", "busybox", "cat", "/proc/self/oom_score_adj"]);
    c.out_eq(&out, "0", "a container's default oom_score_adj is 0");
    let out = d.docker(&[
        "run",
        "--rm",
        "--oom-score-adj",
        "300",
        "busybox",
        "cat",
        "/proc/self/oom_score_adj",
    ]);
    // (Raising: lowering needs CAP_SYS_RESOURCE, which build machines may not grant; the
    // VM tests see the catalog's negative scores applied.)
    c.out_eq(&out, "300", "--oom-score-adj 300");
    let out = d.docker(&["run", "--rm", "--oom-score-adj", "1001", "busybox", "true"]);
    c.check(
        !out.success()
            && out
                .all()
                .contains("range for oom score adj is [-1000, 1000]"),
        "--oom-score-adj 1001 is refused, naming the range",
        &out,
    );

    // --- volumes
    let vol = tmp.path().join("vol");
    fs::create_dir_all(&vol).expect("mkdir vol");
    fs::write(vol.join("hello.txt"), "from host\n").expect("write vol file");
    let bind = format!("{}:/data", vol.display());
    let bind_ro = format!("{}:/data:ro", vol.display());
    let out = d.docker(&[
        "run",
        "--rm",
        "-v",
        &bind,
        "busybox",
        "cat",
        "/data/hello.txt",
    ]);
    c.out_eq(&out, "from host", "-v hostdir:/data shows the host file");
    let out = d.docker(&[
        "run",
        "--rm",
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        "echo hey > /data/out",
    ]);
    c.ok(&out, "write into a rw bind mount");
    let written = fs::read_to_string(vol.join("out")).unwrap_or_default();
    c.check(
        written == "hey\n",
        "the container's write reaches the host dir",
        &written,
    );
    let out = d.docker(&[
        "run",
        "--rm",
        "-v",
        &bind_ro,
        "busybox",
        "cat",
        "/data/hello.txt",
    ]);
    c.out_eq(&out, "from host", ":ro bind mount is readable");
    let out = d.docker(&[
        "run",
        "--rm",
        "-v",
        &bind_ro,
        "busybox",
        "sh",
        "-c",
        "echo x > /data/y",
    ]);
    c.fails_with(&out, &["read-only"], ":ro bind mount refuses writes");
    c.check(
        !vol.join("y").exists(),
        "nothing written through :ro",
        vol.join("y").display(),
    );

    // --- read-only rootfs, tmpfs
    let out = d.docker(&[
        "run",
        "--rm",
        "--read-only",
        "busybox",
        "sh",
        "-c",
        "echo x > /x",
    ]);
    c.fails_with(&out, &["read-only"], "--read-only refuses writes to /");
    let out = d.docker(&[
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/t",
        "busybox",
        "sh",
        "-c",
        "echo x > /t/x && cat /t/x && grep ' /t ' /proc/mounts",
    ]);
    c.check(
        out.success() && out.stdout.starts_with("x\n") && out.stdout.contains("tmpfs"),
        "--tmpfs /t is a writable tmpfs (even with --read-only)",
        &out,
    );

    // --- streams: stdout and stderr kept apart, stdin with -i
    let out = d.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2",
    ]);
    c.check(
        out.success() && out.stdout == "out\n" && out.stderr.trim() == "err",
        "run keeps the container's stdout and stderr apart",
        &out,
    );
    let out = d.docker_input(&["run", "--rm", "-i", "busybox", "wc", "-l"], b"a\nb\nc\n");
    c.out_eq(&out, "3", "run -i passes stdin (and its EOF)");

    // --- masked and read-only kernel paths (Docker's defaults), not for --privileged
    let mounts = |priv_flag: Option<&str>| {
        let mut args = vec!["run", "--rm"];
        args.extend(priv_flag);
        args.extend(["busybox", "cat", "/proc/mounts"]);
        let out = d.docker(&args);
        let opts = |mp: &str| {
            out.stdout
                .lines()
                .filter(|l| l.split_whitespace().nth(1) == Some(mp))
                .filter_map(|l| l.split_whitespace().nth(3).map(str::to_string))
                .next_back()
        };
        (opts("/proc/kcore"), opts("/proc/sys"), opts("/sys"), out)
    };
    let (kcore, procsys, sys, out) = mounts(None);
    if Path::new("/proc/kcore").exists() {
        c.check(
            kcore.is_some(),
            "/proc/kcore is masked (a mount over it)",
            &out,
        );
    }
    c.check(
        procsys
            .as_deref()
            .is_some_and(|o| o.split(',').any(|f| f == "ro")),
        "/proc/sys is read-only",
        &out,
    );
    c.check(
        sys.as_deref()
            .is_some_and(|o| o.split(',').any(|f| f == "ro")),
        "/sys is read-only",
        &out,
    );
    let (kcore, procsys, _, out) = mounts(Some("--privileged"));
    c.check(
        kcore.is_none()
            && !procsys
                .as_deref()
                .is_some_and(|o| o.split(',').any(|f| f == "ro")),
        "--privileged: nothing masked, /proc/sys writable",
        &out,
    );

    // --- network
    let out = d.docker(&[
        "run",
        "--rm",
        "--net",
        "none",
        "busybox",
        "cat",
        "/proc/net/dev",
    ]);
    let ifaces: Vec<&str> = out
        .stdout
        .lines()
        .skip(2)
        .filter_map(|l| l.split_once(':').map(|(n, _)| n.trim()))
        .collect();
    c.check(
        out.success() && ifaces == ["lo"],
        "--net none has only lo",
        &out,
    );

    // --- capabilities
    let grep_cap = ["grep", "CapEff", "/proc/self/status"];
    let out = d.docker(&[&["run", "--rm", "busybox"][..], &grep_cap].concat());
    c.check(
        cap_eff(&out) == Some(DOCKER_DEFAULT_CAPS),
        "default caps are docker's 00000000a80425fb",
        &out,
    );
    let all = own_cap_mask("CapBnd").and_then(|m| u64::from_str_radix(&m, 16).ok());
    let out = d.docker(&[&["run", "--rm", "--privileged", "busybox"][..], &grep_cap].concat());
    c.check(
        all.is_some() && cap_eff(&out) == all,
        &format!("--privileged has every capability of the host's bounding set ({all:x?})"),
        &out,
    );
    let out = d.docker(
        &[
            &["run", "--rm", "--cap-drop", "ALL", "busybox"][..],
            &grep_cap,
        ]
        .concat(),
    );
    c.check(cap_eff(&out) == Some(0), "--cap-drop ALL leaves none", &out);
    let out = d.docker(
        &[
            &["run", "--rm", "--cap-add", "NET_ADMIN", "busybox"][..],
            &grep_cap,
        ]
        .concat(),
    );
    c.check(
        cap_eff(&out) == Some(DOCKER_DEFAULT_CAPS | CAP_NET_ADMIN),
        "--cap-add NET_ADMIN adds to the default set",
        &out,
    );
    let out = d.docker(&[
        "run",
        "--rm",
        "busybox",
        "grep",
        "NoNewPrivs",
        "/proc/self/status",
    ]);
    c.check(
        out.success() && out.out().ends_with('1'),
        "non-privileged containers run with no_new_privs (DESIGN.md §5; stock Docker only \
         sets it with --security-opt no-new-privileges)",
        &out,
    );

    // --- cgroup limits, read from the host's view of the container's cgroup
    let out = d.docker(&[
        "run",
        "-d",
        "--name",
        "lim",
        "--memory",
        "64m",
        "--pids-limit",
        "20",
        "busybox",
        "sleep",
        "1000",
    ]);
    if c.ok(&out, "run -d with --memory 64m --pids-limit 20") {
        let pid = poll_for(Duration::from_secs(5), || d.container_pid("lim"));
        c.check(
            pid.is_some(),
            "lim has a .State.Pid",
            d.docker(&["inspect", "lim"]),
        );
        if let Some(pid) = pid {
            let mem = cgroup_value(pid, "memory", "memory.limit_in_bytes", "memory.max");
            c.check(
                mem.as_deref() == Ok("67108864"),
                "--memory 64m sets the cgroup memory limit to 67108864",
                format!("{mem:?}"),
            );
            let pids = cgroup_value(pid, "pids", "pids.max", "pids.max");
            c.check(
                pids.as_deref() == Ok("20"),
                "--pids-limit 20 sets pids.max",
                format!("{pids:?}"),
            );
        }
        let hc = d.inspect("{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}", "lim");
        c.check(
            hc == "67108864 20",
            "inspect shows HostConfig.Memory and PidsLimit",
            &hc,
        );
        let out = d.docker(&[
            "exec",
            "lim",
            "sh",
            "-c",
            "for i in $(seq 30); do sleep 1 & done; wait",
        ]);
        c.check(
            !out.success() || out.stderr.to_lowercase().contains("fork"),
            "--pids-limit 20 stops the 30th process",
            &out,
        );
        c.ok(&d.docker(&["rm", "-f", "lim"]), "rm -f lim");
    }

    // --- tag, rmi
    c.ok(
        &d.docker(&["tag", "busybox", "mybox:v1"]),
        "tag busybox mybox:v1",
    );
    let id = d.docker(&["image", "inspect", "-f", "{{.Id}}", "mybox:v1"]);
    c.out_eq(&id, &want_id, "the tag names the same image");
    let out = d.docker(&["run", "--rm", "mybox:v1", "echo", "tagged"]);
    c.out_eq(&out, "tagged", "run by the new tag");
    let out = d.docker(&["rmi", "mybox:v1"]);
    c.check(
        out.success() && out.stdout.contains("Untagged: mybox:v1"),
        "rmi a tag untags",
        &out,
    );
    c.ok(
        &d.docker(&["image", "inspect", "busybox"]),
        "busybox survives rmi of its other tag",
    );
    let out = d.docker(&["rmi", "layered-oci"]);
    c.ok(&out, "rmi layered-oci");
    let out = d.docker(&["image", "inspect", "layered-oci"]);
    c.fails_with(&out, &["no such image"], "layered-oci is gone");
    let out = d.docker(&["run", "--rm", "layered", "cat", "/etc/layer2"]);
    c.out_eq(
        &out,
        "added by layer 2",
        "layered still runs after rmi of layered-oci",
    );
    let out = d.docker(&["rmi", "nosuchimage:v9"]);
    c.fails_with(&out, &["no such image"], "rmi of an unknown image");

    let ps = d.docker(&["ps", "-aq"]);
    c.check(
        ps.success() && ps.out().is_empty(),
        "no containers left at the end",
        &ps,
    );
    c.finish_with(|| d.log_tail(40));
}

/// A detached container's life: ps, logs, inspect, exec, restart policy after a kill from the
/// host, stop, start, restart, kill, wait, rm, rmi.
#[test]
fn container_lifecycle() {
    const T: &str = "container_lifecycle";
    let Some(fx) = prerequisites(T) else { return };
    let tmp = ros_tests::tempdir();
    let d = Daemon::start(tmp.path());
    let mut c = Checks::new(T);
    d.load(&fx.busybox_tar);

    let out = d.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "echo hello-from-x; exec sleep 1000",
    ]);
    out.ok();
    let id = out.out().to_string();
    c.check(
        id.len() == 64 && id.chars().all(|ch| ch.is_ascii_hexdigit()),
        "run -d prints the 64-hex container ID",
        &out,
    );
    let ps = d.docker(&["ps", "--format", "{{.Names}}|{{.Status}}|{{.ID}}"]);
    c.check(
        ps.lines().iter().any(|l| {
            l.starts_with("web|Up") && id.starts_with(l.rsplit('|').next().unwrap_or("-"))
        }),
        "ps shows web Up with its short ID",
        &ps,
    );
    let logs_have = |name: &str, text: &str, n: usize| {
        poll_until(Duration::from_secs(5), || {
            d.docker(&["logs", name]).all().matches(text).count() >= n
        })
    };
    c.check(
        logs_have("web", "hello-from-x", 1),
        "logs web has the output",
        d.docker(&["logs", "web"]),
    );
    let st = d.inspect(
        "{{.State.Running}}|{{.Name}}|{{.HostConfig.RestartPolicy.Name}}|{{.Config.Image}}",
        "web",
    );
    c.check(
        st == "true|/web|always|busybox",
        "inspect: running, name, restart policy, image",
        &st,
    );

    // --- exec
    let out = d.docker(&["exec", "web", "echo", "hi"]);
    c.out_eq(&out, "hi", "exec web echo hi");
    let out = d.docker(&["exec", "web", "sh", "-c", "exit 7"]);
    c.code(&out, 7, "exec exit code");
    let out = d.docker(&[
        "exec",
        "-e",
        "A=b",
        "-u",
        "1000",
        "-w",
        "/tmp",
        "web",
        "sh",
        "-c",
        "echo $A $(id -u) $(pwd)",
    ]);
    c.out_eq(&out, "b 1000 /tmp", "exec -e -u -w");
    let out = d.docker(&["exec", "web", "cat", "/proc/1/comm"]);
    c.out_eq(
        &out,
        "sleep",
        "exec joins the container's PID namespace (its PID 1 is sleep)",
    );
    let out = d.docker(&["exec", "web", "nosuchcommand"]);
    c.check(
        matches!(out.code(), Some(126 | 127)) && out.all().contains("nosuchcommand"),
        "exec of a missing command fails with 126/127 naming it",
        &out,
    );

    // --- restart policy: SIGKILL the container's init from the host
    let pid1 = d.container_pid("web");
    c.check(
        pid1.is_some(),
        "web has a .State.Pid",
        d.docker(&["inspect", "web"]),
    );
    if let Some(pid1) = pid1 {
        c.check(
            pid_alive(pid1),
            "the .State.Pid process exists on the host",
            pid1,
        );
        let _ = kill(Pid::from_raw(pid1 as i32), Signal::SIGKILL);
        let back = poll_for(Duration::from_secs(2), || {
            d.container_pid("web")
                .filter(|&p| p != pid1 && pid_alive(p))
        });
        c.check(
            back.is_some(),
            "--restart always: running again with a new pid within 2 s of kill -9",
            format!("{}\n{}", d.docker(&["inspect", "web"]), d.log_tail(20)),
        );
        let rc = d.inspect("{{.RestartCount}}", "web");
        c.check(
            rc.parse::<u32>().is_ok_and(|n| n >= 1),
            "RestartCount counts the restart",
            &rc,
        );
        c.check(
            logs_have("web", "hello-from-x", 2),
            "logs keep both runs",
            d.docker(&["logs", "web"]),
        );
    }

    // --- stop, start, restart
    let out = d.docker(&["stop", "-t", "1", "web"]);
    c.out_eq(&out, "web", "stop -t 1 web");
    let st = d.inspect("{{.State.Running}} {{.State.ExitCode}}", "web");
    c.check(
        st == "false 137",
        "stopped: PID 1 ignores SIGTERM, so SIGKILL after 1 s → 137",
        &st,
    );
    c.check(
        !poll_until(Duration::from_millis(700), || {
            d.inspect("{{.State.Running}}", "web") == "true"
        }),
        "a stopped container is not restarted by its policy",
        d.docker(&["inspect", "web"]),
    );
    let ps = d.docker(&["ps", "--format", "{{.Names}}"]);
    c.check(
        ps.success() && !ps.lines().contains(&"web".to_string()),
        "ps (no -a) omits stopped web",
        &ps,
    );
    let ps = d.docker(&["ps", "-a", "--format", "{{.Names}}|{{.Status}}"]);
    c.check(
        ps.lines().iter().any(|l| l.starts_with("web|Exited (137)")),
        "ps -a shows web Exited (137)",
        &ps,
    );
    c.out_eq(&d.docker(&["start", "web"]), "web", "start web");
    let pid_a = poll_for(Duration::from_secs(5), || d.container_pid("web"));
    c.check(
        pid_a.is_some(),
        "web runs again after start",
        d.docker(&["inspect", "web"]),
    );
    c.out_eq(
        &d.docker(&["restart", "-t", "1", "web"]),
        "web",
        "restart -t 1 web",
    );
    let pid_b = poll_for(Duration::from_secs(5), || {
        d.container_pid("web").filter(|p| Some(*p) != pid_a)
    });
    c.check(
        pid_b.is_some(),
        "restart gives web a new pid",
        d.docker(&["inspect", "web"]),
    );
    let out = d.docker(&["rm", "web"]);
    c.fails_with(
        &out,
        &["running", "stop"],
        "rm of a running container is refused",
    );

    // --- kill, wait
    d.docker(&["run", "-d", "--name", "killme", "busybox", "sleep", "1000"])
        .ok();
    c.out_eq(&d.docker(&["kill", "killme"]), "killme", "kill killme");
    c.out_eq(
        &d.docker(&["wait", "killme"]),
        "137",
        "wait killme after kill → 137",
    );
    d.docker(&[
        "run", "-d", "--name", "waiter", "busybox", "sh", "-c", "exit 5",
    ])
    .ok();
    c.out_eq(
        &d.docker(&["wait", "waiter"]),
        "5",
        "wait waiter → its exit code 5",
    );
    let st = d.inspect("{{.State.Status}} {{.State.ExitCode}}", "waiter");
    c.check(st == "exited 5", "inspect waiter: exited 5", &st);
    let out = d.docker(&["kill", "waiter"]);
    c.check(!out.success(), "kill of a stopped container fails", &out);

    // --- logs keep the streams apart; --tail; ps filters
    d.docker(&[
        "run",
        "-d",
        "--name",
        "streams",
        "busybox",
        "sh",
        "-c",
        "echo out1; echo err1 >&2; echo out2",
    ])
    .ok();
    d.docker(&["wait", "streams"]).ok();
    let out = d.docker(&["logs", "streams"]);
    c.check(
        out.success() && out.stdout == "out1\nout2\n" && out.stderr == "err1\n",
        "logs: stdout to stdout, stderr to stderr",
        &out,
    );
    let out = d.docker(&["logs", "--tail", "1", "streams"]);
    c.check(
        out.success() && out.all().lines().filter(|l| !l.is_empty()).count() == 1,
        "logs --tail 1 shows one line",
        &out,
    );
    let out = d.docker(&[
        "ps",
        "-a",
        "--filter",
        "name=killme",
        "--format",
        "{{.Names}}",
    ]);
    c.out_eq(&out, "killme", "ps -a --filter name=killme");
    let out = d.docker(&[
        "ps",
        "-a",
        "--filter",
        "status=exited",
        "--format",
        "{{.Names}}",
    ]);
    let mut names = out.lines();
    names.sort();
    c.check(
        out.success() && names == ["killme", "streams", "waiter"],
        "ps -a --filter status=exited lists the exited ones",
        &out,
    );
    c.ok(&d.docker(&["rm", "streams"]), "rm streams");

    // --- on-failure:2 restarts twice, then gives up
    d.docker(&[
        "run",
        "-d",
        "--name",
        "of",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "echo try; exit 1",
    ])
    .ok();
    let settled = poll_until(Duration::from_secs(15), || {
        d.inspect(
            "{{.State.Running}} {{.RestartCount}} {{.State.ExitCode}}",
            "of",
        ) == "false 2 1"
    });
    c.check(
        settled,
        "on-failure:2 runs 3 times and ends exited 1, RestartCount 2",
        d.docker(&["inspect", "of"]),
    );
    c.check(
        logs_have("of", "try", 3),
        "logs of on-failure has 3 runs",
        d.docker(&["logs", "of"]),
    );

    // --- the engine's own client sees the same
    let sd_ps = d.sd(&["ps", "-a"]);
    c.check(
        sd_ps.success() && sd_ps.lines().iter().any(|l| l.ends_with(" web")),
        "system-docker ps -a lists web (NAMES is the last column)",
        &sd_ps,
    );
    let sd_images = d.sd(&["images"]);
    c.check(
        sd_images.success() && sd_images.stdout.contains("busybox"),
        "system-docker images lists busybox",
        &sd_images,
    );

    // --- rm, rmi
    c.out_eq(&d.docker(&["rm", "-f", "web"]), "web", "rm -f web");
    c.ok(
        &d.docker(&["rm", "killme", "waiter", "of"]),
        "rm stopped containers",
    );
    let out = d.docker(&["inspect", "web"]);
    c.fails_with(&out, &["no such"], "web is gone");
    d.docker(&["create", "--name", "holder", "busybox", "true"])
        .ok();
    let out = d.docker(&["rmi", "busybox"]);
    c.fails_with(
        &out,
        &["conflict", "being used", "in use"],
        "rmi of an image a container uses",
    );
    c.ok(&d.docker(&["rm", "holder"]), "rm holder");
    c.ok(&d.docker(&["rmi", "busybox"]), "rmi busybox once unused");
    let imgs = d.docker(&["images", "-q"]);
    c.check(
        imgs.success() && imgs.out().is_empty(),
        "no images left",
        &imgs,
    );
    let ps = d.docker(&["ps", "-aq"]);
    c.check(
        ps.success() && ps.out().is_empty(),
        "no containers left",
        &ps,
    );
    c.finish_with(|| d.log_tail(40));
}

/// The daemon crashes (SIGKILL) with containers running and exited; containers live on, a
/// new daemon on the same roots re-adopts them, and nothing is lost: states, pids, exit codes
/// (also of a container that exited while no daemon ran), logs.
#[test]
fn daemon_crash_keeps_containers() {
    const T: &str = "daemon_crash_keeps_containers";
    let Some(fx) = prerequisites(T) else { return };
    let tmp = ros_tests::tempdir();
    let mut d = Daemon::start(tmp.path());
    let mut c = Checks::new(T);
    d.load(&fx.busybox_tar);
    let ctl = tmp.path().join("ctl");
    fs::create_dir_all(&ctl).expect("mkdir ctl");
    let ctl_bind = format!("{}:/ctl", ctl.display());

    d.docker(&[
        "run",
        "-d",
        "--name",
        "runner",
        "busybox",
        "sh",
        "-c",
        "echo before-crash; exec sleep 1000",
    ])
    .ok();
    let out = d.docker(&[
        "run",
        "--name",
        "s1",
        "busybox",
        "sh",
        "-c",
        "echo s1-out; exit 4",
    ]);
    c.code(&out, 4, "run s1 exits 4");
    // Exit while no daemon runs: one silently, one writing output first.
    let wait_go = "while [ ! -e /ctl/go ]; do sleep 0.05; done";
    d.docker(&[
        "run",
        "-d",
        "--name",
        "late",
        "-v",
        &ctl_bind,
        "busybox",
        "sh",
        "-c",
        &format!("echo late-started; {wait_go}; exit 6"),
    ])
    .ok();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "chatty",
        "-v",
        &ctl_bind,
        "busybox",
        "sh",
        "-c",
        &format!("{wait_go}; echo chatty-exiting; exit 7"),
    ])
    .ok();

    let pid_of = |name: &str| poll_for(Duration::from_secs(5), || d.container_pid(name));
    let (r_pid, late_pid, chatty_pid) = (pid_of("runner"), pid_of("late"), pid_of("chatty"));
    let (Some(r_pid), Some(late_pid), Some(chatty_pid)) = (r_pid, late_pid, chatty_pid) else {
        panic!("containers did not start: {}", d.docker(&["ps", "-a"]));
    };
    let log_has = |d: &Daemon, name: &str, text: &str| {
        poll_until(Duration::from_secs(5), || {
            d.docker(&["logs", name]).all().contains(text)
        })
    };
    c.check(
        log_has(&d, "runner", "before-crash"),
        "runner logged before the crash",
        d.docker(&["logs", "runner"]),
    );
    c.check(
        log_has(&d, "late", "late-started"),
        "late logged",
        d.docker(&["logs", "late"]),
    );

    d.kill_hard();
    c.check(
        pid_alive(r_pid),
        "runner survives the daemon's SIGKILL",
        r_pid,
    );
    fs::write(ctl.join("go"), "").expect("touch go");
    for (name, pid) in [("late", late_pid), ("chatty", chatty_pid)] {
        c.check(
            poll_until(Duration::from_secs(10), || !pid_alive(pid)),
            &format!("{name} exits while the daemon is down"),
            pid,
        );
    }

    d.restart();
    let st = d.inspect("{{.State.Running}} {{.State.Pid}}", "runner");
    c.check(
        st == format!("true {r_pid}").as_str(),
        "after restart runner is still running with the same pid",
        format!("{st:?}\n{}", d.log_tail(30)),
    );
    let ps = d.docker(&["ps", "--format", "{{.Names}}"]);
    c.check(
        ps.lines() == ["runner"],
        "ps lists exactly runner as running",
        &ps,
    );
    c.check(
        log_has(&d, "runner", "before-crash"),
        "logs runner survive the crash",
        d.docker(&["logs", "runner"]),
    );
    let st = d.inspect("{{.State.Running}} {{.State.ExitCode}}", "s1");
    c.check(st == "false 4", "s1 keeps exit code 4", &st);
    c.check(
        log_has(&d, "s1", "s1-out"),
        "logs s1 survive",
        d.docker(&["logs", "s1"]),
    );
    for (name, code) in [("late", 6), ("chatty", 7)] {
        let want = format!("false {code}");
        let ok = poll_until(Duration::from_secs(5), || {
            d.inspect("{{.State.Running}} {{.State.ExitCode}}", name) == want.as_str()
        });
        c.check(
            ok,
            &format!("{name}, which exited while the daemon was down, shows exit code {code}"),
            format!("{}\n{}", d.docker(&["inspect", name]), d.log_tail(30)),
        );
    }
    c.check(
        log_has(&d, "late", "late-started"),
        "late's log survives",
        d.docker(&["logs", "late"]),
    );
    c.check(
        log_has(&d, "chatty", "chatty-exiting"),
        "output written while the daemon was down is in the log",
        d.docker(&["logs", "chatty"]),
    );
    let out = d.docker(&["exec", "runner", "echo", "adopted"]);
    c.out_eq(&out, "adopted", "exec into the re-adopted runner");

    // A graceful restart keeps everything as well.
    d.restart();
    let st = d.inspect("{{.State.Running}} {{.State.Pid}}", "runner");
    c.check(
        st == format!("true {r_pid}").as_str(),
        "runner survives a graceful daemon restart",
        &st,
    );
    let st = d.inspect("{{.State.ExitCode}}", "s1");
    c.check(
        st == "4",
        "s1 keeps exit code 4 over a graceful restart",
        &st,
    );

    // The re-adopted container is fully controlled.
    c.out_eq(
        &d.docker(&["stop", "-t", "1", "runner"]),
        "runner",
        "stop the re-adopted runner",
    );
    c.check(
        poll_until(Duration::from_secs(5), || !pid_alive(r_pid)),
        "runner's process is gone after stop",
        r_pid,
    );
    let st = d.inspect("{{.State.Running}} {{.State.ExitCode}}", "runner");
    c.check(st == "false 137", "runner exited 137 after stop", &st);
    c.ok(
        &d.docker(&["rm", "runner", "s1", "late", "chatty"]),
        "rm all",
    );
    c.finish_with(|| d.log_tail(40));
}
