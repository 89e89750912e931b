//! TUN over IPv6, through the model as `uvsadm` drives it: IPv6-in-IPv6
//! to IPv6 real servers split by rr, the outer header field by field as
//! IPVS's `ip_vs_tunnel_xmit_v6` writes it; packet too big with the
//! tunnel's MTU; super-frames cut to fit once wrapped; and the mixes IPVS
//! allows for tunnels (IPv4 in IPv6, IPv6 in IPv4). Frames are built and
//! read back with etherparse, an independent implementation.

use crate::dr6::{CLIENT6, rs6};
use etherparse::{Ipv4HeaderSlice, Ipv6HeaderSlice, PacketBuilder};
use std::net::Ipv4Addr;
use uvs::io::RxMeta;
use uvs::lvs::service::{Forward, Protocol, ServiceKey};
use uvs::rig::{CL_MAC, DIR_ADDR, DIR_ADDR6, DIR_MAC, Rig, VIP, VIP6, dest, service};

const ETH: usize = 14;

/// An IPv6 service on `port` with two IPv6 real servers by TUN.
fn rig(proto: Protocol, port: u16) -> Rig {
    crate::dr6::rig_by(Forward::Tunnel, proto, port)
}

/// A client's TCP segment to `[VIP6]:80` with traffic class `tc` and
/// flow label 0x12345.
fn tcp6(sport: u16, syn: bool, tc: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = crate::dr6::tcp6(sport, syn, 64, payload);
    let word = 6u32 << 28 | u32::from(tc) << 20 | 0x12345;
    v[ETH..ETH + 4].copy_from_slice(&word.to_be_bytes());
    v
}

fn udp6(sport: u16, len: usize) -> Vec<u8> {
    crate::dr6::udp6_with(sport, &vec![0x33; len])
}

/// An IPv4 service on port 53 with one IPv6 real server by TUN.
fn four_in_six() -> Rig {
    let key4 = ServiceKey::addr(Protocol::Udp, Ipv4Addr::from(VIP), 53);
    Rig::new(&service(
        key4,
        "rr",
        &[dest(rs6(0x11), 53, Forward::Tunnel, 1)],
    ))
}

/// The real server a frame was tunnelled to (the last byte of its next
/// hop's MAC), after checking the outer IPv6 header field by field and
/// that the inner packet is the client's with one hop less.
fn tunnelled_to(sent: &[Vec<u8>], client_frame: &[u8]) -> u8 {
    assert_eq!(sent.len(), 1, "one frame forwarded");
    let out = &sent[0];
    assert_eq!(&out[6..12], &DIR_MAC, "from the director's MAC");
    assert_eq!(&out[0..5], &[2, 0, 0, 0, 1], "to a real server's next hop");
    assert_eq!(&out[12..14], &[0x86, 0xdd], "an IPv6 frame");
    let h = Ipv6HeaderSlice::from_slice(&out[ETH..])
        .unwrap()
        .to_header();
    let inner = &out[ETH + 40..];
    assert_eq!(h.source, DIR_ADDR6.octets(), "from the tunnel source");
    assert_eq!(h.destination[..15], rs6(0).octets()[..15]);
    assert_eq!(h.destination[15], out[5], "to the real server");
    assert_eq!(h.next_header, etherparse::IpNumber(41), "IPv6 inside");
    assert_eq!(usize::from(h.payload_length), inner.len());
    assert_eq!(h.hop_limit, 63, "the inner hop limit after the hop");
    assert_eq!(h.flow_label.value(), 0, "flow label 0, as IPVS");
    let tc = client_frame[ETH] << 4 | client_frame[ETH + 1] >> 4;
    let ecn = if tc & 3 == 3 { 2 } else { tc & 3 };
    assert_eq!(h.traffic_class, tc & !3 | ecn, "DSCP and ECN, CE as ECT(0)");
    let mut expect = client_frame[ETH..].to_vec();
    expect[7] -= 1;
    assert_eq!(inner, &expect[..], "the client's packet, one hop less");
    out[5]
}

#[test]
fn tcp_and_udp_to_an_ipv6_vip_are_tunnelled_six_in_six_split_by_rr() {
    let mut r = rig(Protocol::Tcp, 80);
    let mut to = Vec::new();
    for p in 0..20 {
        // CE on even ports: it leaves as ECT(0).
        let tc = if p % 2 == 0 { 0xb8 | 3 } else { 0x28 | 1 };
        let f = tcp6(40000 + p, true, tc, b"");
        to.push(tunnelled_to(&r.feed(f.clone()), &f));
    }
    assert_eq!(to.iter().filter(|t| **t == 0x11).count(), 10, "{to:?}");
    assert_eq!(to.iter().filter(|t| **t == 0x12).count(), 10, "{to:?}");
    for p in 0..20u16 {
        let f = tcp6(40000 + p, false, 0, b"data");
        assert_eq!(tunnelled_to(&r.feed(f.clone()), &f), to[usize::from(p)]);
    }
    let mut u = rig(Protocol::Udp, 53);
    let to: Vec<u8> = (0..20)
        .map(|p| {
            let f = udp6(5000 + p, 5);
            tunnelled_to(&u.feed(f.clone()), &f)
        })
        .collect();
    assert_eq!(to.iter().filter(|t| **t == 0x11).count(), 10, "{to:?}");
    // The listing names the IPv6 real servers.
    let conns = u.dp.conn_list();
    assert_eq!(conns.len(), 20);
    assert!(conns.iter().all(|c| c.daddr.is_ipv6()));
}

