//! Prometheus metrics (SPEC §6): declared once here, in keygate's own registry (not the process
//! global one, so several gateways in one process never collide), recorded once per request from
//! the proxy's `logging` phase. Labels hold only bounded values: environment names and outcome codes.

use std::time::Duration;

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};

use crate::proxy::Outcome;
use crate::record::Environment;

/// Sub-millisecond resolution at the bottom: a key check takes microseconds.
const DURATION_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

pub struct Metrics {
    registry: Registry,
    requests_total: IntCounterVec,
    request_duration: HistogramVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests_total = IntCounterVec::new(
            Opts::new(
                "keygate_requests_total",
                "Proxy requests by environment and outcome (proxied or a rejection code).",
            ),
            &["environment", "outcome"],
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new("keygate_request_duration_seconds", "Whole proxy request duration.")
                .buckets(DURATION_BUCKETS.to_vec()),
            &["environment"],
        )?;
        registry.register(Box::new(requests_total.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        Ok(Metrics { registry, requests_total, request_duration })
    }

    /// Records one finished proxy request.
    pub fn observe_request(&self, environment: Option<Environment>, outcome: Outcome, _status: u16, elapsed: Duration) {
        let environment = environment.map_or("none", Environment::name);
        let outcome = match outcome {
            Outcome::Proxied | Outcome::Whoami => "proxied",
            Outcome::Rejected(r) => r.code(),
            Outcome::Pending => "client_closed",
        };
        self.requests_total.with_label_values(&[environment, outcome]).inc();
        self.request_duration.with_label_values(&[environment]).observe(elapsed.as_secs_f64());
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding our own registry into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The metrics listener's router: `GET /metrics`, unauthenticated.
pub fn router(metrics: std::sync::Arc<crate::state::State>) -> axum::Router {
    use axum::routing::get;
    axum::Router::new().route(
        "/metrics",
        get(move || {
            let state = metrics.clone();
            async move { ([(http::header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], state.metrics.render()) }
        }),
    )
}
