//! Frames: the wire views and the data plane's per-frame entry point on
//! mutated valid frames and random bytes.

use super::{RIP_NAT, config, hop, ops};
use etherparse::PacketBuilder;
use proptest::prelude::*;
use std::cell::RefCell;
use std::net::Ipv4Addr;
use std::sync::LazyLock;
use uvs::dataplane::LinkParams;
use uvs::io::{Gso, PacketType, RxMeta};
use uvs::lvs::table::LinkRoute;
use uvs::rig::{CL_MAC, DIR_MAC, Rig, VIP};
use uvs::wire::icmp::IcmpErrorRepr;
use uvs::wire::{
    ArpPacket, ArpRepr, EthernetFrame, Icmpv4Packet, Ipv4Packet, MacAddr, TcpPacket, UdpPacket,
};

const DIR1: [u8; 6] = [2, 0, 0, 0, 1, 1];
const CLIENT: [u8; 4] = [198, 18, 0, 10];
const MAX_CONNS: usize = 4096;

fn links() -> Vec<LinkParams> {
    let mut l = uvs::rig::one_link();
    l.push(LinkParams {
        mac: MacAddr(DIR1),
        mtu: 1400,
        addr: Ipv4Addr::new(198, 18, 1, 1),
        addr6: "2001:2:0:1::1".parse().unwrap(),
    });
    l
}

fn rig() -> Rig {
    let routes = vec![LinkRoute {
        dst: "198.18.0.0/24".parse().unwrap(),
        link: 0,
        gateway_mac: None,
    }];
    let mut r = Rig::build_max(links(), hop, routes, &ops(), MAX_CONNS);
    r.io.take_sent();
    r
}

pub(super) fn frame(b: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut v = Vec::new();
    b(&mut v);
    v
}

/// Valid frames of every kind the data plane handles, with the link they
/// arrive on: the fuzzer's starting points.
static SEEDS: LazyLock<Vec<(Vec<u8>, u8)>> = LazyLock::new(|| {
    let to_vip = |ttl| PacketBuilder::ethernet2(CL_MAC, DIR_MAC).ipv4(CLIENT, VIP, ttl);
    let syn_to = |sport, dport| {
        frame(|v| {
            to_vip(64)
                .tcp(sport, dport, 1, 64000)
                .syn()
                .write(v, b"")
                .unwrap()
        })
    };
    let syn = syn_to(40000, 80);
    let ack = frame(|v| {
        to_vip(64)
            .tcp(40000, 80, 2, 64000)
            .ack(1)
            .write(v, &[7u8; 600])
            .unwrap()
    });
    let tun = frame(|v| to_vip(9).udp(40001, 54).write(v, &[1u8; 1450]).unwrap());
    let nat = frame(|v| to_vip(64).udp(40002, 53).write(v, b"NAME").unwrap());
    let nat_syn = syn_to(40003, 8080);
    let reply = frame(|v| {
        PacketBuilder::ethernet2([2, 0, 0, 0, 2, 11], DIR1)
            .ipv4(RIP_NAT, CLIENT, 64)
            .udp(5353, 40002)
            .write(v, b"rs1")
            .unwrap()
    });
    let tcp_reply = frame(|v| {
        PacketBuilder::ethernet2([2, 0, 0, 0, 2, 11], DIR1)
            .ipv4(RIP_NAT, CLIENT, 64)
            .tcp(8080, 40003, 9, 64000)
            .syn()
            .ack(2)
            .write(v, b"")
            .unwrap()
    });
    // An ICMP error from a router about a packet the client sent to the
    // VIP (quoting its header and 8 bytes), and one from the NAT server.
    let quote = |src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16| {
        let mut q = frame(|v| {
            PacketBuilder::ipv4(src, dst, 60)
                .udp(sport, dport)
                .write(v, b"12345678")
                .unwrap()
        });
        q.truncate(28);
        q
    };
    let icmp = |eth_src, eth_dst, src, dst, q: Vec<u8>| {
        frame(|v| {
            PacketBuilder::ethernet2(eth_src, eth_dst)
                .ipv4(src, dst, 64)
                .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                    etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded {
                        next_hop_mtu: 1280,
                    },
                ))
                .write(v, &q)
                .unwrap()
        })
    };
    let icmp_in = icmp(CL_MAC, DIR_MAC, CLIENT, VIP, quote(VIP, CLIENT, 53, 40002));
    let icmp_out = icmp(
        [2, 0, 0, 0, 2, 11],
        DIR1,
        RIP_NAT,
        CLIENT,
        quote(CLIENT, RIP_NAT, 40002, 5353),
    );
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&CL_MAC);
    arp.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&CL_MAC);
    arp.extend_from_slice(&CLIENT);
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&VIP);
    vec![
        (syn, 0),
        (ack, 0),
        (tun, 0),
        (nat, 0),
        (nat_syn, 0),
        (reply, 1),
        (tcp_reply, 1),
        (icmp_in, 0),
        (icmp_out, 1),
        (arp, 0),
    ]
});

