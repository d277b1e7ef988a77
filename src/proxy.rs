//! The data path: keygate's `ProxyHttp` implementation. Each pingora phase calls one thing.
//!
//! ```text
//! new_ctx                  header complete (client_deadline), snapshot of the settings, in-flight guard
//! request_filter           admit::Checks::admit (SPEC §4.1) ─✗ reject::Rejection::response
//!                          ✓ usage touch (memory), whoami answered here
//! upstream_peer            upstream::Upstreams::select for the request's environment
//! fail_to_connect          passive health; one retry on another upstream of the pool
//! upstream_request_filter  upstream::prepare_request (strip credentials, add identity)
//! response_filter          X-Request-Id, RateLimit fields, Deprecation/Sunset
//! fail_to_proxy            502 upstream_unavailable / 504 upstream_timeout
//! logging                  metrics and the access log line, once per request; re-arms client_deadline
//! ```
//! Nothing here reads or writes the store.

pub mod admit;
pub mod client_deadline;
pub mod reject;
pub mod upstream;
mod whoami;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::{HttpPeer, ProxyHttp, Session};
use pingora::proxy::FailToProxy;
use pingora::{Error, ErrorSource, ErrorType};

use self::admit::{Admission, Checks};
use self::reject::Rejection;
use crate::access_log::{self, Line};
use crate::metrics::RequestRecord;
use crate::net;
use crate::problem;
use crate::record::unix_now;
use crate::state::{InFlightGuard, Settings, State};

/// The path of the whoami endpoint (SPEC §4.5).
pub const WHOAMI_PATH: &str = "/.well-known/keygate/whoami";

pub struct Proxy {
    state: Arc<State>,
}

/// Per-request state (pingora's `CTX`).
pub struct RequestCtx {
    started: Instant,
    settings: Arc<Settings>,
    request_id: String,
    client_ip: Option<IpAddr>,
    peer_ip: Option<IpAddr>,
    admission: Admission,
    outcome: Outcome,
    /// Upstream addresses tried so far (a failed connect is retried once elsewhere).
    tried: Vec<SocketAddr>,
    /// How long the key checks took.
    auth_elapsed: Option<Duration>,
    /// When the first upstream was chosen.
    upstream_started: Option<Instant>,
    _in_flight: InFlightGuard,
}

/// How a request ended, for metrics and the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Still on its way (or the client went away before any answer).
    Pending,
    Proxied,
    Whoami,
    Rejected(Rejection),
}

