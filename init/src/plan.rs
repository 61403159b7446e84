//! The plan: which processes PID 1 supervises, in which order, and how.
//!
//! In production the plan will be system-docker alone; until then (and in the black-box
//! tests) it is read from the JSON file named by `ROS_INIT_PLAN` — the test/bring-up hook:
//!
//! ```json
//! {
//!   "shutdown_grace_ms": 2000,
//!   "services": [
//!     { "name": "a", "argv": ["/bin/sleep", "1000"] },
//!     { "name": "b", "argv": ["/bin/b"], "after": ["a"], "restart": "on-failure",
//!       "stop_timeout_ms": 5000, "backoff_initial_ms": 100, "backoff_max_ms": 10000 }
//!   ]
//! }
//! ```
//!
//! `restart` is `always`, `on-failure` (non-zero exit or killed by a signal) or `no`
//! (default). Start order follows `after`, ties keep file order; shutdown is the reverse.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Environment variable naming the plan file (bring-up and test hook).
pub const PLAN_ENV: &str = "ROS_INIT_PLAN";

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("read plan {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse plan {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("service #{index}: empty name")]
    EmptyName { index: usize },
    #[error("service {name}: duplicate name")]
    Duplicate { name: String },
    #[error("service {name}: empty argv")]
    EmptyArgv { name: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    Always,
    OnFailure,
    #[default]
    No,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    pub name: String,
    pub argv: Vec<String>,
    #[serde(default)]
    pub after: Vec<String>,
    #[serde(default)]
    pub restart: Restart,
    #[serde(default = "default_stop_timeout_ms")]
    pub stop_timeout_ms: u64,
    #[serde(default = "default_backoff_initial_ms")]
    pub backoff_initial_ms: u64,
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// A terminal (`ttyS0`, under /dev) for stdin, stdout and stderr instead of PID 1's.
    #[serde(default)]
    pub tty: Option<String>,
    /// Run to completion (bounded by `stop_timeout_ms`) before the process is sent SIGTERM
    /// at shutdown: how system-docker's containers are stopped in order before it is.
    #[serde(default)]
    pub stop_argv: Vec<String>,
    /// The argv of a start after the first (empty: `argv` again), once every service named
    /// in `restart_argv_after` has finished (before that, `argv` again).
    #[serde(default)]
    pub restart_argv: Vec<String>,
    #[serde(default)]
    pub restart_argv_after: Vec<String>,
    /// The process's OOM score adjustment; PID 1's own -1000 is not passed on.
    #[serde(default)]
    pub oom_score_adj: i32,
}

impl ServiceSpec {
    /// A service run as `argv`, other settings at their defaults.
    pub fn new(name: &str, argv: Vec<String>) -> ServiceSpec {
        ServiceSpec {
            name: name.to_string(),
            argv,
            after: Vec::new(),
            restart: Restart::No,
            stop_timeout_ms: default_stop_timeout_ms(),
            backoff_initial_ms: default_backoff_initial_ms(),
            backoff_max_ms: default_backoff_max_ms(),
            tty: None,
            stop_argv: Vec::new(),
            restart_argv: Vec::new(),
            restart_argv_after: Vec::new(),
            oom_score_adj: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    #[serde(default)]
    pub services: Vec<ServiceSpec>,
    /// After the services are stopped: how long everything else gets between SIGTERM and
    /// SIGKILL.
    #[serde(default = "default_shutdown_grace_ms")]
    pub shutdown_grace_ms: u64,
}

fn default_stop_timeout_ms() -> u64 {
    10_000
}
fn default_backoff_initial_ms() -> u64 {
    100
}
fn default_backoff_max_ms() -> u64 {
    10_000
}
fn default_shutdown_grace_ms() -> u64 {
    2_000
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            services: Vec::new(),
            shutdown_grace_ms: default_shutdown_grace_ms(),
        }
    }
}

impl Plan {
    pub fn load(path: &Path) -> Result<Plan, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|source| PlanError::Read {
            path: path.to_owned(),
            source,
        })?;
        let plan: Plan = serde_json::from_str(&text).map_err(|source| PlanError::Parse {
            path: path.to_owned(),
            source,
        })?;
        plan.validate()?;
        Ok(plan)
    }

    fn validate(&self) -> Result<(), PlanError> {
        let mut seen = HashSet::new();
        for (index, s) in self.services.iter().enumerate() {
            if s.name.is_empty() {
                return Err(PlanError::EmptyName { index });
            }
            if !seen.insert(s.name.as_str()) {
                return Err(PlanError::Duplicate {
                    name: s.name.clone(),
                });
            }
            if s.argv.is_empty() {
                return Err(PlanError::EmptyArgv {
                    name: s.name.clone(),
                });
            }
        }
        Ok(())
    }

    /// The services in start order: each after those it names in `after`, ties in file
    /// order. Returns also warnings for unknown `after` names (ignored) and cycles (the
    /// services in a cycle start in file order after the others).
    pub fn start_order(&self) -> (Vec<ServiceSpec>, Vec<String>) {
        let mut warnings = Vec::new();
        let index: HashMap<&str, usize> = self
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i))
            .collect();
        let deps: Vec<Vec<usize>> = self
            .services
            .iter()
            .map(|s| {
                s.after
                    .iter()
                    .filter_map(|a| match index.get(a.as_str()) {
                        Some(&i) => Some(i),
                        None => {
                            warnings.push(format!("{}: after unknown service {a}", s.name));
                            None
                        }
                    })
                    .collect()
            })
            .collect();
        let mut done = vec![false; self.services.len()];
        let mut order = Vec::new();
        while order.len() < self.services.len() {
            let ready = (0..self.services.len())
                .find(|&i| !done[i] && deps[i].iter().all(|&d| done[d] || d == i));
            match ready {
                Some(i) => {
                    done[i] = true;
                    order.push(i);
                }
                None => {
                    let rest: Vec<usize> = (0..self.services.len()).filter(|&i| !done[i]).collect();
                    let names: Vec<&str> = rest
                        .iter()
                        .map(|&i| self.services[i].name.as_str())
                        .collect();
                    warnings.push(format!("dependency cycle among {}", names.join(",")));
                    order.extend(rest);
                }
            }
        }
        let specs = order
            .into_iter()
            .map(|i| self.services[i].clone())
            .collect();
        (specs, warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(json: &str) -> Plan {
        let plan: Plan = serde_json::from_str(json).unwrap();
        plan.validate().unwrap();
        plan
    }

    fn names(p: &Plan) -> (Vec<String>, Vec<String>) {
        let (order, warnings) = p.start_order();
        (order.into_iter().map(|s| s.name).collect(), warnings)
    }

    #[test]
    fn defaults() {
        let p = plan(r#"{"services":[{"name":"a","argv":["x"]}]}"#);
        let s = &p.services[0];
        assert_eq!(s.restart, Restart::No);
        assert_eq!(s.stop_timeout_ms, 10_000);
        assert_eq!((s.backoff_initial_ms, s.backoff_max_ms), (100, 10_000));
        assert_eq!(p.shutdown_grace_ms, 2_000);
    }

    #[test]
    fn restart_policies_parse() {
        let p = plan(
            r#"{"services":[{"name":"a","argv":["x"],"restart":"always"},
                {"name":"b","argv":["x"],"restart":"on-failure"},
                {"name":"c","argv":["x"],"restart":"no"}]}"#,
        );
        let r: Vec<Restart> = p.services.iter().map(|s| s.restart).collect();
        assert_eq!(r, [Restart::Always, Restart::OnFailure, Restart::No]);
    }

    #[test]
    fn rejects_bad_plans() {
        let bad = [
            r#"{"services":[{"name":"","argv":["x"]}]}"#,
            r#"{"services":[{"name":"a","argv":[]}]}"#,
            r#"{"services":[{"name":"a","argv":["x"]},{"name":"a","argv":["y"]}]}"#,
        ];
        for json in bad {
            let p: Plan = serde_json::from_str(json).unwrap();
            assert!(p.validate().is_err(), "{json}");
        }
        assert!(serde_json::from_str::<Plan>(
            r#"{"services":[{"name":"a","argv":["x"],"typo":1}]}"#
        )
        .is_err());
        assert!(serde_json::from_str::<Plan>(
            r#"{"services":[{"name":"a","argv":["x"],"restart":"sometimes"}]}"#
        )
        .is_err());
    }

    #[test]
    fn order_follows_after_then_file_order() {
        let p = plan(
            r#"{"services":[{"name":"c","argv":["x"],"after":["b"]},
                {"name":"b","argv":["x"],"after":["a"]},
                {"name":"a","argv":["x"]},
                {"name":"d","argv":["x"]}]}"#,
        );
        // Each step takes the first startable service in file order.
        assert_eq!(
            names(&p),
            (vec!["a".into(), "b".into(), "c".into(), "d".into()], vec![])
        );
    }

    #[test]
    fn unknown_after_and_cycles_warn_but_start_everything() {
        let p = plan(
            r#"{"services":[{"name":"x","argv":["x"],"after":["y"]},
                {"name":"y","argv":["x"],"after":["x"]},
                {"name":"z","argv":["x"],"after":["ghost","z"]}]}"#,
        );
        let (order, warnings) = names(&p);
        assert_eq!(order, ["z", "x", "y"]);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
    }

    #[test]
    fn load_reports_the_path() {
        let err = Plan::load(Path::new("/nonexistent/plan.json")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/plan.json"));
    }
}
