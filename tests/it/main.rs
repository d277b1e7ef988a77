//! keygate's black-box integration tests: each test starts its own `keygate serve` child process with its
//! own echo upstreams, temp dir, ports and config, and talks to it only through the contract of SPEC.md.
//! One test binary (`cargo test --test it`), one module per topic.

mod helpers;
mod hostile;

mod admin;
mod admin_audit;
mod admin_edit;
mod admin_helpers;
mod admin_lifecycle;
mod admin_list;
mod admin_openapi;
mod admin_race;
mod admin_rotate;
mod admin_scopes;
mod admin_validation;
mod bootstrap;
mod cli;
mod crash;
mod environments;
mod key_format;
mod ops_access_log;
mod ops_compose;
mod ops_helpers;
mod ops_metrics;
mod ops_reload;
mod rate_limit;
mod rejections;
mod shutdown;
mod upstream_view;
mod usage;
mod whoami;
