//! The single write path for keys and tenants: check conflicts → write the store → publish to the
//! index → wait until durable.
//!
//! Mutations run one at a time under `write_lock`, so a read-modify-write (revoke racing a disable,
//! two creates racing for a name) always sees the previous one's result. The index is updated while
//! the lock is held, so the proxy sees changes in the order the store has them; the durability wait
//! happens after the lock is released so concurrent mutations share one flush (group commit).
//! A revoke or disable is therefore in effect in the proxy *before* its answer is sent, and the
//! answer is sent only once the change is on disk.
//!
//! Input validation (field formats) is the admin API's job; this module enforces the rules that
//! depend on current state: tenants exist, names are unique per owner, tenant key limits.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use tokio::sync::Mutex;

use crate::index::{KeyIndex, LiveKey};
use crate::key::{KeyId, Secret};
use crate::record::{Environment, KeyDoc, Kind, RateLimit, Role, Status, TenantDoc, DOC_VERSION};
use crate::store::{Store, StoreError};

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
    #[error("the key is {0}; only active and inactive keys can be enabled or disabled")]
    InvalidState(&'static str),
    #[error("a tenant with id {0:?} already exists")]
    TenantExists(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Registry {
    store: Store,
    index: Arc<KeyIndex>,
    tenants: RwLock<BTreeMap<String, TenantDoc>>,
    write_lock: Mutex<()>,
}

impl Registry {
    /// Loads every key and tenant from the store into memory.
    pub fn load(store: Store, index: Arc<KeyIndex>) -> Result<Self, StoreError> {
        for (doc, usage) in store.load_keys()? {
            index.load(doc, &usage);
        }
        let tenants = store
            .load_tenants()?
            .into_iter()
            .map(|t| (t.id.clone(), t))
            .collect();
        Ok(Registry {
            store,
            index,
            tenants: RwLock::new(tenants),
            write_lock: Mutex::new(()),
        })
    }

    pub fn index(&self) -> &Arc<KeyIndex> {
        &self.index
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    // --- keys ---

    pub fn get(&self, id: KeyId) -> Option<Arc<LiveKey>> {
        self.index.get(&id)
    }

    /// Creates a key and returns it with its secret (the only time the secret exists).
    pub async fn create(
        &self,
        new: NewKey,
        key_prefix: &str,
        now: i64,
    ) -> Result<(Arc<LiveKey>, Secret), RegistryError> {
        let live = {
            let _guard = self.write_lock.lock().await;
            if let Some(tenant) = &new.tenant {
                let limit = self
                    .tenant(tenant)
                    .ok_or_else(|| RegistryError::UnknownTenant(tenant.clone()))?
                    .key_limit;
                if self.keys_used(tenant, now) >= limit as usize {
                    return Err(RegistryError::KeyLimitReached {
                        tenant: tenant.clone(),
                        limit,
                    });
                }
            }
            self.check_name_free(new.tenant.as_deref(), &new.name, None, now)?;
            let id = KeyId::generate();
            let secret = Secret::generate(key_prefix, new.environment, id);
            let doc = KeyDoc {
                v: DOC_VERSION,
                id,
                seq: self.store.next_seq()?,
                digest: secret.digest(),
                mark: secret.mark(),
                name: new.name,
                description: new.description,
                kind: new.kind,
                tenant: new.tenant,
                environment: new.environment,
                role: new.role,
                group: new.group,
                permissions: sorted(new.permissions),
                ip_allowlist: new.ip_allowlist,
                rate_limit: new.rate_limit,
                customer_id: new.customer_id,
                expires_at: new.expires_at,
                disabled: false,
                revoked_at: None,
                created_at: now,
                updated_at: now,
                rotation: None,
            };
            self.store.put_key(&doc)?;
            (self.index.publish(doc), secret)
        };
        self.store.durable().await?;
        Ok(live)
    }

    /// Permanently revokes a key. 409 `already_revoked` the second time.
    pub async fn revoke(&self, id: KeyId, now: i64) -> Result<Arc<LiveKey>, RegistryError> {
        self.mutate(id, |doc| {
            if doc.revoked_at.is_some() {
                return Err(RegistryError::AlreadyRevoked);
            }
            doc.revoked_at = Some(now);
            doc.rotation = None;
            doc.updated_at = now;
            Ok(())
        })
        .await
    }

    /// Disables (`disabled = true`) or enables a key; idempotent; refused for revoked or expired keys.
    pub async fn set_disabled(
        &self,
        id: KeyId,
        disabled: bool,
        now: i64,
    ) -> Result<Arc<LiveKey>, RegistryError> {
        self.mutate(id, |doc| {
            match doc.status(now) {
                status @ (Status::Revoked | Status::Expired) => {
                    return Err(RegistryError::InvalidState(status.name()))
                }
                Status::Active | Status::Inactive => {}
            }
            if doc.disabled != disabled {
                doc.disabled = disabled;
                doc.updated_at = now;
            }
            Ok(())
        })
        .await
    }

    /// Applies `change` to a copy of the key's record, stores it and publishes it.
    async fn mutate(
        &self,
        id: KeyId,
        change: impl FnOnce(&mut KeyDoc) -> Result<(), RegistryError>,
    ) -> Result<Arc<LiveKey>, RegistryError> {
        let live = {
            let _guard = self.write_lock.lock().await;
            let mut doc = self
                .index
                .get(&id)
                .ok_or(RegistryError::NotFound)?
                .doc
                .clone();
            change(&mut doc)?;
            self.store.put_key(&doc)?;
            self.index.publish(doc)
        };
        self.store.durable().await?;
        Ok(live)
    }

    fn check_name_free(
        &self,
        owner: Option<&str>,
        name: &str,
        except: Option<KeyId>,
        now: i64,
    ) -> Result<(), RegistryError> {
        let taken = self.index.all().iter().any(|k| {
            k.doc.owner() == owner
                && k.doc.name == name
                && Some(k.doc.id) != except
                && k.doc.status(now) != Status::Revoked
        });
        if taken {
            Err(RegistryError::NameTaken(name.to_owned()))
        } else {
            Ok(())
        }
    }

    // --- tenants ---

    pub fn tenant(&self, id: &str) -> Option<TenantDoc> {
        self.tenants
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    pub fn tenants(&self) -> Vec<TenantDoc> {
        self.tenants
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Keys of the tenant that are neither revoked nor expired.
    pub fn keys_used(&self, tenant: &str, now: i64) -> usize {
        self.index
            .all()
            .iter()
            .filter(|k| k.doc.tenant.as_deref() == Some(tenant) && k.doc.counts_toward_limit(now))
            .count()
    }

    pub async fn create_tenant(
        &self,
        id: String,
        name: String,
        key_limit: u32,
        now: i64,
    ) -> Result<TenantDoc, RegistryError> {
        let doc = {
            let _guard = self.write_lock.lock().await;
            if self.tenant(&id).is_some() {
                return Err(RegistryError::TenantExists(id));
            }
            let doc = TenantDoc {
                v: DOC_VERSION,
                id,
                name,
                key_limit,
                created_at: now,
                updated_at: now,
            };
            self.store.put_tenant(&doc)?;
            self.tenants
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(doc.id.clone(), doc.clone());
            doc
        };
        self.store.durable().await?;
        Ok(doc)
    }
}

fn sorted(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items.dedup();
    items
}
