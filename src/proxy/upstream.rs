//! Upstreams (SPEC §3.2, §4.3): one round-robin pool per environment with passive health, the
//! `HttpPeer` for a chosen address, and the header rewrite of `upstream_request_filter`.
//!
//! Passive health: an address whose connection failed is skipped for [`DOWN_FOR`]; when every
//! address is down the least recently failed one is tried anyway, so a recovered upstream is served
//! again without waiting (or restarting).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use http::HeaderName;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;

use crate::config::Config;
use crate::index::LiveKey;
use crate::limit;
use crate::record::Environment;

/// How long a failed upstream is skipped.
pub const DOWN_FOR: Duration = Duration::from_secs(10);
/// How long an idle pooled connection to an upstream is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Upper bound of the TCP connect phase (within `proxy.upstream_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Percent-encode everything but RFC 3986 unreserved characters in `X-Keygate-Key-Name`.
const NAME_ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The upstream pools of every configured environment.
#[derive(Debug)]
pub struct Upstreams {
    pools: [Option<Pool>; 3],
    timeout: Duration,
}

#[derive(Debug)]
struct Pool {
    addrs: Vec<SocketAddr>,
    next: AtomicUsize,
    /// Per address: `limit::now()` until which it is skipped (0 = healthy).
    down_until: Vec<AtomicU64>,
}

/// Identity headers the gateway adds; the same names sent by a client are removed first.
pub mod headers {
    pub const KEY_ID: &str = "x-keygate-key-id";
    pub const KEY_NAME: &str = "x-keygate-key-name";
    pub const ENVIRONMENT: &str = "x-keygate-environment";
    pub const TENANT: &str = "x-keygate-tenant";
    pub const CUSTOMER: &str = "x-keygate-customer";
    pub const PREFIX: &str = "x-keygate-";
}

impl Upstreams {
    pub fn new(config: &Config) -> Self {
        let pools = Environment::ALL.map(|env| {
            config.environment(env).map(|e| Pool {
                addrs: e.upstreams.clone(),
                next: AtomicUsize::new(0),
                down_until: e.upstreams.iter().map(|_| AtomicU64::new(0)).collect(),
            })
        });
        Upstreams { pools, timeout: config.proxy.upstream_timeout }
    }

    /// The next address for `env`, skipping `tried` and, while others are up, failed ones.
    pub fn select(&self, env: Environment, tried: &[SocketAddr]) -> Option<SocketAddr> {
        let pool = self.pools[env.index()].as_ref()?;
        let now = limit::now();
        let n = pool.addrs.len();
        let start = pool.next.fetch_add(1, Ordering::Relaxed);
        let candidates = (0..n).map(|i| (start + i) % n).filter(|&i| !tried.contains(&pool.addrs[i]));
        let mut fallback: Option<(u64, usize)> = None;
        for i in candidates {
            let down_until = pool.down_until[i].load(Ordering::Relaxed);
            if down_until <= now {
                return Some(pool.addrs[i]);
            }
            if fallback.is_none_or(|(t, _)| down_until < t) {
                fallback = Some((down_until, i));
            }
        }
        fallback.map(|(_, i)| pool.addrs[i])
    }

    /// Whether `env` has an address not yet in `tried`.
    pub fn has_untried(&self, env: Environment, tried: &[SocketAddr]) -> bool {
        self.pools[env.index()].as_ref().is_some_and(|p| p.addrs.iter().any(|a| !tried.contains(a)))
    }

    /// Passive health: skip `addr` for a while.
    pub fn mark_down(&self, env: Environment, addr: SocketAddr) {
        if let Some(pool) = &self.pools[env.index()] {
            if let Some(i) = pool.addrs.iter().position(|a| *a == addr) {
                pool.down_until[i].store(limit::now() + DOWN_FOR.as_nanos() as u64, Ordering::Relaxed);
            }
        }
    }

    /// A plain-HTTP peer for `addr` with every timeout set (pingora's default is to wait forever).
    pub fn peer(&self, addr: SocketAddr) -> HttpPeer {
        let mut peer = HttpPeer::new(addr, false, String::new());
        let options = &mut peer.options;
        options.connection_timeout = Some(self.timeout.min(CONNECT_TIMEOUT));
        options.total_connection_timeout = Some(self.timeout.min(CONNECT_TIMEOUT));
        options.read_timeout = Some(self.timeout);
        options.write_timeout = Some(self.timeout);
        options.idle_timeout = Some(IDLE_TIMEOUT);
        peer
    }
}

