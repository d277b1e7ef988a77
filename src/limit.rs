//! Rate limiting: a GCRA token bucket per key and per client IP (SPEC §2.2 `rate_limit`, §4.1, §4.4).
//!
//! Why not governor: the contract needs two things governor 0.10 keeps private — a check that does
//! not consume (the failed-auth rule "once the bucket is empty, every request from that IP gets 429"),
//! and the bucket's theoretical arrival time, from which the `t` of the `RateLimit` field ("seconds
//! until the bucket is full again") is exact. GCRA itself is a few lines; the state is one `AtomicU64`
//! per bucket plus the fingerprint of the quota it was measured in. The quota is passed in at each
//! check, so a reloaded default or an edited key limit applies to the very next request: a bucket
//! whose quota changed starts again full under the new one (its old state means nothing in the new
//! units — a key whose limit was just raised must not wait out the old limit's backlog).
//!
//! Time is nanoseconds on a monotonic clock ([`now`]); tests pass explicit times.

use std::sync::{atomic::AtomicU64, atomic::Ordering, LazyLock};
use std::time::{Duration, Instant};

use crate::record::{Period, RateLimit};

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Monotonic nanoseconds since the first call in this process (never 0 after the first tick).
pub fn now() -> u64 {
    EPOCH.elapsed().as_nanos() as u64 + 1
}

/// GCRA parameters of one quota: one request every `interval`, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// `N` of "N per period", as shown in `RateLimit-Policy` and whoami.
    pub limit: u32,
    pub period: Period,
    interval: u64,
    burst: u32,
}

/// What a check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Admitted: `remaining` requests fit in the bucket now; it is full again after `reset`.
    Allowed { remaining: u32, reset: Duration },
    /// Refused: the next request would be admitted after `retry_after`.
    Limited { retry_after: Duration },
}

/// The state of one bucket: its theoretical arrival time (0 for a full bucket) and the quota it
/// was measured in.
#[derive(Debug, Default)]
pub struct Bucket {
    tat: AtomicU64,
    quota: AtomicU64,
}

// === impl Gcra ===

impl Gcra {
    pub fn new(rate: &RateLimit) -> Self {
        let limit = rate.limit().max(1);
        let burst = rate.burst.unwrap_or(limit).max(1);
        let interval = (rate.period.as_nanos() / u64::from(limit)).max(1);
        Gcra { limit, period: rate.period, interval, burst }
    }

    fn capacity(&self) -> u64 {
        self.interval.saturating_mul(u64::from(self.burst))
    }

    /// Identifies the quota (never 0, the fingerprint of a bucket never checked).
    fn fingerprint(&self) -> u64 {
        (self.interval.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(self.burst)) | 1
    }
}

// === impl Bucket ===

impl Bucket {
    /// Takes one request from the bucket if it fits.
    pub fn check(&self, gcra: &Gcra, now: u64) -> Decision {
        self.adopt(gcra);
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let next = tat.max(now).saturating_add(gcra.interval);
            let debt = next - now;
            if debt > gcra.capacity() {
                return Decision::Limited { retry_after: Duration::from_nanos(debt - gcra.capacity()) };
            }
            match self.tat.compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => {
                    let remaining = (gcra.capacity() - debt) / gcra.interval;
                    return Decision::Allowed { remaining: remaining as u32, reset: Duration::from_nanos(debt) };
                }
                Err(current) => tat = current,
            }
        }
    }

    /// When the bucket has no room for one more request: how long until it has. Consumes nothing.
    pub fn empty_for(&self, gcra: &Gcra, now: u64) -> Option<Duration> {
        if self.quota.load(Ordering::Relaxed) != gcra.fingerprint() {
            return None;
        }
        let tat = self.tat.load(Ordering::Relaxed);
        let debt = tat.max(now).saturating_add(gcra.interval) - now;
        (debt > gcra.capacity()).then(|| Duration::from_nanos(debt - gcra.capacity()))
    }

    /// Starts the bucket again, full, when it was measured in another quota.
    fn adopt(&self, gcra: &Gcra) {
        let fingerprint = gcra.fingerprint();
        let seen = self.quota.load(Ordering::Relaxed);
        if seen != fingerprint
            && self.quota.compare_exchange(seen, fingerprint, Ordering::AcqRel, Ordering::Relaxed).is_ok()
        {
            self.tat.store(0, Ordering::Release);
        }
    }

    /// True when the bucket is full again, i.e. its state carries no information (for eviction).
    pub fn is_full(&self, now: u64) -> bool {
        self.tat.load(Ordering::Relaxed) <= now
    }
}

/// One bucket per client address, for the failed-auth limit. Its key space is chosen by clients,
/// so [`IpBuckets::evict_full`] must run periodically: a full bucket carries no state.
#[derive(Debug, Default)]
pub struct IpBuckets {
    buckets: dashmap::DashMap<std::net::IpAddr, Bucket>,
}

impl IpBuckets {
    /// How long `ip` must wait if its bucket is empty; consumes nothing.
    pub fn empty_for(&self, ip: std::net::IpAddr, gcra: &Gcra, now: u64) -> Option<Duration> {
        self.buckets.get(&ip)?.empty_for(gcra, now)
    }

