//! `ros cloud-init save` run as the real binary against a `--root` tree, with the sources it
//! meets in the wild: an EC2 IMDS emulator on 127.0.0.1 (IMDSv2 tokens, an expired token
//! renewed after a 401, IMDSv1 refused unless allowed), NoCloud seeds as an ISO 9660 image
//! (xorriso) and a FAT image (mkfs.vfat + mcopy), an OpenStack config-drive ISO, a bad
//! re-fetch that leaves the last good userdata byte-identical, and userdata that is not a
//! cloud-config. Needs no root; xorriso and mtools must be installed (the Makefile does).

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ros_tests::guest::iso_of_dir;
use ros_tests::imds::Imds;
use ros_tests::{bin_path, run, tempdir, which, write_file, Checks, Output};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(60);

/// `ros --root ROOT cloud-init save ARGS` (with `--timeout 20` unless ARGS set one).
fn ros(root: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin_path("ros"));
    cmd.arg("--root").arg(root).args(["cloud-init", "save"]);
    if !args.contains(&"--timeout") {
        cmd.args(["--timeout", "20"]);
    }
    cmd.args(args);
    run(&mut cmd, TIMEOUT)
}

fn conf(root: &Path, rel: &str) -> PathBuf {
    root.join("var/lib/ros/conf").join(rel)
}

fn read_json(path: &Path) -> Value {
    fs::read(path)
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .unwrap_or(Value::Null)
}

fn read_text(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| format!("<{}: {e}>", path.display()))
}

const USERDATA: &str =
    "#cloud-config\n# from the IMDS\nhostname: from-userdata\nruncmd:\n  - echo hi\n";

fn check_ec2_saved(c: &mut Checks, r: &Path, out: &Output) {
    c.check(
        read_text(&conf(r, "cloud-config.d/userdata.yml")) == USERDATA,
        "userdata.yml is the userdata verbatim",
        out,
    );
    let m = read_json(&conf(r, "metadata.json"));
    c.check(
        m["datasource"] == "ec2"
            && m["instance_id"] == "i-0123456789abcdef0"
            && m["hostname"] == "ip-10-0-0-7.ec2.internal"
            && m["public_keys"]
                == serde_json::json!([
                    "ssh-ed25519 AAAAalice alice@laptop",
                    "ssh-rsa AAAAbob bob@desk"
                ]),
        "metadata.json has the instance id, hostname and both keys",
        &m,
    );
    let st = read_json(&conf(r, "status.json"));
    c.check(
        st["datasource"] == "ec2"
            && st["fetched_at"].as_str().is_some_and(|t| t.ends_with('Z'))
            && st["rejected"] == serde_json::json!([]),
        "status.json names ec2, a UTC time and no rejections",
        &st,
    );
}

#[test]
fn ec2_imdsv2() {
    let t = tempdir();
    let r = t.path();
    let imds = Imds::start(USERDATA);
    let mut c = Checks::new("ec2_imdsv2");
    let out = ros(r, &["--datasource", &imds.spec()]);
    c.code(&out, 0, "save from the IMDS");
    c.check(
        out.stderr.contains(&format!("{} answered", imds.spec())),
        "says which source answered",
        &out,
    );
    check_ec2_saved(&mut c, r, &out);
    let log = imds.log();
    c.check(
        log.first().map(String::as_str) == Some("PUT /latest/api/token 200")
            && log
                .iter()
                .skip(1)
                .all(|l| l.starts_with("GET ") && (l.ends_with(" 200") || l.ends_with(" 404"))),
        "one token, then GETs that all carried it",
        log.join("\n"),
    );
    let mode = fs::metadata(conf(r, "cloud-config.d/userdata.yml"))
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .unwrap_or(0);
    c.check(mode == 0o600, "userdata.yml is 0600", format!("{mode:o}"));
    c.finish();
}

