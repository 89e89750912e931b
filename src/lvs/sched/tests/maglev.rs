//! The hashing schedulers: sh and mh keep a client on one server, their
//! port flags spread its ports, mh's table is the same whatever the
//! order of the servers and moves about 1/N of the flows when one of N
//! goes.

use super::*;
use crate::lvs::sched::mh::{MH_SLOTS, table};

fn key(client: u32, cport: u16) -> ConnKey {
    ConnKey {
        protocol: Protocol::Tcp,
        caddr: Ipv4Addr::from(0xc612_0000 | (client & 0xffff)),
        cport,
        vaddr: Ipv4Addr::new(198, 18, 0, 100),
        vport: 80,
    }
}

/// The server ids `n` flows of distinct clients get.
fn ids(kind: SchedulerKind, d: &[DestEntry], n: u32) -> Vec<Option<u64>> {
    let mut s = Sched::new(kind, d);
    (0..n)
        .map(|i| {
            let k = ConnKey {
                caddr: Ipv4Addr::from(0x0a00_0000 + i.wrapping_mul(2_654_435_761) % 0x00ff_ffff),
                ..key(0, 1024)
            };
            s.pick_key(d, &k).map(|x| d[x].id)
        })
        .collect()
}

#[test]
fn sh_and_mh_keep_a_client_and_their_port_flags_spread_it() {
    let d = dests(&[1, 1, 1, 1]);
    for kind in [SchedulerKind::Sh, SchedulerKind::Mh] {
        for flags in [0u8, SchedFlags::FALLBACK] {
            let mut s = Sched::new(kind, &d).with_flags(flags);
            let first = s.pick_key(&d, &key(7, 1000));
            assert!(first.is_some());
            for port in 1001..1100 {
                assert_eq!(s.pick_key(&d, &key(7, port)), first, "{kind:?}");
            }
        }
        let mut s = Sched::new(kind, &d).with_flags(SchedFlags::PORT);
        let mut seen = [0u32; 4];
        for port in 1000..1400 {
            seen[s.pick_key(&d, &key(7, port)).unwrap()] += 1;
        }
        assert!(seen.iter().all(|n| *n > 40), "{kind:?} {seen:?}");
    }
}

/// Directors behind ECMP agree without sync: the same servers added in
/// other orders (one of them quiesced, one an IPv6 address) give every
/// flow the same server, with and without the port and fallback flags.
#[test]
fn sh_and_mh_pick_the_same_server_whatever_order_the_servers_came_in() {
    let mut d = dests(&[3, 1, 0, 2, 5, 1]);
    d[5].addr = "2001:2::11".parse().unwrap();
    d[1].port = 8080;
    let orders: [&[usize]; 3] = [
        &[5, 4, 3, 2, 1, 0],
        &[2, 0, 4, 1, 5, 3],
        &[1, 3, 5, 0, 2, 4],
    ];
    let flagsets = [
        0u8,
        SchedFlags::PORT,
        SchedFlags::FALLBACK,
        SchedFlags::PORT | SchedFlags::FALLBACK,
    ];
    for kind in [SchedulerKind::Sh, SchedulerKind::Mh] {
        for flags in flagsets {
            let picks = |l: &[DestEntry]| -> Vec<Option<u64>> {
                let mut s = Sched::new(kind, l).with_flags(flags);
                (0..3000u32)
                    .map(|i| {
                        let k = key(i.wrapping_mul(40_503), 1024 + (i % 61) as u16);
                        s.pick_key(l, &k).map(|x| l[x].id)
                    })
                    .collect()
            };
            let want = picks(&d);
            assert!(want.iter().any(Option::is_some), "{kind:?}");
            for o in orders {
                let other: Vec<DestEntry> = o.iter().map(|i| d[*i].clone()).collect();
                assert_eq!(picks(&other), want, "{kind:?} flags {flags} order {o:?}");
            }
        }
    }
}

#[test]
fn mh_without_fallback_leaves_a_quiesced_servers_clients_unserved() {
    let mut d = dests(&[1, 1, 1]);
    let k = key(9, 1000);
    let first = Sched::new(SchedulerKind::Mh, &d).pick_key(&d, &k).unwrap();
    d[first].weight = 0;
    // The table keeps its slots (built from the last weight).
    let mut s = Sched::new(SchedulerKind::Mh, &d);
    assert_eq!(s.pick_key(&d, &k), None);
    let mut s = Sched::new(SchedulerKind::Mh, &d).with_flags(SchedFlags::FALLBACK);
    let other = s.pick_key(&d, &k);
    assert!(other.is_some() && other != Some(first));
}

#[test]
fn dh_sends_one_vip_to_one_server() {
    let d = dests(&[1, 1, 1]);
    let mut s = Sched::new(SchedulerKind::Dh, &d);
    let first = s.pick_key(&d, &key(1, 1));
    assert!(first.is_some());
    for c in 2..50 {
        assert_eq!(s.pick_key(&d, &key(c, 1)), first);
    }
}

#[test]
fn mh_table_is_the_same_in_any_order_and_honours_weights() {
    let d = dests(&[1, 2, 3, 4]);
    let mut rev = d.clone();
    rev.reverse();
    let (a, b) = (table(&d, MH_SLOTS), table(&rev, MH_SLOTS));
    let id =
        |t: &[u16], l: &[DestEntry]| -> Vec<u64> { t.iter().map(|i| l[*i as usize].id).collect() };
    assert_eq!(id(&a, &d), id(&b, &rev));
    for (i, w) in [1u32, 2, 3, 4].iter().enumerate() {
        let share = a.iter().filter(|x| **x as usize == i).count() as f64 / MH_SLOTS as f64;
        let want = f64::from(*w) / 10.0;
        assert!((share - want).abs() < 0.02, "server {i}: {share} vs {want}");
    }
    // No servers, or none with a weight: an empty table, no panic.
    assert!(
        table(&[], MH_SLOTS)
            .iter()
            .all(|x| *x == scheduler::NO_DEST)
    );
    assert!(
        table(&dests(&[0, 0]), 7)
            .iter()
            .all(|x| *x == scheduler::NO_DEST)
    );
    // A size that is not prime still fills.
    assert!(table(&d, 12).iter().all(|x| *x != scheduler::NO_DEST));
}

/// 20,000 flows over 10 servers: removing one moves about a tenth of
/// them (those it had, and few others).
#[test]
fn removing_one_of_ten_servers_moves_about_a_tenth() {
    let d: Vec<DestEntry> = dests(&[1; 10]);
    let before = ids(SchedulerKind::Mh, &d, 20_000);
    let fewer: Vec<DestEntry> = d.iter().filter(|x| x.id != 4).cloned().collect();
    let after = ids(SchedulerKind::Mh, &fewer, 20_000);
    let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count() as f64 / 20_000.0;
    assert!((0.08..0.15).contains(&moved), "{moved}");
    let had = before.iter().filter(|x| **x == Some(4)).count() as f64 / 20_000.0;
    assert!(
        moved - had < 0.04,
        "moved {moved}, the removed server had {had}"
    );
}
