use super::*;
use serde_json::json;

fn parse(v: Value) -> Result<ServiceDef, Vec<FieldError>> {
    ServiceDef::parse(&v)
}

#[test]
fn every_listed_field_is_known_to_the_struct() {
    for f in FIELDS {
        let r = parse(json!({ *f: null }));
        assert!(r.is_ok(), "{f}: {r:?}");
    }
}

#[test]
fn every_bad_field_is_reported() {
    let e = parse(json!({"image": "x", "restrat": "always", "privileged": "maybe", "tty": "no"}))
        .unwrap_err();
    let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["privileged", "restrat"], "{e:?}");
}

#[test]
fn unknown_fields_are_named_with_a_suggestion() {
    let e = parse(json!({"image": "x", "privilegd": true, "zzz": 1})).unwrap_err();
    assert_eq!(e.len(), 2, "{e:?}");
    let shown: Vec<String> = e.iter().map(|e| e.to_string()).collect();
    assert!(
        shown.contains(
            &"field \"privilegd\": unknown field (did you mean \"privileged\"?)".to_string()
        ),
        "{shown:?}"
    );
    assert!(
        shown.contains(&"field \"zzz\": unknown field".to_string()),
        "{shown:?}"
    );
}

#[test]
fn wrong_types_name_the_field() {
    let e = parse(json!({"image": "x", "privileged": "maybe"})).unwrap_err();
    assert_eq!(e[0].field, "privileged");
    assert!(e[0].message.contains("\"maybe\""), "{e:?}");
    let e = parse(json!({"image": "x", "healthcheck": {"interval": "soon"}})).unwrap_err();
    assert_eq!(e[0].field, "healthcheck.interval");
    let e = parse(json!({"image": "x", "environment": "A=1"})).unwrap_err();
    assert_eq!(e[0].field, "environment");
    let e = parse(json!("just a string")).unwrap_err();
    assert!(e[0].message.contains("mapping"), "{e:?}");
}

#[test]
fn aliases_fold() {
    let d = parse(json!({
        "image": "x", "net": "host", "memory_limit": "64m",
        "log_driver": "json-file", "log_opt": {"max-size": "1m"},
        "labels": {"io.rancher.os.after": "a", "io.rancher.os.detach": "false", "io.ros.before": "z"}
    }))
    .unwrap();
    let s = Service::from_def("svc", d.clone()).unwrap();
    assert_eq!(s.network_mode.as_deref(), Some("host"));
    assert_eq!(s.mem_limit, Some(64 << 20));
    assert_eq!(
        s.logging.as_ref().unwrap().driver.as_deref(),
        Some("json-file")
    );
    assert_eq!(s.after(), ["a"]);
    assert_eq!(s.before(), ["z"]);
    assert!(!s.detach());
    // Canonical form reads back identically.
    let again = ServiceDef::parse(&d.to_value()).unwrap();
    assert_eq!(again, d);
    let e = parse(json!({"image": "x", "net": "host", "network_mode": "none"})).unwrap_err();
    assert_eq!(e[0].field, "net");
    let e = parse(json!({"image": "x", "labels": {"io.ros.detach": "maybe"}})).unwrap_err();
    assert_eq!(e[0].field, "labels.io.ros.detach");
}

#[test]
fn normalizes_for_the_api() {
    let d = parse(json!({
        "image": "busybox", "command": "sh -c 'echo hi'", "environment": {"B": 2, "A": "x"},
        "restart": false, "network_mode": "service:net1", "volumes_from": ["data:ro"],
        "healthcheck": {"test": "true", "interval": "1m"}, "privileged": "yes"
    }))
    .unwrap();
    let s = Service::from_def("svc", d).unwrap();
    assert_eq!(s.command.as_deref().unwrap(), ["sh", "-c", "echo hi"]);
    assert_eq!(s.environment, ["A=x", "B=2"]);
    assert_eq!(s.restart.as_deref(), Some("no"));
    assert_eq!(s.network_mode.as_deref(), Some("container:net1"));
    assert!(s.privileged);
    assert_eq!(
        s.references(),
        ["data", "net1"].iter().map(|s| s.to_string()).collect()
    );
    let h = s.healthcheck.unwrap();
    assert_eq!(h.test, ["CMD-SHELL", "true"]);
    assert_eq!(h.interval, Some(60_000_000_000));
}

#[test]
fn missing_image_and_bad_values() {
    let e = Service::from_def("svc", parse(json!({"command": "x"})).unwrap()).unwrap_err();
    assert_eq!(e.field, "image");
    let e = Service::from_def(
        "svc",
        parse(json!({"image": "x", "network_mode": "bogus"})).unwrap(),
    )
    .unwrap_err();
    assert_eq!(e.field, "network_mode");
    let e = Service::from_def(
        "svc",
        parse(json!({"image": "x", "devices": ["dev/kvm"]})).unwrap(),
    )
    .unwrap_err();
    assert_eq!(e.field, "devices");
}

#[test]
fn hash_follows_the_definition() {
    let a = Service::from_def(
        "s1",
        parse(json!({"image": "x", "command": ["a"]})).unwrap(),
    )
    .unwrap();
    let b = Service::from_def(
        "s1",
        parse(json!({"image": "x", "command": ["a"]})).unwrap(),
    )
    .unwrap();
    let c = Service::from_def(
        "s1",
        parse(json!({"image": "x", "command": ["b"]})).unwrap(),
    )
    .unwrap();
    assert_eq!(a.config_hash(), b.config_hash());
    assert_ne!(a.config_hash(), c.config_hash());
    assert_eq!(a.config_hash().len(), 64);
}

#[test]
fn names() {
    assert!(valid_name("udev"));
    assert!(valid_name("my_svc.1-x"));
    assert!(!valid_name("a"));
    assert!(!valid_name("-x"));
    assert!(!valid_name("a/b"));
}