/// Rewrites the request the upstream sees: no credentials, no client-sent identity headers, the
/// gateway's identity headers, the request id and the peer appended to `X-Forwarded-For`.
pub fn prepare_request(
    request: &mut RequestHeader,
    removed_headers: &[HeaderName],
    environment: Environment,
    key: Option<&LiveKey>,
    request_id: &str,
    peer: Option<IpAddr>,
) -> pingora::Result<()> {
    let forged: Vec<HeaderName> =
        request.headers.keys().filter(|name| name.as_str().starts_with(headers::PREFIX)).cloned().collect();
    for name in forged.iter().chain(removed_headers) {
        request.remove_header(name);
    }
    request.insert_header(headers::ENVIRONMENT, environment.name())?;
    if let Some(key) = key {
        let doc = &key.doc;
        request.insert_header(headers::KEY_ID, doc.id.as_str())?;
        request.insert_header(headers::KEY_NAME, utf8_percent_encode(&doc.name, NAME_ENCODE).to_string())?;
        if let Some(tenant) = &doc.tenant {
            request.insert_header(headers::TENANT, tenant.as_str())?;
        }
        if let Some(customer) = &doc.customer_id {
            request.insert_header(headers::CUSTOMER, customer.as_str())?;
        }
    }
    request.insert_header("x-request-id", request_id)?;
    if let Some(peer) = peer {
        let forwarded = match request.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(existing) if !existing.trim().is_empty() => format!("{existing}, {peer}"),
            _ => peer.to_string(),
        };
        request.insert_header("x-forwarded-for", forwarded)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstreams(addrs: &[&str]) -> Upstreams {
        let yaml = format!("environments:\n  staging:\n    upstreams: {addrs:?}\n");
        Upstreams::new(&crate::config::parse(&yaml).unwrap())
    }

    #[test]
    fn round_robin_skips_tried_and_down_addresses() {
        let u = upstreams(&["127.0.0.1:1", "127.0.0.1:2"]);
        let a = u.select(Environment::Staging, &[]).unwrap();
        let b = u.select(Environment::Staging, &[]).unwrap();
        assert_ne!(a, b, "round robin");
        assert_eq!(u.select(Environment::Staging, &[a]), Some(b));
        u.mark_down(Environment::Staging, a);
        for _ in 0..4 {
            assert_eq!(u.select(Environment::Staging, &[]), Some(b));
        }
        assert!(!u.has_untried(Environment::Staging, &[a, b]));
        assert_eq!(u.select(Environment::Production, &[]), None, "unconfigured environment");
    }

    #[test]
    fn when_all_are_down_the_least_recently_failed_is_tried() {
        let u = upstreams(&["127.0.0.1:1", "127.0.0.1:2"]);
        let first: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let second: SocketAddr = "127.0.0.1:2".parse().unwrap();
        u.mark_down(Environment::Staging, first);
        u.mark_down(Environment::Staging, second);
        assert_eq!(u.select(Environment::Staging, &[]), Some(first));
    }

    #[test]
    fn the_upstream_request_is_rewritten() {
        let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
        req.insert_header("x-api-key", "secret").unwrap();
        req.insert_header("x-keygate-tenant", "forged").unwrap();
        req.insert_header("x-forwarded-for", "203.0.113.1").unwrap();
        let removed = [HeaderName::from_static("x-api-key")];
        prepare_request(&mut req, &removed, Environment::Staging, None, "rid", Some("127.0.0.1".parse().unwrap()))
            .unwrap();
        let h = &req.headers;
        assert!(h.get("x-api-key").is_none() && h.get("x-keygate-tenant").is_none());
        assert_eq!(h.get("x-keygate-environment").unwrap(), "staging");
        assert_eq!(h.get("x-forwarded-for").unwrap(), "203.0.113.1, 127.0.0.1");
        assert_eq!(h.get("x-request-id").unwrap(), "rid");
    }
}
