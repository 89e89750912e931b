//! What every scheduler provides, as IPVS's `struct ip_vs_scheduler`
//! does (init_service, update_service, schedule), and what it may build
//! once per published table.

use crate::lvs::conn::ConnKey;
use crate::lvs::dest::DestEntry;

/// A hashing scheduler's lookup table: a real server's index (in the
/// service's list) per bucket. Built when a table is published and read
/// by every worker; empty for schedulers that keep none.
pub type Buckets = Box<[u16]>;

/// One scheduling algorithm. The published table holds what it builds
/// from the real servers alone ([`Scheduler::buckets`]); each data-plane
/// worker holds a value of the implementing type per service (its
/// position in a rotation, say), carried over from table to table.
pub trait Scheduler: Sized {
    /// The lookup table for a service with these real servers (newest
    /// first), built once per published table (ip_vs_sh's
    /// ip_vs_sh_reassign). None by default.
    fn buckets(_dests: &[DestEntry]) -> Buckets {
        Buckets::default()
    }

    /// A worker's state for a service with these real servers
    /// (init_service).
    fn init(dests: &[DestEntry]) -> Self;

    /// The real-server set or a weight changed: `old` is the previous
    /// list and `new` the current one, both newest first (update_service,
    /// add_dest, del_dest, upd_dest).
    fn update(&mut self, _old: &[DestEntry], _new: &[DestEntry]) {}

    /// The index in `dests` of the real server for a new connection `key`;
    /// `None` means "no destination available" (every weight 0, or no
    /// servers). `buckets` is what [`Scheduler::buckets`] built for them.
    fn schedule(&mut self, dests: &[DestEntry], buckets: &[u16], key: &ConnKey) -> Option<usize>;
}
