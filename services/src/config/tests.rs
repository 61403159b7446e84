use std::fs;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::*;
use crate::spec::create_body;

struct Tree {
    _dir: tempfile::TempDir,
    paths: Paths,
}

impl Tree {
    fn new() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        Tree { _dir: dir, paths }
    }

    fn write(&self, path: &Path, text: &str) -> PathBuf {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
        path.to_path_buf()
    }

    fn os_config(&self, text: &str) -> PathBuf {
        self.write(&self.paths.os_config(), text)
    }

    fn user(&self, text: &str) -> PathBuf {
        self.write(&self.paths.user_config(), text)
    }

    fn dropin(&self, name: &str, text: &str) -> PathBuf {
        self.write(&self.paths.cloud_config_d().join(name), text)
    }

    fn catalog(&self, name: &str, text: &str) -> PathBuf {
        self.write(&self.paths.catalog_dir().join(format!("{name}.yml")), text)
    }

    fn load(&self) -> ServicesConfig {
        ServicesConfig::load(&self.paths)
    }
}

fn svc<'a>(cfg: &'a ServicesConfig, name: &str) -> &'a Service {
    match &cfg.services[name].service {
        Ok(s) => s,
        Err(e) => panic!("{name}: {e}\nissues: {:?}", cfg.issues),
    }
}

fn shown(cfg: &ServicesConfig) -> Vec<String> {
    cfg.issues.iter().map(|i| i.to_string()).collect()
}

#[test]
fn precedence_maps_merge_scalars_and_lists_replace() {
    let t = Tree::new();
    let defaults = t.os_config(
        "ros:\n  services:\n    web:\n      image: busybox\n      command: [httpd, -f]\n      \
         environment: {A: 1, B: 2}\n      volumes: [/a:/a]\n      labels:\n        \
         io.rancher.os.after: db\n    db:\n      image: busybox\n",
    );
    let d = t.dropin(
        "10-ds.yml",
        "ros:\n  services:\n    web:\n      environment: [B=3]\n      volumes: [/b:/b]\n",
    );
    let d2 = t.dropin(
        "20-more.yml",
        "rancher:\n  services:\n    web:\n      privileged: on\n",
    );
    let user = t.user("#cloud-config\nros:\n  services:\n    web:\n      command: sleep 1\n");
    let cfg = t.load();
    assert!(cfg.issues.is_empty(), "{:?}", shown(&cfg));
    let web = svc(&cfg, "web");
    assert_eq!(web.environment, ["A=1", "B=3"]);
    assert_eq!(web.volumes, ["/b:/b"]);
    assert_eq!(web.command.as_deref().unwrap(), ["sleep", "1"]);
    assert!(web.privileged);
    assert_eq!(web.after(), ["db"]);
    assert_eq!(cfg.services["web"].sources, [defaults, d, d2, user]);
}

#[test]
fn a_file_that_does_not_parse_is_reported_and_left_out() {
    let t = Tree::new();
    t.os_config("ros:\n  services:\n    web:\n      image: busybox\n");
    let bad = t.dropin(
        "10-bad.yml",
        "ros:\n  services:\n    web:\n      image: [x\n",
    );
    t.user("ros:\n  services:\n    web:\n      command: true\n");
    let cfg = t.load();
    assert_eq!(cfg.issues.len(), 1, "{:?}", shown(&cfg));
    let i = &cfg.issues[0];
    assert_eq!(i.file.as_deref(), Some(bad.as_path()));
    assert!(i.line.is_some() && i.column.is_some(), "{i:?}");
    assert!(i.to_string().contains("10-bad.yml:"), "{i}");
    let web = svc(&cfg, "web");
    assert_eq!(web.image, "busybox");
    assert_eq!(web.command.as_deref().unwrap(), ["true"]);
}

#[test]
fn a_bad_field_leaves_out_that_files_part_only() {
    let t = Tree::new();
    t.os_config("ros:\n  services:\n    console:\n      image: busybox\n      privileged: true\n");
    let user = t.user("ros:\n  services:\n    console:\n      privileged: maybe\n    other:\n      image: busybox\n");
    let cfg = t.load();
    let issues = shown(&cfg);
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert!(
        issues[0].starts_with(&format!(
            "{}: service \"console\": field \"privileged\": invalid value: string \"maybe\"",
            user.display()
        )),
        "{issues:?}"
    );
    // The console still runs, on the shipped definition.
    assert!(svc(&cfg, "console").privileged);
    svc(&cfg, "other");
}

