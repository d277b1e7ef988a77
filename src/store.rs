//! The durable store: the only module that names `sled`.
//!
//! Four trees, each a map from an id to one versioned JSON document (`"v": 1`):
//! `keys` (id → [`KeyDoc`]), `usage` (id → [`UsageDoc`], written in batches by the usage flusher so
//! the hot path never rewrites a key), `tenants` (id → [`TenantDoc`]) and `meta` (name → bytes, e.g.
//! the bootstrap admin token's digest). Nothing here is ever a secret: keys are stored as digests.
//!
//! Writes land in sled's in-memory log; [`Store::durable`] makes them durable. Admin mutations call
//! it before answering 2xx. Concurrent callers share flushes: a flush started after your write covers
//! it, so eight clients waiting together cost about one fsync, not eight (group commit).

use std::path::Path;
use std::sync::Arc;

use serde::{de::DeserializeOwned, Serialize};
use tokio::sync::Mutex;

use crate::key::KeyId;
use crate::record::{KeyDoc, TenantDoc, UsageDoc};

const KEYS: &str = "keys";
const USAGE: &str = "usage";
const TENANTS: &str = "tenants";
const META: &str = "meta";

/// Meta entry holding the SHA-256 of the generated bootstrap admin token.
pub const META_BOOTSTRAP_TOKEN: &str = "bootstrap_token_sha256";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    #[error("store: record {tree}/{id} is unreadable ({reason}); refusing to start with a partial key set")]
    Corrupt {
        tree: &'static str,
        id: String,
        reason: String,
    },
    #[error("store: cannot encode a record: {0}")]
    Encode(#[from] serde_json::Error),
}

/// A cheap-to-clone handle on the open database.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    keys: sled::Tree,
    usage: sled::Tree,
    tenants: sled::Tree,
    meta: sled::Tree,
    /// Serialises flushes so that waiters can join the next one (see [`Store::durable`]).
    flush_gate: Arc<Mutex<u64>>,
}

impl Store {
    /// Opens (or creates) the store in directory `path`. Fails if another process holds it.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(path)
            .mode(sled::Mode::HighThroughput)
            .open()?;
        Ok(Store {
            keys: db.open_tree(KEYS)?,
            usage: db.open_tree(USAGE)?,
            tenants: db.open_tree(TENANTS)?,
            meta: db.open_tree(META)?,
            db,
            flush_gate: Arc::new(Mutex::new(0)),
        })
    }

    /// Every key with its usage, in creation order.
    pub fn load_keys(&self) -> Result<Vec<(KeyDoc, UsageDoc)>, StoreError> {
        let mut out = Vec::new();
        for item in self.keys.iter() {
            let (id, bytes) = item?;
            let doc: KeyDoc = decode(KEYS, &id, &bytes)?;
            let usage = match self.usage.get(&id)? {
                Some(bytes) => decode(USAGE, &id, &bytes)?,
                None => UsageDoc::default(),
            };
            out.push((doc, usage));
        }
        out.sort_by_key(|(doc, _)| doc.seq);
        Ok(out)
    }

    pub fn load_tenants(&self) -> Result<Vec<TenantDoc>, StoreError> {
        self.tenants
            .iter()
            .map(|item| {
                item.map_err(StoreError::from)
                    .and_then(|(id, bytes)| decode(TENANTS, &id, &bytes))
            })
            .collect()
    }

    /// A number larger than any returned before, also across restarts.
    pub fn next_seq(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }

    pub fn put_key(&self, doc: &KeyDoc) -> Result<(), StoreError> {
        self.keys
            .insert(doc.id.as_str(), serde_json::to_vec(doc)?)?;
        Ok(())
    }

    pub fn remove_key(&self, id: KeyId) -> Result<(), StoreError> {
        self.keys.remove(id.as_str())?;
        self.usage.remove(id.as_str())?;
        Ok(())
    }

    pub fn put_tenant(&self, doc: &TenantDoc) -> Result<(), StoreError> {
        self.tenants
            .insert(doc.id.as_str(), serde_json::to_vec(doc)?)?;
        Ok(())
    }

    /// Writes the usage of several keys in one atomic batch. Keys deleted meanwhile are skipped.
    pub fn put_usage(&self, batch: &[(KeyId, UsageDoc)]) -> Result<(), StoreError> {
        let mut writes = sled::Batch::default();
        for (id, usage) in batch {
            if self.keys.contains_key(id.as_str())? {
                writes.insert(id.as_str(), serde_json::to_vec(usage)?);
            }
        }
        self.usage.apply_batch(writes)?;
        Ok(())
    }

    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(name)?.map(|v| v.to_vec()))
    }

    pub fn set_meta(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(name, value)?;
        Ok(())
    }

    /// Returns once every write made before the call is on disk.
    ///
    /// Group commit: a caller takes a ticket, then waits for the flush gate. If a flush that started
    /// after its ticket already finished while it waited, there is nothing left to do.
    pub async fn durable(&self) -> Result<(), StoreError> {
        let ticket = self.db.generate_id()?;
        let mut flushed_up_to = self.flush_gate.lock().await;
        if *flushed_up_to > ticket {
            return Ok(());
        }
        let covers = self.db.generate_id()?;
        self.db.flush_async().await?;
        *flushed_up_to = covers;
        Ok(())
    }

    /// Blocking flush, for shutdown.
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