impl Proxy {
    pub fn new(state: Arc<State>) -> Self {
        Proxy { state }
    }
}

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        client_deadline::header_received();
        RequestCtx {
            started: Instant::now(),
            settings: self.state.settings(),
            request_id: String::new(),
            client_ip: None,
            peer_ip: None,
            admission: Admission::default(),
            outcome: Outcome::Pending,
            tried: Vec::new(),
            auth_elapsed: None,
            upstream_started: None,
            _in_flight: self.state.enter(),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> pingora::Result<bool> {
        if self.state.draining.load(std::sync::atomic::Ordering::Relaxed) {
            session.set_keepalive(None);
        }
        let req = session.req_header();
        ctx.request_id = match req.headers.get("x-request-id").and_then(|v| problem::sane_request_id(v.as_bytes())) {
            Some(id) => id.to_owned(),
            None => problem::new_request_id(),
        };
        ctx.peer_ip = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip().to_canonical());
        let config = &ctx.settings.config;
        let client_ip = ctx.peer_ip.map(|peer| {
            let forwarded = req.headers.get_all("x-forwarded-for").into_iter().map(|v| v.as_bytes());
            net::client_ip(peer, &config.proxy.trusted_proxies, forwarded)
        });
        ctx.client_ip = client_ip;
        let checks = Checks {
            config,
            index: self.state.index(),
            failed_auth: &self.state.failed_auth,
            client_ip: client_ip.unwrap_or(IpAddr::from([0, 0, 0, 0])),
            now: unix_now(),
        };
        let started = Instant::now();
        let admitted = checks.admit(req, &mut ctx.admission);
        ctx.auth_elapsed = Some(started.elapsed());
        if let Err(rejection) = admitted {
            ctx.outcome = Outcome::Rejected(rejection);
            let (header, body) = rejection.response(&ctx.request_id)?;
            if !session.is_body_empty() {
                // Do not read (or drain) the body of a request we refuse.
                session.set_keepalive(None);
            }
            session.write_response_header(header, false).await?;
            session.write_response_body(Some(body), true).await?;
            return Ok(true);
        }
        if let (Some(key), Some(ip)) = (&ctx.admission.key, client_ip) {
            self.state.index().touch(key, ip, checks.now, ctx.admission.with_previous_secret);
        }
        if ctx.admission.key.is_some() && session.req_header().uri.path() == WHOAMI_PATH {
            ctx.outcome = Outcome::Whoami;
            let (header, body) = whoami::response(&ctx.settings.config, &ctx.admission, &ctx.request_id)?;
            session.write_response_header(header, false).await?;
            session.write_response_body(Some(body), true).await?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut RequestCtx) -> pingora::Result<Box<HttpPeer>> {
        let environment =
            ctx.admission.environment.ok_or_else(|| Error::explain(ErrorType::InternalError, "no environment"))?;
        let upstreams = &ctx.settings.upstreams;
        let addr = upstreams.select(environment, &ctx.tried).ok_or_else(|| {
            let mut e = Error::explain(ErrorType::ConnectNoRoute, "no upstream configured for this environment");
            e.esource = ErrorSource::Upstream;
            e
        })?;
        ctx.tried.push(addr);
        ctx.upstream_started.get_or_insert_with(Instant::now);
        Ok(Box::new(upstreams.peer(addr)))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let (Some(environment), Some(addr)) = (ctx.admission.environment, ctx.tried.last()) {
            let upstreams = &ctx.settings.upstreams;
            upstreams.mark_down(environment, *addr);
            if ctx.tried.len() < 2 && upstreams.has_untried(environment, &ctx.tried) {
                e.set_retry(true);
            }
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        let Some(environment) = ctx.admission.environment else {
            return Ok(());
        };
        upstream::prepare_request(
            upstream_request,
            &ctx.admission.credential_headers,
            environment,
            ctx.admission.key.as_deref(),
            &ctx.request_id,
            ctx.peer_ip,
        )
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        ctx.outcome = Outcome::Proxied;
        response.insert_header("x-request-id", ctx.request_id.as_str())?;
        if let Some(rate) = ctx.admission.rate {
            response.insert_header("ratelimit-policy", rate.policy_field())?;
            response.insert_header("ratelimit", rate.state_field())?;
        }
        if let Some((deprecation, sunset)) = ctx.admission.deprecation_fields() {
            response.insert_header("deprecation", deprecation)?;
            response.insert_header("sunset", sunset)?;
        }
        Ok(())
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut RequestCtx) -> FailToProxy {
        let rejection = match (e.esource(), e.etype()) {
            (
                ErrorSource::Upstream,
                ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout,
            ) => Some(Rejection::UpstreamTimeout),
            (ErrorSource::Upstream, _) => Some(Rejection::UpstreamUnavailable),
            _ => None,
        };
        let error_code = match rejection {
            Some(rejection) => {
                ctx.outcome = Outcome::Rejected(rejection);
                if let Ok((header, body)) = rejection.response(&ctx.request_id) {
                    let _ = session.as_downstream_mut().write_error_response(*header, body).await;
                }
                rejection.status()
            }
            None => match e.etype() {
                ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed => 0,
                _ if *e.esource() == ErrorSource::Downstream => {
                    let _ = session.respond_error(400).await;
                    400
                }
                _ => {
                    let _ = session.respond_error(500).await;
                    500
                }
            },
        };
        FailToProxy { error_code, can_reuse_downstream: false }
    }

    fn suppress_error_log(&self, _session: &Session, ctx: &RequestCtx, _e: &Error) -> bool {
        // Upstream failures are answered, counted and logged by keygate itself.
        matches!(ctx.outcome, Outcome::Rejected(Rejection::UpstreamUnavailable | Rejection::UpstreamTimeout))
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        client_deadline::response_done(ctx.settings.config.proxy.client_header_timeout);
        let duration = ctx.started.elapsed();
        let upstream = ctx.upstream_started.map(|t| t.elapsed());
        let environment = ctx.admission.environment;
        self.state.metrics.observe_request(&RequestRecord {
            environment,
            outcome: ctx.outcome,
            duration,
            auth: ctx.auth_elapsed,
            upstream,
        });
        let access_log = &self.state.access_log;
        if access_log.is_on() {
            let req = session.req_header();
            let key = ctx.admission.key.as_ref().map(|k| &k.doc);
            access_log.write(&Line {
                ts: access_log::timestamp(),
                request_id: &ctx.request_id,
                method: req.method.as_str(),
                path: req.uri.path(),
                status: session.response_written().map_or(0, |r| r.status.as_u16()),
                outcome: ctx.outcome.label(),
                key_id: key.map(|d| d.id.as_str()),
                tenant: key.and_then(|d| d.tenant.as_deref()),
                environment: environment.map_or("none", |e| e.name()),
                client_ip: ctx.client_ip,
                duration_ms: access_log::millis(duration),
                upstream_ms: upstream.map(access_log::millis),
            });
        }
    }
}

impl Outcome {
    /// The `outcome` of metrics and the access log: `proxied` or the rejection code.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Proxied | Outcome::Whoami => "proxied",
            Outcome::Rejected(r) => r.code(),
            Outcome::Pending => "abandoned",
        }
    }
}
