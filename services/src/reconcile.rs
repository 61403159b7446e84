//! The reconciler: desired services → containers on system-docker.
//!
//! Each service's container is named after it and labelled `io.ros.service=<name>` and
//! `io.ros.config-hash=<sha256 of the normalized definition>`. An unchanged hash (and image)
//! leaves the container alone (started if it is stopped, unless it is create-only or a
//! `detach: false` job that already succeeded); a changed one is stopped, removed and
//! recreated; a labelled container whose service is no longer configured is stopped and
//! removed.
//!
//! Starts follow the dependency graph ([`crate::order`]): a service starts as soon as
//! everything it depends on is up, so independent services start concurrently. A
//! `detach: false` service counts as up once it has exited 0. A service that cannot be
//! ordered, created or started is reported as failed and its dependents as skipped; the
//! others carry on. Nothing is pulled: at boot there is no registry, so a missing image is
//! a failure that names the service and the image.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use futures_util::stream::{FuturesUnordered, StreamExt};

use crate::config::ServicesConfig;
use crate::engine::{ContainerInfo, Engine, EngineError};
use crate::model::Service;
use crate::order;
use crate::spec::create_body;

/// What should run: enabled services by name (or why one cannot run), and the names of
/// optional services that are not enabled (depending on one of them is not an error).
#[derive(Clone, Debug, Default)]
pub struct Desired {
    pub services: BTreeMap<String, Result<Service, String>>,
    pub optional: BTreeSet<String>,
}

impl From<&ServicesConfig> for Desired {
    fn from(cfg: &ServicesConfig) -> Self {
        Desired {
            services: cfg
                .services
                .iter()
                .map(|(n, e)| (n.clone(), e.service.clone()))
                .collect(),
            optional: cfg.optional_disabled(),
        }
    }
}

impl Desired {
    /// The stop timeout configured for `name` (`stop_grace_period`), in seconds.
    pub fn stop_timeout(&self, name: &str) -> Option<i64> {
        self.services
            .get(name)
            .and_then(|s| s.as_ref().ok())
            .and_then(|s| s.stop_grace_period)
            .map(|ns| ns / 1_000_000_000)
    }
}

/// What `up` may do.
#[derive(Clone, Debug, Default)]
pub struct UpOptions {
    /// Reconcile only these services and what they depend on (all when empty); containers
    /// of unconfigured services are then left alone.
    pub only: Vec<String>,
    /// Recreate every container that is not `io.ros.persistent`, as a boot does (system
    /// containers do not keep their writable layers across boots).
    pub fresh: bool,
    /// Services already brought up by an earlier phase of the same boot: `fresh` does not
    /// recreate them again.
    pub settled: BTreeSet<String>,
}

/// What happened to one service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A new container; `started` is false for a create-only service.
    Created {
        started: bool,
    },
    /// The old container was replaced.
    Recreated {
        reason: String,
        started: bool,
    },
    /// Left as it was.
    Unchanged,
    /// The container was there, unchanged, but stopped: started.
    Started,
    /// Restarted on request.
    Restarted,
    /// Its service is no longer configured (or was taken down on request).
    Removed,
    Failed(String),
    Skipped(String),
}

impl Outcome {
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Failed(_))
    }
}

/// One service's line of a [`Report`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceReport {
    pub name: String,
    pub outcome: Outcome,
    /// More about it (`ran to completion`).
    pub note: Option<String>,
}

impl ServiceReport {
    fn new(name: &str, outcome: Outcome) -> Self {
        ServiceReport {
            name: name.to_string(),
            outcome,
            note: None,
        }
    }

    fn note(mut self, note: Option<String>) -> Self {
        self.note = note;
        self
    }
}

