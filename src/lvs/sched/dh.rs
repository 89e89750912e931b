//! Destination hashing (ip_vs_dh.c): the destination address (the VIP
//! for a uvs service) picks the server through 256 buckets dealt round
//! robin over the servers in list order, whatever their weights. A
//! server at weight 0 in its bucket means no destination: dh has no
//! fallback.

use super::hashed::{hash_32, probe};
use super::scheduler::{Buckets, Member, NO_DEST, Pool, SchedKey, Scheduler};
use crate::lvs::dest::DestEntry;

/// IP_VS_DH_TAB_SIZE with the default CONFIG_IP_VS_DH_TAB_BITS of 8.
const DH_BITS: u32 = 8;
const DH_BUCKETS: usize = 1 << DH_BITS;

/// No state of its own: the buckets are the table's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dh;

impl Scheduler for Dh {
    /// ip_vs_dh_reassign: bucket i holds server i modulo their number.
    fn buckets(dests: &[DestEntry]) -> Buckets {
        let n = dests.len().min(usize::from(NO_DEST));
        (0..DH_BUCKETS)
            .map(|i| if n == 0 { NO_DEST } else { (i % n) as u16 })
            .collect()
    }

    fn init(_dests: &[Member]) -> Dh {
        Dh
    }

    #[inline]
    fn schedule(&mut self, pool: &Pool, key: &SchedKey) -> Option<usize> {
        let b = hash_32(key.vaddr, DH_BITS);
        probe(pool, false, DH_BUCKETS, |_| b)
    }
}
