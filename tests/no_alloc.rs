//! Steady-state forwarding allocates nothing per packet: counted with a
//! global allocator while frames of established and new connections flow.

use etherparse::PacketBuilder;
use std::alloc::{GlobalAlloc, Layout, System};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use uvs::io::RxMeta;
use uvs::io::memory::ReplayIo;
use uvs::lvs::service::{Forward, Protocol};
use uvs::lvs::table::NextHop;
use uvs::rig::{Rig, dest, one_link, service, svc};
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
    let key = svc(Protocol::Tcp, 80);
    let d = |last| dest(Ipv4Addr::new(198, 18, 0, last), 80, fwd, 1);
    let ops = service(key, "wrr", &[d(11), d(12)]);
    let rig = Rig::build(
        one_link(),
        |_, _| hop(MacAddr([2, 0, 0, 0, 1, 1])),
        Vec::new(),
        &ops,
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
    let mut rig = rig.with_io(ReplayIo::new(frames));
    // Warm-up: the first round of connections.
    let per_client = if fwd == Forward::Masq { 4 } else { 2 };
    for _ in 0..2000 * per_client {
        rig.poll();
    }
    let before = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..20000 * per_client {
        rig.poll();
    }
    let after = ALLOCS.load(Ordering::Relaxed);
    // Every client frame is sent, and for NAT one reply of two.
    let sent_per_client = if fwd == Forward::Masq { 3 } else { 2 };
    assert_eq!(rig.io.sent, (2000 + 20000) * sent_per_client, "{fwd:?}");
    after - before
}

/// A real server's next hop on link 0.
fn hop(mac: MacAddr) -> NextHop {
    NextHop { link: 0, mac }
}
