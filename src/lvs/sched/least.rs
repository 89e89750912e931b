//! The search the least-connection schedulers share (lc, wlc): the real
//! server with the lowest connection overhead per weight.

use crate::lvs::dest::DestEntry;

/// IPVS's connection overhead (ip_vs_dest_conn_overhead): active
/// connections weigh 256 inactive ones.
pub fn overhead(d: &DestEntry) -> u64 {
    (u64::from(d.state.active()) << 8) + u64::from(d.state.inactive())
}

/// The server minimising overhead/weight (`w` gives the weight), compared
/// by cross-multiplying as the kernel does; servers at weight 0 are never
/// chosen, ties go to the earlier server in list order.
pub fn least(dests: &[DestEntry], w: impl Fn(&DestEntry) -> u64) -> Option<usize> {
    let mut best: Option<(usize, u64, u64)> = None;
    for (i, d) in dests.iter().enumerate() {
        if d.weight == 0 {
            continue;
        }
        let (o, wt) = (overhead(d), w(d));
        match best {
            Some((_, bo, bw))
                if u128::from(bo) * u128::from(wt) <= u128::from(o) * u128::from(bw) => {}
            _ => best = Some((i, o, wt)),
        }
    }
    best.map(|b| b.0)
}
