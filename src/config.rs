//! Configuration: load the YAML file, validate all of it, and produce the typed [`Config`] (SPEC §3).
//!
//! `load → parse (file::FileConfig) → validate → Config`. Validation never stops at the first problem:
//! it returns every [`ConfigError`], each naming its YAML path and the offending value, so
//! `keygate check-config` can list them all. Upstream and listen addresses are resolved here, once,
//! so nothing later does blocking DNS or can fail on an address.

mod file;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;

use self::file::FileConfig;
use crate::key::Digest;
use crate::net;
use crate::record::{Environment, RateLimit, RateLimitWire};
use crate::routes::{Route, Routes};

/// The default config path of `serve` and `check-config`.
pub const DEFAULT_CONFIG_PATH: &str = "config/keygate.yaml";
/// Upper bound of `proxy.threads`.
pub const MAX_PROXY_THREADS: u32 = 1024;

/// One problem in a config file: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub proxy: ProxyConfig,
    /// Indexed by [`Environment::index`]; `None` for an environment the file does not configure.
    pub environments: [Option<EnvironmentConfig>; 3],
    pub routes: Routes,
    /// Group name → its permissions.
    pub groups: BTreeMap<String, Vec<String>>,
    pub default_key_limit: u32,
    pub key_prefix: String,
    pub expiring_soon_days: u32,
    pub admin: AdminConfig,
    pub metrics_listen: SocketAddr,
    pub log: LogConfig,
    pub storage: StorageConfig,
}

#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub listen: Vec<SocketAddr>,
    /// Worker threads, already resolved (0 in the file means one per core).
    pub threads: usize,
    pub key_headers: Vec<HeaderName>,
    pub trusted_proxies: Vec<IpNet>,
    pub upstream_timeout: Duration,
    /// How long a client may take to send a whole request header (see `proxy::client_deadline`).
    pub client_header_timeout: Duration,
    pub failed_auth_limit: RateLimit,
}

#[derive(Debug, Clone)]
pub struct EnvironmentConfig {
    /// Lower-case Host values (without port) that select this environment.
    pub hosts: Vec<String>,
    pub upstreams: Vec<SocketAddr>,
    /// The limit of keys whose own `rate_limit` is null; `None` means no limit.
    pub rate_limit: Option<RateLimit>,
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    pub tokens: Vec<AdminToken>,
}

/// An admin token from the config file, kept only as its SHA-256.
#[derive(Debug, Clone)]
pub struct AdminToken {
    pub name: String,
    pub digest: Digest,
    pub scopes: Vec<Scope>,
    pub tenant: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    KeysRead,
    KeysCreate,
    KeysUpdate,
    KeysDelete,
    TenantsManage,
    AuditRead,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLog {
    Stdout,
    Off,
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub access: AccessLog,
    pub level: String,
}

#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub path: PathBuf,
    pub usage_flush_interval: Duration,
}

// === loading ===

/// Reads and validates the file at `path`.
pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![ConfigError::new(".", format!("cannot read {}: {e}", path.display()))])?;
    parse(&text)
}

/// Parses and validates YAML text.
pub fn parse(text: &str) -> Result<Config, Vec<ConfigError>> {
    let mut unknown = Vec::new();
    let deserializer = serde_yaml::Deserializer::from_str(text);
    let file: FileConfig = serde_ignored::deserialize(deserializer, |path| unknown.push(render_ignored(&path)))
        .or_else(|_| {
            // Re-run with path tracking to say where the type error is.
            let deserializer = serde_yaml::Deserializer::from_str(text);
            serde_path_to_error::deserialize::<_, FileConfig>(deserializer).map_err(|e| {
                let path = render_error_path(e.path());
                vec![ConfigError::new(&path, e.into_inner().to_string())]
            })
        })?;
    let mut errors: Vec<ConfigError> = unknown
        .into_iter()
        .map(|path| ConfigError::new(&path, "unknown key (see docs/config.md for the whole tree)"))
        .collect();
    let config = Validator { errors: &mut errors }.config(file);
    match config {
        Some(config) if errors.is_empty() => Ok(config),
        _ => Err(errors),
    }
}