/// 1460 bytes fit a 1500-byte link once wrapped; 1461 do not: the client
/// hears "packet too big" from the VIP with the tunnel's MTU, quoting
/// its packet, and nothing goes to the real server.
#[test]
fn a_packet_too_big_once_wrapped_gets_packet_too_big_with_the_tunnels_mtu() {
    let mut r = rig(Protocol::Udp, 53);
    let fits = udp6(5000, 1460 - 48);
    assert_eq!(r.feed(fits).len(), 1);
    assert_eq!(r.counter("frag_needed"), 0);
    let big = udp6(5001, 1461 - 48);
    let out = r.feed(big.clone());
    assert_eq!(out.len(), 1);
    let o = &out[0];
    assert_eq!((&o[0..6], &o[6..12]), (&CL_MAC[..], &DIR_MAC[..]));
    let h = Ipv6HeaderSlice::from_slice(&o[ETH..]).unwrap().to_header();
    assert_eq!((h.source, h.destination), (VIP6.octets(), CLIENT6.octets()));
    assert_eq!(h.next_header, etherparse::IpNumber::IPV6_ICMP);
    let icmp = etherparse::Icmpv6Slice::from_slice(&o[ETH + 40..]).unwrap();
    assert_eq!(
        icmp.icmp_type(),
        etherparse::Icmpv6Type::PacketTooBig { mtu: 1460 }
    );
    let hdr = icmp.header();
    assert_eq!(
        hdr.checksum,
        hdr.icmp_type
            .calc_checksum(VIP6.octets(), CLIENT6.octets(), icmp.payload())
            .unwrap()
    );
    // The quote: the client's packet as it reached the tunnel.
    let quote = icmp.payload();
    assert_eq!(&quote[8..40], &big[ETH + 8..ETH + 40]);
    assert_eq!(quote.len(), 1280 - 48, "as much as fits in 1280 bytes");
    assert_eq!(r.counter("frag_needed"), 1);
}

/// A TCP/IPv6 super-frame is cut into segments that fit once wrapped.
#[test]
fn a_super_frame_is_cut_into_segments_that_fit_once_wrapped() {
    let mut r = rig(Protocol::Tcp, 80);
    r.feed(tcp6(45100, true, 0, b""));
    let payload = vec![0x5a; 20000];
    let mut f = tcp6(45100, false, 0, &payload);
    let l4 = ETH + 40;
    let ps = uvs::wire::checksum::fold(uvs::wire::checksum::pseudo_header_v6(
        CLIENT6,
        VIP6,
        6,
        (f.len() - l4) as u32,
    ));
    f[l4 + 16..l4 + 18].copy_from_slice(&ps.to_be_bytes());
    let meta = RxMeta {
        csum_partial: Some((l4 as u16, 16)),
        gso: Some(uvs::io::Gso {
            tcpv4: false,
            tcpv6: true,
            size: 1440,
        }),
        ..RxMeta::default()
    };
    let out = r.feed_meta(f, meta);
    // 1500 − 40 (outer) − 40 − 20: 1400 bytes a segment.
    assert_eq!(out.len(), 20000usize.div_ceil(1400));
    let mut got = Vec::new();
    for o in &out {
        assert!(o.len() - ETH <= 1500);
        let h = Ipv6HeaderSlice::from_slice(&o[ETH..]).unwrap().to_header();
        assert_eq!(h.next_header, etherparse::IpNumber(41));
        let inner = etherparse::SlicedPacket::from_ip(&o[ETH + 40..]).unwrap();
        let Some(etherparse::TransportSlice::Tcp(t)) = inner.transport else {
            panic!("TCP inside");
        };
        let ip = Ipv6HeaderSlice::from_slice(&o[ETH + 40..]).unwrap();
        let sum = t
            .to_header()
            .calc_checksum_ipv6_raw(ip.source(), ip.destination(), t.payload())
            .unwrap();
        assert_eq!(t.checksum(), sum, "each segment's checksum finished");
        got.extend_from_slice(t.payload());
    }
    assert_eq!(got, payload);
    assert_eq!(r.counter("gso_segmented"), 1);
}

