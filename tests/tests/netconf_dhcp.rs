//! `ros netconf` against a real DHCP server: Debian's dnsmasq in a network namespace, our
//! client in another, joined by a veth pair. Lease applied (address, default route,
//! resolv.conf), renewal at the short T1 dnsmasq sends, and a silent network ending in a
//! bounded, clear failure.
//!
//! Only namespaces this test creates are touched (10.99.0.0/24 lives inside them); the
//! machine's own interfaces are never configured. Needs root, `ip` and `dnsmasq`; skips
//! loudly without them.

use std::fs::{self, File};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ros_tests::{bin_path, poll_until, require_root, require_tool, run, sh, tempdir, Output};

const TEST: &str = "netconf_dhcp";

/// The namespaces and processes of one run; removed (by PID, by name) even on panic.
struct Netns {
    server: String,
    client: String,
    children: Vec<Child>,
}

impl Netns {
    /// `tag` keeps the namespaces of tests running side by side apart.
    fn create(tag: &str) -> Netns {
        let pid = std::process::id();
        let n = Netns {
            server: format!("rosnc{tag}-s-{pid}"),
            client: format!("rosnc{tag}-c-{pid}"),
            children: Vec::new(),
        };
        sh("ip", &["netns", "add", &n.server]).ok();
        sh("ip", &["netns", "add", &n.client]).ok();
        // Both ends are created directly inside the namespaces: no name ever exists on
        // the host's own network.
        sh(
            "ip",
            &[
                "link", "add", "veth-s", "netns", &n.server, "type", "veth", "peer", "name",
                "veth-c", "netns", &n.client,
            ],
        )
        .ok();
        sh(
            "ip",
            &[
                "-n",
                &n.server,
                "addr",
                "add",
                "10.99.0.1/24",
                "dev",
                "veth-s",
            ],
        )
        .ok();
        sh("ip", &["-n", &n.server, "link", "set", "veth-s", "up"]).ok();
        sh("ip", &["-n", &n.server, "link", "set", "lo", "up"]).ok();
        n
    }

    fn spawn(&mut self, ns: &str, program: &Path, args: &[&str], log: &Path) -> usize {
        let log = File::create(log).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn in netns");
        self.children.push(child);
        self.children.len() - 1
    }

    /// Kills child `i` by its PID (`ip netns exec` execs the program, so it is the PID).
    fn kill(&mut self, i: usize) {
        let c = &mut self.children[i];
        let _ = c.kill();
        let _ = c.wait();
    }

    /// Starts dnsmasq serving 10.99.0.50-60 (2 min leases, router and DNS 10.99.0.1) on
    /// the server side, logging to `<dir>/dnsmasq.log`; returns its child index once it
    /// serves.
    fn dnsmasq(&mut self, dir: &Path, extra: &[&str]) -> usize {
        let log = dir.join("dnsmasq.log");
        let dnsmasq = ros_tests::which("dnsmasq").expect("dnsmasq on PATH");
        let leases = format!("--dhcp-leasefile={}", dir.join("dnsmasq.leases").display());
        let mut args = vec![
            "--no-daemon",
            "--log-facility=-",
            "--interface=veth-s",
            "--bind-interfaces",
            "--dhcp-range=10.99.0.50,10.99.0.60,2m",
            "--dhcp-option=option:router,10.99.0.1",
            "--dhcp-option=option:dns-server,10.99.0.1",
            "--port=0",
            "--conf-file=/dev/null",
            &leases,
        ];
        args.extend_from_slice(extra);
        let server = self.server.clone();
        let i = self.spawn(&server, &dnsmasq, &args, &log);
        assert!(
            poll_until(Duration::from_secs(10), || read(&log)
                .contains("DHCP, IP range")),
            "dnsmasq did not start:\n{}",
            read(&log)
        );
        i
    }

    fn client_cmd(&self, root: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.client])
            .arg(bin_path("ros"))
            .arg("--root")
            .arg(root)
            .arg("netconf")
            .args(args);
        cmd
    }

    fn client_ip(&self, args: &[&str]) -> Output {
        let mut a = vec!["-n", self.client.as_str()];
        a.extend_from_slice(args);
        sh("ip", &a)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = sh("ip", &["netns", "del", &self.server]);
        let _ = sh("ip", &["netns", "del", &self.client]);
    }
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_default()
}

