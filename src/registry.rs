//! The single write path for keys and tenants: check conflicts → write the record and its audit
//! entry in one transaction → publish to the index → wait until durable.
//!
//! Mutations run one at a time under `write_lock`, so a read-modify-write (a revoke racing a rotate,
//! two creates racing for a name) always sees the previous one's result, and the audit chain is
//! extended in exactly the order the records changed. The index is updated while the lock is held,
//! so the proxy sees changes in store order; the durability wait happens after the lock is released,
//! so concurrent mutations share one flush (group commit). A revoke, disable or rotation is therefore
//! in effect in the proxy *before* its answer is sent, and the answer is sent only once the change is
//! on disk. Refusals wait too: "already revoked" is only said of a revoke that is on disk.
//!
//! Field formats are the admin API's job; this module enforces the rules that depend on state:
//! tenants exist, names are unique among non-revoked keys of an owner, tenant key limits, lifecycle
//! transitions.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::Mutex as AsyncMutex;

use crate::audit::{AuditEntry, AuditEvent, Origin, GENESIS};
use crate::index::{KeyIndex, LiveKey};
use crate::key::{KeyId, Secret};
use crate::record::{rfc3339, Environment, KeyDoc, Kind, RateLimit, Role, RotationDoc, Status, TenantDoc, DOC_VERSION};
use crate::store::{Store, StoreError, Write};

/// A validated request to create a key.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub name: String,
    pub description: Option<String>,
    pub kind: Kind,
    pub tenant: Option<String>,
    pub environment: Environment,
    pub role: Role,
    pub group: Option<String>,
    pub permissions: Vec<String>,
    pub ip_allowlist: Vec<ipnet::IpNet>,
    pub rate_limit: Option<RateLimit>,
    pub customer_id: Option<String>,
    pub expires_at: Option<i64>,
}