/// An IPv4 service's IPv6 real server (IPv4 in IPv6) and an IPv6
/// service's IPv4 one (IPv6 in IPv4), as IPVS mixes them for tunnels.
#[test]
fn mixed_families_go_four_in_six_and_six_in_four() {
    let mut r = four_in_six();
    let f = crate::udp_from([198, 18, 0, 10], 7000, 53, b"query");
    let out = r.feed(f.clone());
    assert_eq!(out.len(), 1);
    let o = &out[0];
    assert_eq!(&o[12..14], &[0x86, 0xdd]);
    let h = Ipv6HeaderSlice::from_slice(&o[ETH..]).unwrap().to_header();
    assert_eq!(
        (h.source, h.destination),
        (DIR_ADDR6.octets(), rs6(0x11).octets())
    );
    assert_eq!((h.next_header, h.hop_limit), (etherparse::IpNumber(4), 63));
    let inner = Ipv4HeaderSlice::from_slice(&o[ETH + 40..])
        .unwrap()
        .to_header();
    assert_eq!(
        (inner.source, inner.destination, inner.time_to_live),
        ([198, 18, 0, 10], VIP, 63)
    );
    assert_eq!(inner.header_checksum, inner.calc_header_checksum());
    assert_eq!(&o[ETH + 40 + 20 + 8..], b"query");
    // The entry holds the IPv4 key; the listing reads the server's
    // address from the table.
    let c = &r.dp.conn_list()[0];
    assert_eq!(
        (c.caddr, c.daddr),
        ([198, 18, 0, 10].into(), rs6(0x11).into())
    );
    // The next datagram of the flow goes the same way.
    assert_eq!(r.feed(f)[0][ETH + 24..ETH + 40], rs6(0x11).octets());

    let key6 = ServiceKey::addr(Protocol::Udp, VIP6, 53);
    let rs4 = Ipv4Addr::new(198, 18, 0, 11);
    let mut r = Rig::new(&service(key6, "rr", &[dest(rs4, 53, Forward::Tunnel, 1)]));
    let f = udp6(5000, 5);
    let out = r.feed(f.clone());
    assert_eq!(out.len(), 1);
    let o = &out[0];
    assert_eq!(&o[12..14], &[0x08, 0x00]);
    let h = Ipv4HeaderSlice::from_slice(&o[ETH..]).unwrap().to_header();
    assert_eq!((h.source, h.destination), (DIR_ADDR.octets(), rs4.octets()));
    assert_eq!(h.protocol, etherparse::IpNumber(41));
    assert_eq!(h.time_to_live, 63);
    assert!(!h.dont_fragment, "no DF for an IPv6 packet inside");
    assert_eq!(h.header_checksum, h.calc_header_checksum());
    let mut expect = f[ETH..].to_vec();
    expect[7] -= 1;
    assert_eq!(&o[ETH + 20..], &expect[..]);
    assert_eq!(r.dp.conn_list()[0].daddr, std::net::IpAddr::from(rs4));
}

/// IPv4 in IPv6 too big: with DF, fragmentation needed with the IPv6
/// tunnel's MTU (1460); without, IPv6 fragments that rebuild the packet.
#[test]
fn four_in_six_too_big_gets_frag_needed_or_ipv6_fragments() {
    let mut r = four_in_six();
    let big = |df: bool| {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(CL_MAC, DIR_MAC)
            .ipv4([198, 18, 0, 10], VIP, 64)
            .udp(7000, 53)
            .write(&mut v, &[0x44; 1472])
            .unwrap();
        v[ETH + 6] = if df { 0x40 } else { 0 };
        uvs::wire::Ipv4Packet::new_checked(&mut v[ETH..])
            .unwrap()
            .fill_checksum();
        v
    };
    let out = r.feed(big(true));
    assert_eq!(out.len(), 1);
    let o = &out[0];
    assert_eq!(&o[0..6], &CL_MAC);
    assert_eq!((o[34], o[35]), (3, 4), "ICMP fragmentation needed");
    assert_eq!(u16::from_be_bytes([o[40], o[41]]), 1460, "the tunnel's MTU");
    let out = r.feed(big(false));
    assert_eq!(out.len(), 2, "IPv6 fragments");
    let mut inner = Vec::new();
    for (i, o) in out.iter().enumerate() {
        assert!(o.len() - ETH <= 1500);
        let h = Ipv6HeaderSlice::from_slice(&o[ETH..]).unwrap().to_header();
        assert_eq!(h.next_header, etherparse::IpNumber(44));
        let fh = &o[ETH + 40..ETH + 48];
        assert_eq!(fh[0], 4, "IPv4 inside");
        let word = u16::from_be_bytes([fh[2], fh[3]]);
        assert_eq!(usize::from(word >> 3) * 8, inner.len());
        assert_eq!(word & 1 == 1, i == 0);
        inner.extend_from_slice(&o[ETH + 48..]);
    }
    assert_eq!(inner.len(), 1500);
    assert_eq!(&inner[28..], &[0x44; 1472][..]);
}
