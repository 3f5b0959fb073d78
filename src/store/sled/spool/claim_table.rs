//! The dedupe claims of a sealed segment, as a callback looks them up: a sorted table of 32 bits
//! of each claim's hash and its offset (8 bytes a claim), behind a small filter (1 byte a claim)
//! that answers "not here" for most keys without touching the table. A callback's key is looked
//! up in every segment whose claims are remembered, and most keys are new: without the filter,
//! each lookup was a binary search with a cache miss at every step, in every segment. One more
//! filter, over all sealed segments ([`SealedFilter`]), answers for most keys before any of them
//! is asked.

use std::hash::{BuildHasher, Hasher};

/// Sorted `(fingerprint << 32) | offset`, and a blocked Bloom filter: two bits in one word.
#[derive(Default)]
pub(super) struct SealedClaims {
    table: Vec<u64>,
    filter: Vec<u64>,
}

/// 32 bits of a claim's hash: its place in the table.
pub(super) fn fingerprint(hash: &[u8; 16]) -> u32 {
    u32::from_be_bytes([hash[0], hash[1], hash[2], hash[3]])
}

impl SealedClaims {
    pub(super) fn new(claims: impl Iterator<Item = ([u8; 16], u32)>) -> SealedClaims {
        let mut table: Vec<u64> = claims
            .map(|(hash, offset)| (u64::from(fingerprint(&hash)) << 32) | u64::from(offset))
            .collect();
        table.sort_unstable();
        let words = (table.len() / 8).max(1).next_power_of_two();
        let mut filter = vec![0u64; words];
        for entry in &table {
            let (word, bits) = filter_place((entry >> 32) as u32, words);
            filter[word] |= bits;
        }
        SealedClaims { table, filter }
    }

    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    /// The offsets of the claims whose fingerprint is `hash`'s (the records say which is it).
    pub(super) fn candidates(&self, hash: &[u8; 16]) -> &[u64] {
        let fingerprint = fingerprint(hash);
        if !self.may_hold(fingerprint) {
            return &[];
        }
        let start = self
            .table
            .partition_point(|&entry| ((entry >> 32) as u32) < fingerprint);
        let end = start
            + self.table[start..]
                .iter()
                .take_while(|&&entry| (entry >> 32) as u32 == fingerprint)
                .count();
        &self.table[start..end]
    }

    fn may_hold(&self, fingerprint: u32) -> bool {
        let (word, bits) = filter_place(fingerprint, self.filter.len());
        self.filter.get(word).is_some_and(|w| w & bits == bits)
    }

    /// Takes out the claims whose fingerprint is `hash`'s; whether there were any. A claim that
    /// merely shares the fingerprint goes too: it is then forgotten early, which costs at most one
    /// duplicate message (never a lost alert). The filter keeps its bits (a false "maybe").
    pub(super) fn release(&mut self, hash: &[u8; 16]) -> bool {
        let fingerprint = fingerprint(hash);
        let before = self.table.len();
        self.table
            .retain(|&entry| (entry >> 32) as u32 != fingerprint);
        self.table.len() != before
    }
}

/// One filter over the claims of every sealed segment, in front of theirs.
///
/// Each segment's own filter costs a cache miss to ask. A callback's key, new almost always, was
/// asked of every sealed segment whose claims are remembered. A busy intake seals about a segment
/// a second, and their claims are remembered for `dedupe.remember` (an hour by default): a claim
/// came to cost more than the rest of a callback. Here one probe answers "in no sealed segment"
/// for most keys.
///
/// Bits are only ever set: a claim released or forgotten leaves its bits (a false "maybe", which
/// the segments' own filters then answer). [`SealedFilter::needs_rebuilding`] says when stale
/// bits, or more claims than it was sized for, make a new one worth building.
#[derive(Default)]
pub(super) struct SealedFilter {
    filter: Vec<u64>,
    /// Claims whose bits are set, released ones included.
    added: usize,
}

/// Claims a filter is built for, relative to those it holds when built: room to take the next
/// sealed segments before it must be built again.
const FILTER_HEADROOM: usize = 2;

impl SealedFilter {
    /// A filter over `tables`, with room for as many claims again.
    pub(super) fn over<'a>(tables: impl Iterator<Item = &'a SealedClaims> + Clone) -> SealedFilter {
        let claims: usize = tables.clone().map(SealedClaims::len).sum();
        let words = (claims * FILTER_HEADROOM / 8).max(1).next_power_of_two();
        let mut filter = SealedFilter {
            filter: vec![0; words],
            added: 0,
        };
        for table in tables {
            filter.add(table);
        }
        filter
    }

    /// Sets the bits of a newly sealed table's claims.
    pub(super) fn add(&mut self, table: &SealedClaims) {
        self.added += table.len();
        if self.filter.is_empty() {
            return;
        }
        for entry in &table.table {
            let (word, bits) = filter_place((entry >> 32) as u32, self.filter.len());
            self.filter[word] |= bits;
        }
    }

    /// Whether a sealed segment may hold a claim whose fingerprint is `hash`'s. A filter never
    /// built knows nothing, and says "maybe".
    pub(super) fn may_hold(&self, hash: &[u8; 16]) -> bool {
        if self.filter.is_empty() {
            return true;
        }
        let (word, bits) = filter_place(fingerprint(hash), self.filter.len());
        self.filter[word] & bits == bits
    }

    /// Whether a filter built anew over `live` claims would answer "no" more often: more claims
    /// were added than it was sized for (it fills up), or most of its bits are stale.
    pub(super) fn needs_rebuilding(&self, live: usize) -> bool {
        let room = self.filter.len() * 8;
        self.added > room || (self.added > 1024 && self.added > live * FILTER_HEADROOM)
    }
}

