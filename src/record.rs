//! Domain types of a key and a tenant, as stored and as reasoned about (SPEC §2.2).
//!
//! [`KeyDoc`] is the durable, versioned form of a key: configuration and lifecycle, never the secret
//! (only its digest) and never usage, which changes per request and lives in its own record
//! ([`UsageDoc`]) so the hot path never rewrites the key. Status is computed, never stored.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::key::{Digest, KeyId, Mark, Secret};

/// Version written into every stored document; bump it with a migration when the layout changes.
pub const DOC_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Production,
    Staging,
    Development,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    Admin,
    Readonly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    #[default]
    Tenant,
    Service,
}

/// Computed status, first that applies: revoked, expired, inactive, active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    Inactive,
    Revoked,
    Expired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExpirationState {
    Valid,
    ExpiringSoon,
    Expired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Period {
    Second,
    Minute,
    Hour,
}

/// `{"per_second"|"per_minute"|"per_hour": N, "burst"?: B}`: N requests per period on average, at
/// most B at once (B defaults to N). In JSON and YAML it has the shape of [`RateLimitWire`]; in the
/// store's binary records it is a compact tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub period: Period,
    pub count: u32,
    pub burst: Option<u32>,
}

/// The JSON/YAML shape of [`RateLimit`]; exactly one of the three periods must be set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_second: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_minute: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_hour: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

/// The OpenAPI schema says what [`RateLimit::try_from`] accepts, which a derived one cannot:
/// exactly one period, every count at least 1.
impl utoipa::PartialSchema for RateLimitWire {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Type};
        let count = |what: &str| {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(u32::MAX))
                .description(Some(what))
        };
        let one_period = |period: &str| {
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property(period, count("requests per period, on average"))
                .required(period)
                .property("burst", count("requests at once (default: the per-period count)"))
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        };
        OneOfBuilder::new()
            .item(one_period("per_second"))
            .item(one_period("per_minute"))
            .item(one_period("per_hour"))
            .description(Some(
                "A GCRA rate limit: exactly one of per_second, per_minute, per_hour, and an optional burst",
            ))
            .into()
    }
}

impl utoipa::ToSchema for RateLimitWire {}

/// The durable record of a key. Field names match the admin API where they overlap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyDoc {
    pub v: u32,
    pub id: KeyId,
    /// Creation order, unique and increasing: sorts lists newest first and anchors cursors.
    pub seq: u64,
    pub digest: Digest,
    pub mark: Mark,
    pub name: String,
    pub description: Option<String>,
    pub kind: Kind,
    pub tenant: Option<String>,
    pub environment: Environment,
    pub role: Role,
    pub group: Option<String>,
    pub permissions: Vec<String>,
    pub ip_allowlist: Vec<IpNet>,
    pub rate_limit: Option<RateLimit>,
    pub customer_id: Option<String>,
    /// Unix seconds.
    pub expires_at: Option<i64>,
    pub disabled: bool,
    pub revoked_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Boxed: rare, and 48 bytes every key would carry otherwise.
    pub rotation: Option<Box<RotationDoc>>,
}

/// The previous secret of a key during a rotation's grace period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationDoc {
    pub previous_digest: Digest,
    pub rotated_at: i64,
    pub previous_valid_until: i64,
}

