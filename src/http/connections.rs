//! The HTTP/1.1 transport: accepting connections within a cap, with a deadline for each request's
//! headers (which also closes idle keep-alive connections) and a graceful shutdown.
//!
//! Written on hyper directly because `axum::serve` offers neither a header-read timeout nor a
//! connection cap: without them, half-open connections (slowloris) and idle ones stay forever.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How long a shutdown waits for requests in flight before it closes what is left.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// How long to wait before accepting again after `accept` failed (out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Time a client has to send a request's headers, counted from when the connection is ready for
    /// them: a new connection, or a kept-alive one after its last response (so idle ones close too).
    pub header_read_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog, holding no file descriptor of ours.
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted: keep
                    // serving, and give the process a moment to close some.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let with_peer = tower::ServiceExt::map_request(router.clone(), move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            request
        });
        let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(with_peer));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that goes away mid-request is its own business.
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still in flight after {SHUTDOWN_GRACE:?} were cut off");
    }
}
