//! The events stream: every container and image action is published here, kept in a
//! bounded history for `since` and broadcast live to `GET /events` clients.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use tokio::sync::broadcast;

use crate::api::types::{Event, EventActor};

const HISTORY: usize = 1024;

pub struct Events {
    tx: broadcast::Sender<Event>,
    history: Mutex<VecDeque<Event>>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            tx: broadcast::channel(HISTORY).0,
            history: Mutex::new(VecDeque::new()),
        }
    }
}

impl Events {
    /// Publishes an event of `kind` (`container`, `image`) about `id`.
    pub fn publish(
        &self,
        kind: &str,
        action: &str,
        id: &str,
        attributes: BTreeMap<String, String>,
    ) {
        let now = chrono::Utc::now();
        let nanos = now.timestamp_nanos_opt().unwrap_or(0);
        let from = attributes.get("image").cloned();
        let legacy = kind == "container" || kind == "image";
        let ev = Event {
            kind: kind.to_string(),
            action: action.to_string(),
            actor: EventActor {
                id: id.to_string(),
                attributes,
            },
            scope: "local".into(),
            time: now.timestamp(),
            time_nano: nanos,
            status: legacy.then(|| action.to_string()),
            id: legacy.then(|| id.to_string()),
            from: if kind == "container" { from } else { None },
        };
        log::debug!("event {kind} {action} {id}");
        if let Ok(mut h) = self.history.lock() {
            if h.len() == HISTORY {
                h.pop_front();
            }
            h.push_back(ev.clone());
        }
        let _ = self.tx.send(ev);
    }

    /// Past events (oldest first) and a receiver for the ones to come, taken atomically so
    /// nothing falls between them.
    pub fn subscribe(&self) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let h = self
            .history
            .lock()
            .map(|h| h.iter().cloned().collect())
            .unwrap_or_default();
        // Subscribing while holding no lock can only duplicate, never lose, an event: the
        // caller drops live events not newer than the last historical one.
        let rx = self.tx.subscribe();
        (h, rx)
    }

    pub fn listeners(&self) -> usize {
        self.tx.receiver_count()
    }
}

/// `GET /events` filters: `{"type":["container"],"event":["start"],"container":["x"],…}`.
#[derive(Default, Debug, Clone)]
pub struct EventFilter {
    pub filters: BTreeMap<String, Vec<String>>,
}

impl EventFilter {
    pub fn matches(&self, ev: &Event) -> bool {
        self.filters.iter().all(|(key, values)| {
            values.is_empty()
                || values.iter().any(|v| match key.as_str() {
                    "type" => ev.kind == *v,
                    "event" => ev.action == *v || ev.action.starts_with(&format!("{v}:")),
                    "container" | "image" => {
                        (ev.kind == *key || key == "image" && ev.kind == "container")
                            && (ev.actor.id.starts_with(v.as_str())
                                || ev.actor.attributes.get("name") == Some(v)
                                || key == "image" && ev.actor.attributes.get("image") == Some(v))
                    }
                    "label" => match v.split_once('=') {
                        Some((k, val)) => {
                            ev.actor.attributes.get(k).map(String::as_str) == Some(val)
                        }
                        None => ev.actor.attributes.contains_key(v),
                    },
                    _ => true,
                })
        })
    }
}
