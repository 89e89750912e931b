//! Maglev (mh) disruption: with N = 10 and 100 real servers, the share
//! of 200,000 simulated flows (distinct clients, scheduled as the data
//! plane schedules them) that move to another server when one server is
//! removed (ideal: about 1/N, the flows it had) and when one is added
//! (ideal: about 1/(N+1), the flows it takes), and each server's share
//! of the 4,093 lookup-table slots against its share of the weight
//! (weights 1, 2, 3, 4 in turn). Asserts nothing.
//!
//! Run: cargo bench --bench maglev

mod common;

use common::{moved, pick, server};
use std::net::Ipv4Addr;
use std::time::Instant;
use uvs::lvs::conn::ConnKey;
use uvs::lvs::sched::mh::{MH_SLOTS, table};
use uvs::lvs::sched::scheduler::{Member, SchedKey};
use uvs::lvs::sched::{SchedState, buckets};
use uvs::lvs::service::{Protocol, SchedulerKind};
use uvs::lvs::table::DestEntry;

const FLOWS: u32 = 200_000;

/// The server id each flow goes to.
fn assign(dests: &[DestEntry]) -> Vec<u64> {
    let b = buckets(SchedulerKind::Mh, dests);
    let mut st = SchedState::new(SchedulerKind::Mh, &Member::of(dests));
    (0..FLOWS)
        .map(|f| {
            let key = ConnKey {
                protocol: Protocol::Tcp,
                caddr: Ipv4Addr::from(
                    0x0a00_0000u32.wrapping_add(f.wrapping_mul(2_654_435_761) >> 8),
                ),
                cport: 40000,
                vaddr: Ipv4Addr::new(198, 18, 0, 100),
                vport: 80,
            };
            pick(&mut st, dests, &b, &SchedKey::of(&key))
        })
        .collect()
}

fn main() {
    for n in [10u32, 100] {
        let equal: Vec<DestEntry> = (0..n).map(|i| server(i, 1)).collect();
        let t = Instant::now();
        let base = assign(&equal);
        let build = t.elapsed();
        let fewer: Vec<DestEntry> = equal.iter().filter(|d| d.id != 3).cloned().collect();
        let more: Vec<DestEntry> = equal.iter().cloned().chain([server(n, 1)]).collect();
        println!(
            "N = {n:3}: one removed moves {:.2}% of flows (ideal {:.2}%), one added {:.2}% (ideal {:.2}%); \
             table and {FLOWS} flows in {build:?}",
            100.0 * moved(&base, &assign(&fewer)),
            100.0 / f64::from(n),
            100.0 * moved(&base, &assign(&more)),
            100.0 / f64::from(n + 1),
        );
        let weighted: Vec<DestEntry> = (0..n).map(|i| server(i, i % 4 + 1)).collect();
        let lookup = table(&weighted, MH_SLOTS);
        let total: u32 = weighted.iter().map(|d| d.weight).sum();
        let mut worst: f64 = 0.0;
        for (i, d) in weighted.iter().enumerate() {
            let slots = lookup.iter().filter(|s| usize::from(**s) == i).count();
            let share = slots as f64 / MH_SLOTS as f64;
            let want = f64::from(d.weight) / f64::from(total);
            worst = worst.max((share / want - 1.0).abs());
            if n == 10 {
                println!(
                    "    server {i:2} weight {}: {slots:4} slots, {:5.2}% of the table (weight share {:5.2}%)",
                    d.weight,
                    100.0 * share,
                    100.0 * want
                );
            }
        }
        println!(
            "    weights 1-4: the largest deviation of a server's slot share from its weight share is {:.1}%",
            100.0 * worst
        );
    }
}
