//! Which addresses may have a record: a Bloom filter in memory.
//!
//! A guess for an address that has no record (a typo, an enumeration
//! attempt, a flood of made-up addresses) is answered from here, without
//! reaching the writer thread. The filter may say "maybe" for an address
//! without a record (the writer then answers), never "no" for one with a
//! record: the writer adds an address before the write that stores it
//! commits, and it is the only thread that stores records.
//!
//! Deleted records stay in the filter until it is rebuilt from the table,
//! which happens once it has taken many addresses since the last rebuild.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

/// 2^23 bits: 1 MiB. Four hashes keep false positives near 0.2 % with
/// half a million addresses, 2 % with a million.
const BITS_LOG2: u32 = 23;
const HASHES: usize = 4;
/// Addresses added since the last rebuild that make the next sweep rebuild.
const REBUILD_AFTER: usize = 1 << 19;

/// The bits of one filter; build a new one with [`Filter::new`] and
/// [`Filter::insert`], then hand it to [`Presence::new`] or [`Presence::replace`].
pub struct Filter {
    words: Box<[AtomicU64]>,
    /// Keyed (SipHash with random keys), so nobody can pick addresses that
    /// collide on purpose.
    hasher: RandomState,
}

impl Filter {
    pub fn new() -> Self {
        Self {
            words: (0..1usize << (BITS_LOG2 - 6))
                .map(|_| AtomicU64::new(0))
                .collect(),
            hasher: RandomState::new(),
        }
    }

    /// The bit positions of `email` (double hashing).
    fn positions(&self, email: &str) -> [usize; HASHES] {
        let hash = self.hasher.hash_one(email);
        let (h1, h2) = (hash & 0xffff_ffff, (hash >> 32) | 1);
        let mask = (1u64 << BITS_LOG2) - 1;
        std::array::from_fn(|i| (h1.wrapping_add((i as u64).wrapping_mul(h2)) & mask) as usize)
    }

    pub fn insert(&self, email: &str) {
        self.set(&self.positions(email));
    }

    fn set(&self, positions: &[usize]) {
        for bit in positions {
            self.words[bit / 64].fetch_or(1 << (bit % 64), Ordering::Release);
        }
    }

    fn all_set(&self, positions: &[usize]) -> bool {
        positions
            .iter()
            .all(|bit| self.words[bit / 64].load(Ordering::Acquire) & (1 << (bit % 64)) != 0)
    }
}

/// An address's bits in the filter of the moment: hashed once for a check
/// and, if the writer then stores a record, an add.
pub struct Probe {
    /// None if the lock was poisoned: "maybe", and nothing to add to.
    filter: Option<Arc<Filter>>,
    positions: [usize; HASHES],
}

impl Probe {
    /// False only if the address has no record.
    pub fn may_hold(&self) -> bool {
        self.filter
            .as_ref()
            .is_none_or(|filter| filter.all_set(&self.positions))
    }
}

pub struct Presence {
    bits: RwLock<Arc<Filter>>,
    added_since_rebuild: AtomicUsize,
}

impl Presence {
    /// Starts from `filter` (the table's addresses, when the store opens).
    pub fn new(filter: Filter) -> Self {
        Self {
            bits: RwLock::new(Arc::new(filter)),
            added_since_rebuild: AtomicUsize::new(0),
        }
    }

    fn current(&self) -> Option<Arc<Filter>> {
        self.bits.read().ok().map(|bits| Arc::clone(&bits))
    }

    pub fn probe(&self, email: &str) -> Probe {
        let filter = self.current();
        let positions = filter
            .as_ref()
            .map_or([0; HASHES], |filter| filter.positions(email));
        Probe { filter, positions }
    }

    /// Only the writer thread adds, before committing the record; the
    /// filter is replaced on that thread too, so `probe`'s is still current.
    pub fn add(&self, probe: &Probe) {
        if let Some(filter) = &probe.filter {
            filter.set(&probe.positions);
            self.added_since_rebuild.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// False only if `email` has no record. A poisoned lock says "maybe".
    pub fn may_hold(&self, email: &str) -> bool {
        self.probe(email).may_hold()
    }

    pub fn wants_rebuild(&self) -> bool {
        self.added_since_rebuild.load(Ordering::Relaxed) >= REBUILD_AFTER
    }

    /// Replaces the filter with `fresh`, built from the table on the writer
    /// thread, so no address was added meanwhile.
    pub fn replace(&self, fresh: Filter) {
        if let Ok(mut bits) = self.bits.write() {
            *bits = Arc::new(fresh);
            self.added_since_rebuild.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter_of(emails: &[&str]) -> Filter {
        let filter = Filter::new();
        for email in emails {
            filter.insert(email);
        }
        filter
    }

    #[test]
    fn an_added_address_is_always_held() {
        let presence = Presence::new(filter_of(&["a@example.com"]));
        let added: Vec<String> = (0..10_000).map(|i| format!("u{i}@example.com")).collect();
        for email in &added {
            presence.add(&presence.probe(email));
        }
        assert!(presence.may_hold("a@example.com"));
        assert!(added.iter().all(|email| presence.may_hold(email)));
    }

    #[test]
    fn most_other_addresses_are_not_held() {
        let presence = Presence::new(Filter::new());
        for i in 0..100_000 {
            presence.add(&presence.probe(&format!("u{i}@example.com")));
        }
        let false_positives = (0..100_000)
            .filter(|i| presence.may_hold(&format!("other{i}@example.com")))
            .count();
        assert!(false_positives < 100, "{false_positives} false positives");
    }

    #[test]
    fn a_rebuild_keeps_only_the_given_addresses() {
        let presence = Presence::new(filter_of(&["gone@example.com", "kept@example.com"]));
        presence.replace(filter_of(&["kept@example.com"]));
        assert!(presence.may_hold("kept@example.com"));
        assert!(!presence.may_hold("gone@example.com"));
    }
}
