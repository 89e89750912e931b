//! What every scheduler provides, as IPVS's `struct ip_vs_scheduler`
//! does (init_service, update_service, schedule), and what it may build
//! once per published table.

use crate::lvs::conn::ConnKey;
use crate::lvs::dest::DestEntry;
use crate::lvs::service::SchedFlags;
use std::net::IpAddr;

/// A hashing scheduler's lookup table: a real server's index (in the
/// service's list) per bucket. Built when a table is published and read
/// by every worker; empty for schedulers that keep none.
pub type Buckets = Box<[u16]>;

/// A bucket no real server holds.
pub const NO_DEST: u16 = u16::MAX;

/// A real server as the kernel's scheduler hooks see a change of the
/// list: its id and its weight as IPVS holds it (listed weight).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    pub weight: u32,
}

impl Member {
    /// The servers of a published list, in its order.
    pub fn of(dests: &[DestEntry]) -> Vec<Member> {
        dests
            .iter()
            .map(|d| Member {
                id: d.id,
                weight: d.listed_weight,
            })
            .collect()
    }
}

/// What a new connection is scheduled among: the service's real servers
/// (newest first), the lookup table its scheduler built for them and the
/// service's `-b` flags.
#[derive(Debug, Clone, Copy)]
pub struct Pool<'a> {
    pub dests: &'a [DestEntry],
    pub buckets: &'a [u16],
    pub flags: SchedFlags,
}

/// An address as the hashing schedulers hash it: IPv4 as its 32 bits,
/// IPv6 folded to 32 by XOR of its four words, as IPVS's schedulers do.
pub fn fold(addr: std::net::IpAddr) -> u32 {
    match addr {
        std::net::IpAddr::V4(a) => u32::from(a),
        std::net::IpAddr::V6(a) => {
            let w = a.to_bits();
            (w as u32) ^ ((w >> 32) as u32) ^ ((w >> 64) as u32) ^ ((w >> 96) as u32)
        }
    }
}

/// What a scheduler may read of a new connection: the client's address
/// and port and the virtual address, an IPv6 address folded to 32 bits
/// as IPVS's hashing schedulers fold it (sh, dh, mh). The same for both
/// families, so a service's scheduler state serves either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedKey {
    pub caddr: u32,
    pub cport: u16,
    pub vaddr: u32,
}

impl SchedKey {
    /// A flow from `caddr`:`cport` to `vaddr`.
    #[inline]
    pub fn new(caddr: IpAddr, cport: u16, vaddr: IpAddr) -> SchedKey {
        SchedKey {
            caddr: fold(caddr),
            cport,
            vaddr: fold(vaddr),
        }
    }

    /// An IPv4 connection's.
    #[inline]
    pub fn of(k: &ConnKey) -> SchedKey {
        SchedKey {
            caddr: u32::from(k.caddr),
            cport: k.cport,
            vaddr: u32::from(k.vaddr),
        }
    }
}

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
    fn init(dests: &[Member]) -> Self;

    /// One change of the real-server list or of a weight, as the kernel
    /// calls add_dest, del_dest or upd_dest: `old` is the list before it
    /// and `new` after, both newest first.
    fn update(&mut self, _old: &[Member], _new: &[Member]) {}

    /// The index in `pool.dests` of the real server for a new connection
    /// `key`; `None` means "no destination available" (every weight 0, or
    /// no servers).
    fn schedule(&mut self, pool: &Pool, key: &SchedKey) -> Option<usize>;
}

/// A scheduler with no state of its own (the real servers' weights and
/// counts decide): its unit type, and how it picks from `pool`.
macro_rules! stateless {
    ($(#[$doc:meta])* $name:ident, |$pool:ident| $pick:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name;

        impl $crate::lvs::sched::scheduler::Scheduler for $name {
            fn init(_: &[$crate::lvs::sched::scheduler::Member]) -> $name {
                $name
            }

            fn schedule(
                &mut self,
                $pool: &$crate::lvs::sched::scheduler::Pool,
                _: &$crate::lvs::sched::scheduler::SchedKey,
            ) -> Option<usize> {
                $pick
            }
        }
    };
}
pub(crate) use stateless;

/// The greatest common divisor (wrr's step, mh's weight unit).
pub fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}
