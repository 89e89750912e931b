//! Frames the Linux kernel (6.18) itself sent, for the IPv6 views to be
//! checked against something other than their own emitters.
//!
//! Captured as root between two network namespaces made for the purpose,
//! `v6w-$$-a` and `v6w-$$-b`, joined by a veth pair (va, MAC
//! 02:00:00:00:00:0a, in a; vb, MAC 02:00:00:00:00:0b, in b), with
//! `addr_gen_mode=1` (no link-local address), `ndisc_notify=1` and
//! `router_solicitations=0` on both ends. `tcpdump -i va -U -w a.pcap
//! icmp6` ran in a while `ip addr add 2001:2::a/64 dev va` and
//! `2001:2::b/64 dev vb` (DAD, then the unsolicited advertisement
//! ndisc_notify sends), `ping -6 -c1 2001:2::a` from b (resolution, then
//! echo), `echo -n uvs > /dev/udp/2001:2::a/9` from b (port unreachable)
//! and `ping -6 -c1 -s 1500 -p 75 2001:2::a` from b (fragments); then both
//! namespaces were deleted. The frames are tcpdump's bytes, Ethernet
//! header first, kept as hex in `kernel_frames.txt`. Only the first
//! fragment is cut short there: the rest of it is the ping pattern (0x75),
//! which the test puts back.

/// The frame `name` of `kernel_frames.txt`, the kernel's own bytes.
pub fn frame(name: &str) -> Vec<u8> {
    let text = include_str!("kernel_frames.txt");
    let mut lines = text.lines().skip_while(|l| *l != name).skip(1);
    let digits: String = lines.by_ref().take_while(|l| !l.is_empty()).collect();
    assert!(!digits.is_empty(), "no frame {name}");
    hex(&digits)
}

/// The bytes of a fixture: hex digits, whitespace ignored.
pub fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

mod tests {
    use super::*;
    use crate::wire::icmpv6::{self, Icmpv6Error, Icmpv6Packet, Icmpv6Repr};
    use crate::wire::ipv6::{Ipv6Packet, Ipv6Repr, UpperLayer};
    use crate::wire::ndp::{self, NdpRepr, na_flags};
    use crate::wire::{EtherType, EthernetFrame, MacAddr, UdpPacket, checksum, ethernet, ip_proto};
    use std::net::Ipv6Addr;

