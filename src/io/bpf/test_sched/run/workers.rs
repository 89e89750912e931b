//! Two workers, in test_sched's way: each flow's reports go to the ring
//! of the worker the fanout hash names (`fanout::worker_of`, the hash the
//! fanout program gives the flow's frames by), and a worker whose share
//! of the table is full has its new flows sent up while the other's are
//! still scheduled.

use super::*;
use crate::io::bpf::workers::new_ring;
use crate::io::fanout::worker_of;
use aya::maps::{ArrayOfMaps, Map};

/// Worker 1's ring in `worker_events`, its room and `fast`[2] = 2; SYNs from a
/// range of ports, each checked in its worker's ring; an ACK's report in
/// the same ring; then room[1] = 0. Back to one worker at the end.
pub(super) fn two_workers(rig: &mut Rig, hook: Hook) {
    let ring = new_ring().expect("a ring for worker 1");
    {
        let outer = rig.bpf.map_mut("worker_events").expect("worker_events");
        let mut outer: ArrayOfMaps<&mut MapData> = outer.try_into().unwrap();
        outer
            .set(1, &ring, 0)
            .expect("worker 1's ring in worker_events");
        // maps.h's MAX_WORKERS is the fanout's: a ring for every worker
        // `--workers` allows.
        let n = outer.len() as usize;
        if n != crate::io::fanout::MAX_WORKERS {
            rig.fail(format!("worker_events holds {n} rings"));
        }
    }
    let mut ring1: RingBuf<MapData> = Map::RingBuf(ring).try_into().unwrap();
    rig.fast.set(2, 2, 0).unwrap();
    rig.set(("room", 1), true);
    let (c, _) = hook.client();
    let of = |port: u16| worker_of(Ipv4Addr::from(c), port, 2);
    let read1 = |ring1: &mut RingBuf<MapData>| {
        let mut got = Vec::new();
        while let Some(r) = ring1.next() {
            got.extend(events::parse(0, &r));
        }
        got
    };
    let ports: Vec<u16> = (44000..44032).collect();
    let (mut want0, mut want1) = (Vec::new(), Vec::new());
    for &p in &ports {
        let syn = tcp4(c, VIP, p, 80, SYN);
        let Some(di) = rig.forwards(hook, "two workers: a SYN", &syn, RR) else {
            continue;
        };
        let e = event(
            &syn,
            KernelFlowEvent::New {
                dest_id: rig.id(RR, di),
                tcp_flags: SYN,
                packets: 1,
                bytes: (syn.len() - 14) as u64,
            },
        );
        match of(p) {
            0 => want0.push(e),
            _ => want1.push(e),
        }
    }
    let got1 = read1(&mut ring1);
    rig.news += got1.len() as u64;
    if want0.is_empty() || want1.is_empty() {
        rig.fail(format!(
            "{hook:?}: two workers: the hash gave one worker every port"
        ));
    }
    rig.expect_events(hook, "two workers: worker 0's ring", &want0);
    if got1 != want1 {
        rig.fail(format!(
            "{hook:?}: two workers: ring 1 {got1:?}, want {want1:?}"
        ));
    }
    // A later report of worker 1's flow: in its ring too.
    let p1 = *ports.iter().find(|&&p| of(p) == 1).unwrap();
    let ack = tcp4(c, VIP, p1, 80, ACK);
    rig.forwards(hook, "two workers: an ACK", &ack, RR);
    rig.expect_events(hook, "two workers: an ACK, worker 0's ring", &[]);
    let got1 = read1(&mut ring1);
    if got1 != [event(&ack, KernelFlowEvent::Established)] {
        rig.fail(format!("{hook:?}: two workers: the ACK's report: {got1:?}"));
    }
    // Worker 1 without room: its new flows go up, worker 0's do not.
    rig.set(("room", 1), false);
    let next = |w: usize| (44100..45000).find(|&p| of(p) == w).unwrap();
    rig.goes_up(
        hook,
        "two workers: room[1] = 0",
        &tcp4(c, VIP, next(1), 80, SYN),
    );
    let syn0 = tcp4(c, VIP, next(0), 80, SYN);
    rig.forwards(hook, "two workers: room[1] = 0, worker 0's SYN", &syn0, RR);
    rig.events();
    if !read1(&mut ring1).is_empty() {
        rig.fail(format!(
            "{hook:?}: two workers: a report in ring 1 without room"
        ));
    }
    rig.set(("room", 1), true);
    rig.fast.set(2, 0, 0).unwrap();
}