/// The path of an unknown key, as `serde_ignored` reports it.
fn render_ignored(path: &serde_ignored::Path<'_>) -> String {
    fn walk(path: &serde_ignored::Path<'_>) -> String {
        use serde_ignored::Path as P;
        match path {
            P::Root => String::new(),
            P::Seq { parent, index } => format!("{}[{index}]", walk(parent)),
            P::Map { parent, key } => child_path(&walk(parent), key),
            P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => walk(parent),
        }
    }
    root_if_empty(walk(path))
}

/// The path of a type or syntax error, as `serde_path_to_error` reports it.
fn render_error_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment as S;
    let rendered = path.iter().fold(String::new(), |parent, segment| match segment {
        S::Seq { index } => format!("{parent}[{index}]"),
        S::Map { key } | S::Enum { variant: key } => child_path(&parent, key),
        // A key that is not a string: the error is about its parent.
        S::Unknown => parent,
    });
    root_if_empty(rendered)
}

/// `parent.key`, where an empty `parent` is the root. A key that is empty or more than a plain word is
/// quoted, so every error names a place in the file: `environments.""`, `groups."a.b"`.
fn child_path(parent: &str, key: &str) -> String {
    let plain = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"_:-".contains(&b));
    let key = if plain { key.to_owned() } else { format!("{key:?}") };
    if parent.is_empty() {
        key
    } else {
        format!("{parent}.{key}")
    }
}

/// The root of the file is written `.`.
fn root_if_empty(path: String) -> String {
    if path.is_empty() {
        ".".to_owned()
    } else {
        path
    }
}

// === validation ===

struct Validator<'a> {
    errors: &'a mut Vec<ConfigError>,
}

