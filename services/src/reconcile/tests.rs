//! The reconciler's decisions against an in-memory engine that records every call.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use super::*;
use crate::engine::ContainerState;
use crate::model::{labels, ServiceDef};

#[derive(Clone, Debug)]
struct FakeContainer {
    id: String,
    name: String,
    labels: BTreeMap<String, String>,
    image: String,
    image_id: String,
    state: String,
    exit_code: i64,
}

#[derive(Default)]
struct FakeState {
    next: u32,
    containers: BTreeMap<String, FakeContainer>,
    images: BTreeMap<String, String>,
    log: Vec<String>,
    fail_start: BTreeSet<String>,
    exit_codes: BTreeMap<String, i64>,
}

/// An engine double: containers in a map, every mutating call logged as `verb name`.
#[derive(Default)]
struct Fake {
    state: Mutex<FakeState>,
    /// Services whose `start` waits at this barrier (proves they start concurrently).
    barrier: Option<(BTreeSet<String>, Arc<tokio::sync::Barrier>)>,
}

impl Fake {
    fn new() -> Fake {
        let f = Fake::default();
        f.state
            .lock()
            .unwrap()
            .images
            .insert("busybox".into(), "sha256:bb".into());
        f
    }

    fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }

    fn pos(&self, entry: &str) -> usize {
        let log = self.log();
        log.iter()
            .position(|l| l == entry)
            .unwrap_or_else(|| panic!("{entry:?} not in {log:?}"))
    }

    fn id_of(&self, name: &str) -> Option<String> {
        let s = self.state.lock().unwrap();
        s.containers
            .values()
            .find(|c| c.name == name)
            .map(|c| c.id.clone())
    }

    fn set_state(&self, name: &str, state: &str) {
        let mut s = self.state.lock().unwrap();
        if let Some(c) = s.containers.values_mut().find(|c| c.name == name) {
            c.state = state.into();
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut FakeState) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }
}

fn lookup<'a>(s: &'a mut FakeState, id: &str) -> Result<&'a mut FakeContainer, EngineError> {
    s.containers
        .values_mut()
        .find(|c| c.id == id || c.name == id)
        .ok_or(EngineError {
            message: format!("No such container: {id}"),
            not_found: true,
        })
}

impl Engine for Fake {
    async fn list(&self) -> Result<Vec<ContainerInfo>, EngineError> {
        let s = self.state.lock().unwrap();
        Ok(s.containers
            .values()
            .filter_map(|c| {
                Some(ContainerInfo {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    service: c.labels.get(labels::SERVICE)?.clone(),
                    config_hash: c.labels.get(labels::CONFIG_HASH).cloned(),
                    image: c.image.clone(),
                    image_id: c.image_id.clone(),
                    state: c.state.clone(),
                    status: c.state.clone(),
                })
            })
            .collect())
    }

    async fn image_id(&self, image: &str) -> Result<Option<String>, EngineError> {
        Ok(self.state.lock().unwrap().images.get(image).cloned())
    }

    async fn create(&self, name: &str, body: &Value) -> Result<String, EngineError> {
        let mut s = self.state.lock().unwrap();
        if s.containers.values().any(|c| c.name == name) {
            return Err(EngineError::new(format!(
                "Conflict. The container name \"/{name}\" is already in use"
            )));
        }
        s.next += 1;
        let id = format!("id{}", s.next);
        let image = body["Image"].as_str().unwrap_or("").to_string();
        let image_id = s.images.get(&image).cloned().unwrap_or_default();
        let labels = serde_json::from_value(body["Labels"].clone()).unwrap_or_default();
        s.containers.insert(
            id.clone(),
            FakeContainer {
                id: id.clone(),
                name: name.into(),
                labels,
                image,
                image_id,
                state: "created".into(),
                exit_code: 0,
            },
        );
        s.log.push(format!("create {name}"));
        Ok(id)
    }

