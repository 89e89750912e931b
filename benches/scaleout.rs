//! Scale-out simulation (issue 31): N directors behind a router that
//! spreads flows by a 5-tuple hash mod N (ECMP), each director building
//! its own scheduler table from the same real servers, by default each
//! in its own (shuffled) insertion order. For a million random flows it
//! prints (a) the share that change real server when a director leaves
//! or joins (flows ECMP keeps on their director keep their connection
//! entry; the others are scheduled anew by the director they land on),
//! for mh and sh and, for contrast, rr and wrr; (b) the share that
//! change real server when one real server leaves or joins, against the
//! ideal 1/N; (c) the Maglev table's build time and heap at 4,093 slots
//! (uvs's and IPVS's default), 65,521 (IPVS's option nearest 2^16) and
//! 65,537 (the Maglev paper's). Equal weights. Asserts nothing.
//!
//! Run: cargo bench --bench scaleout [-- same] [-- flows=N]
//! (`same`: every director adds the servers in the same order.)

mod common;

use common::{moved, pick, server};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use uvs::lvs::sched::mh::{MH_SLOTS, table};
use uvs::lvs::sched::scheduler::{Buckets, Member, SchedKey};
use uvs::lvs::sched::{SchedState, buckets};
use uvs::lvs::service::SchedulerKind;
use uvs::lvs::splitmix;
use uvs::lvs::table::DestEntry;

/// Counts the heap in use and its peak, for the table's memory.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: the caller's layout, as GlobalAlloc::alloc requires.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: `p` came from alloc with this layout.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static HEAP: Counting = Counting;

/// The Maglev paper's table size (NSDI'16 §3.4).
const PAPER_SLOTS: usize = 65_537;
/// IPVS's prime nearest 2^16 (CONFIG_IP_VS_MH_TAB_INDEX 16).
const IPVS_SLOTS: usize = 65_521;

/// A flow: what the schedulers hash, and the router's hash of its
/// 5-tuple (TCP to 198.18.0.100:80).
struct Flow {
    key: SchedKey,
    ecmp: u64,
}

fn flows(n: u32) -> Vec<Flow> {
    let vaddr = 0xc612_0064;
    (0..n)
        .map(|f| {
            let z = splitmix((0x005c_a1e0_u64 << 32) | u64::from(f));
            let (caddr, cport) = (z as u32, ((z >> 32) as u16).max(1024));
            let tuple =
                ((u64::from(caddr) << 32) | (u64::from(cport) << 16) | 6) ^ u64::from(vaddr);
            Flow {
                key: SchedKey {
                    caddr,
                    cport,
                    vaddr,
                },
                ecmp: splitmix(splitmix(tuple) ^ 0xec3d_0000_0000_0080),
            }
        })
        .collect()
}

/// How each director orders its servers.
#[derive(Clone, Copy, PartialEq)]
enum Order {
    Same,
    Shuffled,
}

/// `servers` in director `d`'s insertion order.
fn ordered(servers: &[DestEntry], order: Order, d: u64) -> Vec<DestEntry> {
    let mut l = servers.to_vec();
    if order == Order::Shuffled {
        for i in (1..l.len()).rev() {
            let j = (splitmix((d << 40) | i as u64) % (i as u64 + 1)) as usize;
            l.swap(i, j);
        }
    }
    l
}

/// A scheduler as one director runs it: its list, its table, its state.
struct Director {
    dests: Vec<DestEntry>,
    buckets: Buckets,
    st: SchedState,
}

impl Director {
    fn new(kind: SchedulerKind, dests: Vec<DestEntry>, slots: Option<usize>) -> Director {
        let buckets = match slots {
            Some(s) => table(&dests, s),
            None => buckets(kind, &dests),
        };
        let st = SchedState::new(kind, &Member::of(&dests));
        Director { dests, buckets, st }
    }

    fn pick(&mut self, key: &SchedKey) -> u64 {
        pick(&mut self.st, &self.dests, &self.buckets, key)
    }
}

