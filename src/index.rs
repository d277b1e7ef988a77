//! The in-memory key index the request path reads: `KeyId → Arc<LiveKey>` in a [`DashMap`].
//!
//! A [`LiveKey`] is immutable configuration ([`KeyDoc`]) plus the state that outlives edits
//! ([`KeyState`]: usage counters and the rate-limit [`Bucket`], in one allocation). An admin change
//! builds a new `LiveKey` sharing that state and swaps the `Arc`; requests already holding the old
//! one finish with it.
//!
//! Only the registry writes the index after startup. Readers clone the `Arc` out and drop the map
//! guard at once: no guard is ever held across an `.await` or another map call.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dashmap::DashMap;

use crate::key::KeyId;
use crate::limit::Bucket;
use crate::record::{KeyDoc, UsageDoc, DOC_VERSION};

/// A key as the request path sees it.
#[derive(Debug)]
pub struct LiveKey {
    pub doc: KeyDoc,
    pub state: Arc<KeyState>,
}

/// What a key accumulates while it serves requests; shared by every version of its record.
#[derive(Debug, Default)]
pub struct KeyState {
    pub usage: Usage,
    pub bucket: Bucket,
}

/// Usage of one key, updated in memory per request and flushed in batches.
#[derive(Debug, Default)]
pub struct Usage {
    requests_total: AtomicU64,
    previous_requests: AtomicU64,
    /// Unix seconds; 0 = never used.
    last_used_at: AtomicI64,
    last_used_ip: Mutex<Option<IpAddr>>,
    /// Set by a request, cleared by the flusher when it takes a snapshot.
    dirty: AtomicBool,
}

/// The index plus the queue of keys whose usage changed since the last flush.
/// Ids are random and chosen by keygate, so a fast hasher is safe here (with a per-process seed).
#[derive(Debug, Default)]
pub struct KeyIndex {
    keys: DashMap<KeyId, Arc<LiveKey>, foldhash::fast::RandomState>,
    dirty: Mutex<Vec<KeyId>>,
}

// === impl KeyIndex ===

impl KeyIndex {
    pub fn get(&self, id: &KeyId) -> Option<Arc<LiveKey>> {
        self.keys.get(id).map(|entry| entry.value().clone())
    }

    /// Inserts or replaces a key. A replacement keeps the usage and the bucket of the old entry.
    pub fn publish(&self, doc: KeyDoc) -> Arc<LiveKey> {
        let state = self.get(&doc.id).map(|old| old.state.clone()).unwrap_or_default();
        let live = Arc::new(LiveKey { doc, state });
        self.keys.insert(live.doc.id, live.clone());
        live
    }

    /// Loads a key from the store at startup, with its persisted usage.
    pub fn load(&self, doc: KeyDoc, usage: &UsageDoc) {
        let live =
            LiveKey { doc, state: Arc::new(KeyState { usage: Usage::from_doc(usage), bucket: Bucket::default() }) };
        self.keys.insert(live.doc.id, Arc::new(live));
    }

    pub fn remove(&self, id: &KeyId) -> Option<Arc<LiveKey>> {
        self.keys.remove(id).map(|(_, v)| v)
    }

    /// A snapshot of every key (no map guard survives the call).
    pub fn all(&self) -> Vec<Arc<LiveKey>> {
        self.keys.iter().map(|entry| entry.value().clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Records one authenticated request of `key` (memory only).
    pub fn touch(&self, key: &LiveKey, ip: IpAddr, now: i64, with_previous_secret: bool) {
        if key.state.usage.touch(ip, now, with_previous_secret) {
            self.queue(key.doc.id);
        }
    }

    /// A rotation starts counting the previous secret's requests of key `id` from zero.
    pub fn reset_previous_requests(&self, id: &KeyId) {
        if self.get(id).is_some_and(|key| key.state.usage.reset_previous_requests()) {
            self.queue(*id);
        }
    }

    /// Queues a key that just became dirty for the next flush. Every dirty key must be queued
    /// exactly once: a dirty key that is not queued is never queued again and never flushed.
    fn queue(&self, id: KeyId) {
        self.dirty.lock().unwrap_or_else(|e| e.into_inner()).push(id);
    }

    /// Takes the usage of every key touched since the last call, for the flusher.
    pub fn take_dirty(&self) -> Vec<(KeyId, UsageDoc)> {
        let ids = std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|e| e.into_inner()));
        ids.into_iter()
            .filter_map(|id| {
                let key = self.get(&id)?;
                key.state.usage.dirty.store(false, Ordering::Release);
                Some((id, key.state.usage.snapshot()))
            })
            .collect()
    }
}

