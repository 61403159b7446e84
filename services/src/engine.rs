//! What the reconciler needs from the container engine, as a small trait ([`Engine`]) so its
//! decisions are unit-tested against a double, and the real thing ([`DockerEngine`]):
//! system-docker's Docker Engine API through `system_docker::client`.

use std::collections::BTreeMap;
use std::future::Future;

use hyper::Method;
use serde_json::{json, Value};
use system_docker::client::{self, path_escape, query, Body, Client};

use crate::model::labels;

/// An engine call that failed: the daemon's message (or why it could not be reached).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EngineError {
    pub message: String,
    /// The daemon answered 404.
    pub not_found: bool,
}

impl EngineError {
    pub fn new(message: impl Into<String>) -> Self {
        EngineError {
            message: message.into(),
            not_found: false,
        }
    }
}

impl From<client::Error> for EngineError {
    fn from(e: client::Error) -> Self {
        EngineError {
            not_found: e.is_not_found(),
            message: e.message(),
        }
    }
}

/// A service container as the engine lists it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    /// Without Docker's leading `/`.
    pub name: String,
    /// The `io.ros.service` label.
    pub service: String,
    /// The `io.ros.config-hash` label.
    pub config_hash: Option<String>,
    pub image: String,
    pub image_id: String,
    /// `created`, `running`, `exited`, `restarting`, …
    pub state: String,
    /// Human-readable, as `docker ps` shows it (`Up 3 seconds`).
    pub status: String,
}

impl ContainerInfo {
    /// Running (or about to be, by its restart policy).
    pub fn running(&self) -> bool {
        matches!(self.state.as_str(), "running" | "restarting")
    }
}

/// A container's state, from inspect.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerState {
    pub status: String,
    pub running: bool,
    pub exit_code: i64,
    pub started_at: String,
    pub finished_at: String,
    pub tty: bool,
}

