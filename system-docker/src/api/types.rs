//! Docker Engine API objects, as the API reference spells them (PascalCase fields).
//! Requests ignore fields they do not know, as dockerd does; everything the engine stores
//! about a container is one of these, so `inspect` shows what `create` received.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// Docker's `StrSlice`: a JSON string or a list of strings (or null).
fn str_slice<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum S {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<S>::deserialize(d)? {
        None => None,
        Some(S::One(s)) => Some(vec![s]),
        Some(S::Many(v)) => Some(v),
    })
}

fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerConfig {
    #[serde(deserialize_with = "null_default")]
    pub hostname: String,
    #[serde(deserialize_with = "null_default")]
    pub domainname: String,
    #[serde(deserialize_with = "null_default")]
    pub user: String,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    pub env: Option<Vec<String>>,
    #[serde(deserialize_with = "str_slice")]
    pub cmd: Option<Vec<String>>,
    #[serde(deserialize_with = "str_slice")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(deserialize_with = "null_default")]
    pub image: String,
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(deserialize_with = "null_default")]
    pub working_dir: String,
    pub labels: Option<BTreeMap<String, String>>,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<i64>,
    pub healthcheck: Option<serde_json::Value>,
    pub exposed_ports: Option<serde_json::Value>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    pub maximum_retry_count: i64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct LogConfig {
    #[serde(deserialize_with = "null_default")]
    pub r#type: String,
    pub config: Option<BTreeMap<String, String>>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeviceMapping {
    pub path_on_host: String,
    pub path_in_container: String,
    pub cgroup_permissions: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct BindOptions {
    pub propagation: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct TmpfsOptions {
    pub size_bytes: Option<i64>,
    pub mode: Option<u32>,
}

/// `HostConfig.Mounts[]` (the `--mount` flag).
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct MountRequest {
    pub r#type: String,
    pub source: String,
    pub target: String,
    pub read_only: bool,
    pub bind_options: Option<BindOptions>,
    pub tmpfs_options: Option<TmpfsOptions>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    pub binds: Option<Vec<String>>,
    #[serde(deserialize_with = "null_default")]
    pub network_mode: String,
    pub restart_policy: Option<RestartPolicy>,
    pub auto_remove: bool,
    pub volumes_from: Option<Vec<String>>,
    pub cap_add: Option<Vec<String>>,
    pub cap_drop: Option<Vec<String>>,
    pub privileged: bool,
    pub readonly_rootfs: bool,
    pub tmpfs: Option<BTreeMap<String, String>>,
    #[serde(deserialize_with = "null_default")]
    pub pid_mode: String,
    #[serde(deserialize_with = "null_default")]
    pub ipc_mode: String,
    #[serde(rename = "UTSMode", deserialize_with = "null_default")]
    pub uts_mode: String,
    pub devices: Option<Vec<DeviceMapping>>,
    pub memory: i64,
    pub memory_swap: i64,
    pub nano_cpus: i64,
    pub cpu_quota: i64,
    pub cpu_period: i64,
    pub cpu_shares: i64,
    pub pids_limit: Option<i64>,
    pub log_config: Option<LogConfig>,
    pub security_opt: Option<Vec<String>>,
    pub mounts: Option<Vec<MountRequest>>,
    #[serde(deserialize_with = "null_default")]
    pub cgroup_parent: String,
    pub init: Option<bool>,
    pub oom_score_adj: i64,
    pub shm_size: i64,
    pub extra_hosts: Option<Vec<String>>,
    pub dns: Option<Vec<String>>,
}

/// `POST /containers/create`: the container config with the host config inside.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateRequest {
    #[serde(flatten)]
    pub config: ContainerConfig,
    pub host_config: Option<HostConfig>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "PascalCase")]
pub struct State {
    pub status: String,
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    pub dead: bool,
    pub pid: i32,
    pub exit_code: i32,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "PascalCase")]
pub struct MountPoint {
    pub r#type: String,
    pub name: String,
    pub source: String,
    pub destination: String,
    pub driver: String,
    pub mode: String,
    #[serde(rename = "RW")]
    pub rw: bool,
    pub propagation: String,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecRequest {
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub tty: bool,
    #[serde(deserialize_with = "str_slice")]
    pub cmd: Option<Vec<String>>,
    pub env: Option<Vec<String>>,
    #[serde(deserialize_with = "null_default")]
    pub user: String,
    #[serde(deserialize_with = "null_default")]
    pub working_dir: String,
    pub privileged: bool,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecStartRequest {
    pub detach: bool,
    pub tty: bool,
}

#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct EventActor {
    #[serde(rename = "ID")]
    pub id: String,
    pub attributes: BTreeMap<String, String>,
}

/// One entry of `GET /events`.
#[derive(Serialize, Debug, Clone)]
pub struct Event {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: EventActor,
    pub scope: String,
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
    // Fields of the pre-1.22 format, still sent by dockerd and read by old clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_request_accepts_docker_cli_json() {
        let j = r#"{"Hostname":"","User":"","Cmd":"echo hi","Entrypoint":null,"Image":"busybox",
            "Labels":{"a":"b"},"HostConfig":{"Binds":["/a:/b:ro"],"NetworkMode":"default",
            "RestartPolicy":{"Name":"on-failure","MaximumRetryCount":3},"AutoRemove":true,
            "UTSMode":"host","Memory":67108864,"PidsLimit":null,"Unknown":1},"NetworkingConfig":{}}"#;
        let r: CreateRequest = serde_json::from_str(j).unwrap();
        assert_eq!(r.config.cmd, Some(vec!["echo hi".to_string()]));
        assert_eq!(r.config.image, "busybox");
        let h = r.host_config.unwrap();
        assert_eq!(h.uts_mode, "host");
        assert_eq!(h.memory, 64 << 20);
        assert_eq!(h.restart_policy.unwrap().maximum_retry_count, 3);
        assert!(h.auto_remove);
    }
}