/// (a): N directors become `m`: the share of flows ECMP moves to another
/// director, and of flows that change real server.
fn directors_change(ds: &mut [Director], flows: &[Flow], base: &[u64], m: u64) -> (f64, f64) {
    let n = ds.len() as u64 - 1;
    let (mut hopped, mut changed) = (0usize, 0usize);
    for (f, was) in flows.iter().zip(base) {
        let (from, to) = (f.ecmp % n, f.ecmp % m);
        if from != to {
            hopped += 1;
            changed += usize::from(ds[to as usize].pick(&f.key) != *was);
        }
    }
    let all = flows.len() as f64;
    (hopped as f64 / all, changed as f64 / all)
}

/// (a) for one scheduler: N directors and a joiner, each with its own
/// order; the shares (ECMP, changed) when the last leaves and when the
/// joiner joins.
fn director_row(
    kind: SchedulerKind,
    servers: &[DestEntry],
    n: u64,
    order: Order,
    flows: &[Flow],
) -> [(f64, f64); 2] {
    let mut ds: Vec<Director> = (0..=n)
        .map(|d| Director::new(kind, ordered(servers, order, d), None))
        .collect();
    let base: Vec<u64> = flows
        .iter()
        .map(|f| ds[(f.ecmp % n) as usize].pick(&f.key))
        .collect();
    let states: Vec<SchedState> = ds.iter().map(|d| d.st.clone()).collect();
    let leave = directors_change(&mut ds, flows, &base, n - 1);
    for (d, st) in ds.iter_mut().zip(states) {
        d.st = st;
    }
    let join = directors_change(&mut ds, flows, &base, n + 1);
    [leave, join]
}

/// The server id each flow gets from one director.
fn assign(d: &mut Director, flows: &[Flow]) -> Vec<u64> {
    flows.iter().map(|f| d.pick(&f.key)).collect()
}

/// (b) for one scheduler and table size: the shares of flows that change
/// real server when one of `servers` leaves, and when one joins (added
/// last: at the head of uvs's newest-first list).
fn server_row(
    kind: SchedulerKind,
    servers: &[DestEntry],
    slots: Option<usize>,
    order: Order,
    flows: &[Flow],
) -> (f64, f64) {
    let list = ordered(servers, order, 0);
    let base = assign(&mut Director::new(kind, list.clone(), slots), flows);
    let gone = servers[servers.len() / 3].id;
    let fewer: Vec<DestEntry> = list.iter().filter(|d| d.id != gone).cloned().collect();
    let more: Vec<DestEntry> = [server(servers.len() as u32, 1)]
        .into_iter()
        .chain(list)
        .collect();
    let leave = moved(
        &base,
        &assign(&mut Director::new(kind, fewer, slots), flows),
    );
    let join = moved(&base, &assign(&mut Director::new(kind, more, slots), flows));
    (leave, join)
}

/// (c): the fastest of seven builds of a `slots` table (the machine's
/// other load only adds time), and the heap at its peak during one,
/// above what was in use before (the table included).
fn build(servers: &[DestEntry], slots: usize) -> (Duration, usize) {
    let fastest = (0..7)
        .map(|_| {
            let t = Instant::now();
            let lookup = table(servers, slots);
            let took = t.elapsed();
            drop(lookup);
            took
        })
        .min()
        .unwrap_or_default();
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let lookup = table(servers, slots);
    let peak = PEAK.load(Ordering::Relaxed) - before;
    drop(lookup);
    (fastest, peak)
}

