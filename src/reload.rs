//! Hot reload (SPEC §3.5): on SIGHUP the config file is read again. A valid file replaces the
//! settings (routes, groups, environments and their upstream pools, default limits, admin tokens)
//! in one atomic swap; requests in flight finish with the settings they started with, and open
//! connections stay open. An invalid file changes nothing: its errors are logged and counted.
//!
//! Some settings only take effect at start (listeners, threads, the store, the access log
//! destination, the usage flush interval, the log level, the key prefix — changing that one would
//! invalidate every key). A reload keeps their running values and logs a warning for each.

use std::path::Path;

use crate::config::{self, Config, ConfigError};
use crate::state::{Settings, State};

/// Re-reads `path` and, when valid, puts it in force. Returns warnings about ignored changes.
pub fn reload(state: &State, path: &Path) -> Result<Vec<String>, Vec<ConfigError>> {
    let result = config::load(path).map(|mut new| {
        let warnings = keep_start_only_settings(&state.settings().config, &mut new);
        state.replace_settings(Settings::new(new));
        warnings
    });
    state.metrics.observe_reload(result.is_ok());
    result
}

/// Copies the running value of every start-only setting into `new`, naming each that differed.
fn keep_start_only_settings(running: &Config, new: &mut Config) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut keep = |name: &str, differs: bool| {
        if differs {
            warnings.push(format!("{name} changed; it takes effect only after a restart"));
        }
    };
    keep("proxy.listen", running.proxy.listen != new.proxy.listen);
    keep("proxy.threads", running.proxy.threads != new.proxy.threads);
    keep("admin.listen", running.admin.listen != new.admin.listen);
    keep("metrics.listen", running.metrics_listen != new.metrics_listen);
    keep(
        "storage",
        running.storage.path != new.storage.path
            || running.storage.usage_flush_interval != new.storage.usage_flush_interval,
    );
    keep("log", running.log.access != new.log.access || running.log.level != new.log.level);
    keep("keys.prefix", running.key_prefix != new.key_prefix);
    new.proxy.listen = running.proxy.listen.clone();
    new.proxy.threads = running.proxy.threads;
    new.admin.listen = running.admin.listen;
    new.metrics_listen = running.metrics_listen;
    new.storage = running.storage.clone();
    new.log = running.log.clone();
    new.key_prefix = running.key_prefix.clone();
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_only_settings_keep_their_running_values() {
        let base = "environments:\n  production: {upstreams: [\"127.0.0.1:1\"]}\n";
        let running = config::parse(base).unwrap();
        let mut new = config::parse(&format!(
            "{base}proxy: {{listen: [\"127.0.0.1:1\"]}}\nkeys: {{prefix: zz}}\nroutes: [{{path: /a, permission: p}}]\n"
        ))
        .unwrap();
        let warnings = keep_start_only_settings(&running, &mut new);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert_eq!(new.proxy.listen, running.proxy.listen);
        assert_eq!(new.key_prefix, "kg");
        assert!(new.routes.find("/a").is_some(), "reloadable settings are taken");
    }
}
