//! `ros config …` run as the real binary against a `--root` tree: set/get, values merged from
//! the shipped defaults and the kernel command line, a refused `set` that leaves the user
//! file byte-identical, merge from stdin, export hiding secrets, validate's located errors
//! and status naming a rejected cloud-config.d file. Needs no root.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ros_tests::{bin_path, run, run_input, tempdir, write_file, Checks, Output};

const TIMEOUT: Duration = Duration::from_secs(30);

fn ros(root: &Path, args: &[&str]) -> Output {
    ros_input(root, args, None)
}

fn ros_input(root: &Path, args: &[&str], input: Option<&str>) -> Output {
    let mut cmd = Command::new(bin_path("ros"));
    cmd.arg("--root").arg(root).arg("config").args(args);
    match input {
        Some(text) => run_input(&mut cmd, Some(text.as_bytes()), TIMEOUT),
        None => run(&mut cmd, TIMEOUT),
    }
}

fn user_file(root: &Path) -> PathBuf {
    root.join("var/lib/ros/conf/cloud-config.yml")
}

#[test]
fn set_then_get() {
    let t = tempdir();
    let r = t.path();
    let mut c = Checks::new("set_then_get");
    let out = ros(r, &["set", "hostname", "node-1"]);
    c.ok(&out, "set hostname");
    let text = fs::read_to_string(user_file(r)).unwrap_or_default();
    c.check(
        text.starts_with("#cloud-config\n"),
        "a new user file starts with the header",
        &text,
    );
    c.out_eq(&ros(r, &["get", "hostname"]), "node-1", "get hostname");
    c.ok(
        &ros(r, &["set", "rancher.state.autoformat", "[/dev/vda]"]),
        "set through the rancher alias",
    );
    c.out_eq(
        &ros(r, &["get", "ros.state.autoformat"]),
        "- /dev/vda",
        "a list is printed as YAML",
    );
    c.out_eq(
        &ros(r, &["get", "ros.state"]),
        "autoformat:\n  - /dev/vda",
        "a map is printed as YAML",
    );
    let out = ros(r, &["get", "ros.nothing"]);
    c.code(&out, 1, "an unset key");
    c.check(
        out.stderr.contains("ros: config: ros.nothing is not set"),
        "the unset key is named",
        &out,
    );
    c.finish();
}

#[test]
fn get_reads_the_merged_config() {
    let t = tempdir();
    let r = t.path();
    write_file(
        &r.join("usr/share/ros/os-config.yml"),
        "#cloud-config\nros:\n  boot_timeout: 300\n  state:\n    dev: LABEL=ROS_STATE\n",
    );
    write_file(
        &r.join("proc/cmdline"),
        "console=ttyS0 ros.state.autoformat=[/dev/vdb] ros.boot_timeout=60\n",
    );
    let mut c = Checks::new("get_reads_the_merged_config");
    c.out_eq(
        &ros(r, &["get", "ros.state.dev"]),
        "LABEL=ROS_STATE",
        "a default from os-config.yml",
    );
    c.out_eq(
        &ros(r, &["get", "rancher.state.autoformat"]),
        "- /dev/vdb",
        "a value from the kernel command line",
    );
    c.out_eq(
        &ros(r, &["get", "ros.boot_timeout"]),
        "60",
        "the command line overrides the defaults",
    );
    c.finish();
}

#[test]
fn invalid_set_leaves_the_file_alone() {
    let t = tempdir();
    let r = t.path();
    let original = "#cloud-config\n# my notes\nhostname: keep-me   # trailing\n";
    write_file(&user_file(r), original);
    let mut c = Checks::new("invalid_set_leaves_the_file_alone");
    let out = ros(r, &["set", "write_files", "[{path: /x, permissions: rwx}]"]);
    c.code(&out, 1, "an invalid set");
    c.check(
        out.stderr.contains("write_files[0].permissions"),
        "the error names the bad value's path",
        &out,
    );
    let after = fs::read_to_string(user_file(r)).unwrap_or_default();
    c.check(after == original, "the user file is byte-identical", &after);
    let entries: Vec<_> = fs::read_dir(r.join("var/lib/ros/conf"))
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    c.check(
        entries.len() == 1,
        "no temporary file is left",
        format!("{entries:?}"),
    );
    // A valid set on a file with comments says they are gone.
    let out = ros(r, &["set", "timezone", "UTC"]);
    c.ok(&out, "a valid set");
    c.check(
        out.stderr.contains("comments"),
        "losing comments is said",
        &out,
    );
    c.out_eq(&ros(r, &["get", "hostname"]), "keep-me", "the rest is kept");
    c.finish();
}

