//! The container spec: everything the shim needs to start one container, written by the
//! daemon as `spec.json` in the container's directory. It is an internal contract between
//! the daemon and the shim of the same binary, so it carries resolved values only.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How a container gets one kind of namespace.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum NsMode {
    /// A new namespace of its own.
    #[default]
    Private,
    /// The host's namespace.
    Host,
    /// The namespace of another process (`container:<id>`), by host pid.
    Join(i32),
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Namespaces {
    pub net: NsMode,
    pub pid: NsMode,
    pub ipc: NsMode,
    pub uts: NsMode,
}

/// The overlay root: lower layer dirs (top-most first), the container's own upper and work
/// dirs, and where to mount the result.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Rootfs {
    pub lower: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    Bind,
    Tmpfs,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Mount {
    pub kind: MountKind,
    /// Host path for binds; unused for tmpfs.
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub destination: String,
    pub read_only: bool,
    /// `private`, `rprivate`, `shared`, `rshared`, `slave`, `rslave` (binds only).
    pub propagation: Option<String>,
    /// Extra tmpfs options, e.g. `size=64m,mode=1777`.
    pub data: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Device {
    pub host_path: PathBuf,
    pub container_path: String,
}

/// Resource limits; each set limit must be applied or the start fails.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Resources {
    /// Bytes.
    pub memory: Option<i64>,
    /// CPU quota in microseconds per `cpu_period`.
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub pids: Option<i64>,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct LogConfig {
    pub path: PathBuf,
    /// Rotate when the file passes this many bytes; `None` never rotates.
    pub max_size: Option<u64>,
    /// How many files to keep in all, the live one included.
    pub max_files: u32,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct ContainerSpec {
    pub id: String,
    pub rootfs: Rootfs,
    /// argv, `args[0]` resolved against `PATH` inside the container.
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    /// `user[:group]`, names or numbers, resolved in the container's /etc/passwd.
    pub user: String,
    pub hostname: String,
    pub namespaces: Namespaces,
    pub mounts: Vec<Mount>,
    pub devices: Vec<Device>,
    pub privileged: bool,
    /// Capability names (`CAP_CHOWN`, …) the process keeps.
    pub capabilities: Vec<String>,
    pub no_new_privileges: bool,
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
    /// Files bind-mounted over /etc/hostname, /etc/hosts and /etc/resolv.conf.
    pub etc_files: Vec<(PathBuf, String)>,
    pub cgroup_parent: String,
    pub resources: Resources,
    pub log: LogConfig,
    pub exit_file: PathBuf,
    /// Keep stdin open (a fifo the daemon writes) — `docker run -i`.
    pub stdin_fifo: Option<PathBuf>,
    /// The process's `/proc/self/oom_score_adj` (`--oom-score-adj`; Docker's default 0, so a
    /// container does not inherit the daemon's protection from the OOM killer).
    #[serde(default)]
    pub oom_score_adj: i32,
}

/// One `docker exec` process inside a running container.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct ExecSpec {
    /// Host pid of the container's init, whose namespaces the process joins.
    pub pid: i32,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: String,
    pub capabilities: Vec<String>,
    pub no_new_privileges: bool,
    pub cgroup_parent: String,
    pub container_id: String,
    /// The container's OOM score adjustment, which its exec'd processes share.
    #[serde(default)]
    pub oom_score_adj: i32,
}

/// What the shim writes when the container's process has exited.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct ExitStatus {
    pub exit_code: i32,
    pub finished_at: String,
    pub oom_killed: bool,
}

/// The shim's first and only message to the daemon, one JSON line on its stdout.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(rename_all = "lowercase")]
pub enum StartReport {
    /// The process runs; its pid in the daemon's pid namespace.
    Started { pid: i32 },
    /// Setup or exec failed before the process ran.
    Failed { error: String, exit_code: i32 },
}

/// Docker's default capability set for containers that are not privileged.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// /proc and /sys paths hidden from containers that are not privileged (as Docker does).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths made read-only in containers that are not privileged.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];
