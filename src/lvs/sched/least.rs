//! The search the least-connection schedulers share (lc, wlc, sed, nq):
//! the real server with the lowest connection overhead per weight.

use crate::lvs::dest::DestEntry;

/// IPVS's connection overhead (ip_vs_dest_conn_overhead): active
/// connections weigh 256 inactive ones.
pub fn overhead(d: &DestEntry) -> u64 {
    (u64::from(d.state.active()) << 8) + u64::from(d.state.inactive())
}

/// The expected delay of sed and nq (ip_vs_sed_dest_overhead): the
/// active connections plus the new one.
pub fn expected(d: &DestEntry) -> u64 {
    u64::from(d.state.active()) + 1
}

/// The server minimising `oh`/`w` (its overhead over its weight),
/// compared by cross-multiplying as the kernel does; servers at weight 0
/// are never chosen, ties go to the earlier server in list order.
pub fn least(
    dests: &[DestEntry],
    oh: impl Fn(&DestEntry) -> u64,
    w: impl Fn(&DestEntry) -> u64,
) -> Option<usize> {
    let mut best: Option<(usize, u64, u64)> = None;
    for (i, d) in dests.iter().enumerate() {
        if d.weight == 0 {
            continue;
        }
        let (o, wt) = (oh(d), w(d));
        match best {
            Some((_, bo, bw))
                if u128::from(bo) * u128::from(wt) <= u128::from(o) * u128::from(bw) => {}
            _ => best = Some((i, o, wt)),
        }
    }
    best.map(|b| b.0)
}

/// Of the servers with a positive weight for which `ok` holds, the one
/// with the greatest weight, the first in list order on a tie (fo, ovf).
pub fn heaviest(dests: &[DestEntry], ok: impl Fn(&DestEntry) -> bool) -> Option<usize> {
    let mut best: Option<(usize, u32)> = None;
    for (i, d) in dests.iter().enumerate() {
        if d.weight == 0 || !ok(d) {
            continue;
        }
        if best.is_none_or(|(_, bw)| d.weight > bw) {
            best = Some((i, d.weight));
        }
    }
    best.map(|b| b.0)
}
