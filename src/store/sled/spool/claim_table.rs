//! The dedupe claims of a sealed segment, as a callback looks them up: a sorted table of 32 bits
//! of each claim's hash and its offset (8 bytes a claim), behind a small filter (1 byte a claim)
//! that answers "not here" for most keys without touching the table. A callback's key is looked
//! up in every segment whose claims are remembered, and most keys are new: without the filter,
//! each lookup was a binary search with a cache miss at every step, in every segment.

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

    #[test]
    fn every_claim_is_found_and_most_others_stop_at_the_filter() {
        use sha2::Digest;
        let hash = |n: u32| -> [u8; 16] {
            sha2::Sha256::digest(n.to_be_bytes())[..16]
                .try_into()
                .unwrap()
        };
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
}