/// Per-key usage as flushed to the store in batches.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageDoc {
    pub v: u32,
    pub last_used_at: Option<i64>,
    pub last_used_ip: Option<IpAddr>,
    pub requests_total: u64,
    pub previous_requests: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantDoc {
    pub v: u32,
    pub id: String,
    pub name: String,
    pub key_limit: u32,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Tenant ids are chosen by the client: `[a-z0-9][a-z0-9-]{1,62}`.
pub fn valid_tenant_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    (2..=63).contains(&bytes.len())
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes[1..].iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

// === impl Environment ===

impl Environment {
    pub const ALL: [Environment; 3] = [Environment::Production, Environment::Staging, Environment::Development];

    /// The tag inside a key string.
    pub fn tag(self) -> &'static str {
        match self {
            Environment::Production => "prod",
            Environment::Staging => "stg",
            Environment::Development => "dev",
        }
    }

    /// The full name used in headers, logs, metric labels and the API.
    pub fn name(self) -> &'static str {
        match self {
            Environment::Production => "production",
            Environment::Staging => "staging",
            Environment::Development => "development",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Environment::ALL.into_iter().find(|e| e.name() == name)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

// === impl Role / Kind / Status ===

impl Role {
    /// Readonly keys may use only GET, HEAD and OPTIONS (SPEC §3.3).
    pub fn allows_method(self, method: &http::Method) -> bool {
        match self {
            Role::Admin => true,
            Role::Readonly => matches!(*method, http::Method::GET | http::Method::HEAD | http::Method::OPTIONS),
        }
    }
}

impl Status {
    pub const ALL: [Status; 4] = [Status::Active, Status::Inactive, Status::Revoked, Status::Expired];

    pub fn name(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Inactive => "inactive",
            Status::Revoked => "revoked",
            Status::Expired => "expired",
        }
    }
}

// === impl Period / RateLimit ===

impl Period {
    pub fn seconds(self) -> u64 {
        match self {
            Period::Second => 1,
            Period::Minute => 60,
            Period::Hour => 3600,
        }
    }

    pub fn as_nanos(self) -> u64 {
        self.seconds() * 1_000_000_000
    }
}

impl RateLimit {
    pub fn limit(&self) -> u32 {
        self.count
    }
}

impl TryFrom<RateLimitWire> for RateLimit {
    type Error = String;

    fn try_from(w: RateLimitWire) -> Result<Self, String> {
        let set: Vec<(Period, u32)> =
            [(Period::Second, w.per_second), (Period::Minute, w.per_minute), (Period::Hour, w.per_hour)]
                .into_iter()
                .filter_map(|(p, n)| n.map(|n| (p, n)))
                .collect();
        let [(period, count)] = set[..] else {
            return Err("must set exactly one of per_second, per_minute, per_hour".into());
        };
        if count == 0 {
            return Err("the request count must be at least 1".into());
        }
        if w.burst == Some(0) {
            return Err("burst must be at least 1".into());
        }
        Ok(RateLimit { period, count, burst: w.burst })
    }
}

impl From<RateLimit> for RateLimitWire {
    fn from(r: RateLimit) -> Self {
        let mut w = RateLimitWire { burst: r.burst, ..Default::default() };
        match r.period {
            Period::Second => w.per_second = Some(r.count),
            Period::Minute => w.per_minute = Some(r.count),
            Period::Hour => w.per_hour = Some(r.count),
        }
        w
    }
}

// === impl KeyDoc ===

impl KeyDoc {
    /// A new active key with every option at its default; callers set the rest.
    pub fn new(
        id: KeyId,
        seq: u64,
        secret: &Secret,
        name: String,
        environment: Environment,
        tenant: Option<String>,
        now: i64,
    ) -> Self {
        KeyDoc {
            v: DOC_VERSION,
            id,
            seq,
            digest: secret.digest(),
            mark: secret.mark(),
            name,
            description: None,
            kind: if tenant.is_some() { Kind::Tenant } else { Kind::Service },
            tenant,
            environment,
            role: Role::Admin,
            group: None,
            permissions: vec![],
            ip_allowlist: vec![],
            rate_limit: None,
            customer_id: None,
            expires_at: None,
            disabled: false,
            revoked_at: None,
            created_at: now,
            updated_at: now,
            rotation: None,
        }
    }

    pub fn status(&self, now: i64) -> Status {
        if self.revoked_at.is_some() {
            Status::Revoked
        } else if self.expires_at.is_some_and(|at| at <= now) {
            Status::Expired
        } else if self.disabled {
            Status::Inactive
        } else {
            Status::Active
        }
    }

    pub fn expiration_state(&self, now: i64, expiring_soon_days: u32) -> ExpirationState {
        match self.expires_at {
            Some(at) if at <= now => ExpirationState::Expired,
            Some(at) if at - now <= i64::from(expiring_soon_days) * 86_400 => ExpirationState::ExpiringSoon,
            _ => ExpirationState::Valid,
        }
    }

    /// Who the name must be unique within: the tenant, or the platform for service keys.
    pub fn owner(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// The non-secret start of the key string, `<prefix>_<env>_<id>`.
    pub fn prefix(&self, key_prefix: &str) -> String {
        format!("{key_prefix}_{}_{}", self.environment.tag(), self.id)
    }

    /// Counts toward a tenant's `key_limit`: neither revoked nor expired.
    pub fn counts_toward_limit(&self, now: i64) -> bool {
        !matches!(self.status(now), Status::Revoked | Status::Expired)
    }

    /// Whether the previous secret of a rotation still works at `now`.
    pub fn previous_valid(&self, now: i64) -> Option<&RotationDoc> {
        self.rotation.as_deref().filter(|r| now < r.previous_valid_until)
    }
}

// === serde: text in JSON and YAML, compact bytes in the store's binary records ===

impl Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_alnum(self.as_str(), self.as_bytes(), s)
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_alnum::<_, { crate::key::ID_LEN }, _>(d, KeyId::parse, "not a 16-character key id")
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_hex())
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            Digest::from_hex(&text).ok_or_else(|| serde::de::Error::custom("not a 64-digit hex digest"))
        } else {
            <[u8; 32]>::deserialize(d).map(Digest)
        }
    }
}

