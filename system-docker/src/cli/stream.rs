//! Container output streams: the 8-byte-header multiplexing of non-TTY attach, exec and logs
//! (`[stream, 0, 0, 0, len u32 BE]` then `len` bytes), copying output to our stdout/stderr,
//! and forwarding stdin over a hijacked connection.

use std::io::{Read, Write};
use std::pin::Pin;

use bytes::Bytes;
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::client;

/// Stream numbers of the multiplexed format.
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const SYSTEMERR: u8 = 3;

/// What can end an output copy early.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Client(#[from] client::Error),
    #[error("error from daemon in stream: {0}")]
    Daemon(String),
    #[error("unrecognized input header: {0}")]
    BadHeader(u8),
}

/// Splits a multiplexed stream into frames as its bytes arrive.
#[derive(Default)]
pub struct Demux {
    buf: Vec<u8>,
}

impl Demux {
    /// Feeds `data`; calls `sink(stream, payload)` for every frame completed by it.
    pub fn feed(
        &mut self,
        data: &[u8],
        mut sink: impl FnMut(u8, &[u8]) -> Result<(), StreamError>,
    ) -> Result<(), StreamError> {
        self.buf.extend_from_slice(data);
        let mut start = 0;
        while self.buf.len() - start >= 8 {
            let header = &self.buf[start..start + 8];
            let kind = header[0];
            if kind > SYSTEMERR {
                return Err(StreamError::BadHeader(kind));
            }
            let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
            if self.buf.len() - start - 8 < len {
                break;
            }
            sink(kind, &self.buf[start + 8..start + 8 + len])?;
            start += 8 + len;
        }
        self.buf.drain(..start);
        Ok(())
    }
}

/// Writes one frame to our stdout or stderr.
fn emit(kind: u8, payload: &[u8]) -> Result<(), StreamError> {
    match kind {
        STDIN | STDOUT => {
            let mut out = std::io::stdout().lock();
            out.write_all(payload)?;
            out.flush()?;
        }
        STDERR => {
            let mut err = std::io::stderr().lock();
            err.write_all(payload)?;
            err.flush()?;
        }
        _ => {
            return Err(StreamError::Daemon(
                String::from_utf8_lossy(payload).trim_end().to_string(),
            ))
        }
    }
    Ok(())
}

/// Copies a hijacked connection's output until EOF: raw to stdout with a TTY, else
/// demultiplexed to stdout and stderr.
pub async fn copy_output(
    mut reader: Pin<Box<dyn AsyncRead + Send>>,
    tty: bool,
) -> Result<(), StreamError> {
    let mut demux = Demux::default();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        if tty {
            emit(STDOUT, &buf[..n])?;
        } else {
            demux.feed(&buf[..n], emit)?;
        }
    }
}

/// Copies a response body of container output (logs) like [`copy_output`].
pub async fn copy_body(mut body: Incoming, tty: bool) -> Result<(), StreamError> {
    let mut demux = Demux::default();
    while let Some(data) = client::next_chunk(&mut body).await? {
        if tty {
            emit(STDOUT, &data)?;
        } else {
            demux.feed(&data, emit)?;
        }
    }
    Ok(())
}

/// Our stdin as chunks, read on a thread of its own: a read blocked on a terminal cannot
/// be cancelled, and such a thread does not keep the process from exiting.
pub fn stdin_chunks() -> tokio::sync::mpsc::Receiver<std::io::Result<Bytes>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let chunk = match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => Ok(Bytes::copy_from_slice(&buf[..n])),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
            let failed = chunk.is_err();
            if tx.blocking_send(chunk).is_err() || failed {
                break;
            }
        }
    });
    rx
}

/// Copies our stdin to the container until stdin ends, then half-closes the connection
/// so the container sees EOF while its output keeps flowing.
pub async fn forward_stdin(mut writer: Pin<Box<dyn AsyncWrite + Send>>) -> std::io::Result<()> {
    let mut stdin = stdin_chunks();
    while let Some(chunk) = stdin.recv().await {
        writer.write_all(&chunk?).await?;
        writer.flush().await?;
    }
    writer.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![kind, 0, 0, 0];
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn demux_handles_split_and_joined_frames() {
        let mut data = frame(1, b"hello\n");
        data.extend(frame(2, b"oops\n"));
        data.extend(frame(1, b""));
        data.extend(frame(1, b"bye"));
        let mut got = Vec::new();
        let mut demux = Demux::default();
        // Feed in awkward pieces: inside a header, inside a payload.
        for piece in [&data[..3], &data[3..10], &data[10..20], &data[20..]] {
            demux
                .feed(piece, |k, p| {
                    got.push((k, p.to_vec()));
                    Ok(())
                })
                .unwrap();
        }
        assert_eq!(
            got,
            vec![
                (1, b"hello\n".to_vec()),
                (2, b"oops\n".to_vec()),
                (1, Vec::new()),
                (1, b"bye".to_vec())
            ]
        );
    }

    #[test]
    fn demux_rejects_garbage() {
        let mut demux = Demux::default();
        let r = demux.feed(b"hello world!", |_, _| Ok(()));
        assert!(matches!(r, Err(StreamError::BadHeader(b'h'))));
    }
}