impl Validator<'_> {
    fn fail(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError { path: path.into(), message: message.into() });
    }

    /// Builds the whole config; `None` when something needed could not be built (errors say why).
    fn config(&mut self, f: FileConfig) -> Option<Config> {
        let proxy = self.proxy(f.proxy);
        let environments = self.environments(f.environments);
        let groups: BTreeMap<String, Vec<String>> = f
            .groups
            .into_iter()
            .map(|(name, g)| {
                if !valid_identifier(&name) {
                    self.fail(
                        child_path("groups", &name),
                        format!("{name:?} is not a group name ([A-Za-z0-9_.:-], 1-64 characters)"),
                    );
                }
                let mut permissions = g.permissions;
                permissions.sort();
                permissions.dedup();
                (name, permissions)
            })
            .collect();
        let routes = self.routes(f.routes);
        if f.tenants.default_key_limit == 0 {
            self.fail("tenants.default_key_limit", "must be at least 1");
        }
        if f.keys.prefix.is_empty()
            || f.keys.prefix.len() > 16
            || !f.keys.prefix.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            self.fail("keys.prefix", format!("{:?} must be 1-16 characters of [0-9A-Za-z]", f.keys.prefix));
        }
        let admin_listen = self.listen_addr("admin.listen", &f.admin.listen);
        let tokens =
            f.admin.tokens.into_iter().enumerate().filter_map(|(i, t)| self.admin_token(i, t)).collect::<Vec<_>>();
        let mut names = HashSet::new();
        for (i, t) in tokens.iter().enumerate() {
            if !names.insert(t.name.clone()) {
                self.fail(format!("admin.tokens[{i}].name"), format!("{:?} is used by another token", t.name));
            }
        }
        let metrics_listen = self.listen_addr("metrics.listen", &f.metrics.listen);
        let log = self.log(f.log);
        let usage_flush_interval = self.duration("storage.usage_flush_interval", &f.storage.usage_flush_interval);
        if f.storage.path.trim().is_empty() {
            self.fail("storage.path", "must name a directory for the store");
        }
        Some(Config {
            proxy: proxy?,
            environments,
            routes: routes?,
            groups,
            default_key_limit: f.tenants.default_key_limit,
            key_prefix: f.keys.prefix,
            expiring_soon_days: f.keys.expiring_soon_days,
            admin: AdminConfig { listen: admin_listen?, tokens },
            metrics_listen: metrics_listen?,
            log: log?,
            storage: StorageConfig { path: PathBuf::from(f.storage.path), usage_flush_interval: usage_flush_interval? },
        })
    }

    fn proxy(&mut self, p: file::ProxyFile) -> Option<ProxyConfig> {
        if p.listen.is_empty() {
            self.fail("proxy.listen", "needs at least one address");
        }
        let listen: Vec<Option<SocketAddr>> =
            p.listen.iter().enumerate().map(|(i, a)| self.listen_addr(&format!("proxy.listen[{i}]"), a)).collect();
        if p.threads > MAX_PROXY_THREADS {
            self.fail("proxy.threads", format!("{} is out of range 0..={MAX_PROXY_THREADS}", p.threads));
        }
        if p.key_headers.is_empty() {
            self.fail("proxy.key_headers", "needs at least one header name");
        }
        let mut key_headers = Vec::new();
        for (i, name) in p.key_headers.iter().enumerate() {
            match HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()) {
                Ok(h) if name.to_ascii_lowercase().starts_with("x-keygate-") => {
                    self.fail(format!("proxy.key_headers[{i}]"), format!("{h} is reserved for identity headers"))
                }
                Ok(h) if !key_headers.contains(&h) => key_headers.push(h),
                Ok(_) => self.fail(format!("proxy.key_headers[{i}]"), format!("{name:?} is listed twice")),
                Err(_) => self.fail(format!("proxy.key_headers[{i}]"), format!("{name:?} is not a header name")),
            }
        }
        let trusted_proxies = self.cidrs("proxy.trusted_proxies", &p.trusted_proxies);
        let upstream_timeout = self.duration("proxy.upstream_timeout", &p.upstream_timeout);
        let client_header_timeout = self.duration("proxy.client_header_timeout", &p.client_header_timeout);
        let failed_auth_limit = self.rate_limit("proxy.failed_auth_limit", p.failed_auth_limit);
        let threads = match p.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        };
        Some(ProxyConfig {
            listen: listen.into_iter().collect::<Option<_>>()?,
            threads,
            key_headers,
            trusted_proxies,
            upstream_timeout: upstream_timeout?,
            client_header_timeout: client_header_timeout?,
            failed_auth_limit: failed_auth_limit?,
        })
    }

    fn environments(&mut self, envs: BTreeMap<String, file::EnvironmentFile>) -> [Option<EnvironmentConfig>; 3] {
        let mut out: [Option<EnvironmentConfig>; 3] = [None, None, None];
        let mut seen_hosts: BTreeMap<String, String> = BTreeMap::new();
        if envs.is_empty() {
            self.fail("environments", "configure at least one of production, staging, development");
        }
        for (name, e) in envs {
            let base = child_path("environments", &name);
            let Some(env) = Environment::from_name(&name) else {
                self.fail(&base, format!("{name:?} is not an environment (production, staging, development)"));
                continue;
            };
            if e.upstreams.is_empty() {
                self.fail(format!("{base}.upstreams"), "needs at least one host:port");
            }
            let upstreams: Vec<SocketAddr> = e
                .upstreams
                .iter()
                .enumerate()
                .filter_map(|(i, a)| self.upstream_addr(&format!("{base}.upstreams[{i}]"), a))
                .collect();
            let mut hosts = Vec::new();
            for (i, host) in e.hosts.iter().enumerate() {
                let host = host.trim().to_ascii_lowercase();
                let path = format!("{base}.hosts[{i}]");
                if host.is_empty() || host.contains(['/', ' ', ':']) {
                    self.fail(path, format!("{host:?} is not a host name (no port, no scheme)"));
                } else if let Some(other) = seen_hosts.insert(host.clone(), name.clone()) {
                    self.fail(path, format!("{host:?} is already a host of {other}"));
                } else {
                    hosts.push(host);
                }
            }
            let rate_limit = e.rate_limit.and_then(|r| self.rate_limit(&format!("{base}.rate_limit"), r));
            out[env.index()] = Some(EnvironmentConfig { hosts, upstreams, rate_limit });
        }
        out
    }

    fn routes(&mut self, routes: Vec<file::RouteFile>) -> Option<Routes> {
        let mut out = Vec::new();
        let mut paths = HashSet::new();
        for (i, r) in routes.into_iter().enumerate() {
            let base = format!("routes[{i}]");
            let path = r.path.trim_end_matches('/').to_owned();
            if !r.path.starts_with('/') || r.path.contains(['?', '#', ' ']) {
                self.fail(format!("{base}.path"), format!("{:?} must be a path starting with /", r.path));
                continue;
            }
            if !paths.insert(path.clone()) {
                self.fail(format!("{base}.path"), format!("{:?} is routed twice", r.path));
            }
            let methods = r.methods.map(|methods| {
                methods
                    .iter()
                    .enumerate()
                    .filter_map(|(j, m)| match http::Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
                        Ok(method) => Some(method),
                        Err(_) => {
                            self.fail(format!("{base}.methods[{j}]"), format!("{m:?} is not an HTTP method"));
                            None
                        }
                    })
                    .collect::<Vec<_>>()
            });
            if r.public && r.permission.is_some() {
                self.fail(
                    format!("{base}.permission"),
                    "a public route needs no key, so it cannot require a permission",
                );
            }
            if r.permission.as_deref().is_some_and(|p| !valid_identifier(p)) {
                self.fail(
                    format!("{base}.permission"),
                    format!("{:?} is not a permission name", r.permission.unwrap_or_default()),
                );
                continue;
            }
            let environment = match r.environment.as_deref() {
                None => Environment::Production,
                Some(name) => Environment::from_name(name).unwrap_or_else(|| {
                    self.fail(
                        format!("{base}.environment"),
                        format!("{name:?} is not an environment (production, staging, development)"),
                    );
                    Environment::Production
                }),
            };
            out.push(Route { path, methods, permission: r.permission, public: r.public, environment });
        }
        Some(Routes::new(out))
    }

    fn admin_token(&mut self, i: usize, t: file::AdminTokenFile) -> Option<AdminToken> {
        let base = format!("admin.tokens[{i}]");
        if !valid_identifier(&t.name) {
            self.fail(
                format!("{base}.name"),
                format!("{:?} is not a token name ([A-Za-z0-9_.:-], 1-64 characters)", t.name),
            );
        }
        let digest = t.hash.strip_prefix("sha256:").and_then(Digest::from_hex);
        if digest.is_none() {
            self.fail(format!("{base}.hash"), "must be sha256:<64 hex digits> (make one with `keygate hash-token`)");
        }
        let scopes: Vec<Scope> = t
            .scopes
            .iter()
            .enumerate()
            .filter_map(|(j, s)| {
                let scope = Scope::parse(s);
                if scope.is_none() {
                    self.fail(
                        format!("{base}.scopes[{j}]"),
                        format!("{s:?} is not a scope ({})", Scope::NAMES.join(", ")),
                    );
                }
                scope
            })
            .collect();
        if let Some(tenant) = &t.tenant {
            if !crate::record::valid_tenant_id(tenant) {
                self.fail(
                    format!("{base}.tenant"),
                    format!("{tenant:?} is not a tenant id ([a-z0-9][a-z0-9-]{{1,62}})"),
                );
            }
        }
        Some(AdminToken { name: t.name, digest: digest?, scopes, tenant: t.tenant })
    }

    fn log(&mut self, l: file::LogFile) -> Option<LogConfig> {
        let access = match l.access.as_str() {
            "stdout" => AccessLog::Stdout,
            "off" => AccessLog::Off,
            "" => {
                self.fail("log.access", "must be stdout, off or a file path");
                return None;
            }
            path => AccessLog::File(PathBuf::from(path)),
        };
        if tracing_subscriber::EnvFilter::try_new(&l.level).is_err() {
            self.fail("log.level", format!("{:?} is not a level (error, warn, info, debug, trace) or filter", l.level));
            return None;
        }
        Some(LogConfig { access, level: l.level })
    }

    fn duration(&mut self, path: &str, text: &str) -> Option<Duration> {
        match humantime::parse_duration(text) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                self.fail(path, format!("{text:?} must be longer than zero"));
                None
            }
            Err(_) => {
                self.fail(path, format!("{text:?} is not a duration (like 500ms, 5s, 10m, 1h)"));
                None
            }
        }
    }

    fn rate_limit(&mut self, path: &str, wire: RateLimitWire) -> Option<RateLimit> {
        RateLimit::try_from(wire).map_err(|e| self.fail(path, e)).ok()
    }

    fn cidrs(&mut self, path: &str, items: &[String]) -> Vec<IpNet> {
        items
            .iter()
            .enumerate()
            .filter_map(|(i, text)| net::parse_cidr(text).map_err(|e| self.fail(format!("{path}[{i}]"), e)).ok())
            .collect()
    }

    fn listen_addr(&mut self, path: &str, text: &str) -> Option<SocketAddr> {
        self.socket_addr(path, text, "a listen address ip:port")
    }

    fn upstream_addr(&mut self, path: &str, text: &str) -> Option<SocketAddr> {
        self.socket_addr(path, text, "host:port")
    }

    fn socket_addr(&mut self, path: &str, text: &str, what: &str) -> Option<SocketAddr> {
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Some(addr);
        }
        let has_port =
            text.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !has_port {
            self.fail(path, format!("{text:?} is not {what}"));
            return None;
        }
        match text.to_socket_addrs().map(|mut addrs| addrs.next()) {
            Ok(Some(addr)) => Some(addr),
            _ => {
                self.fail(path, format!("{text:?} does not resolve"));
                None
            }
        }
    }
}