    const A: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0xa);
    const B: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0xb);
    const MAC_A: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xa]);
    const MAC_B: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xb]);

    /// The IPv6 header's fields besides the addresses.
    #[derive(Debug, PartialEq)]
    struct Ip {
        traffic_class: u8,
        flow_label: u32,
        payload_len: usize,
        next_header: u8,
        hop_limit: u8,
    }

    /// Checks the Ethernet header and the IPv6 header's every field; gives
    /// back the IPv6 packet.
    fn ip(f: &[u8], macs: (MacAddr, MacAddr), addrs: (Ipv6Addr, Ipv6Addr), want: Ip) -> &[u8] {
        let eth = EthernetFrame::new_checked(f).unwrap();
        assert_eq!((eth.dst_addr(), eth.src_addr()), macs);
        assert_eq!(eth.ethertype(), EtherType::IPV6);
        let p = Ipv6Packet::new_checked(eth.payload()).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!((p.src_addr(), p.dst_addr()), addrs);
        let got = Ip {
            traffic_class: p.traffic_class(),
            flow_label: p.flow_label(),
            payload_len: p.payload_len(),
            next_header: p.next_header(),
            hop_limit: p.hop_limit(),
        };
        assert_eq!(got, want);
        assert_eq!(f.len(), 14 + 40 + want.payload_len, "no padding");
        &f[14..]
    }

    /// The IPv6 header of a neighbour discovery message of `len` bytes.
    fn nd(len: usize) -> Ip {
        Ip {
            traffic_class: 0,
            flow_label: 0,
            payload_len: len,
            next_header: ip_proto::ICMPV6,
            hop_limit: 255,
        }
    }

    /// The ICMPv6 message of `p`: its type, code and checksum as sent, and
    /// the checksum verified.
    fn icmp(p: &[u8], t: u8, code: u8, csum: u16) -> Icmpv6Packet<&[u8]> {
        let ip = Ipv6Packet::new_checked(p).unwrap();
        let u = ip.upper_layer().unwrap();
        assert_eq!((u.protocol, u.offset, u.frag), (ip_proto::ICMPV6, 40, None));
        let m = Icmpv6Packet::new_checked(&p[u.offset..]).unwrap();
        assert_eq!((m.msg_type(), m.code(), m.checksum()), (t, code, csum));
        assert!(m.verify_checksum(ip.src_addr(), ip.dst_addr()));
        m
    }

    fn built(f: impl FnOnce(&mut [u8]) -> crate::wire::Result<usize>) -> Vec<u8> {
        let mut out = [0u8; 128];
        let n = f(&mut out).unwrap();
        out[..n].to_vec()
    }

    /// The kernel's neighbour discovery frames: each one's Ethernet and
    /// IPv6 headers, its ICMPv6 type, checksum and word after it, what
    /// `NdpRepr` reads, and the director's own frame for the same message.
    #[test]
    fn neighbour_discovery() {
        let sn: Ipv6Addr = "ff02::1:ff00:a".parse().unwrap();
        let to_sn = MacAddr([0x33, 0x33, 0xff, 0, 0, 0xa]);
        let to_all = MacAddr([0x33, 0x33, 0, 0, 0, 1]);
        let (ns, na) = (icmpv6::TYPE_NEIGHBOR_SOLICIT, icmpv6::TYPE_NEIGHBOR_ADVERT);
        let solicit = |source_lladdr| NdpRepr::Solicit {
            target: A,
            source_lladdr,
        };
        let advert = |flags| NdpRepr::Advert {
            flags,
            target: A,
            target_lladdr: Some(MAC_A),
        };
        let any = Ipv6Addr::UNSPECIFIED;
        let cases = [
            (
                "ns",
                (to_sn, MAC_B),
                (B, sn),
                ns,
                0x376f,
                0,
                solicit(Some(MAC_B)),
            ),
            (
                "solicited_na",
                (MAC_B, MAC_A),
                (A, B),
                na,
                0xb371,
                0x6000_0000,
                { advert(na_flags::SOLICITED | na_flags::OVERRIDE) },
            ),
            (
                "unsolicited_na",
                (to_all, MAC_A),
                (A, ndp::ALL_NODES),
                na,
                0x147c,
                0x2000_0000,
                { advert(na_flags::OVERRIDE) },
            ),
            (
                "dad_ns",
                (to_sn, MAC_A),
                (any, sn),
                ns,
                0x1fbd,
                0,
                solicit(None),
            ),
        ];
        let ours = [
            built(|o| ndp::solicit(o, MAC_B, B, A)),
            built(|o| ndp::solicited_advert(o, MAC_A, A, B, MAC_B)),
            built(|o| ndp::unsolicited_advert(o, MAC_A, A)),
            built(|o| ndp::dad_solicit(o, MAC_A, A)),
        ];
        for ((name, macs, addrs, t, csum, rest, want), ours) in cases.into_iter().zip(ours) {
            let f = frame(name);
            let p = ip(&f, macs, addrs, nd(32));
            let m = icmp(p, t, 0, csum);
            assert_eq!(m.rest(), rest, "{name}");
            let r = NdpRepr::parse(&Ipv6Packet::new_checked(p).unwrap());
            assert_eq!(r, Ok(want), "{name}");
            if name != "dad_ns" {
                assert_eq!(ours, f, "{name}");
                continue;
            }
            // Linux adds a nonce option (14, RFC 7527) to its DAD probe:
            // skipped. Ours has none: the same frame but for the payload
            // length, the checksum and the option.
            assert_eq!(&m.data()[16..18], &[14, 1]);
            assert_eq!(ours.len(), 78);
            assert_eq!((&ours[..18], &ours[20..56]), (&f[..18], &f[20..56]));
            assert_eq!((&ours[18..20], &ours[58..]), (&[0, 24][..], &f[58..78]));
            assert!(NdpRepr::parse(&Ipv6Packet::new_checked(&ours[14..]).unwrap()).is_ok());
        }
    }

    /// Emits `f`'s IPv6 header and ICMPv6 message again from their Reprs.
    fn echo_again(f: &[u8], r: Icmpv6Repr) -> Vec<u8> {
        let ip = Ipv6Packet::new_checked(&f[14..]).unwrap();
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let mut out = vec![0u8; f.len()];
        let eth = EthernetFrame::new_checked(f).unwrap();
        ethernet::emit_header(&mut out, eth.dst_addr(), eth.src_addr(), EtherType::IPV6);
        Ipv6Repr::parse(&ip).emit(&mut out[14..54]).unwrap();
        r.emit(&mut out[54..], src, dst).unwrap();
        out
    }

    #[test]
    fn echo_request_and_reply() {
        let data: Vec<u8> = hex("5392 166b 0000 0000 2916 0000 0000 0000")
            .into_iter()
            .chain(0x10..0x38)
            .collect();
        for (fixture, t, macs, addrs, flow_label, csum) in [
            ("echo_request", 128, (MAC_A, MAC_B), (B, A), 0xa4dea, 0xdc35),
            ("echo_reply", 129, (MAC_B, MAC_A), (A, B), 0x67b88, 0xdb35),
        ] {
            let f = frame(fixture);
            let want = Ip {
                traffic_class: 0,
                flow_label,
                payload_len: 64,
                next_header: ip_proto::ICMPV6,
                hop_limit: 64,
            };
            let p = ip(&f, macs, addrs, want);
            let m = icmp(p, t, 0, csum);
            assert_eq!(
                (m.echo_ident(), m.echo_seq_no(), m.is_error()),
                (0x114d, 1, false)
            );
            let r = Icmpv6Repr::parse(&m).unwrap();
            let fields = (0x114d, 1, &data[..]);
            assert_eq!(matches!(r, Icmpv6Repr::EchoRequest { .. }), t == 128);
            let (Icmpv6Repr::EchoRequest {
                ident,
                seq_no,
                data,
            }
            | Icmpv6Repr::EchoReply {
                ident,
                seq_no,
                data,
            }) = r
            else {
                panic!("{r:?}")
            };
            assert_eq!((ident, seq_no, data), fields);
            assert_eq!(echo_again(&f, r), f);
            let mut bad = f.clone();
            bad[100] ^= 0x40;
            let m = Icmpv6Packet::new_checked(&bad[54..]).unwrap();
            assert!(!m.verify_checksum(addrs.0, addrs.1));
        }
    }

    #[test]
    fn port_unreachable_quotes_the_datagram() {
        let f = frame("port_unreachable");
        let want = Ip {
            traffic_class: 0,
            flow_label: 0x45d02,
            payload_len: 59,
            next_header: ip_proto::ICMPV6,
            hop_limit: 64,
        };
        let p = ip(&f, (MAC_B, MAC_A), (A, B), want);
        let m = icmp(
            p,
            icmpv6::TYPE_DEST_UNREACH,
            icmpv6::CODE_PORT_UNREACH,
            0x72ca,
        );
        assert!(m.is_error());
        let quote = &p[48..];
        let r = Icmpv6Repr::parse(&m).unwrap();
        let error = Icmpv6Error::PORT_UNREACHABLE;
        assert_eq!(r, Icmpv6Repr::Error { error, quote });
        let q = m.quoted().unwrap();
        assert_eq!((q.src_addr(), q.dst_addr(), q.hop_limit()), (B, A, 64));
        let u = q.upper_layer().unwrap();
        assert_eq!((u.protocol, u.offset), (ip_proto::UDP, 40));
        let udp = UdpPacket::new_checked(q.upper_payload(&u)).unwrap();
        assert_eq!((udp.src_port(), udp.dst_port(), udp.len()), (0x92f2, 9, 11));
        assert_eq!(udp.payload(), b"uvs");
        // veth offloads checksums: the datagram left b with CHECKSUM_PARTIAL,
        // its checksum field the pseudo-header's sum, never completed.
        let partial = checksum::fold(checksum::pseudo_header_v6(B, A, ip_proto::UDP, 11));
        assert_eq!(udp.checksum(), partial);
        assert!(!udp.verify_checksum_v6(B, A));
        // The director's own: the same but for the flow label.
        let mut ours = [0u8; 128];
        let n = icmpv6::emit_error(&mut ours, A, B, error, quote).unwrap();
        assert_eq!((&ours[4..n], ours[0]), (&p[4..], p[0]));
        assert_eq!(ours[1] & 0xf0, p[1] & 0xf0);
    }

    #[test]
    fn a_fragmented_echo_request() {
        let mut first = frame("first_fragment_head");
        first.resize(1510, 0x75);
        let later = frame("later_fragment");
        let walk = |f: &[u8]| {
            let want = Ip {
                traffic_class: 0,
                flow_label: 0xa4dea,
                payload_len: f.len() - 54,
                next_header: 44,
                hop_limit: 64,
            };
            let p = ip(f, (MAC_A, MAC_B), (B, A), want);
            let u: UpperLayer = Ipv6Packet::new_checked(p).unwrap().upper_layer().unwrap();
            assert_eq!((u.protocol, u.offset), (ip_proto::ICMPV6, 48));
            assert_eq!(u.frag.map(|f| f.ident), Some(0x57a9_5f7f));
            (u, p[u.offset..].to_vec())
        };
        let (u1, mut msg) = walk(&first);
        assert!(u1.is_fragment() && u1.is_first_fragment() && !u1.is_later_fragment());
        assert_eq!(u1.frag.map(|f| (f.offset, f.more)), Some((0, true)));
        let (u2, rest) = walk(&later);
        assert!(u2.is_fragment() && u2.is_later_fragment() && !u2.is_first_fragment());
        assert_eq!(u2.frag.map(|f| (f.offset, f.more)), Some((1448 / 8, false)));
        // Reassembled, the message's checksum holds.
        msg.extend_from_slice(&rest);
        let m = Icmpv6Packet::new_checked(&msg[..]).unwrap();
        assert!(m.verify_checksum(B, A));
        match Icmpv6Repr::parse(&m).unwrap() {
            Icmpv6Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } => {
                assert_eq!((ident, seq_no, data.len()), (0x1151, 1, 1500))
            }
            r => panic!("{r:?}"),
        }
    }
}
