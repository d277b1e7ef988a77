//! The durable store: the only module that names `sled`.
//!
//! Five trees, each a map from an id to one JSON document:
//! `keys` (id → [`KeyDoc`]), `usage` (id → [`UsageDoc`], written in batches by the usage flusher so
//! the hot path never rewrites a key), `tenants` (id → [`TenantDoc`]), `audit` (big-endian sequence
//! number → [`AuditEntry`]) and `meta` (name → bytes, e.g. the bootstrap admin token's digest).
//! Documents carry a version (`"v": 1`) for future migrations. Nothing here is ever a secret: keys
//! are stored as digests. A mutation and its audit entry are written in one transaction
//! ([`Store::commit`]): both or neither.
//!
//! Writes land in sled's in-memory log; [`Store::durable`] makes them durable. Admin mutations call
//! it before answering 2xx. Concurrent callers share flushes: a flush started after your write covers
//! it, so eight clients waiting together cost about one fsync, not eight (group commit).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Mutex;

use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use crate::audit::AuditEntry;
use crate::key::KeyId;
use crate::record::{KeyDoc, TenantDoc, UsageDoc};

const KEYS: &str = "keys";
const USAGE: &str = "usage";
const TENANTS: &str = "tenants";
const AUDIT: &str = "audit";
const META: &str = "meta";

/// The record half of a mutation (the other half is its audit entry).
#[derive(Debug, Clone, Copy)]
pub enum Write<'a> {
    PutKey(&'a KeyDoc),
    DeleteKey(KeyId),
    PutTenant(&'a TenantDoc),
}

/// sled's page cache. Keys are read from sled once, at start, into the index; afterwards sled serves
/// only admin writes and audit reads, so a small cache keeps the resident size per key down.
const CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// Meta entry holding the SHA-256 of the generated bootstrap admin token.
pub const META_BOOTSTRAP_TOKEN: &str = "bootstrap_token_sha256";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    #[error("store: record {tree}/{id} is unreadable ({reason}); refusing to start with a partial key set")]
    Corrupt { tree: &'static str, id: String, reason: String },
    #[error("store: cannot encode a record: {0}")]
    Encode(String),
}

/// A cheap-to-clone handle on the open database.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    keys: sled::Tree,
    usage: sled::Tree,
    tenants: sled::Tree,
    audit: sled::Tree,
    meta: sled::Tree,
    /// Serialises flushes so that waiters can join the next one (see [`Store::durable`]).
    flush_gate: Arc<Mutex<u64>>,
}