    /// Takes one request from `ip`'s bucket (a failed attempt).
    pub fn record(&self, ip: std::net::IpAddr, gcra: &Gcra, now: u64) {
        self.buckets.entry(ip).or_default().check(gcra, now);
    }

    /// Drops every bucket that is full again; returns how many are left.
    pub fn evict_full(&self, now: u64) -> usize {
        self.buckets.retain(|_, bucket| !bucket.is_full(now));
        self.buckets.len()
    }
}

/// Whole seconds, rounded up (for `Retry-After` at least 1, for `t` possibly 0).
pub fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn gcra(text: &str) -> Gcra {
        Gcra::new(&serde_json::from_str(text).unwrap())
    }

    fn allowed(d: Decision) -> (u32, u64) {
        match d {
            Decision::Allowed { remaining, reset } => (remaining, ceil_secs(reset)),
            other => panic!("expected Allowed, got {other:?}"),
        }
    }

    #[test]
    fn a_bucket_of_three_at_ten_per_minute() {
        let g = gcra(r#"{"per_minute": 10, "burst": 3}"#);
        let b = Bucket::default();
        let t0 = 100 * SEC;
        assert_eq!(allowed(b.check(&g, t0)), (2, 6));
        assert_eq!(allowed(b.check(&g, t0)), (1, 12));
        assert_eq!(allowed(b.check(&g, t0)), (0, 18));
        assert_eq!(b.check(&g, t0), Decision::Limited { retry_after: Duration::from_secs(6) });
        // One interval later exactly one request fits again.
        assert_eq!(allowed(b.check(&g, t0 + 6 * SEC)), (0, 18));
        assert!(matches!(b.check(&g, t0 + 6 * SEC), Decision::Limited { .. }));
    }

    #[test]
    fn burst_defaults_to_the_limit_and_refills_completely() {
        let g = gcra(r#"{"per_hour": 100}"#);
        let b = Bucket::default();
        assert_eq!(allowed(b.check(&g, SEC)), (99, 36));
        assert!(!b.is_full(SEC));
        assert!(b.is_full(SEC + 36 * SEC));
        assert_eq!(allowed(b.check(&g, SEC + 36 * SEC)), (99, 36));
    }

    #[test]
    fn retry_after_is_exact_between_intervals() {
        let g = gcra(r#"{"per_second": 2, "burst": 1}"#);
        let b = Bucket::default();
        allowed(b.check(&g, SEC));
        match b.check(&g, SEC + SEC / 10) {
            Decision::Limited { retry_after } => {
                assert_eq!(retry_after, Duration::from_millis(400))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(ceil_secs(Duration::from_millis(400)), 1);
    }

    #[test]
    fn peeking_consumes_nothing() {
        let g = gcra(r#"{"per_minute": 3}"#);
        let b = Bucket::default();
        assert_eq!(b.empty_for(&g, SEC), None);
        for _ in 0..3 {
            assert_eq!(b.empty_for(&g, SEC), None);
            allowed(b.check(&g, SEC));
        }
        assert_eq!(b.empty_for(&g, SEC), Some(Duration::from_secs(20)));
        assert_eq!(b.empty_for(&g, 21 * SEC), None);
    }

    #[test]
    fn a_changed_quota_applies_to_the_next_check() {
        let tight = gcra(r#"{"per_minute": 1}"#);
        let loose = gcra(r#"{"per_second": 5000}"#);
        let b = Bucket::default();
        allowed(b.check(&tight, SEC));
        assert!(matches!(b.check(&tight, SEC), Decision::Limited { .. }));
        assert!(b.empty_for(&tight, SEC).is_some());
        assert_eq!(b.empty_for(&loose, SEC), None, "a raised limit is not empty");
        assert_eq!(allowed(b.check(&loose, SEC)).0, 4999, "a raised limit starts full");
        assert_eq!(allowed(b.check(&tight, SEC)).0, 0, "and so does a lowered one");
    }

    #[test]
    fn failed_attempts_are_counted_per_address() {
        let g = gcra(r#"{"per_minute": 3}"#);
        let buckets = IpBuckets::default();
        let (a, b) = ("127.0.0.6".parse().unwrap(), "127.0.0.7".parse().unwrap());
        for _ in 0..3 {
            assert_eq!(buckets.empty_for(a, &g, SEC), None);
            buckets.record(a, &g, SEC);
        }
        assert!(buckets.empty_for(a, &g, SEC).is_some());
        assert_eq!(buckets.empty_for(b, &g, SEC), None);
        assert_eq!(buckets.evict_full(SEC), 1);
        assert_eq!(buckets.evict_full(100 * SEC), 0);
    }

    #[test]
    fn concurrent_checks_never_admit_more_than_the_burst() {
        let g = gcra(r#"{"per_hour": 1000}"#);
        let b = std::sync::Arc::new(Bucket::default());
        let admitted: u32 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let b = b.clone();
                    s.spawn(move || {
                        (0..500).filter(|_| matches!(b.check(&g, SEC), Decision::Allowed { .. })).count() as u32
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(admitted, 1000);
    }
}
