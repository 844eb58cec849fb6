//! From an entity id to its shard, with a hash that is the same on every
//! node, every build and every Rust version.
//!
//! `std`'s `DefaultHasher` is randomly seeded per process and its algorithm
//! may change between releases, so it cannot be used: two nodes would put
//! the same entity in different shards. We use 64-bit FNV-1a
//! (<http://www.isthe.com/chongo/tech/comp/fnv/>), a few lines, good enough
//! spread for short ids, and frozen by the constants below.

use crate::ids::ShardId;

/// FNV-1a 64-bit offset basis.
const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64-bit prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a of `bytes`: for each byte, xor it in, then multiply by the
/// FNV prime (wrapping).
///
/// ```
/// assert_eq!(sharding::fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
/// assert_eq!(sharding::fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
/// ```
pub fn fnv1a_64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET_BASIS, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(FNV_PRIME)
    })
}

/// The shard of an entity: `fnv1a_64(utf8(entity_id)) % number_of_shards`.
/// A `number_of_shards` of 0 is treated as 1 (never a division by zero).
///
/// ```
/// use sharding::{shard_id, ShardId};
/// let shard = shard_id("counter-42", 100);
/// assert!(shard.0 < 100);
/// assert_eq!(shard, shard_id("counter-42", 100)); // stable
/// ```
pub fn shard_id(entity_id: &str, number_of_shards: u32) -> ShardId {
    let shards = u64::from(number_of_shards.max(1));
    // The remainder is below `number_of_shards`, which fits in a u32.
    ShardId((fnv1a_64(entity_id.as_bytes()) % shards) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_published_fnv1a_test_vectors() {
        assert_eq!(fnv1a_64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn zero_shards_does_not_panic() {
        assert_eq!(shard_id("x", 0), ShardId(0));
    }

    #[test]
    fn spreads_ids_over_all_shards() {
        let mut counts = [0u32; 100];
        for i in 0..100_000 {
            counts[shard_id(&format!("entity-{i}"), 100).0 as usize] += 1;
        }
        // 1,000 expected per shard; FNV-1a on such ids stays well within 20%.
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
    }
}