/// Which word of the filter, and which two bits of it, stand for `fingerprint` (bits of it not
/// used to sort the table would do as well; these are spread enough, being a hash's).
fn filter_place(fingerprint: u32, words: usize) -> (usize, u64) {
    let mixed = u64::from(fingerprint).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let word = (mixed >> 40) as usize & (words - 1);
    let bits = (1u64 << (mixed & 63)) | (1u64 << ((mixed >> 6) & 63));
    (word, bits)
}

/// Hashes a key that is already a hash (a dedupe key's SHA-256 prefix) by taking 8 of its bytes:
/// the general-purpose hasher costs more than the map lookup it serves.
#[derive(Default, Clone, Copy)]
pub(in crate::store::sled) struct TakePrefix;

impl BuildHasher for TakePrefix {
    type Hasher = PrefixHasher;
    fn build_hasher(&self) -> PrefixHasher {
        PrefixHasher(0)
    }
}

pub(in crate::store::sled) struct PrefixHasher(u64);

impl Hasher for PrefixHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // A `[u8; 16]` is hashed as its bytes (after its length, which `write_usize` ignores).
        for (index, byte) in bytes.iter().take(8).enumerate() {
            self.0 ^= u64::from(*byte) << (8 * index);
        }
    }

    fn write_usize(&mut self, _length: usize) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::sled::spool::tests::key_hash as hash;

    #[test]
    fn every_claim_is_found_and_most_others_stop_at_the_filter() {
        let claims = SealedClaims::new((0..20_000).map(|n| (hash(n), n * 10)));
        for n in 0..20_000 {
            assert!(
                claims
                    .candidates(&hash(n))
                    .iter()
                    .any(|e| *e as u32 == n * 10),
                "claim {n}"
            );
        }
        let found = (20_000..120_000)
            .filter(|n| !claims.candidates(&hash(*n)).is_empty())
            .count();
        assert!(
            found < 10,
            "{found} of 100,000 new keys found a fingerprint"
        );
        let passed = (20_000..120_000)
            .filter(|n| claims.may_hold(fingerprint(&hash(*n))))
            .count();
        assert!(
            passed < 10_000,
            "{passed} of 100,000 new keys passed the filter"
        );
        let mut released = claims;
        assert!(released.release(&hash(7)));
        assert!(released.candidates(&hash(7)).is_empty());
        assert!(!released.release(&hash(7)));
    }

    /// The filter in front of all sealed segments holds every claim added, even past the room it
    /// was built with, and says when building it again would do better.
    #[test]
    fn the_filter_over_all_sealed_tables_holds_every_claim_added() {
        let claims = SealedClaims::new((0..20_000).map(|n| (hash(n), n * 10)));
        let mut global = SealedFilter::over(std::iter::once(&claims));
        assert!((0..20_000).all(|n| global.may_hold(&hash(n))));
        let passed = (20_000..120_000)
            .filter(|n| global.may_hold(&hash(*n)))
            .count();
        assert!(passed < 10_000, "{passed} of 100,000 new keys passed");
        assert!(!global.needs_rebuilding(claims.len()));
        // Tables sealed later are added until they are more than it was sized for.
        let more = SealedClaims::new((20_000..40_000).map(|n| (hash(n), n)));
        global.add(&more);
        assert!(!global.needs_rebuilding(claims.len() + more.len()));
        let most = SealedClaims::new((40_000..100_000).map(|n| (hash(n), n)));
        global.add(&most);
        assert!(global.needs_rebuilding(100_000));
        assert!((0..100_000).all(|n| global.may_hold(&hash(n))));
        // Built anew over the tables still kept, it forgets the others' bits.
        let rebuilt = SealedFilter::over([&more, &most].into_iter());
        assert!((20_000..100_000).all(|n| rebuilt.may_hold(&hash(n))));
        assert!(!rebuilt.needs_rebuilding(80_000));
        let stale = (0..20_000).filter(|n| rebuilt.may_hold(&hash(*n))).count();
        assert!(stale < 2_000, "{stale} of 20,000 dropped claims passed");
        let mut unbuilt = SealedFilter::default();
        assert!(unbuilt.may_hold(&hash(1)));
        unbuilt.add(&more);
        assert!(unbuilt.needs_rebuilding(more.len()));
    }
}
