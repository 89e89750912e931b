//! What the scheduler benches share: simulated real servers and flows,
//! scheduled through the same public API the data plane uses.

use std::net::Ipv4Addr;
use std::sync::Arc;
use uvs::lvs::sched::SchedState;
use uvs::lvs::sched::scheduler::{Pool, SchedKey};
use uvs::lvs::service::{Forward, SchedFlags};
use uvs::lvs::table::DestEntry;
use uvs::wire::MacAddr;

/// Real server `i` (198.18.0.11 on, port 80) with `weight`.
pub fn server(i: u32, weight: u32) -> DestEntry {
    DestEntry {
        id: u64::from(i) + 1,
        addr: Ipv4Addr::from(0xc612_0000 + 11 + i).into(),
        port: 80,
        forward: Forward::Route,
        weight,
        listed_weight: weight,
        last_weight: weight,
        mac: MacAddr::ZERO,
        link: 0,
        state: Arc::default(),
    }
}

/// The id of the server `st` picks for `key` among `dests` with the
/// lookup table `buckets` (0 for none).
pub fn pick(st: &mut SchedState, dests: &[DestEntry], buckets: &[u16], key: &SchedKey) -> u64 {
    let pool = Pool {
        dests,
        buckets,
        flags: SchedFlags::default(),
    };
    st.schedule(&pool, key).map_or(0, |i| dests[i].id)
}

/// The share of positions where `a` and `b` differ.
pub fn moved(a: &[u64], b: &[u64]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x != y).count() as f64 / a.len().max(1) as f64
}
