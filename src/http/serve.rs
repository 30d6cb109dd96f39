//! Serving the routes to TCP clients under limits, so that slow, idle or
//! numerous clients can hold neither the server's descriptors nor its
//! shutdown for long: a cap on open connections, a header timeout (which is
//! also the keep-alive idle timeout), a whole-request timeout, and a bounded
//! drain on shutdown.

use axum::Router;
use axum::http::StatusCode;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;

/// Limits on HTTP clients; `pullstack serve`'s flags set them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections open at once; more are answered 503 and closed at once.
    /// Default 512 (half a common 1,024 descriptor limit).
    pub max_connections: usize,
    /// How long a client may take to send a request's headers, counted from
    /// when its connection opened or its previous response was sent; so also
    /// how long a kept-alive connection may sit idle. Default 10 s.
    pub header_timeout: Duration,
    /// How long a request may take from its headers to its answer, body
    /// included; answered 408 after that. Default 10 s, as long as GitHub
    /// waits for an answer.
    pub request_timeout: Duration,
    /// Bytes of request bodies held at once across all connections; a
    /// delivery that finds no room within a second is answered 503 with
    /// `Retry-After`. Default 64 MiB.
    pub body_memory: usize,
    /// How long open connections may finish after a shutdown signal before
    /// they are dropped. Default 10 s.
    pub shutdown_drain: Duration,
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            max_connections: 512,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            body_memory: 64 * 1024 * 1024,
            shutdown_drain: Duration::from_secs(10),
        }
    }
}

/// The most hyper buffers per connection while reading: the largest header
/// block a client may send, and the most body read ahead of the budget.
/// GitHub's headers take about 1 KiB.
const READ_BUFFER: usize = 64 * 1024;

/// How long to pause accepting after an error that is not one connection's
/// (such as running out of descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What a connection over the cap is told before it is closed.
const FULL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\n\
content-length: 0\r\nconnection: close\r\n\r\n";

/// Serves `app` on `listener` until `shutdown` is cancelled, then lets open
/// connections finish for [`HttpLimits::shutdown_drain`] at most.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = app.layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        limits.request_timeout,
    ));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(READ_BUFFER);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut full = false;
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            // Reaps finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(&err).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refuse(stream);
            if !full {
                tracing::warn!(
                    max = limits.max_connections,
                    "connection limit reached; refusing new connections"
                );
                full = true;
            }
            continue;
        };
        full = false;
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        let open = Open::new(slot);
        connections.spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%peer, error = %err, "connection ended");
            }
            drop(open);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            drain = ?limits.shutdown_drain,
            "connections still open after the shutdown drain; dropping them"
        );
    }
    connections.shutdown().await;
    Ok(())
}

/// A connection's slot under the cap, counted in `/metrics` until it is
/// given back (when the connection ends or is dropped).
struct Open {
    _slot: OwnedSemaphorePermit,
}

impl Open {
    fn new(slot: OwnedSemaphorePermit) -> Open {
        metrics::gauge!("pullstack_http_connections").increment(1);
        Open { _slot: slot }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        metrics::gauge!("pullstack_http_connections").decrement(1);
    }
}

/// Answers a connection over the cap and closes it, without waiting on it:
/// accepting goes on at once.
fn refuse(stream: TcpStream) {
    metrics::counter!("pullstack_http_connections_refused_total").increment(1);
    // Best effort: a fresh socket's send buffer takes this without blocking.
    let _ = stream.try_write(FULL);
}

async fn accept_failed(err: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    // One client's trouble; the next accept is unaffected.
    if matches!(
        err.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %err, "accepting a connection failed");
    tokio::time::sleep(ACCEPT_BACKOFF).await;
}
