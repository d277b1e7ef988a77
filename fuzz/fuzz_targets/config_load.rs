//! Fuzz target `config_load`: the config loader, `keygate::config::parse` (YAML text → validated
//! `Config`; `config::load`, used by `serve` and `check-config`, is a file read plus this).
//!
//! Properties checked on every input (mirroring the proptests in src/config.rs):
//! 1. It never panics, whatever the text (non-UTF-8 input is skipped: `load` refuses it before
//!    parsing, with the error path ".").
//! 2. A refusal lists at least one error, and every error names a YAML path and says what is wrong
//!    (non-empty `path` and `message`).
//! 3. An accepted config keeps the rules the validator promises: at least one environment, each with
//!    at least one upstream; at least one proxy listen address and key header; `threads` resolved to
//!    at least 1; a key prefix of 1-16 base62 characters; `default_key_limit` at least 1; environment
//!    hosts lower-case, without port/scheme, each in one environment only.
//!
//! Note: the loader resolves `host:port` upstreams with the system resolver, so inputs with a host
//! name make DNS queries; run it where that is harmless (see fuzz/README.md).
#![no_main]

use std::collections::HashSet;

use keygate::config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match config::parse(text) {
        Err(errors) => {
            assert!(!errors.is_empty(), "refused without saying why");
            for e in &errors {
                assert!(!e.path.is_empty() && !e.message.is_empty(), "an error without its path or message: {e:?}");
            }
        }
        Ok(c) => {
            assert!(c.environments.iter().any(Option::is_some), "accepted with no environment");
            let mut hosts = HashSet::new();
            for env in c.environments.iter().flatten() {
                assert!(!env.upstreams.is_empty(), "accepted an environment without upstreams");
                for h in &env.hosts {
                    assert!(!h.is_empty() && *h == h.to_ascii_lowercase() && !h.contains(['/', ' ', ':']), "{h:?}");
                    assert!(hosts.insert(h.clone()), "host {h:?} in two environments");
                }
            }
            assert!(!c.proxy.listen.is_empty() && !c.proxy.key_headers.is_empty());
            assert!(c.proxy.threads >= 1);
            assert!(
                (1..=16).contains(&c.key_prefix.len()) && c.key_prefix.bytes().all(|b| b.is_ascii_alphanumeric()),
                "accepted key prefix {:?}",
                c.key_prefix
            );
            assert!(c.default_key_limit >= 1);
        }
    }
});
