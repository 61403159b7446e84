//! Userdata bytes → parts → validated documents → merged layers.

use std::io::Write;

use ros_cloud_config::cmdline;
use ros_cloud_config::merge::Layers;
use ros_cloud_config::userdata::{classify, Part};
use ros_cloud_config::{parse_document, to_json};
use serde_json::json;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn gzipped_multipart_to_merged_config() {
    // Built line by line: CRLF line ends, as MIME tools write them.
    let userdata = [
        "Content-Type: multipart/mixed; boundary=\"XYZ\"",
        "MIME-Version: 1.0",
        "",
        "--XYZ",
        "Content-Type: text/cloud-config; charset=\"us-ascii\"",
        "Content-Disposition: attachment; filename=\"base.yml\"",
        "",
        "#cloud-config",
        "hostname: from-userdata",
        "ros:",
        "  sysctl:",
        "    vm.swappiness: 10",
        "--XYZ",
        "Content-Type: text/x-shellscript",
        "",
        "#!/bin/sh",
        "echo late",
        "--XYZ--",
        "",
    ]
    .join("\r\n");
    let parts = classify(&gzip(userdata.as_bytes())).unwrap();
    assert_eq!(parts.len(), 2);
    let Part::CloudConfig { name, text } = &parts[0] else {
        panic!("{parts:?}")
    };
    assert_eq!(name, "user-data/base.yml");
    assert!(matches!(&parts[1], Part::Script { body, .. } if body == b"#!/bin/sh\r\necho late"));
    let doc = parse_document(name, text).unwrap();
    assert_eq!(doc.warnings, vec![]);

    let defaults = parse_document(
        "os-config.yml",
        "ros:\n  console: default\n  debug: false\n  sysctl:\n    kernel.panic: 10\n",
    )
    .unwrap();
    let user = parse_document("cloud-config.yml", "ros:\n  console: debian\n").unwrap();
    let layers = Layers {
        defaults: Some(to_json(&defaults.config)),
        dropins: vec![("user-data.yml".into(), to_json(&doc.config))],
        user: Some(to_json(&user.config)),
        cmdline: Some(cmdline::parse("ros.debug ros.sysctl.vm.swappiness=1").value),
    };
    // `ros.sysctl.vm.swappiness` on the command line is a nested key, which sysctl refuses:
    // it is reported and left out, so the userdata value stays.
    assert_eq!(
        layers.merged(),
        json!({
            "hostname": "from-userdata",
            "ros": {
                "console": "debian",
                "debug": true,
                "sysctl": {"kernel.panic": "10", "vm.swappiness": "10"},
            }
        })
    );
}

#[test]
fn header_less_yaml_is_refused_whole() {
    let e = classify(b"hostname: a\nssh_authorized_keys: [k]\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "user-data: YAML without the #cloud-config header (first line \"hostname: a\"); \
         add `#cloud-config` as the first line"
    );
}
