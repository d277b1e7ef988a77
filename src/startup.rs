//! Wiring: from a validated [`Config`] to a running gateway, and back down again.
//!
//! ```text
//! open store → load keys and tenants into the index → admin secrets (env / bootstrap)
//! bind admin + metrics listeners (clear errors) → control runtime: SIGTERM/SIGINT handlers first,
//!   then admin API, /metrics, usage flusher, housekeeping, readiness probe, SIGHUP reload
//! pingora Server: proxy service on proxy.listen → run until a stop signal
//! drain in-flight requests → stop control tasks → final usage flush → store flush
//! ```
//! Pingora sleeps its whole grace period on SIGTERM and then cancels what is still running, so
//! keygate owns the drain ([`Drain`]): it waits for in-flight requests to finish (bounded by the
//! upstream timeout), then lets pingora stop with a zero grace period.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::listening::Service;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;

use crate::access_log::AccessLog;
use crate::admin::auth::{generate_token, AdminSecrets};
use crate::config::Config;
use crate::key::Digest;
use crate::metrics::Metrics;
use crate::proxy::client_deadline::ClientDeadlines;
use crate::proxy::Proxy;
use crate::registry::Registry;
use crate::state::State;
use crate::store::{Store, META_BOOTSTRAP_TOKEN};
use crate::{admin, metrics, reload, usage};

/// The environment variable holding an admin token with every scope (actor `env`).
pub const ADMIN_TOKEN_ENV: &str = "KEYGATE_ADMIN_TOKEN";
/// How long the proxy listeners may take to accept connections before startup counts as failed.
const PROXY_READY_WITHIN: Duration = Duration::from_secs(10);
/// How often idle failed-auth buckets are dropped.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(30);

/// Runs the gateway until SIGTERM or SIGINT, then shuts down cleanly. Returns once the store is
/// flushed and closed.
pub fn serve(config: Config, config_path: &Path) -> anyhow::Result<()> {
    let store = Store::open(&config.storage.path).with_context(|| {
        format!("cannot open the store at {} (is another keygate using it?)", config.storage.path.display())
    })?;
    let registry = Registry::load(store.clone()).context("cannot load keys from the store")?;
    let admin_secrets = admin_secrets(&store, &config)?;
    let (access_log, access_log_guard) = AccessLog::open(&config.log.access)
        .with_context(|| format!("log.access: cannot open {:?}", config.log.access))?;
    let state = Arc::new(State::new(config.clone(), registry, admin_secrets, Metrics::new()?, access_log));
    tracing::info!(keys = state.index().len(), "key index loaded");

    let admin_listener = bind("admin.listen", config.admin.listen)?;
    let metrics_listener = bind("metrics.listen", config.metrics_listen)?;
    for addr in &config.proxy.listen {
        // Pingora binds inside its own task and only panics that task on failure: check first.
        drop(bind("proxy.listen", *addr)?);
    }

    let control = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("keygate-control")
        .enable_all()
        .build()?;
    // Before any listener answers: a signal sent as soon as keygate looks up must drain, not kill.
    let stop_signals = StopSignals::install(&control).context("cannot install the SIGTERM/SIGINT handlers")?;
    let (stop, stopped) = watch::channel(false);
    let tasks = vec![
        control.spawn(stop_signals.forward(state.clone(), stopped.clone())),
        control.spawn(serve_http(admin_listener, admin::router(state.clone()), stopped.clone())),
        control.spawn(serve_http(metrics_listener, metrics::router(state.clone()), stopped.clone())),
        control.spawn({
            let (state, stopped) = (state.clone(), stopped.clone());
            async move { usage::run(&state, config.storage.usage_flush_interval, stopped).await }
        }),
        control.spawn(housekeeping(state.clone(), stopped.clone())),
        control.spawn(probe_readiness(state.clone(), config.proxy.listen.clone(), stopped.clone())),
        control.spawn(reload_on_sighup(state.clone(), config_path.to_owned(), stopped.clone())),
    ];

    let mut server = Server::new_with_opt_and_conf(None, server_conf(&config));
    server.bootstrap();
    let http_proxy = pingora::proxy::http_proxy(&server.configuration, Proxy::new(state.clone()));
    let mut proxy = Service::new("keygate-proxy".into(), ClientDeadlines::new(http_proxy, state.clone()));
    for addr in &config.proxy.listen {
        proxy.add_tcp(&addr.to_string());
    }
    server.add_service(proxy);
    tracing::info!(proxy = ?config.proxy.listen, admin = %config.admin.listen, metrics = %config.metrics_listen, "keygate serving");
    let drain = Drain { state: state.clone(), limit: config.proxy.upstream_timeout + Duration::from_secs(1) };
    server.run(RunArgs { shutdown_signal: Box::new(drain) });

    // Pingora's runtimes are down: nothing touches usage any more. Persist it and close.
    let _ = stop.send(true);
    control.block_on(async {
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        if let Err(e) = usage::flush(&state).await {
            tracing::error!(error = %e, "final usage flush failed");
        }
    });
    state.registry.store().flush_blocking().context("final store flush")?;
    control.shutdown_timeout(Duration::from_secs(1));
    drop(access_log_guard);
    if state.proxy_failed.load(Ordering::Acquire) {
        anyhow::bail!("proxy.listen: the proxy listener never accepted connections on {:?}", config.proxy.listen);
    }
    tracing::info!("keygate stopped");
    Ok(())
}

fn server_conf(config: &Config) -> ServerConf {
    ServerConf {
        threads: config.proxy.threads,
        // Drain owns the wait for in-flight requests (see the module doc).
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..Default::default()
    }
}