fn pct(x: f64) -> String {
    format!("{:6.2}%", 100.0 * x)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let order = match args.iter().any(|a| a == "same") {
        true => Order::Same,
        false => Order::Shuffled,
    };
    // `cargo test --all-targets` runs this too (without --bench): then a
    // smoke run of 5,000 flows that only checks the bench still works.
    let (full, sized) = uvs::rig::bench_size("UVS_BENCH_FLOWS", 1_000_000u32, 5_000);
    if !full {
        println!("(smoke run; figures: cargo bench --bench scaleout)");
    }
    let n_flows = args
        .iter()
        .find_map(|a| a.strip_prefix("flows=")?.parse().ok())
        .unwrap_or(sized);
    let flows = flows(n_flows);
    let pool = |s: u32| -> Vec<DestEntry> { (0..s).map(|i| server(i, 1)).collect() };
    let kinds = [
        SchedulerKind::Mh,
        SchedulerKind::Sh,
        SchedulerKind::Rr,
        SchedulerKind::Wrr,
    ];
    let order_name = match order {
        Order::Same => "the same order",
        Order::Shuffled => "its own shuffled order",
    };
    println!(
        "{n_flows} flows, spread by a 5-tuple hash mod N; each director adds the servers in {order_name}"
    );
    let t = Instant::now();

    println!(
        "\n(a) a director leaves (N -> N-1) / joins (N -> N+1): flows that change real server"
    );
    println!(
        "  N      S | ECMP moves leave/join | mh leave/join   | sh leave/join   | rr leave/join   | wrr leave/join"
    );
    for n in [2u64, 8, 64] {
        for s in [10u32, 1_000, 10_000] {
            let servers = pool(s);
            let rows: Vec<[(f64, f64); 2]> = kinds
                .iter()
                .map(|k| director_row(*k, &servers, n, order, &flows))
                .collect();
            let [(hl, _), (hj, _)] = rows[0];
            let mut line = format!("{n:3} {s:6} | {} {}      |", pct(hl), pct(hj));
            for [(_, l), (_, j)] in rows {
                line += &format!(" {} {} |", pct(l), pct(j));
            }
            println!("{}", line.trim_end_matches([' ', '|']));
        }
    }

    println!(
        "\n(b) one real server leaves (S -> S-1) / joins (S -> S+1): flows that change real server"
    );
    println!("      S | ideal 1/S  | mh 4,093 slots  | mh 65,537 slots | sh (256 buckets)");
    for s in [10u32, 100, 1_000, 10_000] {
        let servers = pool(s);
        let mut line = format!(
            " {s:6} | {} {} |",
            pct(1.0 / f64::from(s)),
            pct(1.0 / f64::from(s + 1))
        );
        for (kind, slots) in [
            (SchedulerKind::Mh, None),
            (SchedulerKind::Mh, Some(PAPER_SLOTS)),
            (SchedulerKind::Sh, None),
        ] {
            let (l, j) = server_row(kind, &servers, slots, order, &flows);
            line += &format!(" {} {} |", pct(l), pct(j));
        }
        println!("{}", line.trim_end_matches([' ', '|']));
    }

    println!(
        "\n(c) Maglev table build (mh::table, fastest of 7) and the heap at its peak while building"
    );
    println!(
        "      S | {MH_SLOTS} slots           | {IPVS_SLOTS} slots          | {PAPER_SLOTS} slots"
    );
    for s in [10u32, 100, 1_000, 10_000] {
        let servers = pool(s);
        let mut line = format!(" {s:6} |");
        for slots in [MH_SLOTS, IPVS_SLOTS, PAPER_SLOTS] {
            let (took, peak) = build(&servers, slots);
            line += &format!(
                " {:8.3} ms {:6.1} KiB |",
                took.as_secs_f64() * 1e3,
                peak as f64 / 1024.0
            );
        }
        println!("{}", line.trim_end_matches([' ', '|']));
    }
    println!(
        "  (the table itself: 2 bytes a slot, {:.1} KiB at {MH_SLOTS}, {:.1} KiB at {PAPER_SLOTS})",
        (2 * MH_SLOTS) as f64 / 1024.0,
        (2 * PAPER_SLOTS) as f64 / 1024.0
    );
    println!("\nin {:.1} s", t.elapsed().as_secs_f64());
}