impl fmt::Display for ServiceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.name)?;
        match &self.outcome {
            Outcome::Created { started: true } => f.write_str("created, started")?,
            Outcome::Created { started: false } => f.write_str("created (create only)")?,
            Outcome::Recreated { reason, started } => write!(
                f,
                "recreated ({reason}){}",
                if *started { ", started" } else { "" }
            )?,
            Outcome::Unchanged => f.write_str("unchanged")?,
            Outcome::Started => f.write_str("started")?,
            Outcome::Restarted => f.write_str("restarted")?,
            Outcome::Removed => f.write_str("removed")?,
            Outcome::Failed(why) => write!(f, "failed: {why}")?,
            Outcome::Skipped(why) => write!(f, "skipped: {why}")?,
        }
        if let Some(n) = &self.note {
            write!(f, " ({n})")?;
        }
        Ok(())
    }
}

/// What a reconcile did, service by service, in the order things finished.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub services: Vec<ServiceReport>,
}

impl Report {
    /// The outcome for `name`.
    pub fn get(&self, name: &str) -> Option<&Outcome> {
        self.services
            .iter()
            .find(|s| s.name == name)
            .map(|s| &s.outcome)
    }

    /// Whether no service failed (a service skipped for a failed dependency comes with
    /// that failure).
    pub fn ok(&self) -> bool {
        !self.services.iter().any(|s| s.outcome.is_failure())
    }

    fn push(&mut self, r: ServiceReport) {
        log::info!("{r}");
        self.services.push(r);
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.services {
            writeln!(f, "{s}")?;
        }
        Ok(())
    }
}

/// Why `up` could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error("cannot list the service containers: {0}")]
    List(#[source] EngineError),
    #[error("no service named {0:?} is configured")]
    Unknown(String),
    #[error("{0:?} is an optional service that is not enabled (`ros service enable {0}`)")]
    NotEnabled(String),
}

type Job<'a> = Pin<Box<dyn Future<Output = ServiceReport> + Send + 'a>>;