#[test]
fn ec2_expired_token_is_renewed() {
    let t = tempdir();
    let r = t.path();
    let imds = Imds::start(USERDATA);
    imds.with(|s| s.expire_after = Some(1));
    let mut c = Checks::new("ec2_expired_token_is_renewed");
    let out = ros(r, &["--datasource", &imds.spec()]);
    c.code(&out, 0, "save across a token expiry");
    check_ec2_saved(&mut c, r, &out);
    let log = imds.log();
    let puts = log.iter().filter(|l| l.starts_with("PUT ")).count();
    let unauthorized = log.iter().filter(|l| l.ends_with(" 401")).count();
    c.check(
        puts == 2 && unauthorized == 1,
        "one 401, then a second token and a retry",
        log.join("\n"),
    );
    c.finish();
}

#[test]
fn ec2_imdsv1_refused_unless_allowed() {
    let t = tempdir();
    let r = t.path();
    let imds = Imds::start(USERDATA);
    imds.with(|s| s.v2 = false);
    let mut c = Checks::new("ec2_imdsv1_refused_unless_allowed");
    let out = ros(r, &["--datasource", &imds.spec()]);
    c.code(&out, 1, "IMDSv1 only: refused by default");
    c.check(
        out.stderr.contains("IMDSv1 is refused")
            && out.stderr.contains("ros.cloud_init.allow_imdsv1=true"),
        "the refusal says how to allow it",
        &out,
    );
    c.check(
        !conf(r, "metadata.json").exists() && !conf(r, "cloud-config.d").exists(),
        "nothing saved when refused",
        &out,
    );
    c.check(
        imds.log().iter().all(|l| !l.starts_with("GET")),
        "no token-less GET was sent",
        imds.log().join("\n"),
    );
    let out = ros(r, &["--datasource", &imds.spec(), "--allow-imdsv1"]);
    c.code(&out, 0, "--allow-imdsv1");
    check_ec2_saved(&mut c, r, &out);

    let t2 = tempdir();
    write_file(
        &t2.path().join("proc/cmdline"),
        "console=ttyS0 ros.cloud_init.allow_imdsv1=true\n",
    );
    let out = ros(t2.path(), &["--datasource", &imds.spec()]);
    c.code(&out, 0, "allowed on the kernel command line");
    check_ec2_saved(&mut c, t2.path(), &out);
    c.finish();
}

#[test]
fn ec2_nobody_answering_is_not_present() {
    let t = tempdir();
    // A port that was free a moment ago: connections are refused.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let mut c = Checks::new("ec2_nobody_answering_is_not_present");
    let spec = format!("ec2:http://127.0.0.1:{port}");
    let out = ros(t.path(), &["--datasource", &spec, "--timeout", "8"]);
    c.code(&out, 1, "an explicit source that is not there");
    c.check(
        out.stderr.contains(&format!("{spec}: not present")),
        "named as not present",
        &out,
    );
    c.check(
        out.elapsed < Duration::from_secs(15),
        "gives up within the timeout",
        &out,
    );
    c.finish();
}

#[test]
fn bad_refetch_keeps_the_last_good_userdata() {
    let t = tempdir();
    let r = t.path();
    let imds = Imds::start(USERDATA);
    let mut c = Checks::new("bad_refetch_keeps_the_last_good_userdata");
    c.code(&ros(r, &["--datasource", &imds.spec()]), 0, "first save");
    let saved = fs::read(conf(r, "cloud-config.d/userdata.yml")).unwrap_or_default();
    let bad = "#cloud-config\nwrite_files: [{path: /x, permissions: rwx}]\n";
    imds.with(|s| s.userdata = Some(bad.as_bytes().to_vec()));
    let out = ros(r, &["--datasource", &imds.spec()]);
    c.code(&out, 0, "a source that answered, with refused userdata");
    c.check(
        out.stderr.contains("userdata refused, none of it saved")
            && out.stderr.contains("permissions"),
        "says the userdata was refused and why",
        &out,
    );
    c.check(
        fs::read(conf(r, "cloud-config.d/userdata.yml")).unwrap_or_default() == saved,
        "the saved userdata.yml is byte-identical",
        read_text(&conf(r, "cloud-config.d/userdata.yml")),
    );
    let st = read_json(&conf(r, "status.json"));
    let err = st["rejected"][0]["error"].as_str().unwrap_or_default();
    c.check(
        st["rejected"].as_array().map(Vec::len) == Some(1)
            && err.starts_with("user-data:2:39: write_files[0].permissions"),
        "status.json lists the rejection with line and column",
        &st,
    );
    c.finish();
}

