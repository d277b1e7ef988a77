//! Field rules of SPEC §2.2 and §5, shared by create and edit: each validator records a
//! field-level message in [`Fields`] (every bad field is reported at once, as one 422) and returns
//! the typed value when it is good.

use std::collections::BTreeMap;
use std::time::Duration;

use ipnet::IpNet;

use super::error::AdminError;
use crate::config::{valid_identifier, Config};
use crate::net;
use crate::record::{parse_timestamp, Environment, Kind, RateLimit, Role};

/// Page size of a list when `limit` is not given, and the largest one allowed.
pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 500;

/// Collects field errors for a 422 `validation_failed`.
#[derive(Debug, Default)]
pub struct Fields(BTreeMap<String, String>);

impl Fields {
    /// Records a problem with `field` (the first one per field wins); returns `None` so it can stand
    /// in for the missing value.
    pub fn bad<T>(&mut self, field: &str, message: impl Into<String>) -> Option<T> {
        self.0.entry(field.to_owned()).or_insert_with(|| message.into());
        None
    }

    pub fn finish(self) -> Result<(), AdminError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(AdminError::Validation(self.0))
        }
    }

    pub fn name(&mut self, name: String) -> Option<String> {
        if valid_name(&name) {
            Some(name)
        } else {
            self.bad("name", "must be 2-200 characters, not blank, without control characters")
        }
    }

    pub fn description(&mut self, text: String) -> Option<String> {
        if text.chars().count() <= 1000 {
            Some(text)
        } else {
            self.bad("description", "must be at most 1000 characters")
        }
    }

    pub fn kind(&mut self, text: &str) -> Option<Kind> {
        match text {
            "tenant" => Some(Kind::Tenant),
            "service" => Some(Kind::Service),
            other => self.bad("kind", format!("{other:?} is not a kind (tenant, service)")),
        }
    }

    pub fn environment(&mut self, text: &str) -> Option<Environment> {
        Environment::from_name(text).or_else(|| {
            self.bad("environment", format!("{text:?} is not an environment (production, staging, development)"))
        })
    }

    pub fn role(&mut self, text: &str) -> Option<Role> {
        match text {
            "admin" => Some(Role::Admin),
            "readonly" => Some(Role::Readonly),
            other => self.bad("role", format!("{other:?} is not a role (admin, readonly)")),
        }
    }

    pub fn group(&mut self, group: String, config: &Config) -> Option<String> {
        if config.groups.contains_key(&group) {
            Some(group)
        } else {
            self.bad("group", format!("unknown group {group:?}; see GET /v1/groups"))
        }
    }

    pub fn permissions(&mut self, permissions: Vec<String>) -> Option<Vec<String>> {
        match permissions.iter().find(|p| !valid_identifier(p)) {
            None => Some(permissions),
            Some(bad) => self.bad("permissions", format!("{bad:?} is not a permission name (1-64 of [A-Za-z0-9_.:-])")),
        }
    }

    pub fn ip_allowlist(&mut self, items: Vec<String>) -> Option<Vec<IpNet>> {
        let parsed: Result<Vec<IpNet>, String> = items.iter().map(|i| net::parse_cidr(i)).collect();
        parsed.map_err(|e| self.bad::<()>("ip_allowlist", e)).ok()
    }

    pub fn rate_limit(&mut self, value: serde_json::Value) -> Option<RateLimit> {
        serde_json::from_value::<RateLimit>(value).ok().or_else(|| {
            self.bad(
                "rate_limit",
                r#"must be {"per_second"|"per_minute"|"per_hour": N} with N >= 1, optionally with "burst": B >= 1, or null"#,
            )
        })
    }

    pub fn customer_id(&mut self, text: String) -> Option<String> {
        if (1..=200).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic()) {
            Some(text)
        } else {
            self.bad("customer_id", "must be 1-200 visible ASCII characters")
        }
    }

    /// A future expiry: RFC 3339, or a date `YYYY-MM-DD` meaning 23:59:59Z that day.
    pub fn expires_at(&mut self, text: &str, now: i64) -> Option<i64> {
        match parse_timestamp(text) {
            Some(at) if at > now => Some(at),
            Some(_) => self.bad("expires_at", "must be in the future"),
            None => self.bad("expires_at", "must be an RFC 3339 timestamp or a date YYYY-MM-DD"),
        }
    }

    pub fn tenant_id(&mut self, tenant: String) -> Option<String> {
        if crate::record::valid_tenant_id(&tenant) {
            Some(tenant)
        } else {
            self.bad("tenant", format!("{tenant:?} is not a tenant id ([a-z0-9][a-z0-9-]{{1,62}})"))
        }
    }

    /// A list's `limit`: 1 to [`MAX_PAGE`], [`DEFAULT_PAGE`] when absent.
    pub fn page_limit(&mut self, text: Option<&str>) -> usize {
        match text.map(str::parse::<usize>) {
            None => DEFAULT_PAGE,
            Some(Ok(n)) if (1..=MAX_PAGE).contains(&n) => n,
            Some(_) => self.bad("limit", format!("must be a number from 1 to {MAX_PAGE}")).unwrap_or(DEFAULT_PAGE),
        }
    }

    /// A list's `cursor`: the `next_cursor` of a previous page (a sequence number).
    pub fn cursor(&mut self, text: Option<&str>) -> Option<u64> {
        text.and_then(|c| c.parse::<u64>().ok().or_else(|| self.bad("cursor", "not a cursor from a previous page")))
    }

    /// A duration between `min` and `max` inclusive, like `0s`, `90m`, `24h`.
    pub fn duration(&mut self, field: &str, text: &str, min: Duration, max: Duration) -> Option<Duration> {
        match humantime::parse_duration(text) {
            Ok(d) if d >= min && d <= max => Some(d),
            _ => self.bad(
                field,
                format!(
                    "{text:?} must be a duration from {} to {}",
                    humantime::format_duration(min),
                    humantime::format_duration(max)
                ),
            ),
        }
    }
}