impl Serialize for Mark {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_alnum(self.as_str(), &self.0, s)
    }
}

impl<'de> Deserialize<'de> for Mark {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_alnum::<_, 4, _>(d, Mark::from_str_exact, "not the 4-character mark of a key")
    }
}

/// A fixed-size id of ASCII alphanumerics ([`KeyId`], [`Mark`]): its text in JSON and YAML, its bytes
/// in binary records.
fn serialize_alnum<S: serde::Serializer, const N: usize>(text: &str, bytes: &[u8; N], s: S) -> Result<S::Ok, S::Error>
where
    [u8; N]: Serialize,
{
    if s.is_human_readable() {
        s.serialize_str(text)
    } else {
        bytes.serialize(s)
    }
}

/// Reads what [`serialize_alnum`] wrote, checked by `parse`.
fn deserialize_alnum<'de, D: serde::Deserializer<'de>, const N: usize, T>(
    d: D,
    parse: fn(&str) -> Option<T>,
    what: &'static str,
) -> Result<T, D::Error>
where
    [u8; N]: Deserialize<'de>,
{
    let parsed = if d.is_human_readable() {
        parse(&String::deserialize(d)?)
    } else {
        let bytes = <[u8; N]>::deserialize(d)?;
        std::str::from_utf8(&bytes).ok().and_then(parse)
    };
    parsed.ok_or_else(|| serde::de::Error::custom(what))
}