    async fn start(&self, id: &str) -> Result<(), EngineError> {
        let name = {
            let mut s = self.state.lock().unwrap();
            let fail = s.fail_start.clone();
            let c = lookup(&mut s, id)?;
            let name = c.name.clone();
            if fail.contains(&name) {
                return Err(EngineError::new(
                    "exec: \"nope\": executable file not found",
                ));
            }
            c.state = "running".into();
            s.log.push(format!("start {name}"));
            name
        };
        if let Some((names, barrier)) = &self.barrier {
            if names.contains(&name) {
                barrier.wait().await;
            }
        }
        Ok(())
    }

    async fn stop(&self, id: &str, _timeout: Option<i64>) -> Result<(), EngineError> {
        let mut s = self.state.lock().unwrap();
        let c = lookup(&mut s, id)?;
        c.state = "exited".into();
        let name = c.name.clone();
        s.log.push(format!("stop {name}"));
        Ok(())
    }

    async fn restart(&self, id: &str, _timeout: Option<i64>) -> Result<(), EngineError> {
        let mut s = self.state.lock().unwrap();
        let c = lookup(&mut s, id)?;
        c.state = "running".into();
        let name = c.name.clone();
        s.log.push(format!("restart {name}"));
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<(), EngineError> {
        let mut s = self.state.lock().unwrap();
        let c = lookup(&mut s, id)?.clone();
        s.containers.remove(&c.id);
        s.log.push(format!("remove {}", c.name));
        Ok(())
    }

    async fn wait(&self, id: &str) -> Result<i64, EngineError> {
        let mut s = self.state.lock().unwrap();
        let codes = s.exit_codes.clone();
        let c = lookup(&mut s, id)?;
        let code = codes.get(&c.name).copied().unwrap_or(0);
        c.state = "exited".into();
        c.exit_code = code;
        let name = c.name.clone();
        s.log.push(format!("exit {name} {code}"));
        Ok(code)
    }

    async fn state(&self, id: &str) -> Result<ContainerState, EngineError> {
        let mut s = self.state.lock().unwrap();
        let c = lookup(&mut s, id)?;
        Ok(ContainerState {
            status: c.state.clone(),
            running: c.state == "running",
            exit_code: c.exit_code,
            ..Default::default()
        })
    }
}

fn svc(name: &str, v: Value) -> Service {
    let mut v = v;
    if v.get("image").is_none() {
        v["image"] = json!("busybox");
    }
    Service::from_def(name, ServiceDef::parse(&v).unwrap()).unwrap()
}

fn desired(list: Vec<Service>) -> Desired {
    Desired {
        services: list.into_iter().map(|s| (s.name.clone(), Ok(s))).collect(),
        optional: BTreeSet::new(),
    }
}

async fn up_all(engine: &Fake, d: &Desired) -> Report {
    up(engine, d, &UpOptions::default()).await.unwrap()
}

fn after(list: &str) -> Value {
    json!({"labels": {"io.ros.after": list}})
}

/// a → b, c → d
fn diamond() -> Vec<Service> {
    vec![
        svc("aa", json!({})),
        svc("bb", after("aa")),
        svc("cc", after("aa")),
        svc("dd", after("bb,cc")),
    ]
}

#[tokio::test]
async fn starts_in_dependency_order_then_changes_nothing() {
    let e = Fake::new();
    let d = desired(diamond());
    let r = up_all(&e, &d).await;
    assert!(r.ok(), "{r}");
    for n in ["aa", "bb", "cc", "dd"] {
        assert_eq!(r.get(n), Some(&Outcome::Created { started: true }), "{r}");
    }
    assert!(e.pos("start aa") < e.pos("create bb"));
    assert!(e.pos("start aa") < e.pos("create cc"));
    assert!(e.pos("start bb") < e.pos("create dd"));
    assert!(e.pos("start cc") < e.pos("create dd"));

    e.clear_log();
    let ids: Vec<Option<String>> = ["aa", "bb", "cc", "dd"]
        .iter()
        .map(|n| e.id_of(n))
        .collect();
    let r = up_all(&e, &d).await;
    assert!(
        r.services.iter().all(|s| s.outcome == Outcome::Unchanged),
        "{r}"
    );
    assert!(e.log().is_empty(), "{:?}", e.log());
    let again: Vec<Option<String>> = ["aa", "bb", "cc", "dd"]
        .iter()
        .map(|n| e.id_of(n))
        .collect();
    assert_eq!(ids, again);
}

#[tokio::test]
async fn a_changed_definition_recreates_only_that_service() {
    let e = Fake::new();
    up_all(&e, &desired(diamond())).await;
    e.clear_log();
    let mut changed = diamond();
    changed[2] = svc(
        "cc",
        json!({"command": "sleep 5", "labels": {"io.ros.after": "aa"}}),
    );
    let r = up_all(&e, &desired(changed)).await;
    assert_eq!(
        r.get("cc"),
        Some(&Outcome::Recreated {
            reason: "definition changed".into(),
            started: true
        })
    );
    for n in ["aa", "bb", "dd"] {
        assert_eq!(r.get(n), Some(&Outcome::Unchanged), "{r}");
    }
    assert_eq!(e.log(), ["stop cc", "remove cc", "create cc", "start cc"]);
}

#[tokio::test]
async fn a_removed_service_is_taken_down() {
    let e = Fake::new();
    up_all(&e, &desired(diamond())).await;
    let mut fewer = diamond();
    fewer.pop();
    let r = up_all(&e, &desired(fewer)).await;
    assert_eq!(r.get("dd"), Some(&Outcome::Removed), "{r}");
    assert!(e.id_of("dd").is_none());
    assert!(r.ok());
}

#[tokio::test]
async fn independent_services_start_concurrently() {
    let mut e = Fake::new();
    // bb and cc each wait in `start` until the other has started too: sequential starts
    // would never finish.
    e.barrier = Some((
        ["bb".to_string(), "cc".to_string()].into(),
        Arc::new(tokio::sync::Barrier::new(2)),
    ));
    let d = desired(diamond());
    let r = tokio::time::timeout(Duration::from_secs(5), up_all(&e, &d))
        .await
        .expect("bb and cc were not started concurrently");
    assert!(r.ok(), "{r}");
}

#[tokio::test]
async fn cycles_and_unknown_references_fail_only_their_services() {
    let e = Fake::new();
    let d = desired(vec![
        svc("xx", after("yy")),
        svc("yy", after("xx")),
        svc("ww", after("xx")),
        svc("uu", after("nope")),
        svc("ok", json!({})),
    ]);
    let r = up_all(&e, &d).await;
    assert!(!r.ok());
    let Some(Outcome::Failed(why)) = r.get("xx") else {
        panic!("{r}")
    };
    assert!(why.contains("dependency cycle: xx → yy → xx"), "{why}");
    assert!(
        matches!(r.get("yy"), Some(Outcome::Failed(w)) if w.contains("cycle")),
        "{r}"
    );
    assert_eq!(
        r.get("ww"),
        Some(&Outcome::Skipped("dependency \"xx\" failed".into()))
    );
    assert_eq!(
        r.get("uu"),
        Some(&Outcome::Failed(
            "io.ros.after names unknown service \"nope\"".into()
        ))
    );
    assert_eq!(r.get("ok"), Some(&Outcome::Created { started: true }));
    assert_eq!(e.log(), ["create ok", "start ok"]);
}

#[tokio::test]
async fn a_failed_start_skips_dependents_only() {
    let e = Fake::new();
    e.with(|s| s.fail_start.insert("bb".into()));
    let r = up_all(&e, &desired(diamond())).await;
    assert!(
        matches!(r.get("bb"), Some(Outcome::Failed(w)) if w.contains("executable file not found")),
        "{r}"
    );
    assert_eq!(
        r.get("dd"),
        Some(&Outcome::Skipped("dependency \"bb\" failed".into()))
    );
    assert_eq!(r.get("cc"), Some(&Outcome::Created { started: true }));
    let shown = r.to_string();
    assert!(shown.contains("bb: failed: cannot start: exec"), "{shown}");
}

#[tokio::test]
async fn jobs_run_to_completion_before_dependents() {
    let e = Fake::new();
    let d = desired(vec![
        svc("job", json!({"labels": {"io.ros.detach": "false"}})),
        svc("app", after("job")),
    ]);
    let r = up_all(&e, &d).await;
    assert!(r.ok(), "{r}");
    assert!(e.pos("exit job 0") < e.pos("create app"));
    assert_eq!(
        r.services
            .iter()
            .find(|s| s.name == "job")
            .unwrap()
            .note
            .as_deref(),
        Some("ran to completion")
    );
    e.clear_log();
    let r = up_all(&e, &d).await;
    assert_eq!(r.get("job"), Some(&Outcome::Unchanged));
    assert!(
        e.log().is_empty(),
        "a finished job is not run again: {:?}",
        e.log()
    );
}

#[tokio::test]
async fn a_failing_job_is_a_failure() {
    let e = Fake::new();
    e.with(|s| s.exit_codes.insert("job".into(), 3));
    let d = desired(vec![
        svc("job", json!({"labels": {"io.rancher.os.detach": "false"}})),
        svc("app", after("job")),
    ]);
    let r = up_all(&e, &d).await;
    assert!(
        matches!(r.get("job"), Some(Outcome::Failed(w)) if w.contains("exited with code 3")),
        "{r}"
    );
    assert!(matches!(r.get("app"), Some(Outcome::Skipped(_))), "{r}");
    // The next `up` runs it again.
    e.with(|s| s.exit_codes.clear());
    e.clear_log();
    let r = up_all(&e, &d).await;
    assert_eq!(r.get("job"), Some(&Outcome::Started), "{r}");
    assert_eq!(
        r.get("app"),
        Some(&Outcome::Created { started: true }),
        "{r}"
    );
}

#[tokio::test]
async fn createonly_is_created_never_started() {
    let e = Fake::new();
    let d = desired(vec![
        svc("vols", json!({"labels": {"io.ros.createonly": "true"}})),
        svc("app", json!({"volumes_from": ["vols"]})),
    ]);
    let r = up_all(&e, &d).await;
    assert_eq!(r.get("vols"), Some(&Outcome::Created { started: false }));
    assert!(!e.log().contains(&"start vols".to_string()));
    assert!(e.pos("create vols") < e.pos("create app"));
    let r = up_all(&e, &d).await;
    assert_eq!(r.get("vols"), Some(&Outcome::Unchanged));
    assert!(!e.log().contains(&"start vols".to_string()));
}

#[tokio::test]
async fn a_missing_image_names_service_and_image() {
    let e = Fake::new();
    let r = up_all(&e, &desired(vec![svc("web", json!({"image": "nginx:1"}))])).await;
    let shown = r.to_string();
    assert!(
        shown.contains("web: failed: image \"nginx:1\" is not in system-docker's image store"),
        "{shown}"
    );
}

#[tokio::test]
async fn stopped_containers_are_started_and_images_tracked() {
    let e = Fake::new();
    let d = desired(diamond());
    up_all(&e, &d).await;
    e.set_state("bb", "exited");
    let r = up_all(&e, &d).await;
    assert_eq!(r.get("bb"), Some(&Outcome::Started));
    e.with(|s| s.images.insert("busybox".into(), "sha256:new".into()));
    let r = up_all(&e, &d).await;
    assert_eq!(
        r.get("aa"),
        Some(&Outcome::Recreated {
            reason: "image changed".into(),
            started: true
        })
    );
}

#[tokio::test]
async fn partial_up_takes_dependencies_and_leaves_the_rest() {
    let e = Fake::new();
    let mut list = diamond();
    list.push(svc("zz", json!({})));
    let d = desired(list);
    // An orphan from an old config stays while only some services are brought up.
    e.with(|s| {
        s.containers.insert(
            "old".into(),
            FakeContainer {
                id: "old".into(),
                name: "gone".into(),
                labels: [(labels::SERVICE.to_string(), "gone".to_string())].into(),
                image: "busybox".into(),
                image_id: "sha256:bb".into(),
                state: "running".into(),
                exit_code: 0,
            },
        )
    });
    let opts = UpOptions {
        only: vec!["bb".into()],
        fresh: false,
        ..UpOptions::default()
    };
    let r = up(&e, &d, &opts).await.unwrap();
    let names: BTreeSet<&str> = r.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["aa", "bb"].into());
    assert!(e.id_of("gone").is_some());
    let bad = UpOptions {
        only: vec!["nope".into()],
        fresh: false,
        ..UpOptions::default()
    };
    assert!(matches!(up(&e, &d, &bad).await, Err(UpError::Unknown(n)) if n == "nope"));
    let mut d2 = d.clone();
    d2.optional.insert("agent".into());
    let opt = UpOptions {
        only: vec!["agent".into()],
        fresh: false,
        ..UpOptions::default()
    };
    assert!(matches!(
        up(&e, &d2, &opt).await,
        Err(UpError::NotEnabled(_))
    ));
}

