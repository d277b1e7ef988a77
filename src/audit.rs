//! The audit log's entries and their hash chain (SPEC §5 "Audit").
//!
//! Each entry's `hash` is the lowercase hex SHA-256 of the entry's canonical JSON without `hash`:
//! keys sorted, no whitespace, strings as serde_json writes them. `prev_hash` links it to the entry
//! before (64 zeros for the first), so changing, removing or reordering a stored entry breaks the
//! chain at that entry. Entries name fields that changed, never their values: no secret gets in.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::key::Digest;

/// `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct AuditEntry {
    /// Position in the log: 16 decimal digits, increasing (also the cursor of `GET /v1/audit`).
    pub id: String,
    /// RFC 3339.
    pub at: String,
    /// Name of the admin token that made the change (`env`, `bootstrap` or a configured name).
    pub actor: String,
    /// e.g. `key.create`, `key.rotate`, `tenant.update`.
    pub action: String,
    /// The key or tenant id acted on.
    pub target: String,
    pub tenant: Option<String>,
    /// Names of the fields the action changed.
    pub changes: Vec<String>,
    #[schema(value_type = Option<String>)]
    pub client_ip: Option<IpAddr>,
    pub prev_hash: String,
    pub hash: String,
}

/// What a mutation tells the audit log about itself; the registry adds position and chain.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub action: &'static str,
    pub target: String,
    pub tenant: Option<String>,
    pub changes: Vec<String>,
}

/// Who made a change, from where.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub actor: String,
    pub client_ip: Option<IpAddr>,
}

/// The verdict of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Verdict {
    pub ok: bool,
    pub entries: usize,
    pub first_bad: Option<String>,
}

impl AuditEntry {
    /// Builds the entry at position `seq` after `prev_hash`, with its hash.
    pub fn new(seq: u64, at: String, origin: &Origin, event: AuditEvent, prev_hash: String) -> Self {
        let mut entry = AuditEntry {
            id: format_id(seq),
            at,
            actor: origin.actor.clone(),
            action: event.action.to_owned(),
            target: event.target,
            tenant: event.tenant,
            changes: event.changes,
            client_ip: origin.client_ip,
            prev_hash,
            hash: String::new(),
        };
        entry.hash = entry.compute_hash();
        entry
    }

    /// SHA-256 of the canonical JSON of every member but `hash`.
    pub fn compute_hash(&self) -> String {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.remove("hash");
        }
        // serde_json's map is ordered by key (no `preserve_order`), and to_vec is compact.
        Digest::of(&serde_json::to_vec(&value).unwrap_or_default()).to_hex()
    }
}

/// The id of the entry at position `seq`.
pub fn format_id(seq: u64) -> String {
    format!("{seq:016}")
}

/// Recomputes the chain over the stored log, in order: `(sequence number, entry)`, the entry `None`
/// when it no longer decodes. Names the first entry that does not hold; `entries` counts them all.
pub fn verify(log: impl IntoIterator<Item = (u64, Option<AuditEntry>)>) -> Verdict {
    let mut prev = GENESIS.to_owned();
    let mut entries = 0;
    let mut first_bad = None;
    for (seq, entry) in log {
        entries += 1;
        if first_bad.is_some() {
            continue;
        }
        match entry {
            Some(e) if e.id == format_id(seq) && e.prev_hash == prev && e.hash == e.compute_hash() => prev = e.hash,
            _ => first_bad = Some(format_id(seq)),
        }
    }
    Verdict { ok: first_bad.is_none(), entries, first_bad }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<AuditEntry> {
        let origin = Origin { actor: "env".into(), client_ip: Some("127.0.0.1".parse().unwrap()) };
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let event = AuditEvent {
                    action: "key.update",
                    target: "k".into(),
                    tenant: Some("acme".into()),
                    changes: vec!["name".into()],
                };
                let entry = AuditEntry::new(seq, "2026-01-01T00:00:00Z".into(), &origin, event, prev.clone());
                prev = entry.hash.clone();
                entry
            })
            .collect()
    }

    #[test]
    fn the_hash_is_of_the_sorted_compact_json_without_hash() {
        let entry = &chain(1)[0];
        let canonical = format!(
            r#"{{"action":"key.update","actor":"env","at":"2026-01-01T00:00:00Z","changes":["name"],"client_ip":"127.0.0.1","id":"0000000000000001","prev_hash":"{GENESIS}","target":"k","tenant":"acme"}}"#
        );
        assert_eq!(entry.hash, Digest::of(canonical.as_bytes()).to_hex());
    }

    fn stored(entries: Vec<AuditEntry>) -> Vec<(u64, Option<AuditEntry>)> {
        entries.into_iter().map(|e| (e.id.parse().unwrap(), Some(e))).collect()
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify(stored(chain(5))), Verdict { ok: true, entries: 5, first_bad: None });
        assert_eq!(verify(vec![]), Verdict { ok: true, entries: 0, first_bad: None });
    }

    #[test]
    fn tampering_names_the_first_bad_entry() {
        let mut entries = chain(5);
        entries[2].actor = "mallory".into();
        assert_eq!(
            verify(stored(entries)),
            Verdict { ok: false, entries: 5, first_bad: Some("0000000000000003".into()) }
        );
        let mut entries = stored(chain(5));
        entries.remove(1);
        assert_eq!(
            verify(entries).first_bad.as_deref(),
            Some("0000000000000003"),
            "a removed entry breaks the next link"
        );
        let mut entries = stored(chain(5));
        entries[3].1 = None;
        assert_eq!(verify(entries).first_bad.as_deref(), Some("0000000000000004"), "an undecodable entry is bad");
    }
}