fn decode<T: DeserializeOwned>(
    tree: &'static str,
    id: &[u8],
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        tree,
        id: String::from_utf8_lossy(id).into_owned(),
        reason: e.to_string(),
    })
}

/// Encodes a value the way the store does (used by tests that tamper with records).
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    Ok(serde_json::to_vec(value)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Digest;
    use crate::record::{Environment, Kind, Role, DOC_VERSION};

    fn key_doc(seq: u64) -> KeyDoc {
        KeyDoc {
            v: DOC_VERSION,
            id: KeyId::generate(),
            seq,
            digest: Digest::of(b"k"),
            mark: "abcd".into(),
            name: format!("key {seq}"),
            description: None,
            kind: Kind::Service,
            tenant: None,
            environment: Environment::Staging,
            role: Role::Admin,
            group: None,
            permissions: vec![],
            ip_allowlist: vec![],
            rate_limit: None,
            customer_id: None,
            expires_at: None,
            disabled: false,
            revoked_at: None,
            created_at: 1,
            updated_at: 1,
            rotation: None,
        }
    }

    #[tokio::test]
    async fn keys_and_usage_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (key_doc(2), key_doc(1));
        {
            let store = Store::open(dir.path()).unwrap();
            store.put_key(&a).unwrap();
            store.put_key(&b).unwrap();
            let usage = UsageDoc {
                v: DOC_VERSION,
                requests_total: 7,
                ..Default::default()
            };
            store
                .put_usage(&[(a.id, usage), (KeyId::generate(), UsageDoc::default())])
                .unwrap();
            store.durable().await.unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let loaded = store.load_keys().unwrap();
        assert_eq!(
            loaded.iter().map(|(d, _)| d.id).collect::<Vec<_>>(),
            vec![b.id, a.id],
            "creation order"
        );
        assert_eq!(loaded[1].1.requests_total, 7);
        assert_eq!(loaded[0].1, UsageDoc::default());
    }

    #[tokio::test]
    async fn a_corrupt_record_refuses_to_load() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .keys
            .insert("AAAAAAAAAAAAAAAA", &b"{not json"[..])
            .unwrap();
        assert!(matches!(store.load_keys(), Err(StoreError::Corrupt { .. })));
    }

    #[tokio::test]
    async fn concurrent_durable_calls_all_return() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store.put_key(&key_doc(i)).unwrap();
                    store.durable().await.unwrap();
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(store.load_keys().unwrap().len(), 8);
    }
}
