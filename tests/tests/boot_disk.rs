//! ros as users boot it: the disk images and the live ISO of `dist/` (`make image`), booted
//! by the firmware in QEMU (TCG) and reached over SSH as `rancher` with a key from a
//! NoCloud seed — the way a cloud or Vagrant hands a key to a host.
//!
//! 1. `ros-<ver>.qcow2` with SeaBIOS (GRUB from the BIOS-boot partition), a NoCloud seed
//!    (`cidata` ISO) with the key, a hostname, write_files, bootcmd and runcmd: the ready
//!    line; SSH; the six system services in `sudo system-docker ps`; the preloaded image
//!    runs in the user engine; cloud-config applied; the seed's network-config (v2) made
//!    a bond of two more NICs, a VLAN and a bridge. A second boot of the same disk keeps
//!    /home/rancher and /var/lib/docker; runcmd ran once, bootcmd twice.
//! 2. `ros-<ver>.raw` with OVMF (UEFI, GRUB from ROS_EFI) and an OpenStack config drive
//!    whose userdata is broken: the host still boots to SSH with the key of the drive's
//!    meta_data.json, and `ros config status` names the refused userdata.
//! 3. `ros-<ver>.iso` with SeaBIOS from the CD-ROM and a blank disk: the live system's ready
//!    line, the root shell on the serial console, SSH with a seed's key; `ros install` to
//!    the blank disk (a bad cloud-config refused first); the installed disk boots alone to
//!    SSH with the key of the cloud-config given to the installer.
//!
//! 4. `ros-<ver>.qcow2` as on EC2: SMBIOS says so, an IMDSv2 emulator answers at
//!    169.254.169.254 through QEMU's `guestfwd`; the host boots with its userdata and key.
//!
//! Needs root, qemu-system-x86_64, qemu-img, xorriso, ssh, ssh-keygen and OVMF; skips loudly
//! otherwise (`ROS_TEST_NO_VM=1` skips on purpose).

use std::path::Path;
use std::time::{Duration, Instant};

use ros_tests::guest::{
    artifact, copy_sparse, dist_version, free_port, overlay, seed_iso, ssh, ssh_key, wait_ssh,
};
use ros_tests::imds::Imds;
use ros_tests::qemu::{boot_to_ready, Drive, Firmware, Vm, VmConfig, VmSlot, OVMF_CODE, OVMF_VARS};
use ros_tests::{require_root, require_tool, skip, tempdir, Checks, Output};

// Upper bounds, polled: with two VMs on two cores (`make test`) a first boot under TCG
// takes ~2 minutes to ready, and SSH can lag behind the ready line.
const BOOT: Duration = Duration::from_secs(420);
const SSH: Duration = Duration::from_secs(240);
const CMD: Duration = Duration::from_secs(120);
const DOWN: Duration = Duration::from_secs(120);

fn can_run(test: &str) -> bool {
    if std::env::var("ROS_TEST_NO_VM").is_ok_and(|v| v == "1") {
        skip(test, "ROS_TEST_NO_VM=1");
        return false;
    }
    require_root(test)
        && [
            "qemu-system-x86_64",
            "qemu-img",
            "xorriso",
            "ssh",
            "ssh-keygen",
        ]
        .iter()
        .all(|t| require_tool(test, t))
}

fn boot(c: &mut Checks, cfg: &VmConfig, log: &Path, what: &str) -> Option<Vm> {
    boot_to_ready(c, cfg, log, what, BOOT)
}

