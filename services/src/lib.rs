//! ros system services: the service model, the services' view of the config, and the
//! reconciler that turns them into containers on system-docker.
//!
//! - [`model`]: one service definition in the RancherOS `os-config.yml` shape (compose-like
//!   YAML under `ros.services`), parsed leniently ([`fields`]) and normalized, with the
//!   `io.ros.*` labels (`io.rancher.os.*` accepted).
//! - [`config`]: where definitions come from (shipped defaults, enabled catalog entries,
//!   `cloud-config.d`, the user's file) and how they merge; bad files and bad fields are
//!   reported by name and left out, never fatal.
//! - [`order`]: start order from `io.ros.after`/`before`; cycles and unknown references.
//! - [`reconcile`]: desired services → containers, through the [`engine::Engine`] trait
//!   ([`engine::DockerEngine`] is system-docker's API); [`spec`] maps a service to a
//!   create request.
//! - [`control`], [`status`], [`user_config`]: what `ros service down|restart|logs`,
//!   `list|ps` and `enable|disable` do.
//!
//! It does not own the catalog's content (`services/catalog/*.yml`, written with the
//! system images), nor the whole cloud-config schema, nor the engine: it is a client of
//! system-docker's API and never starts a process itself.

pub mod config;
pub mod control;
pub mod engine;
pub mod fields;
pub mod model;
pub mod order;
pub mod reconcile;
pub mod spec;
pub mod status;
pub mod user_config;

pub use config::{Issue, Paths, ServicesConfig};
pub use engine::{DockerEngine, Engine, EngineError};
pub use model::Service;
pub use reconcile::{up, Desired, Outcome, Report, ServiceReport, UpOptions};