impl Serialize for RateLimit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            RateLimitWire::from(*self).serialize(s)
        } else {
            (self.period, self.count, self.burst).serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = if d.is_human_readable() {
            RateLimitWire::deserialize(d)?
        } else {
            let (period, count, burst) = <(Period, u32, Option<u32>)>::deserialize(d)?;
            RateLimitWire::from(RateLimit { period, count, burst })
        };
        RateLimit::try_from(wire).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> KeyDoc {
        let id = KeyId::generate();
        KeyDoc::new(
            id,
            1,
            &Secret::generate("kg", Environment::Production, id),
            "n".into(),
            Environment::Production,
            Some("acme".into()),
            0,
        )
    }

    #[test]
    fn status_precedence_is_revoked_expired_inactive_active() {
        let mut d = doc();
        assert_eq!(d.status(100), Status::Active);
        d.disabled = true;
        assert_eq!(d.status(100), Status::Inactive);
        d.expires_at = Some(100);
        assert_eq!(d.status(100), Status::Expired);
        assert_eq!(d.status(99), Status::Inactive);
        d.revoked_at = Some(1);
        assert_eq!(d.status(100), Status::Revoked);
    }

    #[test]
    fn expiring_soon_window() {
        let mut d = doc();
        d.expires_at = Some(10 * 86_400);
        assert_eq!(d.expiration_state(0, 7), ExpirationState::Valid);
        assert_eq!(d.expiration_state(3 * 86_400, 7), ExpirationState::ExpiringSoon);
        assert_eq!(d.expiration_state(10 * 86_400, 7), ExpirationState::Expired);
    }

    #[test]
    fn rate_limit_wire_form_needs_exactly_one_period() {
        let ok: RateLimit = serde_json::from_str(r#"{"per_minute": 10, "burst": 3}"#).unwrap();
        assert_eq!(ok, RateLimit { period: Period::Minute, count: 10, burst: Some(3) });
        assert_eq!(serde_json::to_string(&ok).unwrap(), r#"{"per_minute":10,"burst":3}"#);
        for bad in [
            r#"{}"#,
            r#"{"per_second":1,"per_hour":2}"#,
            r#"{"per_second":0}"#,
            r#"{"per_second":1,"burst":0}"#,
            r#"{"per_day":1}"#,
        ] {
            assert!(serde_json::from_str::<RateLimit>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn docs_round_trip_as_json_and_as_binary() {
        let mut d = doc();
        d.rate_limit = Some(RateLimit { period: Period::Hour, count: 7, burst: Some(2) });
        d.ip_allowlist = vec!["10.0.0.0/8".parse().unwrap(), "2001:db8::/32".parse().unwrap()];
        d.rotation =
            Some(Box::new(RotationDoc { previous_digest: Digest::of(b"old"), rotated_at: 5, previous_valid_until: 9 }));
        let text = serde_json::to_string(&d).unwrap();
        assert!(!text.contains("secret"));
        assert!(text.contains(r#""rate_limit":{"per_hour":7,"burst":2}"#), "{text}");
        assert_eq!(serde_json::from_str::<KeyDoc>(&text).unwrap(), d);
        let bytes = postcard::to_stdvec(&d).unwrap();
        assert!(bytes.len() < text.len() / 2, "binary {} vs json {}", bytes.len(), text.len());
        assert_eq!(postcard::from_bytes::<KeyDoc>(&bytes).unwrap(), d);
    }

    #[test]
    fn readonly_keys_only_read() {
        assert!(Role::Readonly.allows_method(&http::Method::HEAD));
        assert!(!Role::Readonly.allows_method(&http::Method::POST));
        assert!(Role::Admin.allows_method(&http::Method::DELETE));
    }
}

// === time ===

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// RFC 3339 in UTC with whole seconds, e.g. `2026-11-22T06:11:09Z`.
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// An `expires_at` as the API accepts it: RFC 3339, or a plain date meaning `23:59:59Z` that day.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t.unix_timestamp());
    }
    let date = time::Date::parse(text, time::macros::format_description!("[year]-[month]-[day]")).ok()?;
    Some(date.with_hms(23, 59, 59).ok()?.assume_utc().unix_timestamp())
}

#[cfg(test)]
mod time_tests {
    use super::*;

    #[test]
    fn timestamps_format_and_parse() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(parse_timestamp("2030-01-02T03:04:05Z"), Some(1_893_553_445));
        assert_eq!(parse_timestamp("2030-01-02T04:04:05+01:00"), Some(1_893_553_445));
        assert_eq!(parse_timestamp("2030-01-02").map(rfc3339).as_deref(), Some("2030-01-02T23:59:59Z"));
        for bad in ["", "tomorrow", "2030-13-01", "2030-01-02T03:04"] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }
}
