//! Source hashing (ip_vs_sh.c): the client's address (and with sh-port
//! its port) picks the server through a table of buckets, built once per
//! published table, so every worker (and a restarted director, and every
//! director behind the same ECMP routes) derives the same server.

use super::hashed::{hash_32, probe, stable_order};
use super::scheduler::{Buckets, Member, NO_DEST, Pool, SchedKey, Scheduler};
use crate::lvs::dest::DestEntry;

/// IP_VS_SH_TAB_SIZE with the default CONFIG_IP_VS_SH_TAB_BITS of 8.
const SH_BITS: u32 = 8;
const SH_BUCKETS: usize = 1 << SH_BITS;

/// No state of its own: the buckets are the table's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sh;

/// ip_vs_sh_hashkey: hash_32 of the port (0 without sh-port) plus the
/// client address, plus `offset`.
fn hash(key: &SchedKey, port: bool, offset: usize) -> usize {
    let port = if port { key.cport } else { 0 };
    let v = key.caddr.wrapping_add(u32::from(port));
    (offset + hash_32(v, SH_BITS)) % SH_BUCKETS
}

impl Scheduler for Sh {
    /// ip_vs_sh_reassign: the servers, each tiled over as many
    /// consecutive buckets as its weight (at least one), in the order of
    /// their addresses and ports rather than IPVS's list order, so that
    /// directors given the same servers in any order agree.
    fn buckets(dests: &[DestEntry]) -> Buckets {
        let mut b = Box::new([NO_DEST; SH_BUCKETS]);
        let order = stable_order(dests);
        if order.is_empty() {
            return b;
        }
        let (mut p, mut count) = (0usize, 0u32);
        for slot in b.iter_mut() {
            *slot = order[p] as u16;
            count += 1;
            if count >= dests[order[p]].weight {
                p = (p + 1) % order.len();
                count = 0;
            }
        }
        b
    }

    fn init(_dests: &[Member]) -> Sh {
        Sh
    }

    /// ip_vs_sh_schedule, always with sh-fallback (uvs's sh did so before
    /// `-b` existed, and keeps doing it): a server at weight 0 (quiesced
    /// by its check, say) passes its clients on to the next buckets'
    /// servers instead of leaving them with no destination. sh-port adds
    /// the client's port to the hash.
    #[inline]
    fn schedule(&mut self, pool: &Pool, key: &SchedKey) -> Option<usize> {
        if pool.buckets.len() != SH_BUCKETS {
            return None;
        }
        let port = pool.flags.port();
        probe(pool, true, SH_BUCKETS, |r| hash(key, port, r))
    }
}