#[test]
fn userdata_without_header_is_refused() {
    let t = tempdir();
    let r = t.path();
    let file = r.join("seed-userdata");
    write_file(&file, "hostname: plain\n");
    let mut c = Checks::new("userdata_without_header_is_refused");
    let out = ros(r, &["--datasource", &format!("file:{}", file.display())]);
    c.code(&out, 0, "the source answered");
    c.check(
        out.stderr.contains("YAML without the #cloud-config header")
            && out.stderr.contains("hostname: plain"),
        "the refusal says what was received",
        &out,
    );
    let st = read_json(&conf(r, "status.json"));
    c.check(
        st["rejected"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("#cloud-config header")),
        "status.json records the refusal",
        &st,
    );
    c.check(
        !conf(r, "cloud-config.d/userdata.yml").exists(),
        "nothing saved",
        &out,
    );
    c.finish();
}

// ---------------------------------------------------------------------------------------------
// Seed images

fn tool(name: &str) -> PathBuf {
    which(name).unwrap_or_else(|| {
        panic!("{name} is not installed; the cloud-init seed tests need xorriso and mtools (dosfstools): `make deps` or apt-get install xorriso mtools dosfstools")
    })
}

fn must(out: Output) {
    assert!(out.success(), "building the seed failed:\n{out}");
}

const SEED_USERDATA: &str =
    "#cloud-config\nhostname: seeded\nssh_authorized_keys:\n  - ssh-ed25519 AAAAseed\n";

fn nocloud_dir(dir: &Path) {
    write_file(&dir.join("user-data"), SEED_USERDATA);
    write_file(
        &dir.join("meta-data"),
        "instance-id: iid-seed-1\nlocal-hostname: seedhost\npublic-keys:\n  - ssh-ed25519 AAAAmeta meta@x\n",
    );
    write_file(
        &dir.join("network-config"),
        "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n",
    );
}

fn check_nocloud(c: &mut Checks, r: &Path, out: &Output) {
    c.code(out, 0, "save from the seed");
    c.check(
        read_text(&conf(r, "cloud-config.d/userdata.yml")) == SEED_USERDATA,
        "userdata.yml is the seed's user-data",
        out,
    );
    let m = read_json(&conf(r, "metadata.json"));
    c.check(
        m["datasource"] == "nocloud"
            && m["instance_id"] == "iid-seed-1"
            && m["hostname"] == "seedhost"
            && m["public_keys"] == serde_json::json!(["ssh-ed25519 AAAAmeta meta@x"])
            && m["network_config"]["ethernets"]["eth0"]["dhcp4"] == true,
        "metadata.json from meta-data and network-config",
        &m,
    );
    c.check(
        read_json(&conf(r, "status.json"))["datasource"] == "nocloud",
        "status.json names nocloud",
        read_text(&conf(r, "status.json")),
    );
}

#[test]
fn nocloud_iso_seed() {
    let t = tempdir();
    let r = t.path().join("root");
    let dir = t.path().join("seed");
    nocloud_dir(&dir);
    let image = t.path().join("seed.iso");
    iso_of_dir(&dir, "cidata", &image);
    let mut c = Checks::new("nocloud_iso_seed");
    let out = ros(
        &r,
        &["--datasource", &format!("nocloud:{}", image.display())],
    );
    check_nocloud(&mut c, &r, &out);
    c.finish();
}

