//! wrr as the kernel's hooks see a list built one command at a time, and
//! the connection-count schedulers with long-lived connections, against
//! the kernel's arithmetic.

use super::*;
use std::sync::atomic::Ordering::Relaxed;

/// A worker's state `state` as it was at table `epoch`, with `dests`.
fn at<'a>(state: &'a SchedState, epoch: u64, dests: &'a [DestEntry]) -> Before<'a> {
    Before {
        state,
        epoch,
        dests,
    }
}

fn members(d: &[&DestEntry]) -> Arc<[Member]> {
    d.iter()
        .map(|d| Member {
            id: d.id,
            weight: d.listed_weight,
        })
        .collect()
}

fn logged(epoch: u64, change: Change) -> Logged {
    Logged { epoch, change }
}

/// 18 picks as letters of `d` (A is d[0], the newest).
fn picks(st: &mut SchedState, d: &[DestEntry], n: usize) -> String {
    let pool = Pool {
        dests: d,
        buckets: &[],
        flags: SchedFlags::default(),
    };
    let key = ConnKey {
        protocol: Protocol::Tcp,
        caddr: C,
        cport: 1024,
        vaddr: Ipv4Addr::new(198, 18, 0, 100),
        vport: 80,
    };
    (0..n)
        .map(|_| {
            st.schedule(&pool, &SchedKey::of(&key))
                .map_or('-', |i| (b'A' + i as u8) as char)
        })
        .collect()
}

/// rs1 (weight 4), rs2 (3), rs3 (2) added in that order: the kernel's
/// list is rs3 rs2 rs1, and its first add_dest leaves cw at 1 (gcd 4,
/// so mw = 4 - 3), which later adds keep. From then on: rs3 rs2 rs1,
/// rs1, rs2 rs1, rs3 rs2 rs1 (ip_vs_wrr.c, ip_vs_ctl.c's
/// __ip_vs_update_dest). The same whether the worker saw each add or
/// all three at once (a restore).
#[test]
fn wrr_replays_adds_as_the_kernel_saw_them() {
    let d = dests(&[2, 3, 4]);
    let (rs3, rs2, rs1) = (&d[0], &d[1], &d[2]);
    let log: Vec<Logged> = vec![
        logged(1, Change::Dests(members(&[rs1]))),
        logged(2, Change::Dests(members(&[rs2, rs1]))),
        logged(3, Change::Dests(members(&[rs3, rs2, rs1]))),
    ];
    let kernel = "ABCCBCABC".repeat(2);
    // All at once.
    let empty = SchedState::new(SchedulerKind::Wrr, &[]);
    let mut st = SchedState::carried(Some(at(&empty, 0, &[])), SchedulerKind::Wrr, &log, &d);
    assert_eq!(picks(&mut st, &d, 18), kernel);
    // One table per add.
    let tables = [vec![rs1.clone()], vec![rs2.clone(), rs1.clone()], d.clone()];
    let mut st = empty.clone();
    let mut prev: (u64, Vec<DestEntry>) = (0, Vec::new());
    for (i, t) in tables.iter().enumerate() {
        let b = Before {
            state: &st,
            epoch: prev.0,
            dests: &prev.1,
        };
        st = SchedState::carried(Some(b), SchedulerKind::Wrr, &log[..=i], t);
        prev = (i as u64 + 1, t.clone());
    }
    assert_eq!(picks(&mut st, &d, 18), kernel);
    // A MAC that resolves later is no change to the rotation.
    let mut pending = d.clone();
    pending[0].weight = 0;
    let mut st = SchedState::carried(Some(at(&empty, 0, &[])), SchedulerKind::Wrr, &log, &pending);
    // rs3 is skipped while unresolved; the marks stay the kernel's.
    assert_eq!(picks(&mut st, &pending, 3), "BCC");
    let mut st = SchedState::carried(Some(at(&st, 3, &pending)), SchedulerKind::Wrr, &log, &d);
    assert_eq!(picks(&mut st, &d, 9), "BCABCABCC");
    // Bound anew with the servers in place (-E -s wrr): cw starts at mw.
    let mut rebound = log.clone();
    rebound.push(logged(4, Change::Bind));
    let b = at(&empty, 3, &d);
    let mut st = SchedState::carried(Some(b), SchedulerKind::Wrr, &rebound, &d);
    assert_eq!(picks(&mut st, &d, 9), "CBCABCABC");
}