#[tokio::test]
async fn invalid_definitions_fail_and_skip_dependents() {
    let e = Fake::new();
    let mut d = desired(vec![svc("app", after("broken")), svc("other", json!({}))]);
    d.services.insert(
        "broken".into(),
        Err("invalid definition: f.yml: service \"broken\": field \"privileged\": bad".into()),
    );
    let r = up_all(&e, &d).await;
    assert!(matches!(r.get("broken"), Some(Outcome::Failed(w)) if w.contains("privileged")));
    assert_eq!(
        r.get("app"),
        Some(&Outcome::Skipped("dependency \"broken\" failed".into()))
    );
    assert_eq!(r.get("other"), Some(&Outcome::Created { started: true }));
}

#[tokio::test]
async fn fresh_recreates_all_but_persistent() {
    let e = Fake::new();
    let d = desired(vec![
        svc("console", json!({"labels": {"io.ros.persistent": "true"}})),
        svc("udev", json!({})),
    ]);
    up_all(&e, &d).await;
    let opts = UpOptions {
        only: vec![],
        fresh: true,
        ..UpOptions::default()
    };
    let r = up(&e, &d, &opts).await.unwrap();
    assert_eq!(r.get("console"), Some(&Outcome::Unchanged));
    assert!(
        matches!(r.get("udev"), Some(Outcome::Recreated { reason, .. }) if reason == "fresh boot")
    );
    // A later phase of the same boot leaves what an earlier one brought up alone.
    let later = UpOptions {
        fresh: true,
        settled: ["udev".to_string()].into(),
        ..UpOptions::default()
    };
    let r = up(&e, &d, &later).await.unwrap();
    assert_eq!(r.get("udev"), Some(&Outcome::Unchanged));
}

