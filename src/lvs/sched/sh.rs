//! Source hashing (ip_vs_sh.c): the client's address picks the server
//! through a table of buckets, built once per published table, so every
//! worker (and a restarted director) derives the same server.

use super::scheduler::{Buckets, Scheduler};
use crate::lvs::conn::ConnKey;
use crate::lvs::dest::DestEntry;
use std::net::Ipv4Addr;

/// IP_VS_SH_TAB_SIZE with the default CONFIG_IP_VS_SH_TAB_BITS of 8.
const SH_BUCKETS: usize = 256;
const NO_DEST: u16 = u16::MAX;

/// No state of its own: the buckets are the table's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sh;

/// ip_vs_sh_hashkey without sh-port: hash_32 of the client address.
fn hash(client: Ipv4Addr, offset: usize) -> usize {
    let h = u32::from(client).wrapping_mul(0x61C8_8647) >> (32 - 8);
    (offset + h as usize) % SH_BUCKETS
}

impl Scheduler for Sh {
    /// ip_vs_sh_reassign: the servers, in list order, each tiled over as
    /// many consecutive buckets as its weight (at least one).
    fn buckets(dests: &[DestEntry]) -> Buckets {
        let mut b = Box::new([NO_DEST; SH_BUCKETS]);
        if dests.is_empty() {
            return b;
        }
        let (mut p, mut count) = (0usize, 0u32);
        for slot in b.iter_mut() {
            *slot = p as u16;
            count += 1;
            if count >= dests[p].weight {
                p = (p + 1) % dests.len();
                count = 0;
            }
        }
        b
    }

    fn init(_dests: &[DestEntry]) -> Sh {
        Sh
    }

    /// ip_vs_sh_schedule, always with sh-fallback: a server at weight 0
    /// (quiesced by its check, say) passes its clients on to the next
    /// buckets' servers instead of leaving them with no destination.
    #[inline]
    fn schedule(&mut self, dests: &[DestEntry], buckets: &[u16], key: &ConnKey) -> Option<usize> {
        let buckets: &[u16; SH_BUCKETS] = buckets.try_into().ok()?;
        for offset in 0..SH_BUCKETS {
            let i = buckets[hash(key.caddr, offset)];
            let d = dests.get(usize::from(i))?;
            if d.weight > 0 {
                return Some(usize::from(i));
            }
        }
        None
    }
}
