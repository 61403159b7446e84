//! Reading container output back: `logs` (with tail, since/until, timestamps, follow) and
//! the live stream of `attach`, both from the json-file logs the shim writes. Output is
//! framed as Docker frames it: raw for a TTY, else with the 8-byte stream header.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::container::{AttachGuard, Container};
use crate::jsonlog::{self, Entry};

/// One frame of Docker's multiplexed stream (`stream`: 0 stdin, 1 stdout, 2 stderr).
pub fn frame(stream: u8, data: &[u8], tty: bool) -> Bytes {
    if tty {
        return Bytes::copy_from_slice(data);
    }
    let mut out = Vec::with_capacity(8 + data.len());
    out.extend_from_slice(&[stream, 0, 0, 0]);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
    Bytes::from(out)
}

#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub stdout: bool,
    pub stderr: bool,
    pub follow: bool,
    pub timestamps: bool,
    pub tail: Option<usize>,
    /// Unix nanoseconds.
    pub since: Option<i64>,
    pub until: Option<i64>,
}

fn entry_nanos(e: &Entry) -> i64 {
    chrono::DateTime::parse_from_rfc3339(&e.time)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .unwrap_or(0)
}

fn render(e: &Entry, opts: &LogOptions, tty: bool) -> Option<Bytes> {
    let stream = match e.stream.as_str() {
        "stdout" if opts.stdout => 1,
        "stderr" if opts.stderr => 2,
        _ => return None,
    };
    let n = entry_nanos(e);
    if opts.since.is_some_and(|s| n < s) || opts.until.is_some_and(|u| n > u) {
        return None;
    }
    if opts.timestamps {
        let mut line = e.time.clone().into_bytes();
        line.push(b' ');
        line.extend_from_slice(e.log.as_bytes());
        Some(frame(stream, &line, tty))
    } else {
        Some(frame(stream, e.log.as_bytes(), tty))
    }
}

/// Reads a growing, rotating log file from a position, yielding complete lines.
struct Follower {
    path: PathBuf,
    file: Option<File>,
    ino: u64,
    partial: Vec<u8>,
}

impl Follower {
    fn at_end(path: &Path) -> Follower {
        let mut f = Follower::at_start(path);
        if let Some(file) = f.file.as_mut() {
            let _ = file.seek(SeekFrom::End(0));
        }
        f
    }

    fn at_start(path: &Path) -> Follower {
        let file = File::open(path).ok();
        let ino = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| m.ino())
            .unwrap_or(0);
        Follower {
            path: path.to_path_buf(),
            file,
            ino,
            partial: Vec::new(),
        }
    }

    /// New entries since the last call, following a rotation to the new file.
    fn poll(&mut self) -> Vec<Entry> {
        let mut out = Vec::new();
        loop {
            if let Some(f) = self.file.as_mut() {
                let mut buf = Vec::new();
                let _ = f.read_to_end(&mut buf);
                self.partial.extend_from_slice(&buf);
                if let Some(last_nl) = self.partial.iter().rposition(|b| *b == b'\n') {
                    let complete: Vec<u8> = self.partial.drain(..=last_nl).collect();
                    out.extend(jsonlog::parse(&complete));
                }
            }
            let current = std::fs::metadata(&self.path).map(|m| m.ino()).ok();
            match current {
                Some(ino) if ino != self.ino || self.file.is_none() => {
                    self.file = File::open(&self.path).ok();
                    self.ino = ino;
                    self.partial.clear();
                }
                _ => return out,
            }
        }
    }
}