/// Token digests from the environment and, when there is no other token, the bootstrap token:
/// generated and printed once by the first start, its digest kept in the store.
fn admin_secrets(store: &Store, config: &Config) -> anyhow::Result<AdminSecrets> {
    let env_token =
        std::env::var(ADMIN_TOKEN_ENV).ok().filter(|t| !t.trim().is_empty()).map(|t| Digest::of(t.trim().as_bytes()));
    let mut secrets = AdminSecrets { env_token, bootstrap_token: None };
    let stored = store.meta(META_BOOTSTRAP_TOKEN)?.and_then(|hex| Digest::from_hex(std::str::from_utf8(&hex).ok()?));
    secrets.bootstrap_token = match stored {
        Some(digest) => Some(digest),
        None if secrets.needs_bootstrap(config) => {
            let token = generate_token();
            let digest = Digest::of(token.as_bytes());
            store.set_meta(META_BOOTSTRAP_TOKEN, digest.to_hex().as_bytes())?;
            store.flush_blocking()?;
            // Printed exactly once, on the console of the first start; only its digest is kept.
            eprintln!("admin token: {token}");
            Some(digest)
        }
        None => None,
    };
    Ok(secrets)
}

fn bind(what: &str, addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("{what}: cannot listen on {addr}"))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

async fn serve_http(listener: std::net::TcpListener, app: axum::Router, mut stopped: watch::Receiver<bool>) {
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => return tracing::error!(error = %e, "cannot serve a control listener"),
    };
    let shutdown = async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
        tracing::error!(error = %e, "control listener failed");
    }
}

async fn housekeeping(state: Arc<State>, mut stopped: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(HOUSEKEEPING_EVERY);
    loop {
        tokio::select! {
            _ = ticker.tick() => { state.failed_auth.evict_full(crate::limit::now()); }
            _ = stopped.changed() => return,
        }
    }
}

/// Re-reads the config on every SIGHUP (see `reload`).
async fn reload_on_sighup(state: Arc<State>, path: PathBuf, mut stopped: watch::Receiver<bool>) {
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => return tracing::error!(error = %e, "cannot listen for SIGHUP; reload is unavailable"),
    };
    loop {
        tokio::select! {
            _ = hangups.recv() => match reload::reload(&state, &path) {
                Ok(warnings) => {
                    for w in warnings {
                        tracing::warn!("reload: {w}");
                    }
                    tracing::info!(config = %path.display(), "config reloaded");
                }
                Err(errors) => {
                    for e in &errors {
                        tracing::error!("reload rejected: {e}");
                    }
                    tracing::error!(config = %path.display(), errors = errors.len(), "config reload rejected; the previous config stays in force");
                }
            },
            _ = stopped.changed() => return,
        }
    }
}

/// Marks the gateway ready once every proxy listener accepts connections. Pingora binds inside its
/// own task and, on failure, only panics that task: if the listeners do not come up in time, the
/// process is stopped rather than left running without its proxy.
async fn probe_readiness(state: Arc<State>, listen: Vec<SocketAddr>, stopped: watch::Receiver<bool>) {
    let deadline = Instant::now() + PROXY_READY_WITHIN;
    let targets: Vec<SocketAddr> = listen
        .into_iter()
        .map(|mut a| {
            if a.ip().is_unspecified() {
                a.set_ip(if a.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
            }
            a
        })
        .collect();
    loop {
        let mut all_up = true;
        for target in &targets {
            let connect = tokio::net::TcpStream::connect(target);
            all_up &= matches!(tokio::time::timeout(Duration::from_millis(200), connect).await, Ok(Ok(_)));
        }
        if all_up {
            state.proxy_ready.store(true, Ordering::Release);
            return;
        }
        if *stopped.borrow() || state.draining.load(Ordering::Acquire) {
            return;
        }
        if Instant::now() > deadline {
            tracing::error!(?targets, "the proxy listener did not come up; stopping");
            state.proxy_failed.store(true, Ordering::Release);
            state.stop_request.notify_one();
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// SIGTERM and SIGINT, listened for from before the first listener answers. Pingora would only
/// listen once its main loop runs, and a signal arriving before that (say, from a supervisor that
/// saw `/healthz` answer) took the default action: the process died without draining or its final
/// usage flush.
struct StopSignals {
    term: Signal,
    int: Signal,
}

impl StopSignals {
    fn install(runtime: &tokio::runtime::Runtime) -> std::io::Result<StopSignals> {
        let _in_runtime = runtime.enter();
        Ok(StopSignals { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? })
    }

    /// Turns the first signal into a stop request for [`Drain`] (a `Notify` permit: kept if pingora
    /// is not waiting yet).
    async fn forward(mut self, state: Arc<State>, mut stopped: watch::Receiver<bool>) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM: draining"),
            _ = self.int.recv() => tracing::info!("SIGINT: draining"),
            _ = stopped.changed() => return,
        }
        state.stop_request.notify_one();
    }
}

/// Pingora's shutdown signal: on a stop request (a signal, or a proxy that never came up), stop
/// taking keep-alive requests, wait for the requests in flight (at most `limit`), then tell pingora
/// to stop.
struct Drain {
    state: Arc<State>,
    limit: Duration,
}

#[async_trait]
impl ShutdownSignalWatch for Drain {
    async fn recv(&self) -> ShutdownSignal {
        self.state.stop_request.notified().await;
        self.state.draining.store(true, Ordering::Release);
        let deadline = Instant::now() + self.limit;
        while self.state.in_flight.count() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        ShutdownSignal::GracefulTerminate
    }
}