/// A seed changed by up to eight byte flips (biased towards the headers)
/// and perhaps truncated, or plain random bytes.
pub(super) fn mutated(seeds: &'static [(Vec<u8>, u8)]) -> impl Strategy<Value = (Vec<u8>, u8)> {
    let flips = prop::collection::vec((any::<u16>(), any::<u8>(), any::<bool>()), 0..8);
    let from_seed = (0..seeds.len(), flips, any::<u16>(), any::<bool>()).prop_map(
        move |(i, flips, cut, do_cut)| {
            let (mut f, link) = seeds[i].clone();
            for (at, x, header) in flips {
                let n = if header { f.len().min(64) } else { f.len() };
                if n > 0 {
                    f[usize::from(at) % n] ^= x;
                }
            }
            if do_cut {
                f.truncate(usize::from(cut) % (f.len() + 1));
            }
            (f, link)
        },
    );
    let random = (prop::collection::vec(any::<u8>(), 0..256), 0u8..3);
    prop_oneof![8 => from_seed, 1 => random]
}

fn meta() -> impl Strategy<Value = RxMeta> {
    (
        0u8..6,
        prop::option::weighted(0.2, (any::<u16>(), any::<u16>())),
        prop::option::weighted(0.2, (any::<bool>(), any::<u16>())),
    )
        .prop_map(|(t, csum, gso)| RxMeta {
            pkt_type: match t {
                0 => PacketType::Broadcast,
                1 => PacketType::Multicast,
                2 => PacketType::OtherHost,
                _ => PacketType::Host,
            },
            csum_partial: csum.map(|(s, o)| (s % 120, o % 40)),
            gso: gso.map(|(tcpv4, size)| Gso {
                tcpv4,
                tcpv6: false,
                size,
            }),
            ..RxMeta::default()
        })
}

thread_local! {
    /// One rig for the whole run, so connections made by earlier cases
    /// meet later ones (replies, ICMP errors, reuse, eviction).
    static RIG: RefCell<Rig> = RefCell::new(rig());
}

