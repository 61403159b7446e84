//! Namespaces, volumes and devices through the stock docker CLI: `--net/--pid/--ipc/--uts
//! host`, `container:<name>` joins, `--volumes-from`, `--device`, `--entrypoint`, `--cpus`
//! and bind propagation (a mount made on the host after the container started reaches it
//! only through an `rslave`/`rshared` volume). One daemon, many assertions; root only.

use std::fs;
use std::time::Duration;

use ros_tests::{cgroup_value, fixtures, poll_for, require_root, require_tool, Checks, Daemon};

fn ns_inode(pid: &str, kind: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

#[test]
fn namespaces_volumes_devices() {
    const T: &str = "namespaces_volumes_devices";
    if !require_root(T) || !require_tool(T, "docker") {
        return;
    }
    let Some(fx) = fixtures(T) else { return };
    let tmp = ros_tests::tempdir();
    let d = Daemon::start(tmp.path());
    let mut c = Checks::new(T);
    assert!(d.load(&fx.busybox_tar).success(), "loading busybox");

    // --- host namespaces: the container's namespace links are the host's.
    let me = std::process::id().to_string();
    for (flag, kind) in [
        ("--net", "net"),
        ("--pid", "pid"),
        ("--ipc", "ipc"),
        ("--uts", "uts"),
    ] {
        let out = d.docker(&[
            "run",
            "--rm",
            flag,
            "host",
            "busybox",
            "readlink",
            &format!("/proc/self/ns/{kind}"),
        ]);
        c.out_eq(
            &out,
            &ns_inode(&me, kind),
            &format!("{flag} host shares the host's {kind} namespace"),
        );
        let out = d.docker(&[
            "run",
            "--rm",
            "busybox",
            "readlink",
            &format!("/proc/self/ns/{kind}"),
        ]);
        c.check(
            out.success() && out.out() != ns_inode(&me, kind),
            &format!("without {flag} host the {kind} namespace is the container's own"),
            &out,
        );
    }
    let host_name = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let out = d.docker(&["run", "--rm", "--net", "host", "busybox", "hostname"]);
    c.out_eq(&out, &host_name, "--net host takes the host's hostname");

    // --- joining another container's namespaces
    let out = d.docker(&[
        "run",
        "-d",
        "--name",
        "anchor",
        "--hostname",
        "anchored",
        "busybox",
        "sleep",
        "1000",
    ]);
    if c.ok(&out, "run -d anchor") {
        let pid = poll_for(Duration::from_secs(5), || d.container_pid("anchor"))
            .unwrap_or(0)
            .to_string();
        for kind in ["net", "ipc", "pid"] {
            let flag = format!("--{kind}");
            let out = d.docker(&[
                "run",
                "--rm",
                &flag,
                "container:anchor",
                "busybox",
                "readlink",
                &format!("/proc/self/ns/{kind}"),
            ]);
            c.out_eq(
                &out,
                &ns_inode(&pid, kind),
                &format!("{flag} container:anchor joins its {kind} namespace"),
            );
        }
        let out = d.docker(&[
            "run",
            "--rm",
            "--pid",
            "container:anchor",
            "busybox",
            "sh",
            "-c",
            "ps -o comm | grep -c sleep",
        ]);
        c.out_eq(
            &out,
            "1",
            "a container in anchor's pid namespace sees anchor's sleep",
        );
    }

    // --- volumes: --volumes-from copies binds (and their modes), ro override
    let vol = tmp.path().join("vol");
    fs::create_dir_all(&vol).unwrap();
    fs::write(vol.join("f"), "shared\n").unwrap();
    let bind = format!("{}:/data", vol.display());
    let out = d.docker(&["create", "--name", "store", "-v", &bind, "busybox", "true"]);
    c.ok(&out, "create a container with a volume");
    let out = d.docker(&[
        "run",
        "--rm",
        "--volumes-from",
        "store",
        "busybox",
        "cat",
        "/data/f",
    ]);
    c.out_eq(&out, "shared", "--volumes-from store mounts store's volume");
    let out = d.docker(&[
        "run",
        "--rm",
        "--volumes-from",
        "store:ro",
        "busybox",
        "sh",
        "-c",
        "echo x > /data/g",
    ]);
    c.fails_with(
        &out,
        &["Read-only file system"],
        "--volumes-from store:ro is read-only",
    );
    let out = d.docker(&[
        "run",
        "--rm",
        "-v",
        "named1:/n",
        "busybox",
        "sh",
        "-c",
        "echo kept > /n/x",
    ]);
    c.ok(&out, "a named volume is created on first use");
    let out = d.docker(&["run", "--rm", "-v", "named1:/n", "busybox", "cat", "/n/x"]);
    c.out_eq(
        &out,
        "kept",
        "a named volume keeps its data across containers",
    );

    // --- propagation: a host mount made under the source after start reaches rslave only
    let src = tmp.path().join("prop");
    fs::create_dir_all(src.join("sub")).unwrap();
    let shared_mount = nix::mount::mount(
        Some(&src),
        &src,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .and_then(|_| {
        nix::mount::mount(
            None::<&str>,
            &src,
            None::<&str>,
            nix::mount::MsFlags::MS_SHARED,
            None::<&str>,
        )
    });
    if c.check(
        shared_mount.is_ok(),
        "make the propagation source a shared mount",
        format!("{shared_mount:?}"),
    ) {
        let slave = format!("{}:/p:rslave", src.display());
        let private = format!("{}:/q", src.display());
        let out = d.docker(&[
            "run", "-d", "--name", "prop", "-v", &slave, "-v", &private, "busybox", "sleep", "1000",
        ]);
        if c.ok(
            &out,
            "run with an rslave and a private bind of the same source",
        ) {
            let sub = src.join("sub");
            let m = nix::mount::mount(
                Some("tmpfs"),
                &sub,
                Some("tmpfs"),
                nix::mount::MsFlags::empty(),
                None::<&str>,
            );
            c.check(
                m.is_ok(),
                "mount a tmpfs under the source on the host",
                format!("{m:?}"),
            );
            fs::write(sub.join("late"), "late\n").unwrap();
            let out = d.docker(&["exec", "prop", "cat", "/p/sub/late"]);
            c.out_eq(
                &out,
                "late",
                "an rslave volume sees a host mount made after start",
            );
            let out = d.docker(&["exec", "prop", "ls", "/q/sub"]);
            c.check(
                out.success() && out.out().is_empty(),
                "a private volume does not see it",
                &out,
            );
            let _ = d.docker(&["rm", "-f", "prop"]);
            let _ = nix::mount::umount2(&sub, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = nix::mount::umount2(&src, nix::mount::MntFlags::MNT_DETACH);
    }

    // --- devices, entrypoint, cpus
    let out = d.docker(&[
        "run",
        "--rm",
        "--device",
        "/dev/null:/dev/mynull",
        "busybox",
        "sh",
        "-c",
        "test -c /dev/mynull && echo written > /dev/mynull && echo ok",
    ]);
    c.out_eq(
        &out,
        "ok",
        "--device maps a host device node into the container",
    );
    let out = d.docker(&[
        "run",
        "--rm",
        "--device",
        "/etc/hostname",
        "busybox",
        "true",
    ]);
    c.fails_with(
        &out,
        &["not a device"],
        "--device refuses what is not a device node",
    );
    let out = d.docker(&[
        "run",
        "--rm",
        "--entrypoint",
        "echo",
        "busybox",
        "from",
        "entrypoint",
    ]);
    c.out_eq(
        &out,
        "from entrypoint",
        "--entrypoint replaces the image's entrypoint",
    );
    let out = d.docker(&[
        "run", "-d", "--name", "cpu", "--cpus", "0.5", "busybox", "sleep", "1000",
    ]);
    if c.ok(&out, "run -d --cpus 0.5") {
        if let Some(pid) = poll_for(Duration::from_secs(5), || d.container_pid("cpu")) {
            let v = cgroup_value(pid, "cpu", "cpu.cfs_quota_us", "cpu.max");
            c.check(
                matches!(v.as_deref(), Ok("50000") | Ok("50000 100000")),
                "--cpus 0.5 sets a quota of 50 ms per 100 ms",
                format!("{v:?}"),
            );
        }
    }
    let out = d.docker(&["run", "--rm", "--net", "bogus", "busybox", "true"]);
    c.fails_with(
        &out,
        &["invalid namespace mode", "network bogus not found"],
        "an unknown network mode is refused",
    );
    let _ = d.docker(&["rm", "-f", "anchor", "store", "cpu"]);
    c.finish();
}
