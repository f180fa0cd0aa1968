//! The bridge's accept loop: HTTP/1 over hyper, with a header-read timeout
//! and a cap on open connections, so half-sent requests cannot hold the
//! server's sockets (`bridge.header_timeout`, `bridge.max_connections`).
//!
//! A connection over the cap is closed at once and counted in `/metrics`;
//! one that has not sent its whole header within the timeout is closed by
//! hyper; one that takes none of its response for `bridge.write_timeout`
//! (a stalled event stream) is closed here. On shutdown, event streams
//! end and in-flight requests (and their fsyncs) finish first.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;

use super::Bridge;
use crate::app::{App, Error};

/// How long a shutdown waits for in-flight requests.
const DRAIN: Duration = Duration::from_secs(30);

/// How long a shutdown waits for the webhooks to write their positions (one
/// in the middle of a send waits for its answer; past this, its last batch
/// is sent again at the next start).
const WEBHOOK_STOP: Duration = Duration::from_secs(5);

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    bridge: Arc<Bridge>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = &bridge.policy().policy.bridge;
    let header_timeout = limits.header_timeout.get();
    let write_timeout = limits.write_timeout.get();
    let slots = Arc::new(Semaphore::new(
        usize::try_from(limits.max_connections).unwrap_or(usize::MAX),
    ));
    let app = super::router(Arc::clone(&bridge));
    let webhooks = super::webhook::start(&bridge);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, a reset before accept: go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(%peer, "connection refused: bridge.max_connections reached");
            bridge.metrics.connection_refused();
            drop(stream);
            continue;
        };
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(header_timeout);
        let stream = Stalling::new(stream, write_timeout);
        let conn =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
            drop(slot);
        });
    }
    tracing::info!("draining in-flight requests");
    bridge.closing.send_replace(true);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open after the drain");
    }
    // Webhooks write where they stand (a delivery in the middle of its
    // retries is not done) before the process goes.
    for task in webhooks {
        if tokio::time::timeout(WEBHOOK_STOP, task).await.is_err() {
            tracing::warn!(
                "a webhook did not stop in time: its last batch is sent again at the next start"
            );
        }
    }
    Ok(())
}

/// The bridge's door: serves `app` on `listen` (else the policy's
/// `bridge.listen`) until SIGTERM or SIGINT, telling systemd when it is
/// ready and, when asked, that it is alive.
pub fn run(app: App, listen: Option<&str>) -> Result<(), Error> {
    use std::io::Write;
    let addr = listen
        .unwrap_or(&app.policy.policy.bridge.listen)
        .to_owned();
    let bridge = Bridge::new(app).map_err(Error::Failed)?;
    let io = |e: std::io::Error| Error::Failed(format!("cannot serve: {e}"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Failed(format!("cannot start the runtime: {e}")))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| Error::Failed(format!("cannot listen on {addr}: {e}")))?;
        let local = listener.local_addr().map_err(io)?;
        // The signal handlers exist before anyone is told we are ready, so
        // a SIGTERM right after `listening on` still shuts down gracefully.
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(io)?;
        let mut int = signal(SignalKind::interrupt()).map_err(io)?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "listening on {local}").map_err(io)?;
            out.flush().map_err(io)?;
        }
        super::notify::notify("READY=1");
        if let Some(every) = super::notify::watchdog_interval() {
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every / 2);
                loop {
                    tick.tick().await;
                    super::notify::notify("WATCHDOG=1");
                }
            });
        }
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::info!("shutting down: draining in-flight requests");
            super::notify::notify("STOPPING=1");
        };
        serve(listener, Arc::new(bridge), shutdown)
            .await
            .map_err(io)
    })
}

/// A connection that fails its writes once one has waited `limit` without
/// the peer taking a byte: hyper then closes it. Reads are untouched (the
/// header timeout covers them, and an idle keep-alive connection writes
/// nothing).
struct Stalling {
    io: tokio::net::TcpStream,
    limit: Duration,
    /// Started when a write first waits; dropped when one goes through.
    waiting: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl Stalling {
    fn new(io: tokio::net::TcpStream, limit: Duration) -> Self {
        Stalling {
            io,
            limit,
            waiting: None,
        }
    }

    /// What a write that returned `poll` means: progress resets the clock,
    /// a wait past `limit` is an error.
    fn watch<T>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        poll: std::task::Poll<std::io::Result<T>>,
    ) -> std::task::Poll<std::io::Result<T>> {
        use std::future::Future as _;
        use std::task::Poll;
        if poll.is_ready() {
            self.waiting = None;
            return poll;
        }
        let limit = self.limit;
        let timer = self
            .waiting
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if timer.as_mut().poll(cx).is_ready() {
            tracing::debug!("closing a connection whose peer took nothing for {limit:?}");
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the peer stopped reading",
            )));
        }
        Poll::Pending
    }
}

impl tokio::io::AsyncRead for Stalling {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Stalling {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let poll = std::pin::Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let poll = std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let poll = std::pin::Pin::new(&mut self.io).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