/// `GET /containers/{id}/logs`.
pub async fn stream_logs(c: Arc<Container>, opts: LogOptions, tty: bool, tx: mpsc::Sender<Bytes>) {
    let path = c.log_path();
    let opts2 = opts.clone();
    let path2 = path.clone();
    // Past output: every rotated file, oldest first, then the live one up to its end.
    let (past, follower) = tokio::task::spawn_blocking(move || {
        let files = jsonlog::files(&path2);
        let mut entries = Vec::new();
        let live = files.last().cloned();
        for f in &files[..files.len().saturating_sub(1)] {
            entries.extend(jsonlog::parse(&std::fs::read(f).unwrap_or_default()));
        }
        let mut follower = Follower::at_start(&live.unwrap_or(path2));
        entries.extend(follower.poll());
        let mut rendered: Vec<Bytes> = entries
            .iter()
            .filter_map(|e| render(e, &opts2, tty))
            .collect();
        if let Some(n) = opts2.tail {
            let skip = rendered.len().saturating_sub(n);
            rendered.drain(..skip);
        }
        (rendered, follower)
    })
    .await
    .unwrap_or_else(|_| (Vec::new(), Follower::at_end(&path)));
    for b in past {
        if tx.send(b).await.is_err() {
            return;
        }
    }
    if !opts.follow {
        return;
    }
    let mut rx = c.lifecycle.subscribe();
    let running = || {
        let r = c.lock();
        r.state.running || r.state.restarting
    };
    follow(follower, &opts, tty, &tx, &mut rx, |_| !running()).await;
}

/// `POST /containers/{id}/attach`: output from the moment of the request until the
/// container's next exit. Made when the request arrives — before the client hears back
/// and starts the container — so no output can fall before it.
pub struct Attach {
    c: Arc<Container>,
    follower: Follower,
    rx: tokio::sync::watch::Receiver<super::container::Lifecycle>,
    start: super::container::Lifecycle,
    _reading: AttachGuard,
}

impl Attach {
    pub fn new(c: Arc<Container>) -> Attach {
        let reading = AttachGuard::new(c.clone());
        let follower = Follower::at_end(&c.log_path());
        let rx = c.lifecycle.subscribe();
        let start = *rx.borrow();
        Attach {
            c,
            follower,
            rx,
            start,
            _reading: reading,
        }
    }

    pub async fn run(mut self, tty: bool, stdout: bool, stderr: bool, tx: mpsc::Sender<Bytes>) {
        let opts = LogOptions {
            stdout,
            stderr,
            ..Default::default()
        };
        let start = self.start;
        let _ = &self.c;
        follow(self.follower, &opts, tty, &tx, &mut self.rx, |l| {
            l.exits > start.exits || l.removed
        })
        .await;
    }
}

async fn follow(
    mut f: Follower,
    opts: &LogOptions,
    tty: bool,
    tx: &mpsc::Sender<Bytes>,
    rx: &mut tokio::sync::watch::Receiver<super::container::Lifecycle>,
    done: impl Fn(&super::container::Lifecycle) -> bool,
) {
    loop {
        // Decide before reading: output written before the exit is then read in full.
        let finished = done(&rx.borrow_and_update());
        for e in f.poll() {
            if let Some(b) = render(&e, opts, tty) {
                if tx.send(b).await.is_err() {
                    return;
                }
            }
        }
        if finished {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(25)) => {}
            r = rx.changed() => if r.is_err() { return },
            _ = tx.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_docker_headers() {
        assert_eq!(
            &frame(2, b"hi", false)[..],
            &[2, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']
        );
        assert_eq!(&frame(1, b"hi", true)[..], b"hi");
    }

    #[test]
    fn follower_reads_across_rotation() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("c-json.log");
        let mut w = jsonlog::Writer::open(&p, Some(120), 2).unwrap();
        let mut f = Follower::at_start(&p);
        w.write("stdout", b"one\n").unwrap();
        assert_eq!(f.poll().len(), 1);
        for i in 0..5 {
            w.write("stdout", format!("line {i}\n").as_bytes()).unwrap();
        }
        let got: Vec<String> = f.poll().into_iter().map(|e| e.log).collect();
        assert!(got.last().is_some_and(|l| l == "line 4\n"), "{got:?}");
    }
}