impl Store {
    /// Opens (or creates) the store in directory `path`. Fails if another process holds it.
    ///
    /// sled releases its directory lock from background threads shortly *after* the last handle is
    /// dropped, so a store closed a moment ago may still look held. Opening therefore retries for up
    /// to [`LOCK_WAIT`] before reporting the lock as taken.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let config = sled::Config::new().path(path).mode(sled::Mode::HighThroughput).cache_capacity(CACHE_BYTES);
        let db = retry_while_locked(LOCK_WAIT, || config.open())?;
        Ok(Store {
            keys: db.open_tree(KEYS)?,
            usage: db.open_tree(USAGE)?,
            tenants: db.open_tree(TENANTS)?,
            audit: db.open_tree(AUDIT)?,
            meta: db.open_tree(META)?,
            db,
            flush_gate: Arc::new(Mutex::new(0)),
        })
    }

    /// Calls `visit` with every key and its usage, in id order, one at a time (a million keys are
    /// never all decoded at once). Both trees are sorted by id, so usage is merged in one pass.
    pub fn for_each_key(&self, visit: impl FnMut(KeyDoc, UsageDoc)) -> Result<(), StoreError> {
        self.for_each_key_in(.., visit)
    }

    /// [`Store::for_each_key`] for the ids in `range` (by their text), so halves can load in parallel.
    pub fn for_each_key_in<R>(&self, range: R, mut visit: impl FnMut(KeyDoc, UsageDoc)) -> Result<(), StoreError>
    where
        R: std::ops::RangeBounds<&'static [u8]> + Clone,
    {
        let mut usage = self.usage.range::<&[u8], _>(range.clone());
        let mut pending: Option<(sled::IVec, sled::IVec)> = usage.next().transpose()?;
        for item in self.keys.range::<&[u8], _>(range) {
            let (id, bytes) = item?;
            let doc: KeyDoc = decode(KEYS, &id, &bytes)?;
            while pending.as_ref().is_some_and(|(uid, _)| uid < &id) {
                pending = usage.next().transpose()?;
            }
            let found = match &pending {
                Some((uid, ubytes)) if *uid == id => decode(USAGE, uid, ubytes)?,
                _ => UsageDoc::default(),
            };
            visit(doc, found);
        }
        Ok(())
    }

    pub fn load_tenants(&self) -> Result<Vec<TenantDoc>, StoreError> {
        self.tenants
            .iter()
            .map(|item| item.map_err(StoreError::from).and_then(|(id, bytes)| decode(TENANTS, &id, &bytes)))
            .collect()
    }

    /// A number larger than any returned before, also across restarts.
    pub fn next_seq(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }

    /// Writes a record change and its audit entry atomically (not yet durable: see [`Store::durable`]).
    pub fn commit(&self, write: Write<'_>, entry: &AuditEntry, seq: u64) -> Result<(), StoreError> {
        let audit_value = serde_json::to_vec(entry).map_err(|e| StoreError::Encode(e.to_string()))?;
        let record = match write {
            Write::PutKey(doc) => Some(encode(doc)?),
            Write::PutTenant(doc) => Some(encode(doc)?),
            Write::DeleteKey(_) => None,
        };
        let result: Result<(), TransactionError<()>> = (&self.keys, &self.usage, &self.tenants, &self.audit)
            .transaction(|(keys, usage, tenants, audit)| {
                match (write, &record) {
                    (Write::PutKey(doc), Some(bytes)) => {
                        keys.insert(doc.id.as_str(), bytes.as_slice())?;
                    }
                    (Write::PutTenant(doc), Some(bytes)) => {
                        tenants.insert(doc.id.as_str(), bytes.as_slice())?;
                    }
                    (Write::DeleteKey(id), _) => {
                        keys.remove(id.as_str())?;
                        usage.remove(id.as_str())?;
                    }
                    _ => return Err(ConflictableTransactionError::Abort(())),
                }
                audit.insert(&seq.to_be_bytes(), audit_value.as_slice())?;
                Ok(())
            });
        match result {
            Ok(()) => Ok(()),
            Err(TransactionError::Storage(e)) => Err(StoreError::Sled(e)),
            Err(TransactionError::Abort(())) => {
                Err(StoreError::Corrupt { tree: KEYS, id: String::new(), reason: "inconsistent write".into() })
            }
        }
    }

    /// The newest audit entry and its sequence number.
    pub fn last_audit(&self) -> Result<Option<(u64, AuditEntry)>, StoreError> {
        match self.audit.last()? {
            Some((k, v)) => Ok(Some((audit_seq(&k), decode_json(AUDIT, &k, &v)?))),
            None => Ok(None),
        }
    }

    /// Audit entries newest first, starting below sequence `before` (all when `None`).
    pub fn audit_newest_first(
        &self,
        before: Option<u64>,
    ) -> impl Iterator<Item = Result<(u64, AuditEntry), StoreError>> + '_ {
        let end = before.unwrap_or(u64::MAX);
        self.audit.range(..end.to_be_bytes()).rev().map(|item| {
            let (k, v) = item?;
            Ok((audit_seq(&k), decode_json(AUDIT, &k, &v)?))
        })
    }

    /// Every audit entry in log order (oldest first), with its sequence number; `None` for an entry
    /// that no longer decodes (tampered with, or damaged), so verification can name it.
    pub fn audit_in_order(&self) -> impl Iterator<Item = Result<(u64, Option<AuditEntry>), StoreError>> + '_ {
        self.audit.iter().map(|item| {
            let (k, v) = item?;
            Ok((audit_seq(&k), serde_json::from_slice(&v).ok()))
        })
    }

    /// Bulk-loads key records, in batches, without audit entries: for filling benchmark stores and
    /// for migrations, never for admin changes (those go through [`Store::commit`]).
    pub fn import_keys(&self, docs: &[KeyDoc]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for doc in docs {
            batch.insert(doc.id.as_str(), encode(doc)?);
        }
        self.keys.apply_batch(batch)?;
        Ok(())
    }

    /// Writes the usage of several keys in one atomic batch. Keys deleted meanwhile are skipped.
    pub fn put_usage(&self, batch: &[(KeyId, UsageDoc)]) -> Result<(), StoreError> {
        let mut writes = sled::Batch::default();
        for (id, usage) in batch {
            if self.keys.contains_key(id.as_str())? {
                writes.insert(id.as_str(), encode(usage)?);
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

/// How long [`Store::open`] waits for a directory lock that is still held.
const LOCK_WAIT: Duration = Duration::from_secs(3);
const LOCK_POLL: Duration = Duration::from_millis(10);

/// Calls `open` until it succeeds, fails for another reason than a held lock, or `wait` has passed.
fn retry_while_locked<T>(wait: Duration, mut open: impl FnMut() -> sled::Result<T>) -> sled::Result<T> {
    let deadline = Instant::now() + wait;
    loop {
        match open() {
            Err(e) if is_lock_held(&e) && Instant::now() < deadline => std::thread::sleep(LOCK_POLL),
            result => return result,
        }
    }
}

/// sled reports a held lock only as an `Other` I/O error with this message.
fn is_lock_held(error: &sled::Error) -> bool {
    matches!(error, sled::Error::Io(e) if e.to_string().starts_with("could not acquire lock"))
}

fn audit_seq(key: &[u8]) -> u64 {
    key.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

/// First byte of a binary record: postcard encoding, layout version 1 of [`KeyDoc`], [`UsageDoc`]
/// and [`TenantDoc`]. A record starting with `{` is JSON, as written before the binary format; it
/// still reads. A change of layout gets a new version byte and a decoder for the old one.
const BINARY_V1: u8 = 1;

/// Encodes a key, usage or tenant record: the version byte, then postcard.
fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![BINARY_V1];
    postcard::to_io(value, &mut out).map_err(|e| StoreError::Encode(e.to_string()))?;
    Ok(out)
}

fn decode<T: DeserializeOwned>(tree: &'static str, id: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&BINARY_V1, rest)) => postcard::from_bytes(rest).map_err(|e| corrupt(tree, id, e)),
        Some((b'{', _)) => decode_json(tree, id, bytes),
        Some((version, _)) => Err(corrupt(tree, id, format!("unknown record version {version}"))),
        None => Err(corrupt(tree, id, "empty record")),
    }
}

/// Audit entries stay JSON: their hash is defined over their JSON form, and they are read rarely.
fn decode_json<T: DeserializeOwned>(tree: &'static str, id: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(tree, id, e))
}

fn corrupt(tree: &'static str, id: &[u8], reason: impl ToString) -> StoreError {
    StoreError::Corrupt { tree, id: String::from_utf8_lossy(id).into_owned(), reason: reason.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditEvent, Origin, GENESIS};
    use crate::key::Secret;
    use crate::record::{Environment, DOC_VERSION};

    fn key_doc(seq: u64) -> KeyDoc {
        let id = KeyId::generate();
        KeyDoc::new(
            id,
            seq,
            &Secret::generate("kg", Environment::Staging, id),
            format!("key {seq}"),
            Environment::Staging,
            None,
            1,
        )
    }

    fn put(store: &Store, doc: &KeyDoc, seq: u64) {
        let event = AuditEvent { action: "key.create", target: doc.id.to_string(), tenant: None, changes: vec![] };
        let entry = AuditEntry::new(seq, "t".into(), &Origin::default(), event, GENESIS.into());
        store.commit(Write::PutKey(doc), &entry, seq).unwrap();
    }

    fn load(store: &Store) -> Vec<(KeyDoc, UsageDoc)> {
        let mut all = Vec::new();
        store.for_each_key(|doc, usage| all.push((doc, usage))).unwrap();
        all
    }

    #[tokio::test]
    async fn keys_and_usage_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (key_doc(2), key_doc(1));
        {
            let store = Store::open(dir.path()).unwrap();
            put(&store, &a, 1);
            put(&store, &b, 2);
            let usage = UsageDoc { v: DOC_VERSION, requests_total: 7, ..Default::default() };
            store.put_usage(&[(a.id, usage), (KeyId::generate(), UsageDoc::default())]).unwrap();
            store.durable().await.unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let loaded = load(&store);
        assert_eq!(loaded.len(), 2);
        let usage_of = |id| loaded.iter().find(|(d, _)| d.id == id).map(|(_, u)| u.clone()).unwrap();
        assert_eq!(usage_of(a.id).requests_total, 7);
        assert_eq!(usage_of(b.id), UsageDoc::default());
    }

    #[tokio::test]
    async fn usage_is_merged_to_the_right_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let docs: Vec<KeyDoc> = (0..20).map(key_doc).collect();
        for (i, doc) in docs.iter().enumerate() {
            put(&store, doc, i as u64 + 1);
        }
        let with_usage: Vec<(KeyId, UsageDoc)> = docs
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 == 0)
            .map(|(i, d)| (d.id, UsageDoc { v: DOC_VERSION, requests_total: i as u64 + 100, ..Default::default() }))
            .collect();
        store.put_usage(&with_usage).unwrap();
        // An orphan usage record (its key is gone) must be skipped, not attached to a neighbour.
        store
            .usage
            .insert(
                KeyId::generate().as_str(),
                serde_json::to_vec(&UsageDoc { requests_total: 9, ..Default::default() }).unwrap(),
            )
            .unwrap();
        let loaded = load(&store);
        assert_eq!(loaded.len(), 20);
        for (doc, usage) in loaded {
            let i = docs.iter().position(|d| d.id == doc.id).unwrap();
            let expected = if i % 3 == 0 { i as u64 + 100 } else { 0 };
            assert_eq!(usage.requests_total, expected, "key {i}");
        }
    }

    #[tokio::test]
    async fn records_written_as_json_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let doc = key_doc(1);
        store.keys.insert(doc.id.as_str(), serde_json::to_vec(&doc).unwrap()).unwrap();
        let binary = key_doc(2);
        put(&store, &binary, 1);
        let mut loaded = load(&store);
        loaded.sort_by_key(|(d, _)| d.seq);
        assert_eq!(loaded.into_iter().map(|(d, _)| d).collect::<Vec<_>>(), vec![doc, binary]);
    }

    #[tokio::test]
    async fn a_record_of_an_unknown_version_refuses_to_load() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.keys.insert("AAAAAAAAAAAAAAAA", &[9u8, 1, 2][..]).unwrap();
        assert!(matches!(store.for_each_key(|_, _| {}), Err(StoreError::Corrupt { .. })));
    }

    #[tokio::test]
    async fn a_corrupt_record_refuses_to_load() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.keys.insert("AAAAAAAAAAAAAAAA", &b"{not json"[..]).unwrap();
        assert!(matches!(store.for_each_key(|_, _| {}), Err(StoreError::Corrupt { .. })));
    }

    #[tokio::test]
    async fn concurrent_durable_calls_all_return() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    put(&store, &key_doc(i), i + 1);
                    store.durable().await.unwrap();
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(load(&store).len(), 8);
        assert_eq!(store.audit_in_order().filter(|e| matches!(e, Ok((_, Some(_))))).count(), 8);
        assert_eq!(store.last_audit().unwrap().unwrap().0, 8);
    }

    #[tokio::test]
    async fn a_delete_removes_key_and_usage_and_keeps_the_audit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let doc = key_doc(1);
        put(&store, &doc, 1);
        store.put_usage(&[(doc.id, UsageDoc::default())]).unwrap();
        let event = AuditEvent { action: "key.delete", target: doc.id.to_string(), tenant: None, changes: vec![] };
        let entry = AuditEntry::new(2, "t".into(), &Origin::default(), event, GENESIS.into());
        store.commit(Write::DeleteKey(doc.id), &entry, 2).unwrap();
        assert!(load(&store).is_empty());
        let newest: Vec<u64> = store.audit_newest_first(None).map(|e| e.unwrap().0).collect();
        assert_eq!(newest, vec![2, 1]);
        let below: Vec<u64> = store.audit_newest_first(Some(2)).map(|e| e.unwrap().0).collect();
        assert_eq!(below, vec![1]);
    }

    #[test]
    fn a_lock_released_while_opening_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let mut holder = Some(Store::open(dir.path()).unwrap());
        let mut attempts = 0;
        let reopened = retry_while_locked(LOCK_WAIT, || {
            attempts += 1;
            let result = sled::Config::new().path(dir.path()).open();
            holder = None; // the first attempt met the held lock; now the holder closes
            result
        });
        assert!(reopened.is_ok(), "{:?}", reopened.err());
        assert!(attempts >= 2, "the first attempt must have met the lock");
    }

    #[test]
    fn a_lock_still_held_after_the_wait_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let _holder = Store::open(dir.path()).unwrap();
        let err = retry_while_locked(Duration::from_millis(50), || sled::Config::new().path(dir.path()).open())
            .expect_err("a held store must not open twice");
        assert!(is_lock_held(&err), "{err}");
    }

    #[test]
    fn other_open_errors_are_not_retried() {
        let mut attempts = 0;
        let result: sled::Result<()> = retry_while_locked(LOCK_WAIT, || {
            attempts += 1;
            Err(sled::Error::Unsupported("not a lock".into()))
        });
        assert!(result.is_err());
        assert_eq!(attempts, 1);
    }
}
