//! Operations on the containers of named services: take down, restart, read logs.

use std::io;

use hyper::Method;
use system_docker::client::{next_chunk, path_escape, query, Body};

use crate::engine::{ContainerInfo, DockerEngine, Engine, EngineError};
use crate::reconcile::{take_down, Desired, Outcome, ServiceReport};

/// The container of service `name`: one labelled with it, preferably named after it.
pub async fn find<E: Engine>(engine: &E, name: &str) -> Result<Option<ContainerInfo>, EngineError> {
    let all = engine.list().await?;
    let mut hits: Vec<ContainerInfo> = all.into_iter().filter(|c| c.service == name).collect();
    hits.sort_by_key(|c| c.name != name);
    Ok(hits.into_iter().next())
}

/// Stops and removes the containers of `names`.
pub async fn down<E: Engine>(
    engine: &E,
    desired: &Desired,
    names: &[String],
) -> Result<Vec<ServiceReport>, EngineError> {
    let mut out = Vec::new();
    for name in names {
        let outcome = match find(engine, name).await? {
            None => Outcome::Skipped("it has no container".into()),
            Some(c) => match take_down(engine, &c, desired.stop_timeout(name)).await {
                Ok(()) => Outcome::Removed,
                Err(e) => Outcome::Failed(e.to_string()),
            },
        };
        out.push(ServiceReport {
            name: name.clone(),
            outcome,
            note: None,
        });
    }
    Ok(out)
}

/// Restarts the containers of `names`.
pub async fn restart<E: Engine>(
    engine: &E,
    desired: &Desired,
    names: &[String],
) -> Result<Vec<ServiceReport>, EngineError> {
    let mut out = Vec::new();
    for name in names {
        let outcome = match find(engine, name).await? {
            None => Outcome::Failed(format!(
                "it has no container (`ros service up {name}` creates it)"
            )),
            Some(c) => match engine.restart(&c.id, desired.stop_timeout(name)).await {
                Ok(()) => Outcome::Restarted,
                Err(e) => Outcome::Failed(e.to_string()),
            },
        };
        out.push(ServiceReport {
            name: name.clone(),
            outcome,
            note: None,
        });
    }
    Ok(out)
}

/// Which stream a piece of log output came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// `logs` options.
#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    pub follow: bool,
    /// Only the last N lines.
    pub tail: Option<u64>,
    pub timestamps: bool,
}

/// What can go wrong reading logs.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    #[error("service {0:?} has no container")]
    NoContainer(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("writing the logs: {0}")]
    Write(#[from] io::Error),
    #[error("malformed log stream from the daemon (frame type {0})")]
    Frame(u8),
}

/// Streams the logs of service `name` into `sink` (through the API, as `docker logs`).
pub async fn logs(
    engine: &DockerEngine,
    name: &str,
    opts: &LogOptions,
    mut sink: impl FnMut(LogStream, &[u8]) -> io::Result<()>,
) -> Result<(), LogsError> {
    let c = find(engine, name)
        .await?
        .ok_or_else(|| LogsError::NoContainer(name.to_string()))?;
    let tty = engine.state(&c.id).await?.tty;
    let path = format!(
        "/containers/{}/logs{}",
        path_escape(&c.id),
        query([
            ("stdout", Some("1".into())),
            ("stderr", Some("1".into())),
            ("follow", opts.follow.then(|| "1".into())),
            ("timestamps", opts.timestamps.then(|| "1".into())),
            ("tail", opts.tail.map(|t| t.to_string())),
        ])
    );
    let resp = engine
        .client()
        .request(Method::GET, &path, Body::Empty)
        .await
        .map_err(EngineError::from)?;
    let mut body = resp.into_body();
    let mut demux = Demux::default();
    while let Some(data) = next_chunk(&mut body).await.map_err(EngineError::from)? {
        if tty {
            sink(LogStream::Stdout, &data)?;
        } else {
            demux.feed(&data, &mut sink)?;
        }
    }
    Ok(())
}

/// Splits Docker's multiplexed stream (`[stream, 0, 0, 0, len u32 BE]` + payload).
#[derive(Default)]
struct Demux {
    buf: Vec<u8>,
}

impl Demux {
    fn feed(
        &mut self,
        data: &[u8],
        sink: &mut impl FnMut(LogStream, &[u8]) -> io::Result<()>,
    ) -> Result<(), LogsError> {
        self.buf.extend_from_slice(data);
        let mut at = 0;
        while self.buf.len() - at >= 8 {
            let h = &self.buf[at..at + 8];
            let stream = match h[0] {
                0 | 1 => LogStream::Stdout,
                2 => LogStream::Stderr,
                other => return Err(LogsError::Frame(other)),
            };
            let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
            if self.buf.len() - at - 8 < len {
                break;
            }
            sink(stream, &self.buf[at + 8..at + 8 + len])?;
            at += 8 + len;
        }
        self.buf.drain(..at);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demuxes_split_frames() {
        let mut raw = vec![1, 0, 0, 0, 0, 0, 0, 3];
        raw.extend_from_slice(b"out");
        raw.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 3]);
        raw.extend_from_slice(b"err");
        let mut got = Vec::new();
        let mut d = Demux::default();
        let mut sink = |s: LogStream, b: &[u8]| {
            got.push((s, b.to_vec()));
            Ok(())
        };
        d.feed(&raw[..5], &mut sink).unwrap();
        d.feed(&raw[5..13], &mut sink).unwrap();
        d.feed(&raw[13..], &mut sink).unwrap();
        assert!(matches!(
            Demux::default().feed(&[9, 0, 0, 0, 0, 0, 0, 0], &mut sink),
            Err(LogsError::Frame(9))
        ));
        assert_eq!(
            got,
            vec![
                (LogStream::Stdout, b"out".to_vec()),
                (LogStream::Stderr, b"err".to_vec())
            ]
        );
    }
}
