//! The LVS vocabulary both planes and `uvsadm` speak, and the contract
//! between the planes, depending on neither: virtual services and real
//! servers ([`service`], [`dest`]), the schedulers ([`sched`]), the
//! immutable forwarding [`table`] the control plane publishes to the data
//! plane, the [`stats`] counters the data plane bumps and listings read,
//! the address of either family connections are generic over ([`addr`]),
//! connections ([`conn`]: key, state, portable form, listing rows), what
//! connection sync carries ([`sync`]) and the questions the control plane
//! asks the data plane ([`request`]).

pub mod addr;
pub mod conn;
pub mod dest;
pub mod mark;
pub mod request;
pub mod sched;
pub mod service;
pub mod stats;
pub mod sync;
pub mod table;
pub mod trace;

/// splitmix64's finaliser: a fixed mix, the same in every process (the
/// digest's terms, the hashing schedulers' tables), unlike a keyed hash.
pub fn splitmix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub use conn::ConnInfo;