/// `n` new connections that all stay active: the servers they went to
/// (A is the first in list order, - none) and each server's count.
fn long_lived(kind: SchedulerKind, weights: &[u32], n: usize) -> (String, Vec<u32>) {
    let d = dests(weights);
    let mut s = Sched::new(kind, &d);
    let got = (0..n)
        .map(|_| match s.pick(&d, C) {
            Some(i) => {
                d[i].state.active.fetch_add(1, Relaxed);
                (b'A' + i as u8) as char
            }
            None => '-',
        })
        .collect();
    (got, d.iter().map(|x| x.state.active()).collect())
}

/// Every connection stays active: where sed, nq and wlc put each new
/// one, by the kernel's formulas ((active+1)/weight for sed, an idle
/// server first for nq, (active*256+inactive)/weight for wlc; ties to
/// the first in list order), computed independently of uvs.
#[test]
fn long_lived_connections_land_where_the_kernel_puts_them() {
    for (kind, weights, want, counts) in [
        (SchedulerKind::Sed, [1, 2, 3], "CBCABCCBCABC", [2, 4, 6]),
        (SchedulerKind::Nq, [1, 2, 3], "ABCCBCCBCABC", [2, 4, 6]),
        (SchedulerKind::Wlc, [1, 2, 3], "ABCCBCABCCBC", [2, 4, 6]),
    ] {
        let (got, n) = long_lived(kind, &weights, 12);
        assert_eq!(got, want, "{kind:?}");
        assert_eq!(n, counts, "{kind:?}");
    }
    for (kind, want) in [
        (SchedulerKind::Sed, "AAAAABAAAAAB"),
        (SchedulerKind::Nq, "ABAAAAAAAAAB"),
        (SchedulerKind::Wlc, "ABAAAAABAAAA"),
    ] {
        assert_eq!(long_lived(kind, &[5, 1], 12).0, want, "{kind:?}");
    }
}

/// fo: the highest weight, the first on a tie; ovf: the highest weight
/// whose active connections do not exceed it, then the next.
#[test]
fn fo_and_ovf() {
    assert_eq!(run(SchedulerKind::Fo, &[2, 5, 5, 1], 3), "BBB");
    assert_eq!(run(SchedulerKind::Fo, &[0, 0], 1), "-");
    // B takes 3 (active 0, 1, 2 <= 2), A 2 (0, 1 <= 1), then nobody.
    assert_eq!(long_lived(SchedulerKind::Ovf, &[1, 2], 6).0, "BBBAA-");
}

#[test]
fn sched_flags_as_ipvsadm_parses_and_prints_them() {
    let f = SchedFlags::parse("sh-fallback,sh-port", "sh").unwrap();
    assert_eq!(f, SchedFlags(3));
    assert_eq!(f.names(Some(SchedulerKind::Sh)), "sh-fallback,sh-port");
    assert_eq!(
        SchedFlags::parse("flag-2", "mh")
            .unwrap()
            .names(Some(SchedulerKind::Mh)),
        "mh-port"
    );
    assert_eq!(
        SchedFlags::parse("flag-1,flag-3", "rr")
            .unwrap()
            .names(Some(SchedulerKind::Rr)),
        "flag-1,flag-3"
    );
    assert_eq!(
        SchedFlags::parse("mh-port", "sh").unwrap_err().to_string(),
        "incompatible scheduler flag `mh-port'"
    );
    assert_eq!(
        SchedFlags::parse("sh-portt", "sh").unwrap_err().to_string(),
        "invalid scheduler flag `sh-portt'"
    );
}
