//! Connections: accepted up to [`Limits::max_connections`], each served by hyper with a timer,
//! so that a client that never finishes its request head is dropped after
//! [`Limits::header_timeout`], and through [`Stalls`], so that one that stops reading the answer
//! is dropped after [`Limits::idle_timeout`]. `axum::serve` sets neither (no timer, no cap).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Sleep;

use crate::Limits;

/// What a connection over the cap is told before it is closed.
const BUSY: &str = "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
retry-after: 1\r\nconnection: close\r\ncontent-length: ";
const BUSY_BODY: &str = "{\"error\":\"the service has as many connections as it serves at once \
(--max-connections); retry shortly\"}";

/// Accepts and serves connections until `shutdown` resolves, then closes the idle ones and lets
/// every request in flight finish. `refused` is called for each connection over the cap.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    refused: impl Fn() + Send + Sync + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let service = TowerToHyperService::new(app);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // Refusals are answered on tasks of their own, as many at once as connections are served.
    let refusals = Arc::new(Semaphore::new(limits.max_connections));
    let (stop, stopping) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let shutdown = std::pin::pin!(shutdown);
    let mut shutdown = shutdown;
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            // Out of file descriptors, or a connection reset before it was accepted: wait a
            // little rather than spin, and go on.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused();
            if let Ok(permit) = refusals.clone().try_acquire_owned() {
                tasks.spawn(async move {
                    refuse(stream).await;
                    drop(permit);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let mut stopping = stopping.clone();
        tasks.spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .keep_alive(true);
            let io = TokioIo::new(Stalls::new(stream, limits.idle_timeout));
            let connection = http.serve_connection(io, service);
            let mut connection = std::pin::pin!(connection);
            let stop = async move {
                let _ = stopping.wait_for(|stop| *stop).await;
            };
            tokio::select! {
                _ = connection.as_mut() => {}
                () = stop => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Answers 503 to a connection over the cap: the answer, then whatever the client sends read
/// and dropped for a moment (closing a socket with unread data resets it, and the client would
/// see the reset rather than the answer).
async fn refuse(mut stream: TcpStream) {
    let answer = format!("{BUSY}{}\r\n\r\n{BUSY_BODY}", BUSY_BODY.len());
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, io::Error>(())
    })
    .await;
}

/// A stream whose writes fail once the peer has accepted none of them for `limit`: a client
/// that stops reading its answer would otherwise hold the connection (and its task and buffers)
/// for as long as it likes.
pub(crate) struct Stalls<S> {
    inner: S,
    limit: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> Stalls<S> {
    pub(crate) fn new(inner: S, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            stalled: None,
        }
    }

    /// After a write returned `Pending`: an error once the stall has lasted `limit`.
    fn check(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let limit = self.limit;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        ready!(sleep.as_mut().poll(cx));
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the client read none of the answer for {} s",
                limit.as_secs()
            ),
        ))
    }

    fn wrote<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match r {
            Poll::Pending => self.check(cx).map(Err),
            done => {
                self.stalled = None;
                done
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Stalls<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Stalls<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.wrote(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.wrote(cx, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime")
    }

    #[test]
    fn a_write_the_peer_never_drains_fails_after_the_limit() {
        runtime().block_on(async {
            // A pipe with a 16-byte buffer that nobody reads: the second write waits forever.
            let (near, _far) = tokio::io::duplex(16);
            let mut s = Stalls::new(near, Duration::from_millis(300));
            s.write_all(&[0; 16]).await.expect("fits the buffer");
            let started = std::time::Instant::now();
            let e = s.write_all(&[0; 16]).await.expect_err("stalls");
            assert_eq!(e.kind(), io::ErrorKind::TimedOut);
            assert!(started.elapsed() >= Duration::from_millis(300));
        });
    }

    #[test]
    fn a_peer_that_reads_slowly_but_steadily_is_not_cut_off() {
        runtime().block_on(async {
            let (near, mut far) = tokio::io::duplex(16);
            let reader = tokio::spawn(async move {
                let mut got = 0;
                let mut buf = [0u8; 8];
                while got < 64 {
                    // Each wait is under the limit; all of them together are well over it.
                    tokio::time::sleep(Duration::from_millis(150)).await;
                    got += far.read(&mut buf).await.expect("reads");
                }
                got
            });
            let mut s = Stalls::new(near, Duration::from_millis(400));
            s.write_all(&[1; 64])
                .await
                .expect("never stalls for the limit");
            assert_eq!(reader.await.expect("joins"), 64);
        });
    }
}