/// Brings the containers in line with `desired`.
pub async fn up<E: Engine>(
    engine: &E,
    desired: &Desired,
    opts: &UpOptions,
) -> Result<Report, UpError> {
    let current = engine.list().await.map_err(UpError::List)?;
    let mut containers: BTreeMap<String, ContainerInfo> = BTreeMap::new();
    for c in current {
        // Several containers claiming one service: keep the one named after it.
        let better = containers
            .get(&c.service)
            .is_none_or(|old| old.name != c.service && c.name == c.service);
        if better {
            containers.insert(c.service.clone(), c);
        }
    }

    let nodes: BTreeMap<String, Option<&Service>> = desired
        .services
        .iter()
        .map(|(n, s)| (n.clone(), s.as_ref().ok()))
        .collect();
    let (graph, order_errors) = order::graph(&nodes, &desired.optional);

    let selected: BTreeSet<String> = if opts.only.is_empty() {
        desired.services.keys().cloned().collect()
    } else {
        for name in &opts.only {
            if !desired.services.contains_key(name) {
                return Err(if desired.optional.contains(name) {
                    UpError::NotEnabled(name.clone())
                } else {
                    UpError::Unknown(name.clone())
                });
            }
        }
        graph.closure(&opts.only)
    };

    let mut report = Report::default();
    if opts.only.is_empty() {
        let orphans: Vec<&ContainerInfo> = containers
            .values()
            .filter(|c| !desired.services.contains_key(&c.service))
            .collect();
        let mut jobs: FuturesUnordered<_> = orphans
            .into_iter()
            .map(|c| async move {
                let outcome = match take_down(engine, c, None).await {
                    Ok(()) => Outcome::Removed,
                    Err(e) => Outcome::Failed(format!("cannot remove its container: {e}")),
                };
                ServiceReport::new(&c.service, outcome).note(Some("no longer configured".into()))
            })
            .collect();
        while let Some(r) = jobs.next().await {
            report.push(r);
        }
    }

    // done: name → whether it is up (false: failed or skipped).
    let mut done: BTreeMap<String, bool> = BTreeMap::new();
    let mut pending: BTreeSet<String> = BTreeSet::new();
    for name in &selected {
        let early = match &desired.services[name] {
            Err(why) => Some(Outcome::Failed(why.clone())),
            Ok(_) if order_errors.contains_key(name) => {
                Some(Outcome::Failed(order_errors[name].clone()))
            }
            Ok(s) if s.scope() != "system" => Some(Outcome::Skipped(format!(
                "io.ros.scope is {:?}: only system services run on system-docker",
                s.scope()
            ))),
            Ok(_) => None,
        };
        match early {
            Some(o) => {
                // Another engine's service (scope) is not ours to wait for.
                let satisfied = matches!(o, Outcome::Skipped(_));
                report.push(ServiceReport::new(name, o));
                done.insert(name.clone(), satisfied);
            }
            None => {
                pending.insert(name.clone());
            }
        }
    }

    let mut running: FuturesUnordered<Job<'_>> = FuturesUnordered::new();
    loop {
        // Settle what can be decided now: skip dependents of failures, start the ready.
        let mut changed = true;
        while changed {
            changed = false;
            for name in pending.clone() {
                let deps: Vec<&String> = graph.deps[&name]
                    .iter()
                    .filter(|d| selected.contains(*d))
                    .collect();
                if let Some(bad) = deps.iter().find(|d| done.get(**d) == Some(&false)) {
                    let what = match report.get(bad) {
                        Some(Outcome::Skipped(_)) => "was skipped",
                        _ => "failed",
                    };
                    report.push(ServiceReport::new(
                        &name,
                        Outcome::Skipped(format!("dependency {bad:?} {what}")),
                    ));
                    done.insert(name.clone(), false);
                    pending.remove(&name);
                    changed = true;
                } else if deps.iter().all(|d| done.get(*d) == Some(&true)) {
                    pending.remove(&name);
                    let Ok(svc) = &desired.services[&name] else {
                        continue;
                    };
                    let existing = containers.get(&name).cloned();
                    let fresh = opts.fresh && !opts.settled.contains(&name);
                    running.push(Box::pin(ensure(engine, svc, existing, fresh)));
                    changed = true;
                }
            }
        }
        let Some(r) = running.next().await else {
            break;
        };
        done.insert(r.name.clone(), !r.outcome.is_failure());
        report.push(r);
    }
    // Cannot happen (cycles fail early), but never leave a service unreported.
    for name in pending {
        report.push(ServiceReport::new(
            &name,
            Outcome::Skipped("its dependencies never finished".into()),
        ));
    }
    Ok(report)
}

/// Stops (when running) and removes a container.
pub(crate) async fn take_down<E: Engine>(
    engine: &E,
    c: &ContainerInfo,
    timeout: Option<i64>,
) -> Result<(), EngineError> {
    if c.running() {
        if let Err(e) = engine.stop(&c.id, timeout).await {
            if !e.not_found {
                log::warn!("stopping {}: {e}; removing it by force", c.name);
            }
        }
    }
    match engine.remove(&c.id).await {
        Err(e) if !e.not_found => Err(e),
        _ => Ok(()),
    }
}

