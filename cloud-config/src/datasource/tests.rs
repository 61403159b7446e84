use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::cmdline::Cmdline;
use super::save::{keep_for_test, scripts_dir, userdata_path};
use super::*;
use crate::edit::read_status;

fn ctx(root: &Path) -> Context {
    Context {
        root: root.to_owned(),
        deadline: Instant::now() + Duration::from_secs(5),
        allow_imdsv1: false,
    }
}

fn put(path: &Path, data: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
}

#[test]
fn specs_parse_and_print_back() {
    let cases: &[(&str, Spec)] = &[
        ("nocloud", Spec::NoCloud(Seed::Label("cidata".into()))),
        (
            "nocloud:CIDATA",
            Spec::NoCloud(Seed::Label("CIDATA".into())),
        ),
        (
            "nocloud:/seed/seed.iso",
            Spec::NoCloud(Seed::Path("/seed/seed.iso".into())),
        ),
        (
            "configdrive",
            Spec::ConfigDrive(Seed::Label("config-2".into())),
        ),
        (
            "ec2",
            Spec::Ec2 {
                base_url: EC2_BASE.into(),
            },
        ),
        (
            "ec2:http://127.0.0.1:8080/",
            Spec::Ec2 {
                base_url: "http://127.0.0.1:8080".into(),
            },
        ),
        ("cmdline", Spec::Cmdline),
        (
            "url:https://example.com/u?a=b",
            Spec::Url("https://example.com/u?a=b".into()),
        ),
        ("file:/x/user-data", Spec::File("/x/user-data".into())),
    ];
    for (text, want) in cases {
        let got = Spec::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(&got, want, "{text}");
        assert_eq!(Spec::parse(&got.to_string()).unwrap(), got);
    }
    assert_eq!(Spec::parse("ec2").unwrap().to_string(), "ec2");
    assert_eq!(
        Spec::parse("nocloud:/a/b").unwrap().to_string(),
        "nocloud:/a/b"
    );
}

#[test]
fn bad_specs_are_named() {
    for (bad, says) in [
        ("ec3", "unknown datasource \"ec3\""),
        ("url", "url needs a URL"),
        ("url:ftp://x", "not an http:// or https:// URL"),
        ("ec2:169.254.169.254", "not an http:// or https:// URL"),
        ("file", "file needs a path"),
        ("cmdline:x", "takes no argument"),
        ("nocloud:", "empty argument"),
        ("", "empty"),
    ] {
        let e = Spec::parse(bad).unwrap_err().to_string();
        assert!(e.contains(&format!("{bad:?}")), "{e}");
        assert!(e.contains(says), "{bad}: {e}");
    }
    let e = parse_specs(&["nocloud", "bogus"]).unwrap_err();
    assert_eq!(e.spec, "bogus");
}