#[test]
fn dhcp_lease_renewal_and_silent_network() {
    if !(require_root(TEST) && require_tool(TEST, "ip") && require_tool(TEST, "dnsmasq")) {
        return;
    }
    let tmp = tempdir();
    let root = tmp.path().join("root");
    fs::create_dir_all(&root).expect("root dir");
    let dnsmasq_log = tmp.path().join("dnsmasq.log");
    let ros_log = tmp.path().join("netconf.log");
    let mut ns = Netns::create("d");

    // T1 = 10 s: a renewal within the test.
    let d = ns.dnsmasq(tmp.path(), &["--dhcp-option=option:T1,10"]);

    // Foreground: lease, then renewal at T1 = 10 s.
    let ros_bin = bin_path("ros");
    let root_s = root.to_string_lossy().into_owned();
    let client_ns = ns.client.clone();
    let r = ns.spawn(
        &client_ns,
        &ros_bin,
        &["--root", &root_s, "netconf", "--iface", "veth-c"],
        &ros_log,
    );
    let logs = || {
        format!(
            "--- netconf log:\n{}\n--- dnsmasq log:\n{}",
            read(&ros_log),
            read(&dnsmasq_log)
        )
    };
    assert!(
        poll_until(Duration::from_secs(20), || read(&ros_log)
            .contains("leased")),
        "no lease within 20 s\n{}",
        logs()
    );
    let leased = read(&ros_log);
    assert!(
        leased.contains("dhcp: veth-c leased 10.99.0.")
            && leased.contains("/24 from 10.99.0.1, router 10.99.0.1, dns 10.99.0.1, lease 120s"),
        "lease line\n{}",
        logs()
    );

    let addr = ns.client_ip(&["-4", "addr", "show", "dev", "veth-c"]);
    let inet = addr
        .stdout
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let host: u8 = inet
        .strip_prefix("10.99.0.")
        .and_then(|s| s.strip_suffix("/24"))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!(
        (50..=60).contains(&host),
        "veth-c has no address from the range:\n{addr}\n{}",
        logs()
    );
    let route = ns.client_ip(&["-4", "route", "show", "default"]);
    assert!(
        route.stdout.contains("default via 10.99.0.1 dev veth-c"),
        "default route:\n{route}"
    );
    let resolv = read(&root.join("etc/resolv.conf"));
    assert!(
        resolv.lines().any(|l| l == "nameserver 10.99.0.1"),
        "resolv.conf: {resolv:?}"
    );
    let lo = ns.client_ip(&["link", "show", "lo"]);
    assert!(lo.stdout.contains(",UP"), "lo is not up:\n{lo}");

    assert!(
        poll_until(Duration::from_secs(18), || read(&ros_log)
            .contains("renewed")
            && read(&dnsmasq_log).matches("DHCPACK(veth-s)").count() >= 2),
        "no renewal within ~15 s of the lease (T1 = 10 s)\n{}",
        logs()
    );
    ns.kill(r);
    ns.kill(d);

    // Silent network: bounded, clear, non-zero.
    let out = run(
        &mut ns.client_cmd(&root, &["--iface", "veth-c", "--once", "--timeout", "10"]),
        Duration::from_secs(30),
    );
    assert!(!out.timed_out, "netconf --once hung:\n{out}");
    assert!(
        !out.success(),
        "netconf --once succeeded without a server:\n{out}"
    );
    assert!(
        out.elapsed < Duration::from_secs(20),
        "gave up too late:\n{out}"
    );
    assert!(
        out.stderr.contains("no lease within 10s"),
        "unclear message:\n{out}"
    );
    eprintln!(
        "netconf_dhcp: leased {inet}, renewed, silent network gave up after {:?}",
        out.elapsed
    );
}

/// Writes the host config netconf reads: `<root>/var/lib/ros/conf/cloud-config.yml`.
fn write_config(root: &Path, text: &str) {
    let p = root.join("var/lib/ros/conf/cloud-config.yml");
    fs::create_dir_all(p.parent().expect("parent")).expect("conf dir");
    fs::write(p, text).expect("write config");
}

/// Whether the kernel can make links of `kind` (this machine's has no bonding or 8021q;
/// the VM test covers them with Debian's kernel).
fn kernel_has(ns: &str, kind: &str) -> bool {
    let ok = sh("ip", &["-n", ns, "link", "add", "probe0", "type", kind]).success();
    let _ = sh("ip", &["-n", ns, "link", "del", "probe0"]);
    ok
}

