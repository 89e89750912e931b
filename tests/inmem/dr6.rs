//! Direct routing over IPv6, through the model as `uvsadm` drives it: new
//! TCP connections and UDP flows to `[VIP6]` split by rr, each connection
//! stays on its real server, the frame leaves unchanged but for its MACs
//! and one less hop; hop limit 1, fragments and a TCP segment without a
//! connection end at the director. Frames are built and read back with
//! etherparse, an independent implementation.

use etherparse::{PacketBuilder, SlicedPacket};
use std::net::Ipv6Addr;
use uvs::lvs::service::{Forward, Protocol, ServiceKey};
use uvs::rig::{CL_MAC, DIR_MAC, Rig, VIP6, dest, service};

pub(crate) const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x10);

pub(crate) fn rs6(last: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, last)
}

/// An IPv6 service on `port` with two IPv6 real servers by `fwd`.
pub(crate) fn rig_by(fwd: Forward, proto: Protocol, port: u16) -> Rig {
    let key = ServiceKey::addr(proto, VIP6, port);
    let ds = [dest(rs6(0x11), port, fwd, 1), dest(rs6(0x12), port, fwd, 1)];
    Rig::new(&service(key, "rr", &ds))
}

fn rig(proto: Protocol, port: u16) -> Rig {
    rig_by(Forward::Route, proto, port)
}

/// A client's TCP segment to `[VIP6]:80` with hop limit `hops`.
pub(crate) fn tcp6(sport: u16, syn: bool, hops: u8, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(CL_MAC, DIR_MAC)
        .ipv6(CLIENT6.octets(), VIP6.octets(), hops)
        .tcp(sport, 80, 1000, 64240);
    let b = if syn { b.syn() } else { b.ack(1) };
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

pub(crate) fn udp6(sport: u16) -> Vec<u8> {
    udp6_with(sport, b"query")
}

/// A client's UDP datagram to `[VIP6]:53` carrying `payload`.
pub(crate) fn udp6_with(sport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(CL_MAC, DIR_MAC)
        .ipv6(CLIENT6.octets(), VIP6.octets(), 64)
        .udp(sport, 53)
        .write(&mut v, payload)
        .unwrap();
    v
}

/// The real server a forwarded frame went to (its MAC's last byte, as the
/// rig resolves them), after checking the frame is the client's with one
/// hop less.
fn forwarded_to(sent: &[Vec<u8>], client_frame: &[u8]) -> u8 {
    assert_eq!(sent.len(), 1, "one frame forwarded");
    let out = &sent[0];
    assert_eq!(&out[6..12], &DIR_MAC, "from the director's MAC");
    assert_eq!(&out[0..5], &[2, 0, 0, 0, 1], "to a real server's MAC");
    let p = SlicedPacket::from_ethernet(out).unwrap();
    let Some(etherparse::NetSlice::Ipv6(ip)) = p.net else {
        panic!("not IPv6");
    };
    let h = ip.header();
    assert_eq!((h.source_addr(), h.destination_addr()), (CLIENT6, VIP6));
    let sent_hops = client_frame[14 + 7];
    assert_eq!(h.hop_limit(), sent_hops - 1);
    // Everything after the hop limit is the client's, byte for byte.
    assert_eq!(&out[14 + 8..], &client_frame[14 + 8..]);
    out[5]
}

#[test]
fn tcp_and_udp_to_an_ipv6_vip_split_by_rr_and_stay_on_their_server() {
    let mut r = rig(Protocol::Tcp, 80);
    let mut to = Vec::new();
    for p in 0..20 {
        let f = tcp6(40000 + p, true, 64, b"");
        to.push(forwarded_to(&r.feed(f.clone()), &f));
    }
    assert_eq!(to.iter().filter(|t| **t == 0x11).count(), 10, "{to:?}");
    assert_eq!(to.iter().filter(|t| **t == 0x12).count(), 10, "{to:?}");
    // Mid-connection segments follow their connection.
    for p in 0..20u16 {
        let f = tcp6(40000 + p, false, 64, b"data");
        assert_eq!(forwarded_to(&r.feed(f.clone()), &f), to[usize::from(p)]);
    }
    let mut u = rig(Protocol::Udp, 53);
    let to: Vec<u8> = (0..20)
        .map(|p| {
            let f = udp6(5000 + p);
            forwarded_to(&u.feed(f.clone()), &f)
        })
        .collect();
    assert_eq!(to.iter().filter(|t| **t == 0x11).count(), 10, "{to:?}");
    let again = udp6(5003);
    assert_eq!(forwarded_to(&u.feed(again.clone()), &again), to[3]);
}

#[test]
fn what_ends_at_the_director_ends_there() {
    let mut r = rig(Protocol::Tcp, 80);
    // A segment of no connection, hop limit 1: neither is forwarded; the
    // second gets ICMPv6 time exceeded from the VIP, quoting it whole.
    assert!(r.feed(tcp6(41000, false, 64, b"x")).is_empty());
    assert_eq!(r.counter("no_conn_dropped"), 1);
    let late = tcp6(41001, true, 1, b"");
    let out = r.feed(late.clone());
    assert_eq!(out.len(), 1);
    let p = SlicedPacket::from_ethernet(&out[0]).unwrap();
    let Some(etherparse::NetSlice::Ipv6(ip)) = &p.net else {
        panic!("not IPv6");
    };
    let h = ip.header();
    assert_eq!((h.source_addr(), h.destination_addr()), (VIP6, CLIENT6));
    let Some(etherparse::TransportSlice::Icmpv6(i)) = &p.transport else {
        panic!("not ICMPv6");
    };
    assert_eq!((i.type_u8(), i.code_u8()), (3, 0));
    assert_eq!(i.payload(), &late[14..]);
    assert_eq!(&out[0][..12], &[CL_MAC, DIR_MAC].concat()[..]);
    assert_eq!(r.counter("ttl_expired"), 1);
    // A later fragment of a datagram to the VIP.
    let mut f = tcp6(41002, true, 64, b"");
    let ip = 14;
    f[ip + 6] = 44;
    let frag = [6u8, 0, 0x00, 0x08, 0, 0, 0, 1];
    f.splice(ip + 40..ip + 40, frag);
    let len = u16::from_be_bytes([f[ip + 4], f[ip + 5]]) + 8;
    f[ip + 4..ip + 6].copy_from_slice(&len.to_be_bytes());
    assert!(r.feed(f).is_empty());
    assert_eq!(r.counter("fragments_dropped"), 1);
    // Not to a VIP: the kernel's.
    let mut other = tcp6(41003, true, 64, b"");
    other[ip + 24 + 15] = 0x99;
    assert!(r.feed(other).is_empty());
}