/// Key and tenant names: 2-200 characters, not only whitespace, no control characters.
pub fn valid_name(name: &str) -> bool {
    (2..=200).contains(&name.chars().count()) && !name.trim().is_empty() && !name.chars().any(char::is_control)
}

/// The OpenAPI schema of a key or tenant name: what [`valid_name`] accepts, written once for every
/// body that has a `name` (`#[schema(value_type = Name)]`).
pub struct Name;

impl utoipa::PartialSchema for Name {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .min_length(Some(2))
            .max_length(Some(200))
            .pattern(Some(r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"))
            .description(Some("2-200 characters, not blank, no control characters"))
            .into()
    }
}

impl utoipa::ToSchema for Name {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_field_is_reported_once() {
        let mut f = Fields::default();
        assert_eq!(f.name("x".into()), None);
        assert_eq!(f.role("owner"), None);
        assert_eq!(f.ip_allowlist(vec!["10.0.0.0/8".into(), "bogus".into()]), None);
        assert_eq!(f.rate_limit(serde_json::json!({"per_day": 1})), None);
        assert_eq!(f.expires_at("2001-01-01", 1_000_000_000), None);
        assert_eq!(f.duration("grace_period", "25h", Duration::ZERO, Duration::from_secs(86_400)), None);
        let Err(AdminError::Validation(fields)) = f.finish() else { panic!("expected a validation error") };
        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
        assert_eq!(names, ["expires_at", "grace_period", "ip_allowlist", "name", "rate_limit", "role"]);
        assert!(fields["ip_allowlist"].contains("bogus"));
    }

    #[test]
    fn good_values_pass() {
        let mut f = Fields::default();
        assert_eq!(f.name("ok name".into()).as_deref(), Some("ok name"));
        assert_eq!(f.environment("staging"), Some(Environment::Staging));
        assert_eq!(f.ip_allowlist(vec!["10.0.0.1".into()]).map(|v| v.len()), Some(1));
        assert_eq!(f.duration("g", "0s", Duration::ZERO, Duration::from_secs(86_400)), Some(Duration::ZERO));
        assert!(f.customer_id("cust-9".into()).is_some());
        assert!(f.finish().is_ok());
        assert!(!valid_name("  ") && !valid_name("a\u{0}b") && valid_name("ab"));
    }
}