#[test]
fn configured_links_bridge_static_addresses_routes_and_dhcp() {
    if !(require_root(TEST) && require_tool(TEST, "ip") && require_tool(TEST, "dnsmasq")) {
        return;
    }
    let tmp = tempdir();
    let root = tmp.path().join("root");
    let dnsmasq_log = tmp.path().join("dnsmasq.log");
    let mut ns = Netns::create("l");
    let client_ns = ns.client.clone();
    // A second pair inside the client namespace: p0 becomes a bridge port (chosen by its
    // MAC), p1 is left alone.
    sh(
        "ip",
        &[
            "-n",
            &client_ns,
            "link",
            "add",
            "p0",
            "address",
            "02:00:00:00:aa:01",
            "type",
            "veth",
            "peer",
            "name",
            "p1",
        ],
    )
    .ok();
    ns.dnsmasq(tmp.path(), &[]);
    let bond = kernel_has(&client_ns, "bond");
    if !bond {
        eprintln!("SKIP part of {TEST}: this kernel cannot make bonds or VLANs (no bonding/8021q); the VM test covers them");
    }
    write_config(
        &root,
        r#"#cloud-config
ros:
  network:
    dns:
      nameservers: [10.98.0.53, "fd98::53"]
      search: [example.test]
    interfaces:
      veth-c: {dhcp: true, mtu: 1400}
      br0:
        bridge: true
        addresses: [10.97.0.1/24, "fd97::1/64"]
        routes: [{to: 10.96.0.0/16, via: 10.97.0.254, metric: 50}]
      mac=02:00:00:00:aa:01: {bridge: br0}
      eth9: {dhcp: true}
"#,
    );
    let once = |ns: &Netns| {
        run(
            &mut ns.client_cmd(&root, &["--once", "--timeout", "20"]),
            Duration::from_secs(60),
        )
    };
    let out = once(&ns);
    assert!(
        out.success() && !out.timed_out,
        "netconf --once:\n{out}\n{}",
        read(&dnsmasq_log)
    );
    assert!(
        out.stderr.contains("no link named eth9"),
        "missing link not said:\n{out}"
    );

    let show = |args: &[&str]| ns.client_ip(args).stdout;
    let br = show(&["-d", "link", "show", "br0"]);
    assert!(br.contains("bridge") && br.contains(",UP"), "br0:\n{br}");
    let p0 = show(&["link", "show", "p0"]);
    assert!(p0.contains("master br0"), "p0 is not a port of br0:\n{p0}");
    let p1 = show(&["-4", "addr", "show", "p1"]);
    assert!(!p1.contains("inet"), "p1 was configured:\n{p1}");
    let addrs = show(&["addr", "show", "br0"]);
    assert!(
        addrs.contains("inet 10.97.0.1/24") && addrs.contains("inet6 fd97::1/64"),
        "br0 addresses:\n{addrs}"
    );
    // The gateway of a static route must be on a connected network; br0's is.
    let routes = show(&["-4", "route", "show", "10.96.0.0/16"]);
    assert!(
        routes.contains("10.96.0.0/16 via 10.97.0.254 dev br0") && routes.contains("metric 50"),
        "static route:\n{routes}"
    );
    let veth = show(&["addr", "show", "veth-c"]);
    assert!(veth.contains("mtu 1400"), "the config's MTU:\n{veth}");
    assert!(
        veth.contains("inet 10.99.0."),
        "no lease on veth-c:\n{veth}"
    );
    let default = show(&["-4", "route", "show", "default"]);
    assert!(
        default.contains("via 10.99.0.1 dev veth-c"),
        "default route:\n{default}"
    );
    // The config names the DNS servers: the lease's are not written.
    let resolv = read(&root.join("etc/resolv.conf"));
    assert_eq!(
        resolv,
        "# Generated by ros netconf from the network config\nsearch example.test\nnameserver 10.98.0.53\nnameserver fd98::53\n"
    );

    // Again: everything exists already, which is not an error.
    let again = once(&ns);
    assert!(again.success(), "second run:\n{again}");
    assert_eq!(
        show(&["addr", "show", "br0"])
            .matches("inet 10.97.0.1/24")
            .count(),
        1
    );

    // A bad bond option fails that link, clearly; the rest is configured.
    if bond {
        write_config(
            &root,
            "#cloud-config\nros:\n  network:\n    interfaces:\n      bond0: {bond_opts: {mode: no-such-mode}}\n      p1: {bond: bond0}\n      veth-c: {addresses: [10.99.0.7/24]}\n",
        );
        let out = once(&ns);
        assert!(!out.success(), "a bad bond mode passed:\n{out}");
        assert!(
            out.stderr.contains("bonding option mode=no-such-mode"),
            "{out}"
        );
        assert!(show(&["addr", "show", "veth-c"]).contains("10.99.0.7/24"));
    }
    eprintln!(
        "{TEST}: bridge, MAC match, static IPv4/IPv6, route, MTU, DHCP and static DNS configured"
    );
}