/// What the director sends must be a whole Ethernet frame that fits the
/// link it goes out on.
fn check_sent(sent: &[(u8, Vec<u8>)]) -> Result<(), TestCaseError> {
    let mtus = [1500usize, 1400];
    for (link, f) in sent {
        let mtu = *mtus.get(usize::from(*link)).ok_or_else(|| {
            TestCaseError::fail(format!("sent on link {link}, which does not exist"))
        })?;
        prop_assert!(
            f.len() >= 14 && f.len() <= mtu + 14,
            "{} bytes on link {link}",
            f.len()
        );
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        prop_assert!(
            matches!(eth.ethertype(), 0x0800 | 0x0806),
            "sent ethertype {:#x}: {:02x?}",
            eth.ethertype(),
            f
        );
        if eth.ethertype() == 0x0800 {
            let ip = Ipv4Packet::new_checked(&f[14..]);
            prop_assert!(ip.is_ok(), "sent an IPv4 frame that does not parse");
            prop_assert!(ip.unwrap().verify_checksum(), "bad IPv4 header checksum");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn per_frame_entry_point((f, link) in mutated(&SEEDS), m in meta()) {
        RIG.with_borrow_mut(|r| {
            r.io.take_sent_links();
            r.io.push_with(f, RxMeta { link, ..m });
            r.poll();
            check_sent(&r.io.take_sent_links())?;
            prop_assert!(r.dp.conn_count() <= MAX_CONNS);
            // The director still forwards: a NAT flow from a fixed port.
            let canary = SEEDS[3].0.clone();
            let out = r.feed_on(canary, 0, RxMeta::default());
            prop_assert_eq!(out.len(), 1, "the canary flow was not forwarded");
            prop_assert_eq!(out[0].0, 1);
            Ok(())
        })?;
    }

    #[test]
    fn wire_views((f, _) in mutated(&SEEDS)) {
        if let Ok(eth) = EthernetFrame::new_checked(&f[..]) {
            let _ = (eth.dst_addr(), eth.src_addr(), eth.ethertype(), eth.payload().len());
        }
        for at in [0usize, 14] {
            let Some(b) = f.get(at..) else { continue };
            if let Ok(ip) = Ipv4Packet::new_checked(b) {
                let _ = (ip.header_len(), ip.tos(), ip.total_len(), ip.ident(), ip.dont_frag());
                let _ = (ip.is_fragment(), ip.frag_offset(), ip.ttl(), ip.protocol());
                let _ = (ip.checksum(), ip.src_addr(), ip.dst_addr(), ip.verify_checksum());
                prop_assert!(ip.header_len() >= 20 && ip.total_len() <= b.len());
                prop_assert_eq!(ip.payload().len(), ip.total_len() - ip.header_len());
                let _ = uvs::wire::ipip::inner(b);
                let p = ip.payload();
                if let Ok(t) = TcpPacket::new_checked(p) {
                    let _ = (t.seq_number(), t.header_len(), t.flags(), t.syn(), t.ack());
                    let _ = (t.fin(), t.rst(), t.checksum());
                    prop_assert!(t.header_len() >= 20 && t.header_len() <= p.len());
                }
                if let Ok(u) = UdpPacket::new_checked(p) {
                    let _ = (u.len(), u.is_empty(), u.checksum(), u.payload().len());
                    let _ = uvs::wire::udp::UdpRepr::parse(&u);
                }
                if let Ok(i) = Icmpv4Packet::new_checked(p) {
                    let _ = (i.msg_type(), i.code(), i.checksum(), i.rest(), i.data().len());
                    // An error parsed and written again is the same error.
                    if let Ok(e) = IcmpErrorRepr::parse(&i) {
                        let mut out = vec![0u8; e.buffer_len()];
                        let n = e.emit(&mut out).unwrap();
                        let again = Icmpv4Packet::new_checked(&out[..n]).unwrap();
                        let e2 = IcmpErrorRepr::parse(&again).unwrap();
                        prop_assert_eq!(e.error, e2.error);
                        prop_assert_eq!(e.quote, e2.quote);
                        let sum = uvs::wire::checksum::finish(uvs::wire::checksum::sum(&out[..n]));
                        prop_assert_eq!(sum, 0, "ICMP checksum does not verify");
                    }
                }
            }
            if let Ok(a) = ArpPacket::new_checked(b) {
                let _ = (a.hardware_type(), a.protocol_type(), a.hardware_len());
                let _ = (a.protocol_len(), a.operation(), a.target_hw(), a.target_ip());
                if let Ok(r) = ArpRepr::parse(&a) {
                    let mut out = vec![0u8; r.buffer_len()];
                    r.emit(&mut out).unwrap();
                    let again = ArpRepr::parse(&ArpPacket::new_checked(&out[..]).unwrap());
                    prop_assert_eq!(again.ok(), Some(r));
                }
            }
        }
    }
}
