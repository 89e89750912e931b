//! ICMP errors through NAT: a real server's port unreachable, frag-needed
//! from either side, and the director's own for a datagram too big for
//! the server link, each translated to and from the VIP.

use super::{CLIENT, DIR0, DIR1, RIP1, ROUTER_MAC, Rig, from_rip, links, rs_mac, udp_frame};
use etherparse::NetSlice;
use etherparse::PacketBuilder;
use etherparse::SlicedPacket;
use etherparse::TransportSlice;
use uvs::io::RxMeta;
use uvs::rig::CL_MAC;
use uvs::rig::VIP;
use uvs::wire::checksum;

#[test]
fn a_real_servers_port_unreachable_reaches_the_client_from_the_vip() {
    let mut r = Rig::new();
    let sent = udp_frame((CL_MAC, DIR0), (CLIENT, 5000), (VIP, 53));
    let out = r.feed(sent.clone(), 0, RxMeta::default());
    let translated = out[0].1.clone();
    // What the real server's kernel sends back: ICMP port unreachable from
    // the RIP quoting the translated datagram.
    let quote = &translated[14..];
    let mut icmp = Vec::new();
    PacketBuilder::ethernet2(rs_mac(RIP1.into()).0, DIR1)
        .ipv4(RIP1, CLIENT, 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Port,
        ))
        .write(&mut icmp, quote)
        .unwrap();
    let out = r.feed(icmp, 1, RxMeta::default());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, 0);
    let f = &out[0].1;
    assert_eq!(&f[0..6], &CL_MAC);
    let p = SlicedPacket::from_ethernet(f).unwrap();
    let Some(NetSlice::Ipv4(ip)) = &p.net else {
        panic!()
    };
    assert_eq!(ip.header().source(), VIP, "from the VIP, not the RIP");
    let Some(TransportSlice::Icmpv4(i)) = &p.transport else {
        panic!()
    };
    assert_eq!(i.icmp_type().calc_checksum(i.payload()), i.checksum());
    // The quote names VIP:53 again, with the client's original checksums
    // (TTL aside, which the director decremented on the way in).
    let q = i.payload();
    assert_eq!(&q[16..20], &VIP);
    assert_eq!(u16::from_be_bytes([q[22], q[23]]), 53);
    assert_eq!(
        &q[20..28],
        &sent[34..42],
        "UDP header as the client sent it"
    );
    assert_eq!(r.counter("icmp_related"), 1);
}

#[test]
fn frag_needed_for_the_vip_goes_to_the_real_server_translated() {
    let mut r = Rig::new();
    let (c, rip) = r.connect(40003);
    let reply = r.feed(from_rip(rip, c, "SA", b""), 1, RxMeta::default());
    // A router on the client's side cannot pass the (translated) reply on.
    let mut icmp = Vec::new();
    PacketBuilder::ethernet2(ROUTER_MAC, DIR0)
        .ipv4([198, 18, 0, 1], VIP, 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
        ))
        .write(&mut icmp, &reply[0].1[14..14 + 28])
        .unwrap();
    let out = r.feed(icmp, 0, RxMeta::default());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, 1);
    let f = &out[0].1;
    assert_eq!(&f[0..6], &rs_mac(rip.into()).0);
    assert_eq!(&f[30..34], &rip, "outer destination is the RIP");
    // Quoted source is RIP:8080 again, as the real server sent it.
    assert_eq!(&f[42 + 12..42 + 16], &rip);
    assert_eq!(u16::from_be_bytes([f[62], f[63]]), 8080);
    assert_eq!(checksum::fold(checksum::sum(&f[34..])), 0xffff);
    assert_eq!(checksum::fold(checksum::sum(&f[42..62])), 0xffff);
}

#[test]
fn frag_needed_from_a_router_on_the_server_side_comes_from_the_vip() {
    let mut r = Rig::new();
    let c = (CLIENT, 40005);
    let translated = r.syn(c.1);
    // A router between the director and the real server (not the real
    // server itself) cannot pass the translated segment on.
    let mut icmp = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 2, 254], DIR1)
        .ipv4([198, 18, 1, 254], CLIENT, 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1280 },
        ))
        .write(&mut icmp, &translated[14..14 + 28])
        .unwrap();
    let out = r.feed(icmp, 1, RxMeta::default());
    assert_eq!(out.len(), 1);
    let (link, f) = &out[0];
    assert_eq!(*link, 0);
    assert_eq!(
        &f[26..30],
        &VIP,
        "outer source becomes the VIP, as IPVS does"
    );
    assert_eq!(&f[30..34], &CLIENT);
    // "Fragmentation needed" with its MTU kept, about client -> VIP:80.
    assert_eq!((f[34], f[35]), (3, 4));
    assert_eq!(u16::from_be_bytes([f[40], f[41]]), 1280);
    assert_eq!(&f[42 + 16..42 + 20], &VIP);
    assert_eq!(u16::from_be_bytes([f[64], f[65]]), 80);
    assert_eq!(checksum::fold(checksum::sum(&f[34..])), 0xffff);
}

#[test]
fn a_datagram_too_big_for_the_server_link_gets_frag_needed_from_the_vip() {
    // Make the server side's MTU smaller than the client side's.
    let mut r = Rig::with_links(links(1400));
    let mut big = Vec::new();
    PacketBuilder::ethernet2(CL_MAC, DIR0)
        .ipv4(CLIENT, VIP, 64)
        .udp(5000, 53)
        .write(&mut big, &[7u8; 1472])
        .unwrap();
    big[20] |= 0x40; // DF
    let c = checksum::finish(checksum::sum(&{
        let mut h = big[14..34].to_vec();
        h[10..12].copy_from_slice(&[0, 0]);
        h
    }));
    big[24..26].copy_from_slice(&c.to_be_bytes());
    let out = r.feed(big, 0, RxMeta::default());
    assert_eq!(out.len(), 1);
    let (link, f) = &out[0];
    assert_eq!(*link, 0, "back to the client");
    assert_eq!(&f[26..30], &VIP);
    assert_eq!((f[34], f[35]), (3, 4));
    assert_eq!(u16::from_be_bytes([f[40], f[41]]), 1400);
    // The quote is what the client sent (VIP:53), not the translation.
    assert_eq!(&f[42 + 16..42 + 20], &VIP);
    assert_eq!(r.counter("frag_needed"), 1);
}
