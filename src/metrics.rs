//! Prometheus metrics (SPEC §6): declared once here, in keygate's own registry (not the process
//! global one, so several gateways in one process never collide), recorded once per request from
//! the proxy's `logging` phase.
//!
//! Labels hold only bounded values: environment names (plus `none` before the environment is known),
//! outcome codes, admin route templates, HTTP status codes. Never a key id, name, tenant, path or IP.
//! The children of the per-request metrics are resolved once, at startup: recording a request is a
//! few atomic adds, no label lookup.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::index::KeyIndex;
use crate::proxy::reject::Rejection;
use crate::proxy::Outcome;
use crate::record::{unix_now, Environment, Status};

/// Sub-millisecond resolution at the bottom: a key check takes microseconds.
const AUTH_BUCKETS: &[f64] =
    &[0.000_001, 0.000_002_5, 0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.005];
const REQUEST_BUCKETS: &[f64] =
    &[0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
const FLUSH_BUCKETS: &[f64] = &[0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// Environment label values: the three environments, then `none`.
const ENVIRONMENT_LABELS: [&str; 4] = ["production", "staging", "development", "none"];
/// Outcome label values: `proxied`, then every rejection code in the order of `Rejection::ALL`.
fn outcome_labels() -> impl Iterator<Item = &'static str> {
    std::iter::once("proxied").chain(Rejection::ALL.iter().map(|r| r.code()))
}

pub struct Metrics {
    registry: Registry,
    /// `[environment][outcome]`, indexes of `ENVIRONMENT_LABELS` × `outcome_labels()`.
    requests: Vec<Vec<IntCounter>>,
    /// A client that went away before any answer: counted apart from the contract's outcomes.
    abandoned: Vec<IntCounter>,
    request_duration: Vec<Histogram>,
    upstream_duration: Vec<Histogram>,
    auth_duration: Histogram,
    keys: IntGaugeVec,
    admin_requests: IntCounterVec,
    usage_flushes: IntCounter,
    usage_flush_duration: Histogram,
    config_reloads: IntCounterVec,
    /// Connections closed because a request header did not arrive in time (`proxy::client_deadline`).
    pub client_header_timeouts: IntCounter,
}

/// One finished proxy request, as `logging` sees it.
pub struct RequestRecord {
    pub environment: Option<Environment>,
    pub outcome: Outcome,
    pub duration: Duration,
    pub auth: Option<Duration>,
    pub upstream: Option<Duration>,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests_total = IntCounterVec::new(
            Opts::new(
                "keygate_requests_total",
                "Proxy requests by environment and outcome: proxied or the rejection code.",
            ),
            &["environment", "outcome"],
        )?;
        let abandoned_total = IntCounterVec::new(
            Opts::new("keygate_requests_abandoned_total", "Proxy requests whose client went away before any answer."),
            &["environment"],
        )?;
        let request_duration = histogram_vec(
            "keygate_request_duration_seconds",
            "Whole proxy request duration.",
            REQUEST_BUCKETS,
            &["environment"],
        )?;
        let upstream_duration = histogram_vec(
            "keygate_upstream_duration_seconds",
            "Time from choosing an upstream to the end of its answer.",
            REQUEST_BUCKETS,
            &["environment"],
        )?;
        let auth_duration = Histogram::with_opts(
            HistogramOpts::new("keygate_auth_duration_seconds", "Duration of the key checks alone (SPEC 4.1).")
                .buckets(AUTH_BUCKETS.to_vec()),
        )?;
        let keys =
            IntGaugeVec::new(Opts::new("keygate_keys", "Keys by environment and status."), &["environment", "status"])?;
        let admin_requests = IntCounterVec::new(
            Opts::new("keygate_admin_requests_total", "Admin API requests by operation (method and route) and status."),
            &["operation", "status"],
        )?;
        let usage_flushes =
            IntCounter::new("keygate_usage_flushes_total", "Usage flushes that wrote something to the store.")?;
        let usage_flush_duration = Histogram::with_opts(
            HistogramOpts::new(
                "keygate_usage_flush_duration_seconds",
                "Duration of usage flushes that wrote something.",
            )
            .buckets(FLUSH_BUCKETS.to_vec()),
        )?;
        let client_header_timeouts = IntCounter::new(
            "keygate_client_header_timeouts_total",
            "Proxy connections closed because a request header was not complete within proxy.client_header_timeout.",
        )?;
        let config_reloads = IntCounterVec::new(
            Opts::new("keygate_config_reloads_total", "Config reloads (SIGHUP) by result."),
            &["result"],
        )?;

        for c in [&requests_total, &abandoned_total, &admin_requests, &config_reloads] {
            registry.register(Box::new(c.clone()))?;
        }
        for h in [&request_duration, &upstream_duration] {
            registry.register(Box::new(h.clone()))?;
        }
        registry.register(Box::new(auth_duration.clone()))?;
        registry.register(Box::new(keys.clone()))?;
        registry.register(Box::new(usage_flushes.clone()))?;
        registry.register(Box::new(usage_flush_duration.clone()))?;
        registry.register(Box::new(client_header_timeouts.clone()))?;

        let requests = ENVIRONMENT_LABELS
            .iter()
            .map(|env| outcome_labels().map(|outcome| requests_total.with_label_values(&[env, outcome])).collect())
            .collect();
        let per_env =
            |vec: &HistogramVec| ENVIRONMENT_LABELS.iter().map(|env| vec.with_label_values(&[env])).collect::<Vec<_>>();
        for result in ["ok", "error"] {
            config_reloads.with_label_values(&[result]);
        }
        Ok(Metrics {
            registry,
            requests,
            abandoned: ENVIRONMENT_LABELS.iter().map(|env| abandoned_total.with_label_values(&[env])).collect(),
            request_duration: per_env(&request_duration),
            upstream_duration: per_env(&upstream_duration),
            auth_duration,
            keys,
            admin_requests,
            usage_flushes,
            usage_flush_duration,
            config_reloads,
            client_header_timeouts,
        })
    }

    /// Records one finished proxy request: counted once, by outcome. The durations go first, so a
    /// scrape that sees the request counted also sees its durations.
    pub fn observe_request(&self, r: &RequestRecord) {
        let env = r.environment.map_or(3, Environment::index);
        self.request_duration[env].observe(r.duration.as_secs_f64());
        if let Some(auth) = r.auth {
            self.auth_duration.observe(auth.as_secs_f64());
        }
        if let Some(upstream) = r.upstream {
            self.upstream_duration[env].observe(upstream.as_secs_f64());
        }
        match r.outcome {
            Outcome::Pending => self.abandoned[env].inc(),
            outcome => self.requests[env][outcome_index(outcome)].inc(),
        }
    }

    /// Records one admin request; `operation` is the route template, e.g. `POST /v1/keys/{id}/rotate`.
    pub fn observe_admin(&self, operation: &str, status: u16) {
        self.admin_requests.with_label_values(&[operation, status.to_string().as_str()]).inc();
    }

    pub fn observe_usage_flush(&self, elapsed: Duration) {
        self.usage_flushes.inc();
        self.usage_flush_duration.observe(elapsed.as_secs_f64());
    }

    pub fn observe_reload(&self, ok: bool) {
        self.config_reloads.with_label_values(&[if ok { "ok" } else { "error" }]).inc();
    }

    /// The text exposition of every metric, with `keygate_keys` counted from the index now (so it is
    /// current after every mutation and every expiry, at the cost of one pass over the keys per scrape).
    pub fn render(&self, index: &KeyIndex) -> String {
        let now = unix_now();
        let mut counts = [[0i64; 4]; 3];
        for key in index.all() {
            let status = key.doc.status(now);
            counts[key.doc.environment.index()][Status::ALL.iter().position(|s| *s == status).unwrap_or(0)] += 1;
        }
        for env in Environment::ALL {
            for (i, status) in Status::ALL.iter().enumerate() {
                self.keys.with_label_values(&[env.name(), status.name()]).set(counts[env.index()][i]);
            }
        }
        let mut out = Vec::new();
        // Encoding our own registry into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

fn histogram_vec(name: &str, help: &str, buckets: &[f64], labels: &[&str]) -> Result<HistogramVec, prometheus::Error> {
    HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels)
}

/// Position of an outcome in `outcome_labels()`.
fn outcome_index(outcome: Outcome) -> usize {
    match outcome {
        Outcome::Rejected(r) => 1 + Rejection::ALL.iter().position(|x| x.code() == r.code()).unwrap_or(0),
        _ => 0,
    }
}

/// The metrics listener's router: `GET /metrics`, unauthenticated.
pub fn router(state: Arc<crate::state::State>) -> axum::Router {
    use axum::routing::get;
    axum::Router::new().route(
        "/metrics",
        get(move || {
            let state = state.clone();
            async move { ([(http::header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], state.metrics.render(state.index())) }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rejection_code_has_its_outcome_label() {
        let labels: Vec<&str> = outcome_labels().collect();
        assert_eq!(labels.len(), 1 + Rejection::ALL.len());
        assert_eq!(labels[outcome_index(Outcome::Proxied)], "proxied");
        for r in Rejection::ALL {
            assert_eq!(labels[outcome_index(Outcome::Rejected(r))], r.code());
        }
    }

    #[test]
    fn a_request_is_counted_once_under_its_outcome() {
        let m = Metrics::new().unwrap();
        let record = |outcome| RequestRecord {
            environment: Some(Environment::Staging),
            outcome,
            duration: Duration::from_micros(300),
            auth: Some(Duration::from_micros(3)),
            upstream: None,
        };
        m.observe_request(&record(Outcome::Proxied));
        m.observe_request(&record(Outcome::Rejected(Rejection::RateLimited { retry_after: Duration::ZERO })));
        let text = m.render(&KeyIndex::default());
        assert!(text.contains(r#"keygate_requests_total{environment="staging",outcome="proxied"} 1"#), "{text}");
        assert!(text.contains(r#"keygate_requests_total{environment="staging",outcome="rate_limited"} 1"#));
        assert!(text.contains("keygate_auth_duration_seconds_count 2"));
        assert!(text.contains(r#"keygate_keys{environment="production",status="active"} 0"#));
    }
}
