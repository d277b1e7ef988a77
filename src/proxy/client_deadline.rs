//! Slow clients: a deadline on receiving each request header (`proxy.client_header_timeout`).
//!
//! pingora bounds each *read* of a request header (by its 60 s keep-alive timeout), not the header as
//! a whole, so a client that trickles one byte every few seconds holds a connection and its task for as
//! long as it likes (slowloris). keygate wraps pingora's HTTP app in [`ClientDeadlines`]: every
//! connection runs beside a watch on one atomic deadline, and the connection is closed when it passes.
//!
//! ```text
//! accept ──► deadline = now + client_header_timeout
//! header complete (Proxy::new_ctx) ──► no deadline while the request is served
//! response done (Proxy::logging) ──► deadline = now + keep-alive idle + client_header_timeout
//! ```
//!
//! A connection closed this way had no complete request, so nothing is answered (as pingora does on
//! its own read timeouts); `keygate_client_header_timeouts_total` counts them. The proxy marks the
//! phases through a task-local, so the hooks cost one atomic store and do nothing outside a wrapped
//! connection.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use tokio::time::Instant;

use crate::state::State;

/// How long pingora keeps an idle kept-alive connection open between requests (its fixed default).
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);

/// Deadline value meaning "a request is being served: no deadline".
const SERVING: u64 = u64::MAX;

tokio::task_local! {
    static DEADLINE: Arc<Deadline>;
}

/// Wraps pingora's HTTP app: runs each connection under its header deadline.
pub struct ClientDeadlines<A> {
    inner: Arc<A>,
    state: Arc<State>,
}

impl<A> ClientDeadlines<A> {
    pub fn new(inner: A, state: Arc<State>) -> Self {
        ClientDeadlines { inner: Arc::new(inner), state }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for ClientDeadlines<A> {
    async fn process_new(self: &Arc<Self>, stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        let timeout = self.state.settings().config.proxy.client_header_timeout;
        let deadline = Arc::new(Deadline::starting_now(timeout));
        let connection = DEADLINE.scope(deadline.clone(), self.inner.process_new(stream, shutdown));
        run_until_expired(connection, &deadline, || {
            self.state.metrics.client_header_timeouts.inc();
            tracing::debug!(?timeout, "closed a connection that did not send its request header in time");
        })
        .await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}

/// Runs `connection` until it ends, or until `deadline` passes: then calls `on_expiry` and only
/// afterwards drops the connection, closing its socket. Whoever sees the close (a client, a test)
/// therefore also sees what `on_expiry` counted.
async fn run_until_expired<T>(
    connection: impl Future<Output = Option<T>>,
    deadline: &Deadline,
    on_expiry: impl FnOnce(),
) -> Option<T> {
    tokio::pin!(connection); // lives to the end of this function, past `on_expiry`
    tokio::select! {
        reusable = &mut connection => reusable,
        () = deadline.expired() => {
            on_expiry();
            None
        }
    }
}

/// Called once a request header is complete: no deadline while it is served.
pub fn header_received() {
    let _ = DEADLINE.try_with(|d| d.at.store(SERVING, Ordering::Relaxed));
}

/// Called once a response is done: the next header must be complete within the keep-alive idle time
/// plus `timeout`.
pub fn response_done(timeout: Duration) {
    let _ = DEADLINE.try_with(|d| d.arm(KEEPALIVE_IDLE + timeout));
}

/// One connection's deadline, in nanoseconds since `base` (or [`SERVING`]).
struct Deadline {
    base: Instant,
    at: AtomicU64,
    /// The header timeout: how long the watch sleeps before looking again while a request is served.
    timeout: Duration,
}

impl Deadline {
    fn starting_now(timeout: Duration) -> Self {
        let deadline = Deadline { base: Instant::now(), at: AtomicU64::new(SERVING), timeout };
        deadline.arm(timeout);
        deadline
    }

    fn arm(&self, within: Duration) {
        let at = self.base.elapsed().saturating_add(within);
        self.at.store(u64::try_from(at.as_nanos()).unwrap_or(SERVING - 1), Ordering::Relaxed);
    }

    /// Resolves once the deadline has passed. A deadline only ever moves later than the instant this
    /// watch sleeps until (arming adds at least `timeout` to now; serving clears it), so waking at that
    /// instant and looking again is enough: no notification is needed.
    async fn expired(&self) {
        let mut wake = self.base;
        loop {
            tokio::time::sleep_until(wake).await;
            let now = Instant::now();
            wake = match self.at.load(Ordering::Relaxed) {
                SERVING => now + self.timeout,
                at => {
                    let at = self.base + Duration::from_nanos(at);
                    if now >= at {
                        return;
                    }
                    at
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn expires_after_the_timeout_when_no_header_arrives() {
        let d = Deadline::starting_now(Duration::from_secs(10));
        let started = Instant::now();
        d.expired().await;
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn never_expires_while_a_request_is_served() {
        let d = Arc::new(Deadline::starting_now(Duration::from_secs(10)));
        d.at.store(SERVING, Ordering::Relaxed);
        let watch = tokio::time::timeout(Duration::from_secs(3600), d.expired()).await;
        assert!(watch.is_err(), "the deadline fired while a request was being served");
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_connection_is_counted_before_it_is_closed() {
        /// Stands for the connection's socket: records the count seen when it is closed (dropped).
        struct Socket<'a> {
            count: &'a AtomicU64,
            seen_at_close: &'a AtomicU64,
        }
        impl Drop for Socket<'_> {
            fn drop(&mut self) {
                self.seen_at_close.store(self.count.load(Ordering::SeqCst), Ordering::SeqCst);
            }
        }
        let (count, seen_at_close) = (AtomicU64::new(0), AtomicU64::new(u64::MAX));
        let socket = Socket { count: &count, seen_at_close: &seen_at_close };
        let stalled = async move {
            let _socket = socket;
            std::future::pending::<Option<()>>().await
        };
        let deadline = Deadline::starting_now(Duration::from_secs(1));
        let reusable = run_until_expired(stalled, &deadline, || {
            count.fetch_add(1, Ordering::SeqCst);
        })
        .await;
        assert!(reusable.is_none());
        assert_eq!(seen_at_close.load(Ordering::SeqCst), 1, "the socket was closed before the expiry was counted");
    }

    #[tokio::test(start_paused = true)]
    async fn rearming_after_a_response_allows_the_idle_time() {
        let d = Arc::new(Deadline::starting_now(Duration::from_secs(10)));
        let watch = tokio::spawn({
            let d = d.clone();
            async move {
                d.expired().await;
                Instant::now()
            }
        });
        tokio::time::sleep(Duration::from_secs(4)).await;
        d.at.store(SERVING, Ordering::Relaxed); // header received at 4 s
        tokio::time::sleep(Duration::from_secs(30)).await;
        let done = Instant::now();
        d.arm(KEEPALIVE_IDLE + Duration::from_secs(10)); // response done at 34 s
        let fired = watch.await.unwrap();
        assert_eq!(fired - done, KEEPALIVE_IDLE + Duration::from_secs(10));
    }
}
