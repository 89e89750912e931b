//! The kernel program's flows when uvs's table is full, and what the
//! program forwards while they live (issue 29, `adopt.rs` and
//! `live_counts.rs`), in memory as `kernel_sched.rs` plays the program:
//! reported flows make room as uvs's own do, a UDP flow's second datagram
//! keeps it, an evicted one is entered again, and the program's counts
//! by real server reach the stats once a second.

use crate::kernel_sched::{
    BOTH, V4, held, listed, report, rig, rig_max, scheduled, server, svc_conns, svc_index,
    taken_back, until, upserts,
};
use crate::offload::svc_inpkts;
use uvs::io::KernelFlowEvent;
use uvs::lvs::service::Protocol;

#[test]
fn a_full_table_makes_room_for_reported_flows_and_stops_the_program_only_when_it_cannot() {
    for fam in BOTH {
        let (mut r, _rx) = rig_max(16);
        r.poll();
        assert_eq!(r.io.room, Some(true));
        // A flood of one-datagram flows: each report past the limit
        // evicts the oldest such entry, as uvs's own new flows do, and the
        // program goes on scheduling.
        for sport in 0..40 {
            scheduled(&mut r, fam, Protocol::Udp, 6000 + sport, 11);
        }
        r.poll();
        assert_eq!((r.dp.conn_count(), r.io.room), (16, Some(true)), "{fam:?}");
        // The evicted ones were the program's, one-packet UDP flows: left
        // in its map (no system call each), their datagram counted.
        let first = fam.flow(Protocol::Udp, 6000);
        assert_eq!(taken_back(&r, first), 0, "{fam:?}");
        assert!(held(&r, first).is_some());
        assert_eq!(svc_inpkts(&r, svc_index(&r, fam.key(Protocol::Udp))), 40);
        r.dp.expire(u64::MAX / 2);
        r.poll();
        assert_eq!(r.dp.conn_count(), 0, "{fam:?}");
        // Established TCP entries are not evicted: once the table is
        // full of them, a report is refused and the program stops.
        for sport in 0..16 {
            let f = scheduled(&mut r, fam, Protocol::Tcp, 7000 + sport, 11);
            report(&mut r, f, KernelFlowEvent::Established);
        }
        r.poll();
        assert_eq!((r.dp.conn_count(), r.io.room), (16, Some(true)), "{fam:?}");
        let refused = scheduled(&mut r, fam, Protocol::Tcp, 7016, 11);
        assert!(held(&r, refused).is_some());
        r.poll();
        assert_eq!((r.dp.conn_count(), r.io.room), (16, Some(false)), "{fam:?}");
        assert_eq!(taken_back(&r, refused), 1, "{fam:?}");
        // Room again once entries go (and a margin of 16/8 is free).
        r.dp.expire(u64::MAX / 2);
        r.poll();
        assert_eq!((r.dp.conn_count(), r.io.room), (0, Some(true)), "{fam:?}");
    }
}

/// A UDP flow of the program's that sends a second datagram is reported
/// as seen: uvs no longer evicts it as a one-packet entry. One that uvs
/// had evicted (left in the program's map) is entered again at that
/// report, to the server the program keeps sending it to. An evicted
/// SYN-only TCP flow is taken back: a retried SYN must be scheduled anew.
#[test]
fn a_second_datagram_report_keeps_a_udp_flow_and_enters_an_evicted_one_again() {
    for fam in BOTH {
        let (mut r, rx) = rig_max(16);
        let key = fam.key(Protocol::Udp);
        let live = scheduled(&mut r, fam, Protocol::Udp, 6000, 11);
        let dest_id = server(&r, key, fam.rs(11)).0;
        report(&mut r, live, KernelFlowEvent::Seen { dest_id });
        for sport in 1..40 {
            scheduled(&mut r, fam, Protocol::Udp, 6000 + sport, 12);
        }
        r.poll();
        assert_eq!(r.dp.conn_count(), 16, "{fam:?}");
        assert_eq!(listed(&r, fam, 6000).unwrap().daddr, fam.rs(11), "kept");
        assert!(listed(&r, fam, 6001).is_none(), "evicted");
        // The evicted 6001 sends again: the program forwards the datagram
        // and reports it; uvs enters the flow again, to 12, synced.
        let _ = upserts(&rx, fam, 6001);
        let again = fam.flow(Protocol::Udp, 6001);
        let id12 = server(&r, key, fam.rs(12)).0;
        report(&mut r, again, KernelFlowEvent::Seen { dest_id: id12 });
        r.poll();
        let c = listed(&r, fam, 6001).expect("entered again");
        assert_eq!(c.daddr, fam.rs(12), "{fam:?}");
        assert_eq!(upserts(&rx, fam, 6001).len(), 1);
        assert_eq!((taken_back(&r, again), r.counter("kernel_refused")), (0, 0));
        // A new connection again (as after any eviction), not scheduled.
        assert_eq!(svc_conns(&r, key), 41);
        assert_eq!(r.counter("kernel_scheduled"), 40);
        // A report naming a server the table no longer has: refused, and
        // the flow taken back from the program (its frames come up).
        let gone = fam.flow(Protocol::Udp, 6002);
        report(&mut r, gone, KernelFlowEvent::Seen { dest_id: 9999 });
        r.poll();
        assert_eq!((taken_back(&r, gone), r.counter("kernel_refused")), (1, 1));

        // SYN-only TCP flows of the program's: the evicted one is taken
        // back.
        r.dp.expire(u64::MAX / 2);
        r.poll();
        for sport in 0..17 {
            scheduled(&mut r, fam, Protocol::Tcp, 7000 + sport, 11);
        }
        r.poll();
        let syn = fam.flow(Protocol::Tcp, 7000);
        assert_eq!((taken_back(&r, syn), held(&r, syn)), (1, None), "{fam:?}");
    }
}

