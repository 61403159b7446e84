//! The container runtime, written here on `nix`: namespaces, the overlay root and
//! `pivot_root`, /proc /sys /dev, volumes, cgroups, users and capabilities.
//!
//! The daemon never forks a container itself: it writes a [`spec::ContainerSpec`] and starts
//! the [`shim`], a fresh single-threaded process that does the work and stays as the
//! container's parent.

pub mod caps;
pub mod cgroups;
pub mod mounts;
pub mod shim;
pub mod spec;
pub mod user;

pub use shim::shim_main;
