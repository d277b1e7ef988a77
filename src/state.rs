//! State shared by the proxy, the admin API and the background tasks, behind one `Arc`.
//!
//! [`Settings`] (the config and the upstream pools built from it) is swapped atomically as a whole on
//! reload; a request takes one snapshot in `new_ctx` and uses it to the end, so it never sees half of
//! an old config and half of a new one. Keys live in the registry's index, not in settings.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::access_log::AccessLog;
use crate::admin::auth::AdminSecrets;
use crate::config::Config;
use crate::index::KeyIndex;
use crate::limit::IpBuckets;
use crate::metrics::Metrics;
use crate::proxy::upstream::Upstreams;
use crate::registry::Registry;

/// Everything derived from one config file.
pub struct Settings {
    pub config: Config,
    pub upstreams: Upstreams,
}

pub struct State {
    settings: ArcSwap<Settings>,
    pub registry: Registry,
    pub failed_auth: IpBuckets,
    pub in_flight: InFlight,
    pub admin_secrets: AdminSecrets,
    pub metrics: Metrics,
    pub access_log: AccessLog,
    /// Set once the proxy listener accepts connections (for `/readyz`).
    pub proxy_ready: AtomicBool,
    /// Set once draining starts: answers close their connection so clients move elsewhere.
    pub draining: AtomicBool,
    /// Asks the process to drain and stop: a SIGTERM/SIGINT, or a proxy listener that never came up.
    pub stop_request: tokio::sync::Notify,
    /// Set when the proxy listener did not come up in time: the process exits with an error.
    pub proxy_failed: AtomicBool,
}

/// Counts proxy requests in progress, so shutdown can wait for them.
#[derive(Debug, Default)]
pub struct InFlight(AtomicUsize);

/// Held by one request for its whole life; dropping it ends the request.
pub struct InFlightGuard(Arc<State>);

impl Settings {
    pub fn new(config: Config) -> Self {
        let upstreams = Upstreams::new(&config);
        Settings { config, upstreams }
    }
}

impl State {
    pub fn new(
        config: Config,
        registry: Registry,
        admin_secrets: AdminSecrets,
        metrics: Metrics,
        access_log: AccessLog,
    ) -> Self {
        State {
            settings: ArcSwap::from_pointee(Settings::new(config)),
            registry,
            failed_auth: IpBuckets::default(),
            in_flight: InFlight::default(),
            admin_secrets,
            metrics,
            access_log,
            proxy_ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            stop_request: tokio::sync::Notify::new(),
            proxy_failed: AtomicBool::new(false),
        }
    }

    /// The settings in force now.
    pub fn settings(&self) -> Arc<Settings> {
        self.settings.load_full()
    }

    /// Puts new settings in force for every request that starts from now on.
    pub fn replace_settings(&self, settings: Settings) {
        self.settings.store(Arc::new(settings));
    }

    pub fn index(&self) -> &KeyIndex {
        self.registry.index()
    }

    pub fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.in_flight.0.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(self.clone())
    }
}

impl InFlight {
    pub fn count(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.in_flight.0.fetch_sub(1, Ordering::AcqRel);
    }
}
