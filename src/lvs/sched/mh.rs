//! Maglev hashing (ip_vs_mh.c, after the Maglev paper, NSDI'16 §3.4): a
//! lookup table of a prime number of slots, each server claiming slots
//! in the order of its own permutation, as many per round as its weight
//! allows. Built once per published table from the servers sorted by
//! address and port (the kernel follows its list order), so every
//! director given the same servers builds the same table whatever order
//! they were added in, and agrees with the others without sync.

use super::hashed::{mix, probe, stable_order};
use super::scheduler::{Buckets, Member, NO_DEST, Pool, SchedKey, Scheduler, fold, gcd};
use crate::lvs::dest::DestEntry;

/// IP_VS_MH_TAB_SIZE with the default CONFIG_IP_VS_MH_TAB_INDEX of 12.
pub const MH_SLOTS: usize = 4093;
/// IP_VS_MH_TAB_BITS: the bits of weight/gcd a server's turns keep.
const MH_TAB_BITS: u32 = 6;
/// The two hash keys (the kernel's hash1 and hash2 use these numbers).
const KEY1: u64 = 2_654_435_761;
const KEY2: u64 = 2_654_446_892;

/// No state of its own: the lookup table is the table's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mh;

fn hash(key: u64, addr: u32, port: u16, offset: usize) -> usize {
    let v = (u64::from(addr) << 32) | (u64::from(port) << 16);
    mix(key, v.wrapping_add(offset as u64)) as usize
}

/// Each server's turns per round (ip_vs_mh_permutate): its last weight
/// over the gcd, shifted right so the largest keeps MH_TAB_BITS bits; at
/// least 1 for a nonzero weight, 0 for a server never given one.
fn turns(dests: &[DestEntry]) -> Vec<u32> {
    let g = dests.iter().map(|d| d.last_weight).fold(0, gcd);
    if g == 0 {
        return vec![0; dests.len()];
    }
    let mw = dests.iter().map(|d| d.last_weight / g).max().unwrap_or(0);
    let shift = (32 - mw.leading_zeros()).saturating_sub(MH_TAB_BITS);
    dests
        .iter()
        .map(|d| ((d.last_weight / g) >> shift).max(u32::from(d.last_weight != 0)))
        .collect()
}

/// The lookup table for `dests` with `slots` slots (a prime).
pub fn table(dests: &[DestEntry], slots: usize) -> Buckets {
    let mut lookup = vec![NO_DEST; slots].into_boxed_slice();
    let n = dests.len().min(usize::from(NO_DEST));
    let turns = turns(&dests[..n]);
    // Sorted by address and port: the fill order is the same anywhere.
    let mut order = stable_order(&dests[..n]);
    order.retain(|i| turns[*i] > 0);
    if order.is_empty() || slots < 2 {
        return lookup;
    }
    // Each server's next position in its permutation (offset + j*skip).
    let mut perm: Vec<(usize, usize)> = order
        .iter()
        .map(|i| {
            let d = &dests[*i];
            let offset = hash(KEY1, fold(d.addr), d.port, 0) % slots;
            let skip = hash(KEY2, fold(d.addr), d.port, 0) % (slots - 1) + 1;
            (offset, skip)
        })
        .collect();
    let mut filled = 0;
    while filled < slots {
        for (k, i) in order.iter().enumerate() {
            for _ in 0..turns[*i] {
                let (pos, skip) = &mut perm[k];
                // A prime size visits every slot; any other falls back
                // to the first free one rather than looping.
                let mut tries = 0;
                while lookup[*pos] != NO_DEST && tries < slots {
                    *pos = (*pos + *skip) % slots;
                    tries += 1;
                }
                if lookup[*pos] != NO_DEST {
                    *pos = lookup.iter().position(|s| *s == NO_DEST).unwrap_or(*pos);
                }
                lookup[*pos] = *i as u16;
                filled += 1;
                if filled == slots {
                    return lookup;
                }
            }
        }
    }
    lookup
}

impl Scheduler for Mh {
    fn buckets(dests: &[DestEntry]) -> Buckets {
        table(dests, MH_SLOTS)
    }

    fn init(_dests: &[Member]) -> Mh {
        Mh
    }

    /// ip_vs_mh_schedule: the slot of the client's address (and with
    /// mh-port its port); an unavailable server there (weight 0) means no
    /// destination, or with mh-fallback the next available one along the
    /// client's rehashes.
    #[inline]
    fn schedule(&mut self, pool: &Pool, key: &SchedKey) -> Option<usize> {
        let slots = pool.buckets.len();
        if slots == 0 {
            return None;
        }
        let port = if pool.flags.port() { key.cport } else { 0 };
        let at = |r| hash(KEY1, key.caddr, port, r) % slots;
        probe(pool, pool.flags.fallback(), slots, at)
    }
}