#[tokio::test]
async fn optional_references_are_ignored_and_scopes_respected() {
    let e = Fake::new();
    let mut d = desired(vec![
        svc("app", after("agent")),
        svc("user-svc", json!({"labels": {"io.ros.scope": "user"}})),
    ]);
    d.optional.insert("agent".into());
    let r = up_all(&e, &d).await;
    assert_eq!(
        r.get("app"),
        Some(&Outcome::Created { started: true }),
        "{r}"
    );
    assert!(matches!(r.get("user-svc"), Some(Outcome::Skipped(w)) if w.contains("scope")));
}

#[tokio::test]
async fn down_and_restart() {
    let e = Fake::new();
    let d = desired(diamond());
    up_all(&e, &d).await;
    e.clear_log();
    let r = crate::control::restart(&e, &d, &["bb".into(), "nope".into()])
        .await
        .unwrap();
    assert_eq!(r[0].outcome, Outcome::Restarted);
    assert!(matches!(&r[1].outcome, Outcome::Failed(w) if w.contains("no container")));
    let r = crate::control::down(&e, &d, &["bb".into(), "nope".into()])
        .await
        .unwrap();
    assert_eq!(r[0].outcome, Outcome::Removed);
    assert!(matches!(&r[1].outcome, Outcome::Skipped(_)));
    assert_eq!(e.log(), ["restart bb", "stop bb", "remove bb"]);
}