// === impl Usage ===

impl Usage {
    fn from_doc(doc: &UsageDoc) -> Self {
        Usage {
            requests_total: AtomicU64::new(doc.requests_total),
            previous_requests: AtomicU64::new(doc.previous_requests),
            last_used_at: AtomicI64::new(doc.last_used_at.unwrap_or(0)),
            last_used_ip: Mutex::new(doc.last_used_ip),
            dirty: AtomicBool::new(false),
        }
    }

    /// Counts a request; returns true when the key just became dirty (queue it once).
    fn touch(&self, ip: IpAddr, now: i64, with_previous_secret: bool) -> bool {
        self.requests_total.fetch_add(1, Ordering::Relaxed);
        if with_previous_secret {
            self.previous_requests.fetch_add(1, Ordering::Relaxed);
        }
        self.last_used_at.fetch_max(now, Ordering::Relaxed);
        *self.last_used_ip.lock().unwrap_or_else(|e| e.into_inner()) = Some(ip);
        !self.dirty.swap(true, Ordering::AcqRel)
    }

    pub fn snapshot(&self) -> UsageDoc {
        let at = self.last_used_at.load(Ordering::Relaxed);
        UsageDoc {
            v: DOC_VERSION,
            last_used_at: (at != 0).then_some(at),
            last_used_ip: *self.last_used_ip.lock().unwrap_or_else(|e| e.into_inner()),
            requests_total: self.requests_total.load(Ordering::Relaxed),
            previous_requests: self.previous_requests.load(Ordering::Relaxed),
        }
    }

    /// Zeroes the previous secret's count; returns true when the key just became dirty (queue it once).
    fn reset_previous_requests(&self) -> bool {
        self.previous_requests.store(0, Ordering::Relaxed);
        !self.dirty.swap(true, Ordering::AcqRel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Secret;
    use crate::record::Environment;

    fn doc() -> KeyDoc {
        let id = KeyId::generate();
        KeyDoc::new(
            id,
            1,
            &Secret::generate("kg", Environment::Production, id),
            "n".into(),
            Environment::Production,
            None,
            0,
        )
    }

    #[test]
    fn touches_queue_a_key_once_per_flush() {
        let index = KeyIndex::default();
        let key = index.publish(doc());
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        index.touch(&key, ip, 100, false);
        index.touch(&key, ip, 101, true);
        let taken = index.take_dirty();
        assert_eq!(taken.len(), 1);
        let usage = &taken[0].1;
        assert_eq!(
            (usage.requests_total, usage.previous_requests, usage.last_used_at, usage.last_used_ip),
            (2, 1, Some(101), Some(ip))
        );
        assert!(index.take_dirty().is_empty(), "nothing new since the last flush");
        index.touch(&key, ip, 102, false);
        assert_eq!(index.take_dirty().len(), 1);
    }

    #[test]
    fn a_rotation_reset_queues_the_key_and_later_touches_still_do() {
        let index = KeyIndex::default();
        let key = index.publish(doc());
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        index.touch(&key, ip, 100, true);
        assert_eq!(index.take_dirty().len(), 1);
        index.reset_previous_requests(&key.doc.id);
        let taken = index.take_dirty();
        assert_eq!(taken.len(), 1, "the reset itself must be flushed");
        assert_eq!((taken[0].1.requests_total, taken[0].1.previous_requests), (1, 0));
        index.touch(&key, ip, 101, true);
        let taken = index.take_dirty();
        assert_eq!(taken.len(), 1, "a request after the reset must be flushed");
        assert_eq!((taken[0].1.requests_total, taken[0].1.previous_requests), (2, 1));
    }

    #[test]
    fn republishing_keeps_usage_and_bucket() {
        let index = KeyIndex::default();
        let first = index.publish(doc());
        index.touch(&first, "::1".parse().unwrap(), 5, false);
        let mut edited = first.doc.clone();
        edited.disabled = true;
        let second = index.publish(edited);
        assert!(Arc::ptr_eq(&first.state, &second.state));
        assert!(index.get(&first.doc.id).unwrap().doc.disabled);
    }
}