/// Runs `cmd` over SSH as rancher.
/// `cmd` over SSH as rancher. A connection that sshd did not take (QEMU's forward reached
/// the guest but nothing answered on port 22: sshd restarting) is made again for a while,
/// as a user would; anything from the command itself is returned as it is.
fn on(port: u16, key: &Path, cmd: &str) -> Output {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = ssh(port, key, "rancher", cmd, CMD);
        let refused = out.code() == Some(255)
            && [
                "kex_exchange_identification",
                "Connection refused",
                "Connection reset",
            ]
            .iter()
            .any(|m| out.stderr.contains(m));
        if !refused || Instant::now() >= deadline {
            return out;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// `sudo poweroff` over SSH; QEMU must end by itself. SSH is tried again while it cannot
/// connect: sshd re-executes itself once when the console's background RSA host key is
/// ready (SIGHUP), and under load that can fall on this moment.
fn power_off(c: &mut Checks, vm: &mut Vm, port: u16, key: &Path, what: &str) {
    let deadline = Instant::now() + CMD;
    let mut tries = Vec::new();
    let st = loop {
        let out = ssh(port, key, "rancher", "sudo poweroff", CMD);
        let st = vm.wait_exit(Duration::from_secs(5));
        tries.push(format!("{:?}: {}", out.code(), out.stderr.trim()));
        // 255 is also ssh's code when the host goes down under it: only a connection that
        // was never made is tried again.
        let unconnected = out.code() == Some(255)
            && [
                "refused",
                "kex_exchange_identification",
                "banner exchange",
                "reset by peer",
            ]
            .iter()
            .any(|w| out.stderr.contains(w));
        if st.is_some() || !unconnected || Instant::now() >= deadline {
            break st.or_else(|| vm.wait_exit(DOWN));
        }
    };
    c.check(
        st.is_some(),
        &format!("{what}: sudo poweroff ends QEMU"),
        format!("ssh: {}\n{}", tries.join("\n"), vm.tail(30)),
    );
}

fn services_run(c: &mut Checks, port: u16, key: &Path, what: &str) {
    let ps = on(port, key, "sudo system-docker ps --format '{{.Names}}'");
    let names = ps.lines();
    let want = ["udev", "syslog", "ntp", "network", "console", "docker"];
    c.check(
        ps.success() && want.iter().all(|w| names.iter().any(|n| n == w)),
        &format!("{what}: sudo system-docker ps shows {want:?}"),
        &ps,
    );
}

fn user_data(public: &str) -> String {
    format!(
        "#cloud-config
hostname: ros-vm1
ssh_authorized_keys:
  - {public}
write_files:
  - path: /home/rancher/from-cloud-config.txt
    permissions: '0640'
    owner: rancher:rancher
    content: written by cloud-config
bootcmd:
  - echo boot >> /var/lib/ros/bootcmd.log
runcmd:
  - [sh, -c, 'echo run >> /var/lib/ros/runcmd.log']
"
    )
}

/// The seed's NoCloud network-config (v2): DHCP on eth0 (SSH comes that way), a bond of
/// the two other NICs (chosen by MAC) with a static address, a VLAN on eth0, an empty
/// bridge. Debian's kernel has bonding and 8021q as modules: netconf loads them.
const NETWORK_CONFIG: &str = "version: 2
ethernets:
  eth0: {dhcp4: true}
  nic1: {match: {macaddress: '52:54:00:12:35:11'}}
  nic2: {match: {macaddress: '52:54:00:12:35:12'}}
bonds:
  bond0:
    interfaces: [nic1, nic2]
    parameters: {mode: active-backup, mii-monitor-interval: 100}
    addresses: [10.77.0.2/24]
vlans:
  vlan42: {id: 42, link: eth0, addresses: [10.42.0.2/24]}
bridges:
  br0: {interfaces: [], addresses: [10.88.0.1/24]}
";

fn network_config_applied(c: &mut Checks, port: u16, key: &Path) {
    let bond = on(
        port,
        key,
        "cat /sys/class/net/bond0/bonding/mode /sys/class/net/bond0/bonding/miimon /sys/class/net/bond0/bonding/slaves",
    );
    c.check(
        bond.stdout.contains("active-backup")
            && bond.stdout.contains("100")
            && bond.stdout.contains("eth1")
            && bond.stdout.contains("eth2"),
        "network-config: bond0 (active-backup, miimon 100) of the NICs matched by MAC",
        &bond,
    );
    let vlan = on(port, key, "sudo cat /proc/net/vlan/config");
    c.check(
        vlan.stdout.lines().any(|l| {
            let f: Vec<&str> = l.split('|').map(str::trim).collect();
            f == ["vlan42", "42", "eth0"]
        }),
        "network-config: vlan42 is VLAN 42 on eth0",
        &vlan,
    );
    let addrs = on(port, key, "ip addr show");
    c.check(
        [
            "10.77.0.2/24",
            "10.42.0.2/24",
            "10.88.0.1/24",
            "10.0.2.15/24",
        ]
        .iter()
        .all(|a| addrs.stdout.contains(a)),
        "network-config: static addresses on bond0, vlan42 and br0; DHCP's on eth0",
        &addrs,
    );
    c.ok(
        &on(port, key, "test -d /sys/class/net/br0/bridge"),
        "network-config: br0 is a bridge",
    );
}

#[test]
fn qcow2_bios_nocloud_ssh_and_a_second_boot() {
    const T: &str = "qcow2_bios_nocloud_ssh_and_a_second_boot";
    if !can_run(T) {
        return;
    }
    let _slot = VmSlot::take();
    let mut c = Checks::new(T);
    let dir = tempdir();
    let d = dir.path();
    let disk = d.join("disk.qcow2");
    overlay(&artifact("qcow2"), &disk);
    let (key, public) = ssh_key(d, "id_ros");
    let seed = seed_iso(
        d,
        "cidata",
        &[
            ("user-data", &user_data(&public)),
            (
                "meta-data",
                "instance-id: i-disk-test-1\nlocal-hostname: from-meta-data\n",
            ),
            ("network-config", NETWORK_CONFIG),
        ],
    );
    let port = free_port();
    let mut cfg = VmConfig::firmware(Firmware::Bios);
    cfg.drives = vec![Drive::qcow2(&disk), Drive::raw(&seed).read_only()];
    cfg.forwards = vec![(port, 22)];
    cfg.extra_nics = vec!["52:54:00:12:35:11".into(), "52:54:00:12:35:12".into()];
    let version = dist_version();

    let Some(mut vm) = boot(&mut c, &cfg, &d.join("boot1.log"), "qcow2 boot 1") else {
        return c.finish();
    };
    c.check(
        vm.output().contains("GNU GRUB"),
        "boot 1: GRUB (BIOS) started the kernel",
        vm.tail(5),
    );
    let up = wait_ssh(port, &key, "rancher", SSH);
    if !c.check(
        up.success(),
        "boot 1: SSH as rancher with the seed's key",
        &up,
    ) {
        return c.finish_with(|| vm.tail(80));
    }
    services_run(&mut c, port, &key, "boot 1");
    c.out_eq(
        &on(port, &key, "hostname"),
        "ros-vm1",
        "boot 1: hostname from user-data",
    );
    let hello = on(port, &key, &format!("docker run --rm ros/hello:{version}"));
    c.check(
        hello.success() && hello.stdout.contains("this image was preloaded"),
        "boot 1: docker run --rm of the preloaded image prints its greeting",
        &hello,
    );
    // A published port on a user-defined network: the engine's iptables rules for it (DNAT,
    // the embedded DNS's port rules) need xt_tcpudp and xt_nat from the images' modules.
    let web = on(
        port,
        &key,
        &format!(
            "docker network create rostest >/dev/null && \
             docker run -d --name web --network rostest -p 8080:8080 --entrypoint /bin/busybox \
             ros/hello:{version} httpd -f -p 8080 -h /etc >/dev/null && \
             for i in 1 2 3 4 5 6 7 8 9 10; do \
             wget -qO- http://127.0.0.1:8080/os-release && break; sleep 1; done; \
             docker rm -f web >/dev/null; docker network rm rostest >/dev/null"
        ),
    );
    c.check(
        web.stdout.contains("ID=ros"),
        "boot 1: docker run -p on a user-defined network serves on the published port",
        &web,
    );
    let f = on(
        port,
        &key,
        "stat -c '%a %U:%G' /home/rancher/from-cloud-config.txt && cat /home/rancher/from-cloud-config.txt",
    );
    c.check(
        f.stdout.contains("640 rancher:rancher") && f.stdout.contains("written by cloud-config"),
        "boot 1: write_files with mode and owner",
        &f,
    );
    let st = on(port, &key, "sudo ros config status");
    c.check(
        st.success() && st.all().contains("nocloud"),
        "boot 1: ros config status names the nocloud datasource",
        &st,
    );
    network_config_applied(&mut c, port, &key);
    c.ok(
        &on(
            port,
            &key,
            "echo kept > /home/rancher/kept.txt && docker tag ros/hello:VERSION kept:1"
                .replace("VERSION", &version)
                .as_str(),
        ),
        "boot 1: a file in /home/rancher and an image tag in /var/lib/docker",
    );
    power_off(&mut c, &mut vm, port, &key, "boot 1");
    drop(vm);

    let Some(mut vm) = boot(&mut c, &cfg, &d.join("boot2.log"), "qcow2 boot 2") else {
        return c.finish();
    };
    let up = wait_ssh(port, &key, "rancher", SSH);
    if c.check(up.success(), "boot 2: SSH as rancher", &up) {
        c.out_eq(
            &on(port, &key, "cat /home/rancher/kept.txt"),
            "kept",
            "boot 2: /home/rancher kept",
        );
        c.ok(
            &on(port, &key, "docker image inspect kept:1 >/dev/null"),
            "boot 2: /var/lib/docker kept (the tag is there)",
        );
        c.out_eq(
            &on(port, &key, "cat /var/lib/ros/runcmd.log"),
            "run",
            "runcmd ran once for the instance",
        );
        c.out_eq(
            &on(port, &key, "cat /var/lib/ros/bootcmd.log"),
            "boot\nboot",
            "bootcmd ran at each boot",
        );
        services_run(&mut c, port, &key, "boot 2");
        power_off(&mut c, &mut vm, port, &key, "boot 2");
    }
    c.finish_with(|| vm.tail(60));
}

#[test]
fn raw_uefi_broken_userdata_still_reachable() {
    const T: &str = "raw_uefi_broken_userdata_still_reachable";
    if !can_run(T) {
        return;
    }
    if !Path::new(OVMF_CODE).is_file() {
        skip(T, &format!("{OVMF_CODE} is missing (apt-get install ovmf)"));
        return;
    }
    let _slot = VmSlot::take();
    let mut c = Checks::new(T);
    let dir = tempdir();
    let d = dir.path();
    let disk = d.join("disk.raw");
    copy_sparse(&artifact("raw"), &disk);
    let vars = d.join("OVMF_VARS.fd");
    std::fs::copy(OVMF_VARS, &vars).expect("copy the OVMF variable store");
    let (key, public) = ssh_key(d, "id_meta");
    // An OpenStack config drive whose userdata is refused (a mode that is not octal); the
    // key comes from its meta_data.json.
    let seed = seed_iso(
        d,
        "config-2",
        &[
            (
                "openstack/latest/user_data",
                "#cloud-config\nhostname: never-applied\nwrite_files:\n  - path: /etc/x\n    permissions: rwx\n    content: x\n",
            ),
            (
                "openstack/latest/meta_data.json",
                &format!(
                    r#"{{"uuid": "83679162-1378-4288-a2d4-70e13ec132aa", "hostname": "uefi-host", "public_keys": {{"mykey": "{public}"}}}}"#
                ),
            ),
        ],
    );
    let port = free_port();
    let mut cfg = VmConfig::firmware(Firmware::Uefi { vars });
    cfg.drives = vec![Drive::raw(&disk), Drive::raw(&seed).read_only()];
    cfg.forwards = vec![(port, 22)];
    let Some(mut vm) = boot(&mut c, &cfg, &d.join("uefi.log"), "raw UEFI") else {
        return c.finish();
    };
    c.check(
        vm.output().contains("BdsDxe") || vm.output().contains("UEFI"),
        "UEFI firmware (OVMF) booted it",
        vm.tail(5),
    );
    let up = wait_ssh(port, &key, "rancher", SSH);
    if c.check(
        up.success(),
        "SSH as rancher with the meta-data key despite the broken userdata",
        &up,
    ) {
        services_run(&mut c, port, &key, "UEFI");
        c.out_eq(
            &on(port, &key, "hostname"),
            "uefi-host",
            "the hostname from meta-data (the userdata's was refused)",
        );
        let st = on(port, &key, "sudo ros config status");
        c.check(
            st.all().contains("permissions") && st.all().contains("rwx"),
            "ros config status explains the refused userdata (write_files[0].permissions)",
            &st,
        );
        power_off(&mut c, &mut vm, port, &key, "UEFI");
    }
    c.finish_with(|| vm.tail(60));
}

#[test]
fn iso_bios_live_then_install() {
    const T: &str = "iso_bios_live_then_install";
    if !can_run(T) {
        return;
    }
    let _slot = VmSlot::take();
    let mut c = Checks::new(T);
    let dir = tempdir();
    let d = dir.path();
    let (key, public) = ssh_key(d, "id_live");
    let (installed_key, installed_public) = ssh_key(d, "id_installed");
    let seed = seed_iso(
        d,
        "cidata",
        &[
            (
                "user-data",
                &format!("#cloud-config\nssh_authorized_keys: ['{public}']\n"),
            ),
            ("meta-data", "instance-id: i-live\n"),
        ],
    );
    let target = d.join("target.qcow2");
    let made = ros_tests::run(
        std::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&target)
            .arg("3G"),
        Duration::from_secs(30),
    );
    assert!(made.success(), "{made}");
    let port = free_port();
    let mut cfg = VmConfig::firmware(Firmware::Bios);
    cfg.cdrom = Some(artifact("iso"));
    cfg.boot_order = Some("d".into());
    cfg.drives = vec![Drive::qcow2(&target), Drive::raw(&seed).read_only()];
    cfg.forwards = vec![(port, 22)];
    let Some(mut vm) = boot(&mut c, &cfg, &d.join("live.log"), "ISO live") else {
        return c.finish();
    };
    c.check(
        vm.output().contains("running from RAM"),
        "the live system says it runs from RAM (the blank disk is left alone)",
        vm.tail(40),
    );
    let sh = vm.sh("grep -o 'ros.images=[^ ]*' /proc/cmdline", CMD);
    c.check(
        sh.as_ref()
            .is_some_and(|(code, o)| *code == 0 && o.contains("LABEL=ROS_LIVE")),
        "the root shell on the serial console (autologin) answers; images from the ISO",
        format!("{sh:?}"),
    );
    let up = wait_ssh(port, &key, "rancher", SSH);
    if c.check(
        up.success(),
        "live: SSH as rancher with the seed's key",
        &up,
    ) {
        services_run(&mut c, port, &key, "live");
    }

    // ros install from the serial console, with a cloud-config for the installed host.
    let config = format!(
        "#cloud-config\nhostname: installed\nssh_authorized_keys: ['{installed_public}']\n"
    );
    // Files reach the live shell base64-encoded: one line, no quoting.
    let put = |vm: &mut Vm, path: &str, text: &str| {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(text);
        vm.sh(&format!("echo {b64} | base64 -d > {path}"), CMD)
            .is_some_and(|(code, _)| code == 0)
    };
    let bad_written = put(
        &mut vm,
        "/tmp/bad.yml",
        "#cloud-config\nwrite_files: [{path: /x, content: x, permissions: rwx}]\n",
    );
    let bad = vm.sh(
        "ros install -d /dev/vda -c /tmp/bad.yml -f --no-reboot; echo code=$?",
        CMD,
    );
    c.check(
        bad_written
            && bad
                .as_ref()
                .is_some_and(|(_, o)| o.contains("permissions") && o.contains("code=1")),
        "ros install refuses a cloud-config that does not validate, naming the key",
        format!("{bad:?}"),
    );
    let wrote = put(&mut vm, "/tmp/cc.yml", &config);
    c.check(wrote, "the cloud-config is written in the live shell", "");
    let inst = vm.sh(
        "ros install -d /dev/vda -c /tmp/cc.yml --no-reboot",
        Duration::from_secs(300),
    );
    c.check(
        inst.as_ref()
            .is_some_and(|(code, o)| *code == 0 && o.contains("done")),
        "ros install -d /dev/vda -c cc.yml installs to the blank disk",
        format!("{inst:?}"),
    );
    vm.send("poweroff");
    c.check(
        vm.wait_exit(DOWN).is_some(),
        "live: poweroff ends QEMU",
        vm.tail(20),
    );
    drop(vm);

    // The installed disk alone.
    let mut cfg = VmConfig::firmware(Firmware::Bios);
    cfg.drives = vec![Drive::qcow2(&target)];
    cfg.forwards = vec![(port, 22)];
    let Some(mut vm) = boot(&mut c, &cfg, &d.join("installed.log"), "installed disk") else {
        return c.finish();
    };
    let up = wait_ssh(port, &installed_key, "rancher", SSH);
    if c.check(
        up.success(),
        "installed: SSH with the key of ros install's cloud-config",
        &up,
    ) {
        c.out_eq(
            &on(port, &installed_key, "hostname"),
            "installed",
            "installed: its hostname",
        );
        services_run(&mut c, port, &installed_key, "installed");
        let parts = on(
            port,
            &installed_key,
            "grep -h PARTNAME /sys/class/block/vda*/uevent",
        );
        c.check(
            parts.stdout.split_whitespace().collect::<Vec<_>>()
                == [
                    "PARTNAME=BIOS-boot",
                    "PARTNAME=ROS_EFI",
                    "PARTNAME=ROS_A",
                    "PARTNAME=ROS_B",
                    "PARTNAME=ROS_STATE",
                ],
            "installed: the disk has BIOS-boot, ROS_EFI, ROS_A, ROS_B and ROS_STATE",
            &parts,
        );
        c.check(
            !vm.output().contains("autologin"),
            "installed: no autologin (only the live ISO has it)",
            vm.tail(40),
        );
        power_off(&mut c, &mut vm, port, &installed_key, "installed");
    }
    c.finish_with(|| vm.tail(60));
}

/// EC2 as the host sees it there: SMBIOS says Amazon EC2, the metadata service answers at
/// 169.254.169.254 (an IMDSv2 emulator on the host, reached through QEMU's `guestfwd`, the
/// user network on 169.254.0.0/16 so that address is on the guest's link), no seed disk.
/// The host boots with the IMDS's userdata and key.
#[test]
fn qcow2_ec2_imds_and_config_drive() {
    const T: &str = "qcow2_ec2_imds_and_config_drive";
    if !can_run(T) || !require_tool(T, "socat") {
        return;
    }
    let _slot = VmSlot::take();
    let mut c = Checks::new(T);
    let dir = tempdir();
    let d = dir.path();
    let disk = d.join("disk.qcow2");
    overlay(&artifact("qcow2"), &disk);
    let (key, public) = ssh_key(d, "id_ec2");
    let imds = Imds::start("#cloud-config\nhostname: from-imds\n");
    imds.with(|s| {
        s.files.insert(
            "/latest/meta-data/instance-id".into(),
            "i-0ec2vmtest".into(),
        );
        s.files
            .insert("/latest/meta-data/public-keys/".into(), "0=test".into());
        s.files.insert(
            "/latest/meta-data/public-keys/0/openssh-key".into(),
            format!("{public}\n"),
        );
    });
    let imds_port = imds.base.rsplit(':').next().unwrap_or_default().to_string();
    let port = free_port();
    let mut cfg = VmConfig::firmware(Firmware::Bios);
    cfg.drives = vec![Drive::qcow2(&disk)];
    cfg.forwards = vec![(port, 22)];
    cfg.smbios = Some("manufacturer=Amazon EC2,product=t3.small".into());
    cfg.user_net = Some("169.254.0.0/16".into());
    cfg.guestfwd = vec![format!(
        "tcp:169.254.169.254:80-cmd:socat - TCP:127.0.0.1:{imds_port}"
    )];
    let Some(mut vm) = boot(&mut c, &cfg, &d.join("ec2.log"), "EC2") else {
        return c.finish();
    };
    let up = wait_ssh(port, &key, "rancher", SSH);
    if c.check(up.success(), "EC2: SSH with the key from the IMDS", &up) {
        c.out_eq(
            &on(port, &key, "hostname"),
            "from-imds",
            "EC2: hostname from IMDS userdata",
        );
        let st = on(port, &key, "sudo ros config status");
        c.check(
            st.all().contains("ec2"),
            "EC2: ros config status names the ec2 datasource",
            &st,
        );
        let log = imds.log();
        c.check(
            log.iter()
                .any(|l| l.starts_with("PUT /latest/api/token 200"))
                && log
                    .iter()
                    .any(|l| l.starts_with("GET /latest/user-data 200")),
            "EC2: the guest used IMDSv2 (token, then userdata)",
            log.join("\n"),
        );
        services_run(&mut c, port, &key, "EC2");
        power_off(&mut c, &mut vm, port, &key, "EC2");
    }
    c.finish_with(|| vm.tail(60));
}