#[test]
fn invalid_only_definitions_are_entries_that_say_why() {
    let t = Tree::new();
    t.os_config(
        "ros:\n  services:\n    typo:\n      image: busybox\n      privilegd: true\n    \
         noimage:\n      command: x\n    x:\n      image: busybox\n    fine:\n      image: busybox\n",
    );
    let cfg = t.load();
    let typo = cfg.services["typo"].service.as_ref().unwrap_err();
    assert!(
        typo.contains(
            "service \"typo\": field \"privilegd\": unknown field (did you mean \"privileged\"?)"
        ),
        "{typo}"
    );
    let noimage = cfg.services["noimage"].service.as_ref().unwrap_err();
    assert!(noimage.contains("field \"image\": required"), "{noimage}");
    let x = cfg.services["x"].service.as_ref().unwrap_err();
    assert!(x.contains("not a valid service name"), "{x}");
    svc(&cfg, "fine");
    assert_eq!(cfg.issues.len(), 3, "{:?}", shown(&cfg));
    assert!(
        shown(&cfg)
            .iter()
            .any(|i| i.starts_with("service \"noimage\": field \"image\"")),
        "{:?}",
        shown(&cfg)
    );
}

#[test]
fn catalog_entries_in_every_form() {
    let t = Tree::new();
    t.os_config("ros:\n  services_include:\n    v1: true\n    full: false\n");
    t.catalog("v1", "agent:\n  image: busybox\n  command: agent\n");
    t.catalog(
        "v2",
        "version: '2'\nservices:\n  vm-launcher:\n    image: busybox\n",
    );
    t.catalog(
        "full",
        "rancher:\n  services:\n    kh:\n      image: busybox\n",
    );
    t.catalog("broken", "agent: [\n");
    t.user("ros:\n  services_include:\n    v2: yes\n    full: on\n    missing: true\n  services:\n    agent:\n      command: agent --debug\n");
    let cfg = t.load();
    assert_eq!(
        cfg.services.keys().collect::<Vec<_>>(),
        ["agent", "kh", "vm-launcher"]
    );
    // The user's file overrides the catalog's definition.
    assert_eq!(
        svc(&cfg, "agent").command.as_deref().unwrap(),
        ["agent", "--debug"]
    );
    assert_eq!(cfg.services["agent"].catalog.as_deref(), Some("v1"));
    assert!(cfg.catalog["v1"].enabled && cfg.catalog["full"].enabled);
    assert!(!cfg.catalog["broken"].enabled && !cfg.catalog["broken"].valid);
    let issues = shown(&cfg);
    assert_eq!(issues.len(), 2, "{issues:?}");
    assert!(
        issues.iter().any(|i| i.contains("broken.yml:")),
        "{issues:?}"
    );
    assert!(
        issues.iter().any(|i| i.contains("services_include.missing")
            && i.contains("available: broken, full, v1, v2")),
        "{issues:?}"
    );
}

#[test]
fn disabled_catalog_services_are_optional() {
    let t = Tree::new();
    t.catalog("agent", "services:\n  agent:\n    image: busybox\n");
    t.os_config("ros:\n  services:\n    web:\n      image: busybox\n");
    let cfg = t.load();
    assert_eq!(
        cfg.optional_disabled().into_iter().collect::<Vec<_>>(),
        ["agent"]
    );
    assert!(!cfg.services.contains_key("agent"));
}

#[test]
fn wrong_shapes_are_reported() {
    let t = Tree::new();
    t.os_config("- just\n- a list\n");
    t.dropin("a.yml", "ros:\n  services: [web]\n");
    t.user("ros:\n  services_include: yes\n");
    let cfg = t.load();
    let issues = shown(&cfg);
    assert_eq!(issues.len(), 3, "{issues:?}");
    for want in [
        "top level",
        "field \"services\"",
        "field \"services_include\"",
    ] {
        assert!(
            issues.iter().any(|i| i.contains(want)),
            "{want}: {issues:?}"
        );
    }
}

#[test]
fn default_socket_follows_the_root() {
    assert_eq!(
        Paths::new("/tmp/r").default_host(),
        "unix:///tmp/r/run/system-docker.sock"
    );
    assert_eq!(
        Paths::new("/").default_host(),
        "unix:///run/system-docker.sock"
    );
}

/// A RancherOS-shaped os-config.yml, normalized and mapped to create requests, against
/// `test_data/os-config.golden.json` (`ROS_UPDATE_GOLDEN=1` rewrites it).
#[test]
fn golden_os_config() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data");
    let t = Tree::new();
    t.os_config(&fs::read_to_string(data.join("os-config.yml")).unwrap());
    let cfg = t.load();
    assert!(cfg.issues.is_empty(), "{:?}", shown(&cfg));
    let mut out = serde_json::Map::new();
    for name in cfg.services.keys() {
        let s = svc(&cfg, name);
        out.insert(
            name.clone(),
            json!({"service": s, "create": create_body(s, "HASH")}),
        );
    }
    let got = serde_json::to_string_pretty(&out).unwrap() + "\n";
    let golden = data.join("os-config.golden.json");
    if std::env::var_os("ROS_UPDATE_GOLDEN").is_some() {
        fs::write(&golden, &got).unwrap();
    }
    let want = fs::read_to_string(&golden).unwrap_or_default();
    assert!(
        got == want,
        "normalized os-config differs from {} (ROS_UPDATE_GOLDEN=1 rewrites it):\n{got}",
        golden.display()
    );
}