#[test]
fn nocloud_meta_data_shapes() {
    let m = nocloud::parse_meta_data(
        "meta-data",
        b"instance-id: iid-1\nlocal-hostname: web1\npublic-keys:\n  - ssh-ed25519 AAA a\n  - ssh-rsa BBB b\n",
    )
    .unwrap();
    assert_eq!(m.instance_id, "iid-1");
    assert_eq!(m.hostname.as_deref(), Some("web1"));
    assert_eq!(m.public_keys, ["ssh-ed25519 AAA a", "ssh-rsa BBB b"]);
    let m = nocloud::parse_meta_data(
        "meta-data",
        b"{\"instance-id\": 42, \"hostname\": \"h\", \"public-keys\": {\"k1\": \"ssh-ed25519 A\", \"k2\": [\"ssh-rsa B\"]}}",
    )
    .unwrap();
    assert_eq!(m.instance_id, "42");
    assert_eq!(m.hostname.as_deref(), Some("h"));
    assert_eq!(m.public_keys, ["ssh-ed25519 A", "ssh-rsa B"]);
    assert_eq!(
        nocloud::parse_meta_data("meta-data", b"").unwrap(),
        Default::default()
    );
    let e = nocloud::parse_meta_data("seed/meta-data", b"- a\n")
        .unwrap_err()
        .to_string();
    assert_eq!(e, "seed/meta-data: expected a map, got a list");
    let e = nocloud::parse_meta_data("seed/meta-data", b"a: [\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("seed/meta-data:"), "{e}");
}

#[test]
fn configdrive_meta_data() {
    let v = serde_json::json!({"uuid": "u-1", "hostname": "cd", "public_keys": {"mykey": "ssh-ed25519 C"}});
    let m = configdrive::parse_meta_data(&v);
    assert_eq!(m.instance_id, "u-1");
    assert_eq!(m.hostname.as_deref(), Some("cd"));
    assert_eq!(m.public_keys, ["ssh-ed25519 C"]);
}

#[test]
fn smbios_detection() {
    let t = tempfile::tempdir().unwrap();
    let dmi = t.path().join("sys/class/dmi/id");
    assert!(!smbios_is_ec2(t.path()), "no dmi at all");
    put(&dmi.join("sys_vendor"), "QEMU\n");
    put(&dmi.join("product_uuid"), "4c4c4544-0000\n");
    assert!(!smbios_is_ec2(t.path()));
    assert_eq!(
        default_specs(t.path())
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["nocloud", "configdrive", "cmdline"]
    );
    put(&dmi.join("sys_vendor"), "Amazon EC2\n");
    assert!(smbios_is_ec2(t.path()));
    put(&dmi.join("sys_vendor"), "Xen\n");
    put(
        &dmi.join("product_uuid"),
        "EC2E1916-9099-7CAF-FD21-012345ABCDEF\n",
    );
    assert!(smbios_is_ec2(t.path()));
    put(&dmi.join("product_uuid"), "x\n");
    put(&dmi.join("board_asset_tag"), "i-0123456789abcdef0\n");
    assert!(smbios_is_ec2(t.path()));
    assert_eq!(
        default_specs(t.path())
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["nocloud", "configdrive", "ec2", "cmdline"]
    );
}

#[test]
fn nocloud_directory_source() {
    let t = tempfile::tempdir().unwrap();
    let seed = t.path().join("seed");
    put(&seed.join("user-data"), "#cloud-config\nhostname: a\n");
    put(
        &seed.join("meta-data"),
        "instance-id: iid-dir\nlocal-hostname: dirhost\n",
    );
    put(
        &seed.join("network-config"),
        "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n",
    );
    let spec = Spec::parse(&format!("nocloud:{}", seed.display())).unwrap();
    let p = spec.provider(t.path());
    assert_eq!((p.name(), p.phase()), ("nocloud", Phase::Local));
    let f = p.fetch(&ctx(t.path())).unwrap().unwrap();
    assert_eq!(
        f.userdata.as_deref(),
        Some(&b"#cloud-config\nhostname: a\n"[..])
    );
    assert_eq!(f.metadata.instance_id, "iid-dir");
    assert_eq!(f.metadata.hostname.as_deref(), Some("dirhost"));
    assert_eq!(f.metadata.datasource, "nocloud");
    assert_eq!(
        f.metadata.network_config,
        Some(serde_json::json!({"version": 2, "ethernets": {"eth0": {"dhcp4": true}}}))
    );
    // A label with no block devices under the root: not present.
    let p = Spec::parse("nocloud").unwrap().provider(t.path());
    assert!(p.fetch(&ctx(t.path())).unwrap().is_none());
    // A path that does not exist: named in the error.
    let p = Spec::parse("nocloud:/nonexistent/seed")
        .unwrap()
        .provider(t.path());
    let e = p.fetch(&ctx(t.path())).unwrap_err().to_string();
    assert_eq!(e, "/nonexistent/seed does not exist");
}

#[test]
fn cmdline_source() {
    assert_eq!(Cmdline::parse("quiet console=ttyS0"), Cmdline::Absent);
    assert_eq!(
        Cmdline::parse("ros.cloud_config_url=http://x/u -- ros.cloud_config=abc"),
        Cmdline::Url("http://x/u".into())
    );
    let t = tempfile::tempdir().unwrap();
    // "#cloud-config\nhostname: k\n"
    put(
        &t.path().join("proc/cmdline"),
        "quiet rancher.cloud_config=I2Nsb3VkLWNvbmZpZwpob3N0bmFtZTogawo=\n",
    );
    let p = Spec::Cmdline.provider(t.path());
    assert_eq!(p.phase(), Phase::Local);
    let f = p.fetch(&ctx(t.path())).unwrap().unwrap();
    assert_eq!(
        f.userdata.as_deref(),
        Some(&b"#cloud-config\nhostname: k\n"[..])
    );
    put(&t.path().join("proc/cmdline"), "ros.cloud_config=!!!\n");
    let e = Spec::Cmdline
        .provider(t.path())
        .fetch(&ctx(t.path()))
        .unwrap_err();
    assert!(e.to_string().contains("not base64"), "{e}");
    put(
        &t.path().join("proc/cmdline"),
        "ros.cloud_config_url=http://10.0.0.1/u\n",
    );
    assert_eq!(Spec::Cmdline.provider(t.path()).phase(), Phase::Network);
}

#[test]
fn ec2_key_listing() {
    assert_eq!(ec2::key_indexes("0=my-key\n1=other\nbogus\n"), ["0", "1"]);
}

fn status_rejected(root: &Path) -> Vec<String> {
    read_status(root)
        .unwrap()
        .unwrap()
        .rejected
        .into_iter()
        .map(|r| r.error)
        .collect()
}

#[test]
fn save_rejects_bad_userdata_and_keeps_the_previous() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    let good = "#cloud-config\n# mine\nhostname: good\n";
    let meta = Metadata {
        instance_id: "i-1".into(),
        ..Metadata::default()
    };
    let a = keep_for_test(r, Some(good.as_bytes()), meta.clone()).unwrap();
    assert!(a.rejected.is_empty(), "{:?}", a.rejected);
    assert_eq!(a.cloud_config, Some(userdata_path(r)));
    assert_eq!(fs::read_to_string(userdata_path(r)).unwrap(), good);
    assert!(status_rejected(r).is_empty());
    let st = read_status(r).unwrap().unwrap();
    assert_eq!(st.datasource, "file");
    assert!(st.fetched_at.ends_with('Z'), "{}", st.fetched_at);
    assert_eq!(
        crate::instance::read(r).unwrap().unwrap().instance_id,
        "i-1"
    );

    // An invalid cloud-config: rejected with its location; the saved file is untouched.
    let bad = "#cloud-config\nwrite_files:\n  - path: /x\n    permissions: rwx\n";
    let a = keep_for_test(r, Some(bad.as_bytes()), meta.clone()).unwrap();
    assert_eq!(a.rejected.len(), 1);
    assert_eq!(fs::read_to_string(userdata_path(r)).unwrap(), good);
    let errs = status_rejected(r);
    assert!(
        errs[0].starts_with("user-data:4:18: write_files[0].permissions"),
        "{errs:?}"
    );

    // Not a cloud-config at all: refused with what was received.
    let a = keep_for_test(r, Some(b"hostname: plain\n"), meta.clone()).unwrap();
    assert_eq!(a.rejected.len(), 1);
    assert!(
        status_rejected(r)[0].contains("YAML without the #cloud-config header"),
        "{:?}",
        status_rejected(r)
    );
    assert_eq!(fs::read_to_string(userdata_path(r)).unwrap(), good);

    // No userdata: previous userdata removed, metadata still saved.
    let a = keep_for_test(r, None, meta).unwrap();
    assert_eq!(a.removed, [userdata_path(r)]);
    assert!(!userdata_path(r).exists());
}

