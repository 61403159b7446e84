//! Streaming responses: plain chunked bodies, and the hijacked connection (`Upgrade: tcp`,
//! HTTP 101) that `docker run`, `attach` and `exec` use for output and stdin.

use std::future::Future;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream_compat::ReceiverStream;

/// The media type of attach/exec/logs output.
pub fn stream_type(tty: bool) -> &'static str {
    if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    }
}

/// A chunked response fed by `produce`.
pub fn body_stream<F, Fut>(content_type: &str, produce: F) -> Response
where
    F: FnOnce(mpsc::Sender<Bytes>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(produce(tx));
    let body = Body::from_stream(ReceiverStream::new(rx).map(Ok::<_, std::io::Error>));
    let mut resp = Response::new(body);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

pub type Input = Box<dyn AsyncRead + Send + Unpin>;

/// Answers 101 and hands the raw connection to `produce` (its input side, and a channel
/// for output) when the client asked to upgrade; else streams a chunked body (no input).
pub fn hijack<F, Fut>(mut req: Request, content_type: &'static str, produce: F) -> Response
where
    F: FnOnce(Option<Input>, mpsc::Sender<Bytes>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let wants_upgrade = req.headers().get(header::UPGRADE).is_some();
    if !wants_upgrade {
        return body_stream(content_type, |tx| produce(None, tx));
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                log::warn!("connection upgrade failed: {e}");
                return;
            }
        };
        let (read, mut write) = tokio::io::split(TokioIo::new(upgraded));
        let (tx, mut rx) = mpsc::channel::<Bytes>(64);
        let producer = tokio::spawn(produce(Some(Box::new(read)), tx));
        while let Some(b) = rx.recv().await {
            if write.write_all(&b).await.is_err() {
                break;
            }
            let _ = write.flush().await;
        }
        let _ = write.shutdown().await;
        let _ = producer.await;
    });
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A minimal `Stream` over an mpsc receiver (what tokio-stream's wrapper does), to avoid
/// a dependency for twenty lines.
mod tokio_stream_compat {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::sync::mpsc::Receiver;

    pub struct ReceiverStream<T>(Receiver<T>);

    impl<T> ReceiverStream<T> {
        pub fn new(rx: Receiver<T>) -> Self {
            ReceiverStream(rx)
        }
    }

    impl<T> futures_util::Stream for ReceiverStream<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}
