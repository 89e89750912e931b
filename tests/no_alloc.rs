//! Steady-state forwarding allocates nothing per packet: counted with a
//! global allocator while frames of established and new connections flow.

use arc_swap::ArcSwap;
use etherparse::PacketBuilder;
use std::alloc::{GlobalAlloc, Layout, System};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use uvs::control::model::Model;
use uvs::control::proto::{DestSpec, Op};
use uvs::dataplane::{Dataplane, LinkParams};
use uvs::io::RxMeta;
use uvs::io::memory::ReplayIo;
use uvs::lvs::service::{Forward, Protocol, ServiceKey};
use uvs::lvs::stats::DataplaneCounters;
use uvs::lvs::table::NextHop;
use uvs::wire::MacAddr;

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn forwarding_does_not_allocate() {
    // DR, TUN and NAT in turn, in one test: the allocation counter is
    // global.
    for fwd in [Forward::Route, Forward::Tunnel, Forward::Masq] {
        let n = allocations_while_forwarding(fwd);
        assert_eq!(n, 0, "{fwd:?}: allocations while forwarding");
    }
}

fn allocations_while_forwarding(fwd: Forward) -> usize {
    let key = ServiceKey {
        protocol: Protocol::Tcp,
        addr: [198, 18, 0, 100].into(),
        port: 80,
    };
    let d = |last| DestSpec {
        addr: Ipv4Addr::new(198, 18, 0, last),
        port: 80,
        forward: fwd,
        weight: 1,
        uthreshold: 0,
        lthreshold: 0,
    };
    let m = Model::with_tun_source(Some(Ipv4Addr::new(198, 18, 0, 2)))
        .apply_all(
            &[
                Op::AddService {
                    key,
                    scheduler: "wrr".into(),
                    persistent: None,
                },
                Op::AddDest { key, dest: d(11) },
                Op::AddDest { key, dest: d(12) },
            ],
            &mut |_, _| Ok(hop(MacAddr([2, 0, 0, 0, 1, 1]))),
            &mut |_, _| {},
        )
        .unwrap();
    let shared = Arc::new(ArcSwap::from_pointee(m.table(1)));
    let mut dp = Dataplane::new(
        shared,
        LinkParams {
            mac: MacAddr([2, 0, 0, 0, 0, 2]),
            mtu: 1500,
            addr: Ipv4Addr::new(198, 18, 0, 2),
        },
        Arc::new(DataplaneCounters::default()),
        None,
    );
    // 2000 distinct clients: SYN then data, so both scheduling of new
    // connections and lookups of existing ones are on the measured path.
    let mut frames = Vec::new();
    for p in 0..2000u16 {
        for syn in [true, false] {
            let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 10], [2, 0, 0, 0, 0, 2]).ipv4(
                [198, 18, 0, 10],
                [198, 18, 0, 100],
                64,
            );
            let b = if syn {
                b.tcp(10000 + p, 80, 1, 1000).syn()
            } else {
                b.tcp(10000 + p, 80, 2, 1000).ack(1)
            };
            let mut v = Vec::new();
            b.write(&mut v, b"0123456789").unwrap();
            frames.push((v, RxMeta::default()));
        }
        // NAT: the real server's answer, from both real servers (one is
        // the connection's and is translated, the other is the kernel's).
        if fwd == Forward::Masq {
            for rs in [11, 12] {
                let mut v = Vec::new();
                PacketBuilder::ethernet2([2, 0, 0, 0, 1, rs], [2, 0, 0, 0, 0, 2])
                    .ipv4([198, 18, 0, rs], [198, 18, 0, 10], 64)
                    .tcp(80, 10000 + p, 5, 1000)
                    .ack(3)
                    .write(&mut v, b"reply")
                    .unwrap();
                frames.push((v, RxMeta::default()));
            }
        }
    }
    let mut io = ReplayIo::new(frames);
    let mut buf = vec![0u8; 70000];
    // Warm-up: first table load and the first round of connections.
    let per_client = if fwd == Forward::Masq { 4 } else { 2 };
    for _ in 0..2000 * per_client {
        dp.poll_once(&mut io, &mut buf, Duration::ZERO);
    }
    let before = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..20000 * per_client {
        dp.poll_once(&mut io, &mut buf, Duration::ZERO);
    }
    let after = ALLOCS.load(Ordering::Relaxed);
    // Every client frame is sent, and for NAT one reply of two.
    let sent_per_client = if fwd == Forward::Masq { 3 } else { 2 };
    assert_eq!(io.sent, (2000 + 20000) * sent_per_client, "{fwd:?}");
    after - before
}

/// A real server's next hop on link 0.
fn hop(mac: MacAddr) -> NextHop {
    NextHop { link: 0, mac }
}