fn mime(parts: &[(&str, &str)]) -> Vec<u8> {
    let mut s =
        String::from("Content-Type: multipart/mixed; boundary=\"BB\"\nMIME-Version: 1.0\n\n");
    for (ct, body) in parts {
        s += &format!("--BB\nContent-Type: {ct}\n\n{body}\n");
    }
    s += "--BB--\n";
    s.into_bytes()
}

#[test]
fn save_multipart_merges_and_keeps_scripts() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    let data = mime(&[
        (
            "text/cloud-config",
            "#cloud-config\nhostname: one\nros:\n  sysctl:\n    a.b: \"1\"",
        ),
        ("text/x-shellscript", "#!/bin/sh\necho one"),
        (
            "text/cloud-config",
            "#cloud-config\nrancher:\n  sysctl:\n    c.d: \"2\"\nruncmd: [ls]",
        ),
        ("text/x-shellscript", "#!/bin/sh\necho two"),
    ]);
    let a = keep_for_test(r, Some(&data), Metadata::default()).unwrap();
    assert!(a.rejected.is_empty(), "{:?}", a.rejected);
    let text = fs::read_to_string(userdata_path(r)).unwrap();
    let v = crate::parse_document("u", &text).unwrap();
    let json = crate::to_json(&v.config);
    assert_eq!(json["hostname"], "one");
    assert_eq!(json["ros"]["sysctl"]["a.b"], "1");
    assert_eq!(json["ros"]["sysctl"]["c.d"], "2");
    let dir = scripts_dir(r);
    let names: Vec<PathBuf> = vec![dir.join("01"), dir.join("02")];
    assert_eq!(a.scripts, names);
    assert_eq!(fs::read(&names[1]).unwrap(), b"#!/bin/sh\necho two");
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(&names[0]).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);

    // A bad part rejects the whole userdata: scripts stay as they were.
    let bad = mime(&[
        ("text/x-shellscript", "#!/bin/sh\necho new"),
        ("text/cloud-config", "#cloud-config\nhostname: [x]"),
    ]);
    let a = keep_for_test(r, Some(&bad), Metadata::default()).unwrap();
    assert_eq!(a.rejected.len(), 1);
    assert_eq!(a.rejected[0].source, "user-data/part-002");
    assert_eq!(fs::read(&names[0]).unwrap(), b"#!/bin/sh\necho one");
    assert_eq!(fs::read_to_string(userdata_path(r)).unwrap(), text);

    // A good single script replaces the set.
    let a = keep_for_test(r, Some(b"#!/bin/sh\necho only\n"), Metadata::default()).unwrap();
    assert_eq!(a.scripts, [dir.join("01")]);
    assert!(!dir.join("02").exists());
    assert!(!userdata_path(r).exists());
}

#[test]
fn save_tries_sources_in_order_and_phase() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    let seed = r.join("seed");
    put(&seed.join("user-data"), "#cloud-config\nhostname: s\n");
    put(&seed.join("meta-data"), "instance-id: iid-s\n");
    let sources = parse_specs(&[
        "file:/nonexistent/u".to_string(),
        "url:http://127.0.0.1:9/".to_string(),
        "nocloud".to_string(),
        format!("nocloud:{}", seed.display()),
    ])
    .unwrap();
    let out = save(r, &sources, Some(Phase::Local), &SaveOptions::default()).unwrap();
    assert_eq!(out.other_phase, ["url:http://127.0.0.1:9/"]);
    assert_eq!(out.tried.len(), 2);
    assert!(out.tried[0].error.is_some());
    assert_eq!(out.tried[1].error, None);
    let a = out.answered.unwrap();
    assert_eq!(a.datasource, "nocloud");
    assert_eq!(a.metadata.instance_id, "iid-s");
    assert_eq!(
        crate::instance::read(r).unwrap().unwrap().datasource,
        "nocloud"
    );
}