/// What the program forwards to a real server reaches its counters and
/// its service's while the flows live, about once a second, each frame
/// once; the program's server ids are those of the table's DR servers.
#[test]
fn the_programs_counts_reach_the_stats_while_the_flows_live() {
    let (mut r, _rx) = rig();
    let key = V4.key(Protocol::Udp);
    let (id, rs11) = server(&r, key, V4.rs(11));
    scheduled(&mut r, V4, Protocol::Udp, 5000, 11);
    let i = svc_index(&r, key);
    until(&mut r, "the program counts server 11", |r| {
        r.io.counted.contains(&id)
    });
    // Every DR server of the table, both families, counted by id.
    assert_eq!(r.io.counted.len(), 8, "{:?}", r.io.counted);
    assert_eq!(svc_inpkts(&r, i), 1, "the first datagram, from the report");
    r.io.real_counts.insert(id, (500, 30_000));
    until(&mut r, "500 datagrams counted", |r| svc_inpkts(r, i) == 501);
    assert_eq!(
        (rs11.stats.snapshot().inpkts, rs11.stats.snapshot().inbytes),
        (501, 60 + 30_000)
    );
    r.io.real_counts.insert(id, (700, 42_000));
    until(&mut r, "200 more", |r| svc_inpkts(r, i) == 701);
    // Read again with nothing new: nothing added.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    r.poll();
    assert_eq!(svc_inpkts(&r, i), 701);
    assert_eq!(rs11.stats.snapshot().inbytes, 60 + 42_000);
}

/// A full table evicts a SYN-only TCP flow of the program's for a
/// connection uvs schedules itself (a SYN that came up): the evicted flow
/// is taken back from the program too, so that the client's retried SYN
/// finds no stale entry there, which would send the handshake's ACK to
/// the old entry's server while uvs schedules the SYN anew.
#[test]
fn a_connection_uvs_schedules_itself_takes_back_the_program_s_flow_it_evicts() {
    for fam in BOTH {
        let (mut r, _rx) = rig_max(16);
        for sport in 0..16 {
            scheduled(&mut r, fam, Protocol::Tcp, 7000 + sport, 11);
        }
        r.poll();
        assert_eq!(r.dp.conn_count(), 16, "{fam:?}");
        let first = fam.flow(Protocol::Tcp, 7000);
        assert!(held(&r, first).is_some());
        let out = r.feed(fam.frame(Protocol::Tcp, 8000, "S"));
        assert_eq!(out.len(), 1, "{fam:?}: the SYN forwarded");
        assert_eq!(r.dp.conn_count(), 16, "{fam:?}");
        assert!(listed(&r, fam, 7000).is_none(), "{fam:?}: evicted");
        assert!(listed(&r, fam, 8000).is_some(), "{fam:?}");
        assert_eq!(taken_back(&r, first), 1, "{fam:?}");
        assert!(held(&r, first).is_none(), "{fam:?}");
        // The rest stay the program's.
        assert_eq!(taken_back(&r, fam.flow(Protocol::Tcp, 7001)), 0);
    }
}