/// Names of groups, permissions and tokens: 1-64 characters of `[A-Za-z0-9_.:-]`.
pub fn valid_identifier(text: &str) -> bool {
    (1..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b))
}

// === impl ConfigError ===

impl ConfigError {
    fn new(path: &str, message: impl Into<String>) -> Self {
        ConfigError { path: path.to_owned(), message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

// === impl Config ===

impl Config {
    pub fn environment(&self, env: Environment) -> Option<&EnvironmentConfig> {
        self.environments[env.index()].as_ref()
    }

    /// True when some environment lists `hosts`: then the Host header selects the environment.
    pub fn routes_by_host(&self) -> bool {
        self.environments.iter().flatten().any(|e| !e.hosts.is_empty())
    }

    /// The environment whose `hosts` contain `host` (already lower-case, without port).
    pub fn environment_for_host(&self, host: &str) -> Option<Environment> {
        Environment::ALL
            .into_iter()
            .find(|env| self.environment(*env).is_some_and(|e| e.hosts.iter().any(|h| h == host)))
    }

    pub fn group_permissions(&self, group: &str) -> &[String] {
        self.groups.get(group).map_or(&[], Vec::as_slice)
    }

    /// The union of a key's group permissions and its own, sorted.
    pub fn effective_permissions(&self, doc: &crate::record::KeyDoc) -> Vec<String> {
        let group = doc.group.as_deref().map_or(&[][..], |g| self.group_permissions(g));
        let mut all: Vec<String> = group.iter().chain(&doc.permissions).cloned().collect();
        all.sort();
        all.dedup();
        all
    }
}

// === impl Scope ===

impl Scope {
    pub const NAMES: [&'static str; 6] =
        ["keys:read", "keys:create", "keys:update", "keys:delete", "tenants:manage", "audit:read"];
    pub const ALL: [Scope; 6] = [
        Scope::KeysRead,
        Scope::KeysCreate,
        Scope::KeysUpdate,
        Scope::KeysDelete,
        Scope::TenantsManage,
        Scope::AuditRead,
    ];

    pub fn parse(text: &str) -> Option<Self> {
        Scope::NAMES.iter().position(|n| *n == text).map(|i| Scope::ALL[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "environments:\n  production:\n    upstreams: [\"127.0.0.1:9001\"]\n";

    fn errors(text: &str) -> Vec<String> {
        parse(text).map(|_| ()).expect_err("should be refused").into_iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn the_shipped_example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_CONFIG_PATH);
        let config = load(&path).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(config.environment(Environment::Staging).is_some());
    }

    #[test]
    fn defaults_match_the_spec() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.proxy.listen, vec!["0.0.0.0:8080".parse().unwrap()]);
        assert_eq!(
            c.proxy.key_headers,
            vec![HeaderName::from_static("x-api-key"), HeaderName::from_static("authorization")]
        );
        assert_eq!(c.proxy.upstream_timeout, Duration::from_secs(30));
        assert_eq!(c.proxy.failed_auth_limit.count, 30);
        assert_eq!(c.admin.listen, "127.0.0.1:9090".parse().unwrap());
        assert_eq!(c.metrics_listen, "127.0.0.1:9100".parse().unwrap());
        assert_eq!((c.key_prefix.as_str(), c.expiring_soon_days, c.default_key_limit), ("kg", 7, 10));
        assert_eq!(c.storage.usage_flush_interval, Duration::from_secs(1));
        assert_eq!(c.log.access, AccessLog::Stdout);
        assert!(c.proxy.threads >= 1);
    }

    #[test]
    fn every_error_is_reported_with_its_path() {
        let text = "keys:\n  colour: blue\nenvironments:\n  development:\n    upstreams: [\"nowhere\"]\n  qa:\n    upstreams: [\"127.0.0.1:1\"]\nproxy:\n  upstream_timeout: soon\n  threads: 5000\n";
        let errs = errors(text);
        for expected in [
            "keys.colour: unknown key",
            "environments.development.upstreams[0]: \"nowhere\" is not host:port",
            "environments.qa: \"qa\" is not an environment",
            "proxy.upstream_timeout: \"soon\" is not a duration",
            "proxy.threads: 5000 is out of range",
        ] {
            assert!(errs.iter().any(|e| e.starts_with(expected)), "missing {expected:?} in {errs:#?}");
        }
    }

    #[test]
    fn type_errors_name_their_path() {
        let errs = errors(
            "environments:\n  production:\n    upstreams: \"127.0.0.1:1\"\n    rate_limit: {per_second: lots}\n",
        );
        assert!(errs[0].starts_with("environments.production.upstreams"), "{errs:?}");
    }

    #[test]
    fn rate_limits_tokens_routes_and_cidrs_are_checked() {
        let text = format!(
            "{MINIMAL}proxy:\n  trusted_proxies: [\"10.0.0.0/33\"]\n  failed_auth_limit: {{per_minute: 0}}\nadmin:\n  tokens:\n    - {{name: ops, hash: \"md5:x\", scopes: [\"keys:fly\"]}}\nroutes:\n  - {{path: \"health\"}}\n  - {{path: \"/a\", public: true, permission: \"x\"}}\n  - {{path: \"/b\", methods: [\"G E T\"]}}\n"
        );
        let errs = errors(&text);
        for expected in [
            "proxy.trusted_proxies[0]",
            "proxy.failed_auth_limit",
            "admin.tokens[0].hash",
            "admin.tokens[0].scopes[0]",
            "routes[0].path",
            "routes[1].permission",
            "routes[2].methods[0]",
        ] {
            assert!(errs.iter().any(|e| e.starts_with(expected)), "missing {expected:?} in {errs:#?}");
        }
    }

    #[test]
    fn empty_and_dotted_keys_are_quoted_in_error_paths() {
        // Found by the config_load fuzz target: an empty key gave an error with an empty path.
        for (text, expected) in [
            ("\"\": 1\n", "\"\": unknown key"),
            ("\"\": [\n", "\"\": "),
            ("proxy:\n  \"\": 1\n", "proxy.\"\": unknown key"),
            (
                "environments:\n  \"\": {upstreams: [\"127.0.0.1:1\"]}\n",
                "environments.\"\": \"\" is not an environment",
            ),
            (&format!("{MINIMAL}groups:\n  \"a b\": {{permissions: []}}\n"), "groups.\"a b\": "),
            ("[1]\n", ".: "),
        ] {
            let errs = errors(text);
            assert!(errs.iter().any(|e| e.starts_with(expected)), "missing {expected:?} in {errs:#?}");
        }
    }

    #[test]
    fn hosts_are_lower_cased_and_unique() {
        let ok = parse("environments:\n  production: {hosts: [\"API.Example.com\"], upstreams: [\"127.0.0.1:1\"]}\n")
            .unwrap();
        assert!(ok.routes_by_host());
        assert_eq!(ok.environment_for_host("api.example.com"), Some(Environment::Production));
        let errs = errors("environments:\n  production: {hosts: [a.test], upstreams: [\"127.0.0.1:1\"]}\n  staging: {hosts: [A.test], upstreams: [\"127.0.0.1:1\"]}\n");
        assert!(errs.iter().any(|e| e.starts_with("environments.staging.hosts[0]")), "{errs:?}");
    }

    #[test]
    fn garbage_yaml_is_an_error_not_a_panic() {
        for text in ["", ":", "[1, 2", "proxy: 5", "\u{0}", "environments: {production: {upstreams: [[]]}}"] {
            assert!(parse(text).is_err(), "{text:?}");
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// YAML-like values built from the config's own key names, so the generator reaches deep paths.
        fn value() -> impl Strategy<Value = serde_yaml::Value> {
            let names = prop::sample::select(vec![
                "proxy",
                "listen",
                "threads",
                "key_headers",
                "trusted_proxies",
                "upstream_timeout",
                "failed_auth_limit",
                "",
                "environments",
                "production",
                "staging",
                "development",
                "hosts",
                "upstreams",
                "rate_limit",
                "per_second",
                "per_minute",
                "burst",
                "routes",
                "path",
                "methods",
                "permission",
                "public",
                "groups",
                "permissions",
                "tenants",
                "default_key_limit",
                "keys",
                "prefix",
                "admin",
                "tokens",
                "name",
                "hash",
                "scopes",
                "tenant",
                "metrics",
                "log",
                "access",
                "level",
                "storage",
                "usage_flush_interval",
                "bogus",
            ]);
            let leaf = prop_oneof![
                Just(serde_yaml::Value::Null),
                any::<bool>().prop_map(serde_yaml::Value::from),
                any::<i64>().prop_map(serde_yaml::Value::from),
                "[ -~]{0,24}".prop_map(serde_yaml::Value::from),
                Just(serde_yaml::Value::from("127.0.0.1:9001")),
                Just(serde_yaml::Value::from("5s")),
            ];
            leaf.prop_recursive(4, 48, 6, move |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(serde_yaml::Value::Sequence),
                    prop::collection::vec((names.clone(), inner), 0..6).prop_map(|entries| {
                        serde_yaml::Value::Mapping(
                            entries.into_iter().map(|(k, v)| (serde_yaml::Value::from(k), v)).collect(),
                        )
                    }),
                ]
            })
        }

        proptest! {
            #[test]
            fn arbitrary_text_never_panics_and_errors_name_a_path(text in "[ -~\n]{0,300}") {
                if let Err(errors) = parse(&text) {
                    prop_assert!(!errors.is_empty());
                    prop_assert!(errors.iter().all(|e| !e.path.is_empty() && !e.message.is_empty()), "{:?}", errors);
                }
            }

            #[test]
            fn config_shaped_yaml_never_panics_and_errors_name_a_path(doc in value()) {
                let text = serde_yaml::to_string(&doc).unwrap_or_default();
                if let Err(errors) = parse(&text) {
                    prop_assert!(!errors.is_empty());
                    prop_assert!(errors.iter().all(|e| !e.path.is_empty() && !e.message.is_empty()), "{:?}", errors);
                }
            }
        }
    }
}
