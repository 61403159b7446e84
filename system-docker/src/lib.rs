//! system-docker: a small, Docker-compatible container engine for system services.
//!
//! It owns the image store ([`image`]), the container runtime ([`runtime`], namespaces,
//! overlayfs, pivot_root, cgroups, capabilities — written here on `nix`), the daemon
//! ([`daemon`]: container state, restart policies, json-file logs, events), the Docker
//! Engine API server ([`api`]) and the `system-docker` command-line client ([`cli`]).
//!
//! It depends on none of the ros OS crates: it is a generic engine that could run on any
//! Linux host. Every `unsafe` block of the crate lives in [`sys`].

#![recursion_limit = "256"]

pub mod api;
pub mod cli;
pub mod client;
pub mod daemon;
pub mod fsutil;
pub mod ids;
pub mod image;
pub mod jsonlog;
pub mod runtime;
pub mod sys;

/// The Docker Engine API version this engine speaks at most.
pub const API_VERSION: &str = "1.43";
/// The oldest API version a client may negotiate down to.
pub const MIN_API_VERSION: &str = "1.24";
/// The engine's own version (the workspace's).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Default socket of the system engine.
pub const DEFAULT_SOCKET: &str = "/run/system-docker.sock";
/// Default data root of the system engine.
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/system-docker";
/// Default exec root (runtime state that does not survive a reboot).
pub const DEFAULT_EXEC_ROOT: &str = "/run/system-docker";

/// The `system-docker` command: `daemon` runs the engine, `shim` is the per-container
/// process the daemon starts, anything else is the client. Returns the exit code.
pub fn main(args: Vec<std::ffi::OsString>) -> i32 {
    match args.first().and_then(|a| a.to_str()) {
        Some("daemon") => daemon::run_from_args(args[1..].to_vec()),
        Some("shim") => runtime::shim_main(args[1..].to_vec()),
        _ => cli::main(args),
    }
}
