//! NAT66 (`-m` to IPv6 real servers) on the same two links: the exact
//! frames each way, the ICMPv6 errors the director originates (time
//! exceeded, packet too big, from the VIP or its own server-side
//! address) and ICMPv6 errors about a connection translated both ways.
//! Expected frames are built independently with etherparse.

use super::{DIR0, DIR1, DIR1_ADDR6, links, routes, rs_mac, server_hop};
use etherparse::icmpv6::{DestUnreachableCode, TimeExceededCode};
use etherparse::{Icmpv6Type, PacketBuilder};
use std::net::Ipv6Addr;
use uvs::control::proto::Op;
use uvs::io::RxMeta;
use uvs::lvs::service::{Forward, Protocol, ServiceKey};
use uvs::rig::{CL_MAC, VIP6, dest, service};

const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x10);
const ROUTER6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
const RIP1: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 2, 0, 0, 0, 0x11);
const RIP2: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 2, 0, 0, 0, 0x12);

fn ops() -> Vec<Op> {
    let d = |a, port| dest(a, port, Forward::Masq, 1);
    let mut ops = service(
        ServiceKey::addr(Protocol::Tcp, VIP6, 80),
        "rr",
        &[d(RIP1, 8080), d(RIP2, 8080)],
    );
    let udp = ServiceKey::addr(Protocol::Udp, VIP6, 53);
    ops.extend(service(udp, "rr", &[d(RIP1, 5353), d(RIP2, 5353)]));
    ops
}

struct Rig(uvs::rig::Rig);

impl Rig {
    fn new(server_mtu: u32) -> Rig {
        let mut r = uvs::rig::Rig::build(links(server_mtu), server_hop, routes(), &ops());
        r.io.take_sent();
        Rig(r)
    }

    fn feed(&mut self, frame: Vec<u8>, link: u8) -> Vec<(u8, Vec<u8>)> {
        self.0.feed_on(frame, link, RxMeta::default())
    }

    /// Feeds `frame` on `link`; the one frame sent, which must be `want`
    /// on `to`.
    fn expect(&mut self, frame: Vec<u8>, link: u8, to: u8, want: &[u8]) {
        let out = self.feed(frame, link);
        assert_eq!(out.len(), 1, "one frame out");
        assert_eq!(out[0].0, to, "on link {to}");
        assert_eq!(out[0].1, want, "the exact frame");
    }
}

type Macs = ([u8; 6], [u8; 6]);
type End6 = (Ipv6Addr, u16);

