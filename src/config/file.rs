//! The YAML file as written (SPEC §3): plain serde types with every default, nothing validated yet.
//!
//! These types are the file format only; [`super::Config`] is what the rest of keygate sees. Unknown
//! keys are not refused here (serde would stop at the first one): `super::load` collects them all.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::record::RateLimitWire;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct FileConfig {
    pub(crate) proxy: ProxyFile,
    pub(crate) environments: BTreeMap<String, EnvironmentFile>,
    pub(crate) routes: Vec<RouteFile>,
    pub(crate) groups: BTreeMap<String, GroupFile>,
    pub(crate) tenants: TenantsFile,
    pub(crate) keys: KeysFile,
    pub(crate) admin: AdminFile,
    pub(crate) metrics: MetricsFile,
    pub(crate) log: LogFile,
    pub(crate) storage: StorageFile,
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub(crate) struct ProxyFile {
    pub(crate) listen: Vec<String>,
    pub(crate) threads: u32,
    pub(crate) key_headers: Vec<String>,
    pub(crate) trusted_proxies: Vec<String>,
    pub(crate) upstream_timeout: String,
    pub(crate) client_header_timeout: String,
    pub(crate) failed_auth_limit: RateLimitWire,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct EnvironmentFile {
    pub(crate) hosts: Vec<String>,
    pub(crate) upstreams: Vec<String>,
    pub(crate) rate_limit: Option<RateLimitWire>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RouteFile {
    pub(crate) path: String,
    pub(crate) methods: Option<Vec<String>>,
    pub(crate) permission: Option<String>,
    pub(crate) public: bool,
    pub(crate) environment: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct GroupFile {
    pub(crate) permissions: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub(crate) struct TenantsFile {
    pub(crate) default_key_limit: u32,
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub(crate) struct KeysFile {
    pub(crate) prefix: String,
    pub(crate) expiring_soon_days: u32,
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub(crate) struct AdminFile {
    pub(crate) listen: String,
    pub(crate) tokens: Vec<AdminTokenFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct AdminTokenFile {
    pub(crate) name: String,
    pub(crate) hash: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) tenant: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub(crate) struct MetricsFile {
    pub(crate) listen: String,
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub(crate) struct LogFile {
    pub(crate) access: String,
    pub(crate) level: String,
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub(crate) struct StorageFile {
    pub(crate) path: String,
    pub(crate) usage_flush_interval: String,
}

// === defaults (SPEC §3) ===

impl Default for ProxyFile {
    fn default() -> Self {
        ProxyFile {
            listen: vec!["0.0.0.0:8080".into()],
            threads: 0,
            key_headers: vec!["x-api-key".into(), "authorization".into()],
            trusted_proxies: vec![],
            upstream_timeout: "30s".into(),
            client_header_timeout: "10s".into(),
            failed_auth_limit: RateLimitWire { per_minute: Some(30), ..Default::default() },
        }
    }
}

impl Default for TenantsFile {
    fn default() -> Self {
        TenantsFile { default_key_limit: 10 }
    }
}

impl Default for KeysFile {
    fn default() -> Self {
        KeysFile { prefix: "kg".into(), expiring_soon_days: 7 }
    }
}

impl Default for AdminFile {
    fn default() -> Self {
        AdminFile { listen: "127.0.0.1:9090".into(), tokens: vec![] }
    }
}

impl Default for MetricsFile {
    fn default() -> Self {
        MetricsFile { listen: "127.0.0.1:9100".into() }
    }
}

impl Default for LogFile {
    fn default() -> Self {
        LogFile { access: "stdout".into(), level: "info".into() }
    }
}

impl Default for StorageFile {
    fn default() -> Self {
        StorageFile { path: "data/keygate.db".into(), usage_flush_interval: "1s".into() }
    }
}
