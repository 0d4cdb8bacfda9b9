//! Connections: a cap on how many are open, and HTTP/1 served with timeouts.
//!
//! Both listeners (gRPC and HTTP) take their connections from one [`ConnectionCap`]; past it
//! a new connection is closed at once and counted, so thousands of idle or slow clients
//! cannot pin file descriptors and buffers. The HTTP listener is served by hyper directly
//! (not `axum::serve`, which has no timeouts): a client must finish its request headers within
//! `gateway.header_read_timeout_ms`, which also closes keep-alive connections that sit idle
//! that long. Bodies have their own deadline (see `http::read_body`); gRPC calls have
//! `gateway.request_timeout_ms` and HTTP/2's stream cap.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use futures_util::Stream;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::metrics::GatewayMetrics;

/// The gateway-wide cap on open connections.
#[derive(Clone)]
pub struct ConnectionCap {
    open: Arc<Semaphore>,
    metrics: Arc<GatewayMetrics>,
}

impl ConnectionCap {
    /// At most `max` connections at once.
    pub fn new(max: usize, metrics: Arc<GatewayMetrics>) -> Self {
        Self {
            open: Arc::new(Semaphore::new(max.max(1))),
            metrics,
        }
    }

    /// A slot for a new connection, or `None` (counted) when all are taken.
    fn admit(&self) -> Option<OwnedSemaphorePermit> {
        match self.open.clone().try_acquire_owned() {
            Ok(permit) => {
                self.metrics.connections_open.inc();
                Some(permit)
            }
            Err(_) => {
                self.metrics.connections_refused.inc();
                None
            }
        }
    }

    /// Accepts connections from `listener` forever, yielding those within the cap (with
    /// TCP_NODELAY: replies must not wait on delayed ACKs) for tonic.
    pub fn incoming(
        self,
        listener: TcpListener,
    ) -> impl Stream<Item = io::Result<CappedStream>> + Send + 'static {
        futures_util::stream::unfold((self, listener), |(cap, listener)| async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        if let Some(permit) = cap.admit() {
                            let _ = stream.set_nodelay(true);
                            let capped = CappedStream {
                                stream,
                                _slot: Slot {
                                    _permit: permit,
                                    metrics: cap.metrics.clone(),
                                },
                            };
                            return Some((Ok(capped), (cap, listener)));
                        }
                    }
                    // Running out of descriptors must not end the server: wait and go on.
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        })
    }
}

/// An open connection's place under the cap; freed (and counted) when it closes.
struct Slot {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<GatewayMetrics>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.metrics.connections_open.dec();
    }
}

/// A TCP stream holding its slot under the cap.
pub struct CappedStream {
    stream: TcpStream,
    _slot: Slot,
}

impl Connected for CappedStream {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for CappedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CappedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Serves `router` over HTTP/1 on `listener` until `shutdown`, then lets open requests end.
pub async fn serve_http(
    listener: TcpListener,
    router: Router,
    cap: ConnectionCap,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let stop = CancellationToken::new();
    let connections = tokio_util::task::TaskTracker::new();
    let incoming = cap.incoming(listener);
    futures_util::pin_mut!(incoming);
    futures_util::pin_mut!(shutdown);
    loop {
        let next = tokio::select! {
            () = &mut shutdown => break,
            next = futures_util::StreamExt::next(&mut incoming) => next,
        };
        let Some(Ok(stream)) = next else { continue };
        let service = TowerToHyperService::new(router.clone());
        let stop = stop.clone();
        connections.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .keep_alive(true);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            futures_util::pin_mut!(connection);
            tokio::select! {
                result = connection.as_mut() => log_connection_end(result),
                () = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    log_connection_end(connection.await);
                }
            }
        });
    }
    stop.cancel();
    connections.close();
    // Responses in flight finish; a reader that stalls one (a live tail nobody reads) does
    // not hold the shutdown past the drain time.
    if tokio::time::timeout(HTTP_DRAIN, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "http connections still open after {} s of drain; closing",
            HTTP_DRAIN.as_secs()
        );
    }
    Ok(())
}

/// How long a stopping gateway waits for HTTP responses in flight.
const HTTP_DRAIN: Duration = Duration::from_secs(10);

fn log_connection_end(result: Result<(), hyper::Error>) {
    if let Err(error) = result
        && !error.is_incomplete_message()
    {
        tracing::debug!(%error, "http connection ended with an error");
    }
}
