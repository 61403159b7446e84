//! Userdata as a datasource hands it over, any bytes: classified (cloud-config, script,
//! gzip, MIME multipart), and every cloud-config part parsed and validated. Nothing may
//! panic, hang or allocate without bound; errors are fine.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ros_cloud_config::userdata::{classify, Part};

fuzz_target!(|data: &[u8]| {
    if let Ok(parts) = classify(data) {
        for part in parts {
            if let Part::CloudConfig { name, text } = part {
                if let Ok(v) = ros_cloud_config::parse_document(&name, &text) {
                    // The normalized form must read back (the layers are merged as it).
                    let json = ros_cloud_config::to_json(&v.config);
                    let doc = ros_cloud_config::edit::to_document(&json);
                    let back = ros_cloud_config::parse_document(&name, &doc)
                        .expect("a normalized config reads back");
                    assert_eq!(ros_cloud_config::to_json(&back.config), json);
                }
            }
        }
    }
});