/// Makes one service's container match its definition.
async fn ensure<E: Engine>(
    engine: &E,
    svc: &Service,
    existing: Option<ContainerInfo>,
    fresh: bool,
) -> ServiceReport {
    let name = svc.name.as_str();
    let failed = |why: String| ServiceReport::new(name, Outcome::Failed(why));
    let hash = svc.config_hash();
    let image_id = match engine.image_id(&svc.image).await {
        Ok(Some(id)) => id,
        Ok(None) => {
            return failed(format!(
                "image {:?} is not in system-docker's image store (nothing is pulled at \
                 boot; load it with `system-docker load`)",
                svc.image
            ))
        }
        Err(e) => return failed(format!("cannot look up image {:?}: {e}", svc.image)),
    };
    let reason = match &existing {
        None => None,
        Some(c) if c.config_hash.as_deref() != Some(hash.as_str()) => Some("definition changed"),
        Some(c) if !c.image_id.is_empty() && c.image_id != image_id => Some("image changed"),
        Some(_) if fresh && !svc.persistent() => Some("fresh boot"),
        Some(c) => return keep(engine, svc, c).await,
    };
    if let Some(c) = &existing {
        if let Err(e) = take_down(engine, c, stop_timeout(svc)).await {
            return failed(format!("cannot remove the old container: {e}"));
        }
    }
    let id = match engine.create(name, &create_body(svc, &hash)).await {
        Ok(id) => id,
        Err(e) => return failed(format!("cannot create the container: {e}")),
    };
    match run(engine, svc, &id).await {
        Ok((started, note)) => {
            let outcome = match reason {
                Some(r) => Outcome::Recreated {
                    reason: r.to_string(),
                    started,
                },
                None => Outcome::Created { started },
            };
            ServiceReport::new(name, outcome).note(note)
        }
        Err(why) => failed(why),
    }
}

fn stop_timeout(svc: &Service) -> Option<i64> {
    svc.stop_grace_period.map(|ns| ns / 1_000_000_000)
}

/// Starts a fresh container as its service says: not at all (create-only), detached, or
/// to completion. Returns whether it was started, and a note.
async fn run<E: Engine>(
    engine: &E,
    svc: &Service,
    id: &str,
) -> Result<(bool, Option<String>), String> {
    if svc.createonly() {
        return Ok((false, None));
    }
    engine
        .start(id)
        .await
        .map_err(|e| format!("cannot start: {e}"))?;
    if svc.detach() {
        return Ok((true, None));
    }
    wait_done(engine, id).await.map(|n| (true, Some(n)))
}

/// Waits for a `detach: false` service to exit; 0 is success.
async fn wait_done<E: Engine>(engine: &E, id: &str) -> Result<String, String> {
    match engine.wait(id).await {
        Ok(0) => Ok("ran to completion".into()),
        Ok(code) => Err(format!(
            "exited with code {code} (io.ros.detach is false: it must succeed)"
        )),
        Err(e) => Err(format!("cannot wait for it: {e}")),
    }
}

/// An unchanged container: started if it should run and does not.
async fn keep<E: Engine>(engine: &E, svc: &Service, c: &ContainerInfo) -> ServiceReport {
    let name = svc.name.as_str();
    if svc.createonly() {
        return ServiceReport::new(name, Outcome::Unchanged);
    }
    if svc.detach() {
        if c.running() {
            return ServiceReport::new(name, Outcome::Unchanged);
        }
        return match engine.start(&c.id).await {
            Ok(()) => ServiceReport::new(name, Outcome::Started),
            Err(e) => ServiceReport::new(name, Outcome::Failed(format!("cannot start: {e}"))),
        };
    }
    // A job: done if it already exited 0; waited for if running; else run again.
    if !c.running() {
        match engine.state(&c.id).await {
            Ok(s) if s.status == "exited" && s.exit_code == 0 => {
                return ServiceReport::new(name, Outcome::Unchanged)
                    .note(Some("completed earlier".into()));
            }
            Ok(_) => {}
            Err(e) => {
                return ServiceReport::new(name, Outcome::Failed(format!("cannot inspect: {e}")))
            }
        }
        if let Err(e) = engine.start(&c.id).await {
            return ServiceReport::new(name, Outcome::Failed(format!("cannot start: {e}")));
        }
    }
    let outcome = if c.running() {
        Outcome::Unchanged
    } else {
        Outcome::Started
    };
    match wait_done(engine, &c.id).await {
        Ok(note) => ServiceReport::new(name, outcome).note(Some(note)),
        Err(why) => ServiceReport::new(name, Outcome::Failed(why)),
    }
}

#[cfg(test)]
mod tests;