#[test]
fn merge_from_stdin() {
    let t = tempdir();
    let r = t.path();
    write_file(
        &user_file(r),
        "#cloud-config\nhostname: h\nros:\n  state:\n    dev: LABEL=ROS_STATE\n    autoformat: [/dev/sda]\n",
    );
    let mut c = Checks::new("merge_from_stdin");
    let out = ros_input(
        r,
        &["merge"],
        Some("#cloud-config\nrancher:\n  state:\n    autoformat: [/dev/vda]\n  debug: true\n"),
    );
    c.ok(&out, "merge");
    c.check(
        out.stdout.contains("debug: true"),
        "the result is shown",
        &out,
    );
    c.out_eq(&ros(r, &["get", "hostname"]), "h", "other keys are kept");
    c.out_eq(
        &ros(r, &["get", "ros.state.dev"]),
        "LABEL=ROS_STATE",
        "maps merge",
    );
    c.out_eq(
        &ros(r, &["get", "ros.state.autoformat"]),
        "- /dev/vda",
        "lists replace",
    );
    c.out_eq(&ros(r, &["get", "ros.debug"]), "true", "new keys are added");
    let before = fs::read_to_string(user_file(r)).unwrap_or_default();
    let out = ros_input(r, &["merge"], Some("#cloud-config\nros:\n  debug: maybe\n"));
    c.code(&out, 1, "an invalid merge");
    c.check(
        out.stderr.contains("stdin:3:10") && out.stderr.contains("ros.debug"),
        "the error points into the input",
        &out,
    );
    let after = fs::read_to_string(user_file(r)).unwrap_or_default();
    c.check(after == before, "an invalid merge changes nothing", &after);
    c.finish();
}

#[test]
fn export_hides_secrets() {
    let t = tempdir();
    let r = t.path();
    write_file(
        &user_file(r),
        "#cloud-config\nhostname: h\nros:\n  ssh:\n    keys:\n      ssh_host_ed25519_key: SECRET-HOST-KEY\n  docker:\n    tls_server_key: SECRET-TLS\n    tls: true\nusers:\n- name: a\n  hashed_passwd: SECRET-HASH\nwrite_files:\n- path: /x\n  content: \"x\"\n  private_key: SECRET-PK\n",
    );
    let mut c = Checks::new("export_hides_secrets");
    let out = ros(r, &["export"]);
    c.ok(&out, "export");
    c.check(
        out.stdout.starts_with("#cloud-config\n")
            && out.stdout.contains("hostname: h")
            && out.stdout.contains("tls: true")
            && !out.stdout.contains("SECRET"),
        "export shows the config without secrets",
        &out,
    );
    c.check(
        out.stderr.contains("ros.ssh.keys") && out.stderr.contains("--private"),
        "what was left out is named",
        &out,
    );
    let out = ros(r, &["export", "--private"]);
    c.check(
        out.success() && out.stdout.matches("SECRET").count() == 4,
        "--private keeps them",
        &out,
    );
    let dest = r.join("out/export.yml");
    let out = ros(r, &["export", "-o", dest.to_str().unwrap_or_default()]);
    c.ok(&out, "export -o");
    let written = fs::read_to_string(&dest).unwrap_or_default();
    c.check(
        written.contains("hostname: h") && !written.contains("SECRET"),
        "-o writes the same document",
        &written,
    );
    write_file(
        &r.join("usr/share/ros/os-config.yml"),
        "#cloud-config\nros:\n  boot_timeout: 300\n",
    );
    let out = ros(r, &["export", "--full"]);
    c.check(
        out.success() && out.stdout.contains("boot_timeout: 300") && !out.stdout.contains("SECRET"),
        "--full shows the merged config",
        &out,
    );
    c.finish();
}