/// The engine operations the reconciler uses. Containers are addressed by id or name.
pub trait Engine: Sync {
    /// Every container carrying the `io.ros.service` label, running or not.
    fn list(&self) -> impl Future<Output = Result<Vec<ContainerInfo>, EngineError>> + Send;
    /// The id of a local image; `None` when the store does not have it.
    fn image_id(
        &self,
        image: &str,
    ) -> impl Future<Output = Result<Option<String>, EngineError>> + Send;
    /// Creates a container named `name` from a `POST /containers/create` body; its id.
    fn create(
        &self,
        name: &str,
        body: &Value,
    ) -> impl Future<Output = Result<String, EngineError>> + Send;
    fn start(&self, id: &str) -> impl Future<Output = Result<(), EngineError>> + Send;
    fn stop(
        &self,
        id: &str,
        timeout_secs: Option<i64>,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;
    fn restart(
        &self,
        id: &str,
        timeout_secs: Option<i64>,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Removes a container, killing it if it runs.
    fn remove(&self, id: &str) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Waits for the container to exit; its exit code.
    fn wait(&self, id: &str) -> impl Future<Output = Result<i64, EngineError>> + Send;
    fn state(&self, id: &str) -> impl Future<Output = Result<ContainerState, EngineError>> + Send;
}

/// system-docker (or any Docker Engine API) on a unix socket.
#[derive(Clone)]
pub struct DockerEngine {
    client: Client,
}

impl DockerEngine {
    /// An engine at `host` (`unix:///run/system-docker.sock`); connects lazily.
    pub fn new(host: &str) -> Result<Self, EngineError> {
        let client = Client::new(host)?;
        Ok(DockerEngine { client })
    }

    /// The API client, for what the trait does not cover (logs).
    pub fn client(&self) -> &Client {
        &self.client
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn parse_summary(c: &Value) -> ContainerInfo {
    let labels: BTreeMap<String, String> = c
        .get("Labels")
        .cloned()
        .and_then(|l| serde_json::from_value(l).ok())
        .unwrap_or_default();
    let name = c
        .get("Names")
        .and_then(|n| n.get(0))
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim_start_matches('/')
        .to_string();
    ContainerInfo {
        id: str_of(c, "Id").to_string(),
        service: labels.get(labels::SERVICE).cloned().unwrap_or_default(),
        config_hash: labels.get(labels::CONFIG_HASH).cloned(),
        name,
        image: str_of(c, "Image").to_string(),
        image_id: str_of(c, "ImageID").to_string(),
        state: str_of(c, "State").to_string(),
        status: str_of(c, "Status").to_string(),
    }
}

impl Engine for DockerEngine {
    async fn list(&self) -> Result<Vec<ContainerInfo>, EngineError> {
        let filters = json!({ "label": [labels::SERVICE] }).to_string();
        let path = format!(
            "/containers/json{}",
            query([("all", Some("1".into())), ("filters", Some(filters))])
        );
        let list: Vec<Value> = self.client.get(&path).await?;
        Ok(list.iter().map(parse_summary).collect())
    }

    async fn image_id(&self, image: &str) -> Result<Option<String>, EngineError> {
        match self
            .client
            .get::<Value>(&format!("/images/{}/json", path_escape(image)))
            .await
        {
            Ok(v) => Ok(Some(str_of(&v, "Id").to_string())),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn create(&self, name: &str, body: &Value) -> Result<String, EngineError> {
        let path = format!("/containers/create{}", query([("name", Some(name.into()))]));
        let resp = self.client.post(&path, Some(body.clone())).await?;
        Ok(str_of(&resp, "Id").to_string())
    }

    async fn start(&self, id: &str) -> Result<(), EngineError> {
        let path = format!("/containers/{}/start", path_escape(id));
        self.client.post(&path, None).await?;
        Ok(())
    }

    async fn stop(&self, id: &str, timeout_secs: Option<i64>) -> Result<(), EngineError> {
        let path = format!(
            "/containers/{}/stop{}",
            path_escape(id),
            query([("t", timeout_secs.map(|t| t.to_string()))])
        );
        self.client.post(&path, None).await?;
        Ok(())
    }

    async fn restart(&self, id: &str, timeout_secs: Option<i64>) -> Result<(), EngineError> {
        let path = format!(
            "/containers/{}/restart{}",
            path_escape(id),
            query([("t", timeout_secs.map(|t| t.to_string()))])
        );
        self.client.post(&path, None).await?;
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<(), EngineError> {
        let path = format!("/containers/{}?force=1", path_escape(id));
        self.client.call(Method::DELETE, &path, Body::Empty).await?;
        Ok(())
    }

    async fn wait(&self, id: &str) -> Result<i64, EngineError> {
        let path = format!("/containers/{}/wait", path_escape(id));
        let resp = self.client.post(&path, None).await?;
        if let Some(msg) = resp
            .get("Error")
            .and_then(|e| e.get("Message"))
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
        {
            return Err(EngineError::new(msg));
        }
        Ok(resp.get("StatusCode").and_then(Value::as_i64).unwrap_or(-1))
    }

    async fn state(&self, id: &str) -> Result<ContainerState, EngineError> {
        let v: Value = self
            .client
            .get(&format!("/containers/{}/json", path_escape(id)))
            .await?;
        let s = v.get("State").cloned().unwrap_or(Value::Null);
        Ok(ContainerState {
            status: str_of(&s, "Status").to_string(),
            running: s.get("Running").and_then(Value::as_bool).unwrap_or(false),
            exit_code: s.get("ExitCode").and_then(Value::as_i64).unwrap_or(0),
            started_at: str_of(&s, "StartedAt").to_string(),
            finished_at: str_of(&s, "FinishedAt").to_string(),
            tty: v
                .pointer("/Config/Tty")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries() {
        let c = parse_summary(&json!({
            "Id": "abc", "Names": ["/udev"], "Image": "ros/udev", "ImageID": "sha256:1",
            "State": "running", "Status": "Up 2 seconds",
            "Labels": {"io.ros.service": "udev", "io.ros.config-hash": "h"}
        }));
        assert_eq!(c.name, "udev");
        assert_eq!(c.service, "udev");
        assert_eq!(c.config_hash.as_deref(), Some("h"));
        assert!(c.running());
    }
}