#[test]
fn nocloud_vfat_seed() {
    let t = tempdir();
    let r = t.path().join("root");
    let dir = t.path().join("seed");
    nocloud_dir(&dir);
    let image = t.path().join("seed.img");
    must(run(
        Command::new(tool("mkfs.vfat"))
            .args(["-n", "CIDATA", "-C"])
            .arg(&image)
            .arg("2048"),
        TIMEOUT,
    ));
    let mut mcopy = Command::new(tool("mcopy"));
    mcopy.arg("-i").arg(&image);
    for f in ["user-data", "meta-data", "network-config"] {
        mcopy.arg(dir.join(f));
    }
    must(run(mcopy.arg("::"), TIMEOUT));
    let mut c = Checks::new("nocloud_vfat_seed");
    let out = ros(
        &r,
        &["--datasource", &format!("nocloud:{}", image.display())],
    );
    check_nocloud(&mut c, &r, &out);
    c.finish();
}

/// The default order finds a seed by its label among the block devices under the root
/// (`sys/class/block/*` → `dev/<name>`), skipping devices that hold no file system.
#[test]
fn nocloud_found_by_label() {
    let t = tempdir();
    let r = t.path().join("root");
    let dir = t.path().join("seed");
    nocloud_dir(&dir);
    for name in ["vda", "vdb"] {
        fs::create_dir_all(r.join("sys/class/block").join(name)).expect("mkdir");
    }
    write_file(&r.join("dev/vda"), &"not a file system\n".repeat(4096));
    iso_of_dir(&dir, "CIDATA", &r.join("dev/vdb"));
    let mut c = Checks::new("nocloud_found_by_label");
    let out = ros(&r, &["--local"]);
    check_nocloud(&mut c, &r, &out);
    c.check(
        out.stderr.contains("nocloud answered"),
        "the default nocloud source answered",
        &out,
    );
    c.finish();
}

#[test]
fn configdrive_iso() {
    let t = tempdir();
    let r = t.path().join("root");
    let dir = t.path().join("drive");
    let latest = dir.join("openstack/latest");
    write_file(&latest.join("user_data"), SEED_USERDATA);
    write_file(
        &latest.join("meta_data.json"),
        r#"{"uuid": "83679162-1378-4288-a2d4-70e13ec132aa", "hostname": "cd-host",
            "public_keys": {"mykey": "ssh-ed25519 AAAAcd cd@x"}}"#,
    );
    write_file(
        &latest.join("network_data.json"),
        r#"{"links": [{"id": "eth0", "type": "phy"}], "networks": [], "services": []}"#,
    );
    let image = t.path().join("config-2.iso");
    iso_of_dir(&dir, "config-2", &image);
    let mut c = Checks::new("configdrive_iso");
    let out = ros(
        &r,
        &["--datasource", &format!("configdrive:{}", image.display())],
    );
    c.code(&out, 0, "save from the config drive");
    c.check(
        read_text(&conf(&r, "cloud-config.d/userdata.yml")) == SEED_USERDATA,
        "userdata.yml is the drive's user_data",
        &out,
    );
    let m = read_json(&conf(&r, "metadata.json"));
    c.check(
        m["datasource"] == "configdrive"
            && m["instance_id"] == "83679162-1378-4288-a2d4-70e13ec132aa"
            && m["hostname"] == "cd-host"
            && m["public_keys"] == serde_json::json!(["ssh-ed25519 AAAAcd cd@x"])
            && m["network_config"]["links"][0]["id"] == "eth0",
        "metadata.json from meta_data.json and network_data.json",
        &m,
    );
    c.finish();
}

#[test]
fn default_sources_with_nothing_present() {
    let t = tempdir();
    let mut c = Checks::new("default_sources_with_nothing_present");
    let out = ros(t.path(), &[]);
    c.code(&out, 0, "no default source present is not an error");
    c.check(
        out.stderr.contains("no datasource answered")
            && out.stderr.contains("nocloud: not present")
            && !out.stderr.contains("ec2"),
        "says so, and does not try ec2 off EC2",
        &out,
    );
    let out = ros(t.path(), &["--datasource", "bogus"]);
    c.check(
        out.code() == Some(2) && out.stderr.contains("bad datasource \"bogus\""),
        "a bad spec is named",
        &out,
    );
    c.finish();
}