#[test]
fn validate_prints_located_errors() {
    let t = tempdir();
    let r = t.path();
    let bad = r.join("bad.yml");
    write_file(
        &bad,
        "#cloud-config\nhostname: h\nwrite_files:\n- path: /x\n  permissions: rwx\n",
    );
    let mut c = Checks::new("validate_prints_located_errors");
    let out = ros(r, &["validate", "-i", bad.to_str().unwrap_or_default()]);
    c.code(&out, 1, "an invalid file");
    let want = format!(
        "{}:5:16: write_files[0].permissions: expected octal mode",
        bad.display()
    );
    c.check(out.all().contains(&want), &format!("prints {want}"), &out);
    let out = ros_input(r, &["validate"], Some("#cloud-config\nhostnme: h\n"));
    c.code(&out, 0, "warnings only");
    c.check(
        out.stdout
            .contains("stdin:2:1: warning: hostnme: unknown key")
            && out.stdout.contains("hostname"),
        "an unknown key is warned about, with a suggestion",
        &out,
    );
    let out = ros_input(r, &["validate"], Some("#cloud-config\nros: [1, 2\n"));
    c.code(&out, 1, "a YAML syntax error");
    c.check(out.stdout.contains("stdin:"), "located in stdin", &out);
    c.finish();
}

#[test]
fn status_lists_rejected_layers() {
    let t = tempdir();
    let r = t.path();
    write_file(
        &r.join("usr/share/ros/os-config.yml"),
        "#cloud-config\nros:\n  boot_timeout: 300\n",
    );
    let bad = r.join("var/lib/ros/conf/cloud-config.d/50-bad.yml");
    write_file(
        &bad,
        "#cloud-config\nwrite_files:\n- path: /x\n  permissions: rwx\n",
    );
    write_file(
        &r.join("var/lib/ros/conf/cloud-config.d/10-good.yml"),
        "#cloud-config\nhostname: from-dropin\nros:\n  debugg: true\n",
    );
    write_file(
        &r.join("var/lib/ros/conf/status.json"),
        r#"{"datasource": "nocloud", "fetched_at": "2026-01-01T10:00:00Z", "rejected": [{"source": "user-data", "error": "user-data:2:1: hostname: bad"}]}"#,
    );
    let mut c = Checks::new("status_lists_rejected_layers");
    let out = ros(r, &["status"]);
    c.ok(&out, "status");
    c.check(
        out.stdout.contains(&format!(
            "{}: rejected: {}:4:16: write_files[0].permissions",
            bad.display(),
            bad.display()
        )),
        "the bad drop-in is rejected with its located error",
        &out,
    );
    c.check(
        out.stdout.contains("10-good.yml: applied") && out.stdout.contains("ros.debugg"),
        "the good drop-in is applied, its warning shown",
        &out,
    );
    c.check(
        out.stdout.contains("os-config.yml: applied")
            && out.stdout.contains("cloud-config.yml: absent"),
        "every layer is listed",
        &out,
    );
    c.check(
        out.stdout.contains("datasource nocloud")
            && out.stdout.contains("user-data:2:1: hostname: bad"),
        "the last save's record is shown",
        &out,
    );
    c.finish();
}

#[test]
fn help_describes_the_subcommands() {
    let t = tempdir();
    let mut c = Checks::new("help_describes_the_subcommands");
    for (sub, word) in [
        ("get", "merged"),
        ("set", "VALUE is YAML"),
        ("merge", "lists"),
        ("export", "--private"),
        ("validate", "line:column"),
        ("status", "rejected"),
    ] {
        let out = ros(t.path(), &[sub, "--help"]);
        c.check(
            out.success() && out.stdout.contains(word),
            &format!("ros config {sub} --help mentions {word:?}"),
            &out,
        );
    }
    c.finish();
}
