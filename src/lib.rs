//! keygate: an API-key authentication gateway on pingora.
//!
//! # Layout, in reading order
//!
//! - The key and its record: [`key`] (the key string: generate, parse, verify), [`record`] (what is
//!   stored about a key and a tenant, status rules), [`audit`] (the hash-chained audit entries).
//! - Configuration: [`config`] (YAML → validated `Config`), [`routes`] (route and permission
//!   matching), [`net`] (client IP, trusted proxies, allowlists), [`limit`] (GCRA buckets).
//! - State: [`store`] (sled, the only module that names it), [`index`] (the in-memory key index the
//!   proxy reads), [`registry`] (the one write path: store, then index), [`usage`] (batched usage
//!   flushes), [`state`] (what the services share).
//! - Services: [`proxy`] (the data path, pingora `ProxyHttp`), [`admin`] (the admin API, axum),
//!   [`metrics`] (Prometheus), [`problem`] (the problem+json error body both APIs use).
//! - Operations: [`access_log`] (one JSON line per request, written off the request path),
//!   [`reload`] (SIGHUP), [`logging`] (operational logs).
//! - Process: [`startup`] (wiring and shutdown), [`echo`] (the `keygate-echo` upstream).
//!
//! The request path, one direction: `proxy::request_filter` → `proxy::admit` (every check of
//! SPEC §4.1, against `index` and `limit`) → `proxy::upstream` → the upstream → `proxy::logging`.

pub mod audit;
pub mod key;
pub mod record;

pub mod config;
pub mod limit;
pub mod net;
pub mod routes;

pub mod index;
pub mod registry;
pub mod state;
pub mod store;
pub mod usage;

pub mod admin;
pub mod metrics;
pub mod problem;
pub mod proxy;

pub mod access_log;
pub mod echo;
pub mod logging;
pub mod reload;
pub mod startup;
