//! One container as the daemon keeps it: its record (config + state, persisted atomically
//! to `container.json` on every change) and the channels that wake waiters.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::error::DaemonError;
use crate::api::types::{ContainerConfig, HostConfig, MountPoint, State};
use crate::fsutil;

/// The shim watching a running container; its start time tells it from a new process that
/// reused the pid after a reboot or a long downtime.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShimInfo {
    pub pid: i32,
    pub start_time: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Record {
    pub id: String,
    /// With the leading `/`, as Docker shows it.
    pub name: String,
    pub created: String,
    pub path: String,
    pub args: Vec<String>,
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    pub image_id: String,
    pub state: State,
    pub restart_count: u32,
    /// Set by `stop`/`kill`: restart policies leave the container alone until it is started.
    pub manually_stopped: bool,
    pub shim: Option<ShimInfo>,
    pub mounts: Vec<MountPoint>,
}

/// What waiters watch: how many times the container has exited, and whether it is gone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lifecycle {
    pub exits: u64,
    pub starts: u64,
    pub removed: bool,
}

pub struct Container {
    pub id: String,
    pub dir: PathBuf,
    record: Mutex<Record>,
    pub lifecycle: watch::Sender<Lifecycle>,
    /// How many attached clients are reading the container's output; an auto-removed
    /// container keeps its log until they have read it all.
    pub attached: watch::Sender<usize>,
    /// Serializes start, stop, restart and remove of this container.
    pub op: tokio::sync::Mutex<()>,
    /// Delay before the next policy restart, in milliseconds.
    pub backoff_ms: std::sync::atomic::AtomicU64,
}

impl Container {
    pub fn new(dir: PathBuf, record: Record) -> Container {
        Container {
            id: record.id.clone(),
            dir,
            record: Mutex::new(record),
            lifecycle: watch::Sender::new(Lifecycle::default()),
            attached: watch::Sender::new(0),
            op: tokio::sync::Mutex::new(()),
            backoff_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn load(dir: &Path) -> Result<Container, DaemonError> {
        let path = dir.join("container.json");
        let data = std::fs::read(&path).map_err(DaemonError::io(&path))?;
        let rec: Record = serde_json::from_slice(&data)
            .map_err(|e| DaemonError::Internal(format!("{}: {e}", path.display())))?;
        Ok(Container::new(dir.to_path_buf(), rec))
    }

    /// The record, locked. Never hold it across an await.
    pub fn lock(&self) -> MutexGuard<'_, Record> {
        // A panic while holding the lock cannot leave a half-written record on disk (writes
        // are atomic), so the in-memory value is still usable.
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn snapshot(&self) -> Record {
        self.lock().clone()
    }

    /// Changes the record and persists it; the change is kept only if the write succeeds.
    /// Not synced: the state it records (running, exit codes) is void after a reboot, and a
    /// daemon crash cannot lose it. [`Container::persist`] writes the config durably.
    pub fn update<T>(&self, f: impl FnOnce(&mut Record) -> T) -> Result<T, DaemonError> {
        let mut rec = self.lock();
        let mut next = rec.clone();
        let out = f(&mut next);
        let path = self.dir.join("container.json");
        fsutil::write_json_atomic_unsynced(&path, &next).map_err(DaemonError::io(&path))?;
        *rec = next;
        Ok(out)
    }

    /// Writes the record durably (at create: the config must survive a power cut).
    pub fn persist(&self) -> Result<(), DaemonError> {
        let rec = self.lock();
        let path = self.dir.join("container.json");
        fsutil::write_json_atomic(&path, &*rec).map_err(DaemonError::io(&path))
    }

    pub fn name(&self) -> String {
        self.lock().name.clone()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join(format!("{}-json.log", self.id))
    }

    pub fn mark_exited(&self) {
        self.lifecycle.send_modify(|l| l.exits += 1);
    }

    pub fn mark_started(&self) {
        self.lifecycle.send_modify(|l| l.starts += 1);
    }

    pub fn mark_removed(&self) {
        self.lifecycle.send_modify(|l| l.removed = true);
    }
}

/// Counts an attached reader while it lives.
pub struct AttachGuard(std::sync::Arc<Container>);

impl AttachGuard {
    pub fn new(c: std::sync::Arc<Container>) -> AttachGuard {
        c.attached.send_modify(|n| *n += 1);
        AttachGuard(c)
    }
}

impl Drop for AttachGuard {
    fn drop(&mut self) {
        self.0.attached.send_modify(|n| *n = n.saturating_sub(1));
    }
}