/// A validated edit: `None` leaves a field alone; `Some(None)` clears a nullable one.
#[derive(Debug, Clone, Default)]
pub struct KeyPatch {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub group: Option<Option<String>>,
    pub permissions: Option<Vec<String>>,
    pub role: Option<Role>,
    pub ip_allowlist: Option<Vec<ipnet::IpNet>>,
    pub rate_limit: Option<Option<RateLimit>>,
    pub customer_id: Option<Option<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("not found")]
    NotFound,
    #[error("unknown tenant {0:?}")]
    UnknownTenant(String),
    #[error("the name {0:?} is already used by another key of the same owner")]
    NameTaken(String),
    #[error("tenant {tenant:?} already has {limit} keys (its key_limit)")]
    KeyLimitReached { tenant: String, limit: u32 },
    #[error("the key is already revoked")]
    AlreadyRevoked,
    #[error("the key is {0}; {1}")]
    InvalidState(&'static str, &'static str),
    #[error("a tenant with id {0:?} already exists")]
    TenantExists(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Registry {
    store: Store,
    index: Arc<KeyIndex>,
    tenants: RwLock<HashMap<String, TenantDoc>>,
    /// Derived from the index, kept in step with it under `write_lock`.
    owners: Mutex<Owners>,
    /// Sequence number and hash of the newest audit entry.
    audit_head: Mutex<(u64, String)>,
    write_lock: AsyncMutex<()>,
}

/// Secondary indexes for the state checks, so a create costs O(keys of its owner), not O(all keys).
/// Names are indexed by a 64-bit hash of (owner, name), not by copies of the strings: the holder found
/// is always checked against its record, and the rare second key behind an equal hash waits in
/// `name_collisions`.
#[derive(Debug, Default)]
struct Owners {
    /// hash of (owner tenant or `None` for service keys, name) → the non-revoked key holding it.
    names: HashMap<u64, KeyId>,
    name_collisions: Vec<(u64, KeyId)>,
    /// tenant → its keys (any status).
    by_tenant: HashMap<String, BTreeSet<KeyId>>,
}

impl Registry {
    /// Loads every key, tenant and the audit head from the store. The keys load in two halves of
    /// the id space on two threads (ids are uniform over base62, `V` splits them evenly).
    pub fn load(store: Store) -> Result<Self, StoreError> {
        let index = Arc::new(KeyIndex::default());
        let load_half = |range: (std::ops::Bound<&'static [u8]>, std::ops::Bound<&'static [u8]>)| {
            let mut owners = Owners::default();
            store
                .for_each_key_in(range, |doc, usage| {
                    owners.add(&doc);
                    index.load(doc, &usage);
                })
                .map(|()| owners)
        };
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let (low, high) = std::thread::scope(|s| {
            let high = s.spawn(|| load_half((Included(b"V".as_slice()), Unbounded)));
            let low = load_half((Unbounded, Excluded(b"V".as_slice())));
            (low, high.join())
        });
        let mut owners = low?;
        owners.absorb(high.map_err(|_| StoreError::Corrupt {
            tree: "keys",
            id: String::new(),
            reason: "loader thread panicked".into(),
        })??);
        let tenants = store.load_tenants()?.into_iter().map(|t| (t.id.clone(), t)).collect();
        let audit_head = store.last_audit()?.map_or((0, GENESIS.to_owned()), |(seq, e)| (seq, e.hash));
        Ok(Registry {
            store,
            index,
            tenants: RwLock::new(tenants),
            owners: Mutex::new(owners),
            audit_head: Mutex::new(audit_head),
            write_lock: AsyncMutex::new(()),
        })
    }

    pub fn index(&self) -> &Arc<KeyIndex> {
        &self.index
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn get(&self, id: KeyId) -> Option<Arc<LiveKey>> {
        self.index.get(&id)
    }

    // --- keys ---

    /// Creates a key and returns it with its secret (the only time the secret exists).
    pub async fn create(
        &self,
        new: NewKey,
        key_prefix: &str,
        origin: &Origin,
        now: i64,
    ) -> Result<(Arc<LiveKey>, Secret), RegistryError> {
        self.write(|| {
            if let Some(tenant) = &new.tenant {
                let limit = self.tenant(tenant).ok_or_else(|| RegistryError::UnknownTenant(tenant.clone()))?.key_limit;
                if self.keys_used(tenant, now) >= limit as usize {
                    return Err(RegistryError::KeyLimitReached { tenant: tenant.clone(), limit });
                }
            }
            self.check_name_free(new.tenant.as_deref(), &new.name, None)?;
            let id = KeyId::generate();
            let secret = Secret::generate(key_prefix, new.environment, id);
            let changes = new.given_fields();
            let mut doc = KeyDoc::new(id, self.store.next_seq()?, &secret, new.name, new.environment, new.tenant, now);
            doc.description = new.description;
            doc.kind = new.kind;
            doc.role = new.role;
            doc.group = new.group;
            doc.permissions = sorted(new.permissions);
            doc.ip_allowlist = new.ip_allowlist;
            doc.rate_limit = new.rate_limit;
            doc.customer_id = new.customer_id;
            doc.expires_at = new.expires_at;
            let event =
                AuditEvent { action: "key.create", target: id.to_string(), tenant: doc.tenant.clone(), changes };
            self.commit(Write::PutKey(&doc), origin, event, now)?;
            self.lock_owners().add(&doc);
            Ok((self.index.publish(doc), secret))
        })
        .await
    }

    /// Edits the editable fields; records the names of the fields that really changed.
    pub async fn update(
        &self,
        id: KeyId,
        patch: KeyPatch,
        origin: &Origin,
        now: i64,
    ) -> Result<Arc<LiveKey>, RegistryError> {
        self.mutate(id, "key.update", origin, now, |registry, doc| {
            let mut changes = Vec::new();
            if let Some(name) = patch.name.filter(|n| *n != doc.name) {
                if doc.revoked_at.is_none() {
                    registry.check_name_free(doc.tenant.as_deref(), &name, Some(doc.id))?;
                }
                doc.name = name;
                changes.push("name");
            }
            set(&mut doc.description, patch.description, "description", &mut changes);
            set(&mut doc.group, patch.group, "group", &mut changes);
            set(&mut doc.permissions, patch.permissions.map(sorted), "permissions", &mut changes);
            set(&mut doc.role, patch.role, "role", &mut changes);
            set(&mut doc.ip_allowlist, patch.ip_allowlist, "ip_allowlist", &mut changes);
            set(&mut doc.rate_limit, patch.rate_limit, "rate_limit", &mut changes);
            set(&mut doc.customer_id, patch.customer_id, "customer_id", &mut changes);
            Ok(changes)
        })
        .await
    }

    /// Gives the key a new secret. The previous one keeps working until `now + grace_seconds`
    /// (not at all with 0); a new `expires_at` may be set at the same time.
    pub async fn rotate(
        &self,
        id: KeyId,
        expires_at: Option<i64>,
        grace_seconds: i64,
        key_prefix: &str,
        origin: &Origin,
        now: i64,
    ) -> Result<(Arc<LiveKey>, Secret), RegistryError> {
        let mut new_secret = None;
        let live = self
            .mutate(id, "key.rotate", origin, now, |registry, doc| {
                if doc.revoked_at.is_some() {
                    return Err(RegistryError::InvalidState(
                        "revoked",
                        "a revoked key cannot be rotated; create a new one",
                    ));
                }
                let secret = Secret::generate(key_prefix, doc.environment, doc.id);
                let mut changes = vec!["secret"];
                doc.rotation = (grace_seconds > 0).then(|| {
                    Box::new(RotationDoc {
                        previous_digest: doc.digest,
                        rotated_at: now,
                        previous_valid_until: now + grace_seconds,
                    })
                });
                changes.push("rotation");
                doc.digest = secret.digest();
                doc.mark = secret.mark();
                if let Some(at) = expires_at.filter(|at| Some(*at) != doc.expires_at) {
                    doc.expires_at = Some(at);
                    changes.push("expires_at");
                }
                new_secret = Some(secret);
                // The new grace period counts its previous-secret requests from zero.
                registry.index.reset_previous_requests(&doc.id);
                Ok(changes)
            })
            .await?;
        let secret = new_secret.ok_or_else(|| {
            RegistryError::Store(StoreError::Corrupt {
                tree: "keys",
                id: id.to_string(),
                reason: "rotation lost its secret".into(),
            })
        })?;
        Ok((live, secret))
    }

    /// Permanently revokes a key. 409 `already_revoked` the second time.
    pub async fn revoke(&self, id: KeyId, origin: &Origin, now: i64) -> Result<Arc<LiveKey>, RegistryError> {
        self.mutate(id, "key.revoke", origin, now, |_, doc| {
            if doc.revoked_at.is_some() {
                return Err(RegistryError::AlreadyRevoked);
            }
            doc.revoked_at = Some(now);
            doc.rotation = None;
            Ok(vec!["status"])
        })
        .await
    }

    /// Disables or enables a key; idempotent; refused for revoked or expired keys.
    pub async fn set_disabled(
        &self,
        id: KeyId,
        disabled: bool,
        origin: &Origin,
        now: i64,
    ) -> Result<Arc<LiveKey>, RegistryError> {
        let action = if disabled { "key.disable" } else { "key.enable" };
        self.mutate(id, action, origin, now, |_, doc| {
            match doc.status(now) {
                status @ (Status::Revoked | Status::Expired) => {
                    return Err(RegistryError::InvalidState(
                        status.name(),
                        "only active and inactive keys can be enabled or disabled",
                    ))
                }
                Status::Active | Status::Inactive => {}
            }
            if doc.disabled == disabled {
                return Ok(vec![]);
            }
            doc.disabled = disabled;
            Ok(vec!["status"])
        })
        .await
    }

    /// Deletes a key record; the audit log keeps its history.
    pub async fn delete(&self, id: KeyId, origin: &Origin, now: i64) -> Result<(), RegistryError> {
        self.write(|| {
            let doc = self.index.get(&id).ok_or(RegistryError::NotFound)?.doc.clone();
            let event = AuditEvent {
                action: "key.delete",
                target: id.to_string(),
                tenant: doc.tenant.clone(),
                changes: vec![],
            };
            self.commit(Write::DeleteKey(id), origin, event, now)?;
            self.lock_owners().remove(&doc);
            self.index.remove(&id);
            Ok(())
        })
        .await
    }

    /// Applies `change` to a copy of the key's record; when it changed something, stores the record
    /// with an audit entry naming the changed fields and publishes it. A change of nothing writes
    /// nothing (idempotent calls leave no audit noise), but is answered like a write, see [`Self::write`].
    async fn mutate(
        &self,
        id: KeyId,
        action: &'static str,
        origin: &Origin,
        now: i64,
        change: impl FnOnce(&Self, &mut KeyDoc) -> Result<Vec<&'static str>, RegistryError>,
    ) -> Result<Arc<LiveKey>, RegistryError> {
        self.write(|| {
            let current = self.index.get(&id).ok_or(RegistryError::NotFound)?;
            let mut doc = current.doc.clone();
            let changes = change(self, &mut doc)?;
            if changes.is_empty() {
                return Ok(current);
            }
            doc.updated_at = now;
            let event = AuditEvent {
                action,
                target: id.to_string(),
                tenant: doc.tenant.clone(),
                changes: changes.into_iter().map(str::to_owned).collect(),
            };
            self.commit(Write::PutKey(&doc), origin, event, now)?;
            self.lock_owners().update(&current.doc, &doc);
            Ok(self.index.publish(doc))
        })
        .await
    }

    /// Runs `mutation` under `write_lock`, then answers once everything written so far is durable
    /// (group commit: the wait happens after the lock is released). Every answer waits, not only a
    /// write: a no-op or a refusal (`already_revoked`, `name_taken`, `invalid_state`, ...) may report
    /// another caller's change that is published but not yet on disk, and a client told "already
    /// revoked" must not see the key come back after a crash.
    async fn write<T>(&self, mutation: impl FnOnce() -> Result<T, RegistryError>) -> Result<T, RegistryError> {
        let outcome = {
            let _guard = self.write_lock.lock().await;
            mutation()
        };
        self.store.durable().await?;
        outcome
    }

    /// Writes the record and the next audit entry in one transaction and advances the chain.
    /// Callers hold `write_lock`.
    fn commit(&self, write: Write<'_>, origin: &Origin, event: AuditEvent, now: i64) -> Result<(), StoreError> {
        let mut head = self.audit_head.lock().unwrap_or_else(|e| e.into_inner());
        let seq = head.0 + 1;
        let entry = AuditEntry::new(seq, rfc3339(now), origin, event, head.1.clone());
        self.store.commit(write, &entry, seq)?;
        *head = (seq, entry.hash);
        Ok(())
    }

    fn check_name_free(&self, owner: Option<&str>, name: &str, except: Option<KeyId>) -> Result<(), RegistryError> {
        let holders = self.lock_owners().holders(name_slot(owner, name));
        let taken = holders
            .into_iter()
            .filter(|id| Some(*id) != except)
            .filter_map(|id| self.index.get(&id))
            .any(|k| k.doc.owner() == owner && k.doc.name == name && k.doc.revoked_at.is_none());
        if taken {
            Err(RegistryError::NameTaken(name.to_owned()))
        } else {
            Ok(())
        }
    }

    fn lock_owners(&self) -> std::sync::MutexGuard<'_, Owners> {
        self.owners.lock().unwrap_or_else(|e| e.into_inner())
    }

    // --- tenants ---

    pub fn tenant(&self, id: &str) -> Option<TenantDoc> {
        self.tenants.read().unwrap_or_else(|e| e.into_inner()).get(id).cloned()
    }

    /// Every tenant, sorted by id.
    pub fn tenants(&self) -> Vec<TenantDoc> {
        let mut all: Vec<TenantDoc> =
            self.tenants.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// Keys of the tenant that are neither revoked nor expired.
    pub fn keys_used(&self, tenant: &str, now: i64) -> usize {
        let ids: Vec<KeyId> =
            self.lock_owners().by_tenant.get(tenant).map(|s| s.iter().copied().collect()).unwrap_or_default();
        ids.iter().filter_map(|id| self.index.get(id)).filter(|k| k.doc.counts_toward_limit(now)).count()
    }

    pub async fn create_tenant(
        &self,
        id: String,
        name: String,
        key_limit: u32,
        origin: &Origin,
        now: i64,
    ) -> Result<TenantDoc, RegistryError> {
        self.write(|| {
            if self.tenant(&id).is_some() {
                return Err(RegistryError::TenantExists(id));
            }
            let doc = TenantDoc { v: DOC_VERSION, id, name, key_limit, created_at: now, updated_at: now };
            let event = AuditEvent {
                action: "tenant.create",
                target: doc.id.clone(),
                tenant: Some(doc.id.clone()),
                changes: vec!["id".into(), "name".into(), "key_limit".into()],
            };
            self.commit(Write::PutTenant(&doc), origin, event, now)?;
            self.tenants.write().unwrap_or_else(|e| e.into_inner()).insert(doc.id.clone(), doc.clone());
            Ok(doc)
        })
        .await
    }

    pub async fn update_tenant(
        &self,
        id: &str,
        name: Option<String>,
        key_limit: Option<u32>,
        origin: &Origin,
        now: i64,
    ) -> Result<TenantDoc, RegistryError> {
        self.write(|| {
            let mut doc = self.tenant(id).ok_or(RegistryError::NotFound)?;
            let mut changes = Vec::new();
            set(&mut doc.name, name, "name", &mut changes);
            set(&mut doc.key_limit, key_limit, "key_limit", &mut changes);
            if !changes.is_empty() {
                doc.updated_at = now;
                let event = AuditEvent {
                    action: "tenant.update",
                    target: doc.id.clone(),
                    tenant: Some(doc.id.clone()),
                    changes: changes.into_iter().map(str::to_owned).collect(),
                };
                self.commit(Write::PutTenant(&doc), origin, event, now)?;
                self.tenants.write().unwrap_or_else(|e| e.into_inner()).insert(doc.id.clone(), doc.clone());
            }
            Ok(doc)
        })
        .await
    }
}

// === impl Owners ===

impl Owners {
    fn add(&mut self, doc: &KeyDoc) {
        if doc.revoked_at.is_none() {
            self.hold_name(name_slot(doc.owner(), &doc.name), doc.id);
        }
        if let Some(t) = &doc.tenant {
            self.by_tenant.entry(t.clone()).or_default().insert(doc.id);
        }
    }

    /// Takes in the entries of another index built over other keys.
    fn absorb(&mut self, other: Owners) {
        for (slot, id) in other.names.into_iter().chain(other.name_collisions) {
            self.hold_name(slot, id);
        }
        for (tenant, keys) in other.by_tenant {
            self.by_tenant.entry(tenant).or_default().extend(keys);
        }
    }

    /// Keys holding names with this hash (normally one at most).
    fn holders(&self, slot: u64) -> Vec<KeyId> {
        let collided = self.name_collisions.iter().filter(|(s, _)| *s == slot).map(|(_, id)| *id);
        self.names.get(&slot).copied().into_iter().chain(collided).collect()
    }

    fn hold_name(&mut self, slot: u64, id: KeyId) {
        match self.names.get(&slot) {
            None => {
                self.names.insert(slot, id);
            }
            Some(holder) if *holder == id => {}
            Some(_) => self.name_collisions.push((slot, id)),
        }
    }

    fn release_name(&mut self, slot: u64, id: KeyId) {
        if self.names.get(&slot) == Some(&id) {
            self.names.remove(&slot);
            if let Some(i) = self.name_collisions.iter().position(|(s, _)| *s == slot) {
                let (_, next) = self.name_collisions.swap_remove(i);
                self.names.insert(slot, next);
            }
        } else {
            self.name_collisions.retain(|entry| *entry != (slot, id));
        }
    }

    /// Follows a change of name or a revoke (which frees the name).
    fn update(&mut self, before: &KeyDoc, after: &KeyDoc) {
        if before.name != after.name || after.revoked_at.is_some() {
            self.release_name(name_slot(before.owner(), &before.name), before.id);
        }
        if after.revoked_at.is_none() {
            self.hold_name(name_slot(after.owner(), &after.name), after.id);
        }
    }

    fn remove(&mut self, doc: &KeyDoc) {
        self.release_name(name_slot(doc.owner(), &doc.name), doc.id);
        if let Some(keys) = doc.tenant.as_ref().and_then(|t| self.by_tenant.get_mut(t)) {
            keys.remove(&doc.id);
        }
    }
}

/// The name index's hash of (owner, name), stable within the process.
fn name_slot(owner: Option<&str>, name: &str) -> u64 {
    use std::hash::BuildHasher;
    static SEED: std::sync::LazyLock<foldhash::quality::RandomState> = std::sync::LazyLock::new(Default::default);
    SEED.hash_one((owner, name))
}

impl NewKey {
    /// A service key with every option at its default (for tools, benches and tests).
    pub fn service(name: String, environment: Environment) -> Self {
        NewKey {
            name,
            description: None,
            kind: Kind::Service,
            tenant: None,
            environment,
            role: Role::Admin,
            group: None,
            permissions: vec![],
            ip_allowlist: vec![],
            rate_limit: None,
            customer_id: None,
            expires_at: None,
        }
    }

    /// Names of the fields the creator set (for the audit entry).
    fn given_fields(&self) -> Vec<String> {
        let mut fields = vec!["name", "kind", "environment", "role"];
        let optional = [
            ("description", self.description.is_some()),
            ("tenant", self.tenant.is_some()),
            ("group", self.group.is_some()),
            ("permissions", !self.permissions.is_empty()),
            ("ip_allowlist", !self.ip_allowlist.is_empty()),
            ("rate_limit", self.rate_limit.is_some()),
            ("customer_id", self.customer_id.is_some()),
            ("expires_at", self.expires_at.is_some()),
        ];
        fields.extend(optional.iter().filter(|(_, given)| *given).map(|(name, _)| *name));
        fields.into_iter().map(str::to_owned).collect()
    }
}

/// Sets `field` to `value` when given and different, recording `name` as changed.
fn set<T: PartialEq>(field: &mut T, value: Option<T>, name: &'static str, changes: &mut Vec<&'static str>) {
    if let Some(value) = value.filter(|v| v != field) {
        *field = value;
        changes.push(name);
    }
}

fn sorted(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items.dedup();
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_colliding_hashes_keep_every_holder() {
        let mut owners = Owners::default();
        let (a, b, c) = (KeyId::generate(), KeyId::generate(), KeyId::generate());
        for id in [a, b, c] {
            owners.hold_name(7, id);
        }
        owners.hold_name(7, a);
        assert_eq!(owners.holders(7), vec![a, b, c], "the second and third wait behind the first, once each");
        owners.release_name(7, a);
        assert_eq!(owners.holders(7).len(), 2);
        assert!(!owners.holders(7).contains(&a));
        owners.release_name(7, c);
        owners.release_name(7, b);
        assert!(owners.holders(7).is_empty() && owners.names.is_empty());
    }

    #[tokio::test]
    async fn a_reload_finds_every_key_and_name_in_both_halves() {
        let dir = tempfile::tempdir().unwrap();
        let origin = Origin::default();
        let new = |n: usize| NewKey::service(format!("key {n}"), Environment::Production);
        let mut ids = Vec::new();
        {
            let registry = Registry::load(Store::open(dir.path()).unwrap()).unwrap();
            for n in 0..60 {
                ids.push(registry.create(new(n), "kg", &origin, 0).await.unwrap().0.doc.id);
            }
        }
        let halves = ids.iter().filter(|id| id.as_str() < "V").count();
        assert!(halves > 0 && halves < 60, "ids fall on both sides of V ({halves} below)");
        let registry = Registry::load(Store::open(dir.path()).unwrap()).unwrap();
        assert_eq!(registry.index().len(), 60);
        assert!(ids.iter().all(|id| registry.get(*id).is_some()));
        for n in [0, 59] {
            assert!(matches!(
                registry.check_name_free(None, &format!("key {n}"), None),
                Err(RegistryError::NameTaken(_))
            ));
        }
        assert!(registry.check_name_free(None, "key 60", None).is_ok());
    }

    #[test]
    fn name_slots_tell_owners_apart() {
        assert_ne!(name_slot(Some("acme"), "k"), name_slot(None, "k"));
        assert_ne!(name_slot(Some("acme"), "k"), name_slot(Some("globex"), "k"));
        assert_eq!(name_slot(Some("acme"), "k"), name_slot(Some("acme"), "k"));
    }
}