fn tcp(macs: Macs, hops: u8, src: End6, dst: End6, syn: bool, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv6(src.0.octets(), dst.0.octets(), hops)
        .tcp(src.1, dst.1, 1000, 64000);
    let b = if syn { b.syn() } else { b.ack(1) };
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

fn udp(macs: Macs, hops: u8, src: End6, dst: End6, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv6(src.0.octets(), dst.0.octets(), hops)
        .udp(src.1, dst.1)
        .write(&mut v, payload)
        .unwrap();
    v
}

/// An ICMPv6 message from `src` to `dst` quoting `quote` (cut to fit
/// 1280 bytes, as RFC 4443 asks).
fn icmp(
    macs: Macs,
    hops: u8,
    (src, dst): (Ipv6Addr, Ipv6Addr),
    t: Icmpv6Type,
    quote: &[u8],
) -> Vec<u8> {
    let quote = &quote[..quote.len().min(1280 - 48)];
    let mut v = Vec::new();
    PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv6(src.octets(), dst.octets(), hops)
        .icmpv6(t)
        .write(&mut v, quote)
        .unwrap();
    v
}

fn rs(rip: Ipv6Addr) -> [u8; 6] {
    rs_mac(rip.into()).0
}

/// The real server a forwarded frame went to.
fn rip_of(out: &[(u8, Vec<u8>)]) -> Ipv6Addr {
    assert_eq!(out.len(), 1);
    match out[0].1[5] {
        0x11 => RIP1,
        _ => RIP2,
    }
}

/// `frame` with the hop limit one less: as the director forwards it.
fn hopped(frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[14 + 7] -= 1;
    f
}

#[test]
fn tcp_and_udp_both_ways_split_by_rr() {
    let mut r = Rig::new(1500);
    // rr starts at the last server of the list, as IPVS's does.
    for (i, rip) in [RIP2, RIP1, RIP2, RIP1].into_iter().enumerate() {
        let c = (CLIENT6, 40000 + i as u16);
        // The SYN goes to RIP:8080, the client's address kept.
        let syn = tcp((CL_MAC, DIR0), 64, c, (VIP6, 80), true, b"");
        let want = tcp((DIR1, rs(rip)), 63, c, (rip, 8080), true, b"");
        r.expect(syn, 0, 1, &want);
        // The reply comes back from the VIP, to the client's MAC.
        let reply = tcp((rs(rip), DIR1), 64, (rip, 8080), c, false, b"hello");
        let want = tcp((DIR0, CL_MAC), 63, (VIP6, 80), c, false, b"hello");
        r.expect(reply, 1, 0, &want);
    }
    for (i, rip) in [RIP2, RIP1].into_iter().enumerate() {
        let c = (CLIENT6, 5000 + i as u16);
        let q = udp((CL_MAC, DIR0), 64, c, (VIP6, 53), b"NAME");
        r.expect(q, 0, 1, &udp((DIR1, rs(rip)), 63, c, (rip, 5353), b"NAME"));
        let a = udp((rs(rip), DIR1), 64, (rip, 5353), c, b"rs");
        r.expect(a, 1, 0, &udp((DIR0, CL_MAC), 63, (VIP6, 53), c, b"rs"));
    }
    assert_eq!(r.0.counter("nat_replies"), 6);
    // A packet from a real server that is no connection's reply is the
    // kernel's.
    let stray = udp((rs(RIP1), DIR1), 64, (RIP1, 5353), (CLIENT6, 9), b"x");
    assert!(r.feed(stray, 1).is_empty());
}

#[test]
fn hop_limit_one_gets_time_exceeded_from_the_vip_or_the_server_side_address() {
    let mut r = Rig::new(1500);
    let c = (CLIENT6, 40000);
    let late = tcp((CL_MAC, DIR0), 1, c, (VIP6, 80), true, b"");
    let t = Icmpv6Type::TimeExceeded(TimeExceededCode::HopLimitExceeded);
    let want = icmp((DIR0, CL_MAC), 64, (VIP6, CLIENT6), t, &late[14..]);
    r.expect(late, 0, 0, &want);
    assert_eq!(r.0.counter("ttl_expired"), 1);
    // A real server's reply at hop limit 1: from the director's address
    // on the server link, back to the real server.
    let syn = tcp((CL_MAC, DIR0), 64, c, (VIP6, 80), true, b"");
    let rip = rip_of(&r.feed(syn, 0));
    let reply = tcp((rs(rip), DIR1), 1, (rip, 8080), c, false, b"");
    let want = icmp((DIR1, rs(rip)), 64, (DIR1_ADDR6, rip), t, &reply[14..]);
    r.expect(reply, 1, 1, &want);
    // The per-destination burst is 6, then one each 100 ms.
    let sent: usize = (0..20)
        .map(|i| {
            let f = tcp(
                (CL_MAC, DIR0),
                1,
                (CLIENT6, 41000 + i),
                (VIP6, 80),
                true,
                b"",
            );
            r.feed(f, 0).len()
        })
        .sum();
    assert_eq!(sent, 5, "six in the burst, one already spent");
    assert_eq!(r.0.counter("icmp_rate_limited"), 15);
}

#[test]
fn a_datagram_too_big_for_the_server_link_gets_packet_too_big_every_time() {
    let mut r = Rig::new(1400);
    let to_vip = |len| {
        udp(
            (CL_MAC, DIR0),
            64,
            (CLIENT6, 5000),
            (VIP6, 53),
            &vec![7u8; len],
        )
    };
    // 1500 bytes of IPv6: fits the client's link, not the servers'.
    let big = to_vip(1452);
    let t = Icmpv6Type::PacketTooBig { mtu: 1400 };
    // The quote is what the client sent, cut at 1280 bytes in all.
    let want = icmp((DIR0, CL_MAC), 64, (VIP6, CLIENT6), t, &big[14..]);
    assert_eq!(want.len(), 14 + 1280);
    for _ in 0..20 {
        r.expect(big.clone(), 0, 0, &want);
    }
    assert_eq!(r.0.counter("frag_needed"), 20);
    assert_eq!(r.0.counter("icmp_rate_limited"), 0, "PMTU is never limited");
    // One that fits passes.
    let fits = to_vip(1352);
    assert_eq!(r.feed(fits, 0)[0].0, 1);
}

#[test]
fn a_routers_packet_too_big_for_the_vip_reaches_the_real_server_translated() {
    let mut r = Rig::new(1500);
    let c = (CLIENT6, 40000);
    let rip = rip_of(&r.feed(tcp((CL_MAC, DIR0), 64, c, (VIP6, 80), true, b""), 0));
    let reply = tcp((rs(rip), DIR1), 64, (rip, 8080), c, false, &[1u8; 1400]);
    let out = r.feed(reply.clone(), 1);
    // A router on the client's side: the reply (from the VIP) is too big.
    let t = Icmpv6Type::PacketTooBig { mtu: 1280 };
    const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
    let ptb = icmp((ROUTER_MAC, DIR0), 64, (ROUTER6, VIP6), t, &out[0].1[14..]);
    // The real server gets it from the router, about its own segment
    // (RIP:8080 -> client) with the hop limit the director left.
    let want = icmp(
        (DIR1, rs(rip)),
        63,
        (ROUTER6, rip),
        t,
        &hopped(&reply)[14..],
    );
    r.expect(ptb, 0, 1, &want);
    assert_eq!(r.0.counter("icmp_related"), 1);
}

#[test]
fn a_real_servers_port_unreachable_reaches_the_client_from_the_vip() {
    let mut r = Rig::new(1500);
    let c = (CLIENT6, 5000);
    let sent = udp((CL_MAC, DIR0), 64, c, (VIP6, 53), b"NAME");
    let out = r.feed(sent.clone(), 0);
    let rip = rip_of(&out);
    let t = Icmpv6Type::DestinationUnreachable(DestUnreachableCode::Port);
    let err = icmp((rs(rip), DIR1), 64, (rip, CLIENT6), t, &out[0].1[14..]);
    // From the VIP, quoting client -> VIP:53 as the client sent it (but
    // for the hop the director took).
    let want = icmp((DIR0, CL_MAC), 63, (VIP6, CLIENT6), t, &hopped(&sent)[14..]);
    r.expect(err, 1, 0, &want);
    assert_eq!(r.0.counter("icmp_related"), 1);
    // An unrelated error is the kernel's; a related one whose checksum is
    // wrong is dropped, not laundered by a fresh checksum.
    let other = udp((CL_MAC, DIR0), 64, (CLIENT6, 5999), (rip, 5353), b"x");
    let stray = icmp((rs(rip), DIR1), 64, (rip, CLIENT6), t, &other[14..]);
    assert!(r.feed(stray, 1).is_empty());
    let mut bad = icmp((rs(rip), DIR1), 64, (rip, CLIENT6), t, &out[0].1[14..]);
    *bad.last_mut().unwrap() ^= 0x40;
    assert!(r.feed(bad, 1).is_empty());
    assert_eq!(r.0.counter("malformed"), 1);
}
