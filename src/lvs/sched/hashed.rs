//! What the hashing schedulers (sh, dh, mh) share: the kernel's hash_32,
//! a fixed-key mix for Maglev, and the probe of a lookup table with its
//! optional fallback.

use super::scheduler::{NO_DEST, Pool};
use crate::lvs::dest::DestEntry;

/// The indexes of `dests` (at most a table's worth) sorted by address
/// and port: the order sh and mh fill their tables in, so that every
/// director given the same servers builds the same table whatever order
/// they were added in (IPVS follows its list order), and directors behind
/// ECMP agree on every flow without sync (docs/scale-out.md).
pub fn stable_order(dests: &[DestEntry]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..dests.len().min(usize::from(NO_DEST))).collect();
    order.sort_by_key(|i| (dests[*i].addr, dests[*i].port));
    order
}

/// The kernel's hash_32 (GOLDEN_RATIO_32), the top `bits` bits.
pub fn hash_32(v: u32, bits: u32) -> usize {
    (v.wrapping_mul(0x61C8_8647) >> (32 - bits)) as usize
}

/// A fixed-key 64-bit mix (splitmix64's finaliser) folded to 32 bits:
/// the same on every director, so they all build the same tables.
pub fn mix(key: u64, v: u64) -> u32 {
    let z = crate::lvs::splitmix(v ^ key);
    (z ^ (z >> 32)) as u32
}

/// The server in bucket `at(0)` if it is available (weight above 0).
/// Otherwise, with `fallback`, the first available one of the buckets
/// `at(r)` for r = (first + k) % size, k = 0..size, as ip_vs_sh and
/// ip_vs_mh's get_fallback walk them; an empty bucket ends the walk.
#[inline]
pub fn probe(
    pool: &Pool,
    fallback: bool,
    size: usize,
    at: impl Fn(usize) -> usize,
) -> Option<usize> {
    let available = |b: usize| -> Result<usize, bool> {
        let i = usize::from(*pool.buckets.get(b).ok_or(false)?);
        let d = pool.dests.get(i).ok_or(false)?;
        if d.weight > 0 { Ok(i) } else { Err(true) }
    };
    let first = at(0);
    match available(first) {
        Ok(i) => return Some(i),
        Err(false) => return None,
        Err(true) if !fallback => return None,
        Err(true) => {}
    }
    for k in 0..size {
        match available(at((first + k) % size)) {
            Ok(i) => return Some(i),
            Err(false) => return None,
            Err(true) => {}
        }
    }
    None
}
