//! cloud-init at boot, run by the bring-up (DESIGN.md §7): the local datasources (NoCloud,
//! config-drive, the command line, files) before the network starts, the network ones (EC2,
//! URLs) once it is up and only when no local source answered, then one apply of the merged
//! config and the saved metadata — hostname, users and SSH keys, write_files, sysctl,
//! bootcmd — before the console and the rest start; `runcmd` and userdata scripts (once per
//! instance) last, when the services are up ([`run_late`]).
//!
//! Nothing here can stop a boot: every source has a deadline, a refused userdata leaves the
//! last good one in place (`ros config status` says why), and a failed step is logged.

use std::path::Path;
use std::time::Duration;

use ros_cloud_config::apply::{apply, ApplyOptions};
use ros_cloud_config::datasource::{self, Phase};
use ros_cloud_config::instance;
use ros_cloud_config::load::{load, ConfigPaths};

/// How long the sources of one phase may take together at boot.
const PHASE_TIMEOUT: Duration = Duration::from_secs(30);

/// Tries the configured sources of `phase` under `root`; whether one answered.
pub fn save(root: &Path, phase: Phase) -> bool {
    let loaded = load(&ConfigPaths::new(root));
    let (specs, _) = match datasource::configured_specs(root, &loaded) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cloud-init: ros.cloud_init.datasources: {e}");
            return false;
        }
    };
    let opts = datasource::configured_options(&loaded, PHASE_TIMEOUT);
    match datasource::save(root, &specs, Some(phase), &opts) {
        Ok(o) => {
            for t in &o.tried {
                if let Some(e) = &t.error {
                    log::warn!("cloud-init: {}: {e}", t.spec);
                }
            }
            let Some(a) = o.answered else {
                log::info!("cloud-init: no {phase} datasource answered");
                return false;
            };
            log::info!(
                "cloud-init: {} answered (instance {}, {} key(s))",
                a.spec,
                a.metadata.instance_id,
                a.metadata.public_keys.len()
            );
            for r in &a.rejected {
                log::error!(
                    "cloud-init: userdata refused, the last good one is kept: {}",
                    r.error
                );
            }
            true
        }
        Err(e) => {
            log::error!("cloud-init: {e}");
            false
        }
    }
}

/// Applies the merged config and the saved metadata to the host under `root`.
pub fn apply_at_boot(root: &Path) {
    let loaded = load(&ConfigPaths::new(root));
    for e in &loaded.errors {
        log::error!("config left out: {e}");
    }
    let meta = instance::read(root).unwrap_or_else(|e| {
        log::warn!("cloud-init: metadata: {e}");
        None
    });
    let report = apply(
        &loaded.value,
        meta.as_ref(),
        &ApplyOptions {
            root: root.to_path_buf(),
            run_commands: true,
            boot: true,
            late_commands: false,
        },
    );
    log_report(&report);
}

/// `runcmd` and the userdata scripts, once per instance id, after the services are up.
pub fn run_late(root: &Path) {
    let loaded = load(&ConfigPaths::new(root));
    let meta = instance::read(root).ok().flatten();
    log_report(&ros_cloud_config::apply::run_late(
        &loaded.value,
        meta.as_ref(),
        root,
    ));
}

fn log_report(report: &ros_cloud_config::apply::ApplyReport) {
    for d in &report.done {
        log::info!("cloud-init: {d}");
    }
    for e in &report.errors {
        log::error!("cloud-init: {e}");
    }
}
