//! IPv6 frames: the IPv6, ICMPv6 and neighbour discovery views on mutated
//! valid frames and random bytes, their Reprs generated and written and
//! read again, and the extension-header walk on generated chains.

use super::config;
use super::frames::{frame, mutated};
use etherparse::PacketBuilder;
use proptest::prelude::*;
use std::net::Ipv6Addr;
use std::sync::LazyLock;
use uvs::wire::icmpv6::{self, Icmpv6Error};
use uvs::wire::ipv6::{ExtHeaderError, FragInfo, MAX_EXT_HEADERS, next_header as nh, test_packet};
use uvs::wire::{
    Icmpv6Packet, Icmpv6Repr, Ipv6Packet, Ipv6Repr, MacAddr, NdpRepr, TcpPacket, UdpPacket,
    ip_proto, ndp,
};

const MAC_A: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xa]);
const MAC_B: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xb]);
const A: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0xa);
const B: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0xb);
const VIP: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x100);

/// The extension headers the walk skips.
fn is_ext(kind: u8) -> bool {
    matches!(
        kind,
        nh::HOP_BY_HOP | nh::ROUTING | nh::FRAGMENT | nh::AUTH | nh::DEST_OPTS
    )
}

/// One header of a generated chain: an extension header the walk knows,
/// or any other value (an upper layer, where the walk stops).
#[derive(Debug, Clone)]
struct Hdr {
    kind: u8,
    /// The length byte: 8-byte units past the first 8, 4-byte units less
    /// 2 for AH; a Fragment header is 8 bytes whatever it says.
    units: u8,
    frag: FragInfo,
}

impl Hdr {
    fn len(&self) -> usize {
        let u = usize::from(self.units);
        match self.kind {
            nh::FRAGMENT => 8,
            nh::AUTH => (u + 2) * 4,
            _ => (u + 1) * 8,
        }
    }
}

/// The bytes of `hdrs` ahead of `upper`, each header naming the next.
fn chain_bytes(hdrs: &[Hdr], upper: u8) -> Vec<u8> {
    let mut b = Vec::new();
    for (i, h) in hdrs.iter().enumerate() {
        let next = hdrs.get(i + 1).map_or(upper, |n| n.kind);
        let at = b.len();
        b.resize(at + h.len(), 0x01);
        b[at] = next;
        b[at + 1] = h.units;
        if h.kind == nh::FRAGMENT {
            let f = h.frag;
            let word = f.offset << 3 | u16::from(f.more);
            b[at + 2..at + 4].copy_from_slice(&word.to_be_bytes());
            b[at + 4..at + 8].copy_from_slice(&f.ident.to_be_bytes());
        }
    }
    b
}

/// An IPv6 packet from B to A whose payload is `payload`, its length
/// field saying `payload_len`.
fn ipv6(first: u8, payload: &[u8], payload_len: usize) -> Vec<u8> {
    test_packet((B, A), first, payload, payload_len)
}

/// Where the walk must end, from the chain's structure rather than its
/// bytes, for a payload cut to `cut` bytes.
fn expected(hdrs: &[Hdr], upper: u8, cut: usize) -> Result<(u8, usize), ExtHeaderError> {
    let mut at = 0;
    let mut frag = false;
    for (i, h) in hdrs.iter().enumerate() {
        if !is_ext(h.kind) {
            return Ok((h.kind, 40 + at));
        }
        if h.kind == nh::HOP_BY_HOP && i > 0 {
            return Err(ExtHeaderError::HopByHopNotFirst);
        }
        if i == MAX_EXT_HEADERS {
            return Err(ExtHeaderError::TooMany);
        }
        if at + h.len() > cut {
            return Err(ExtHeaderError::Truncated);
        }
        if h.kind == nh::FRAGMENT {
            if frag {
                return Err(ExtHeaderError::RepeatedFragment);
            }
            frag = true;
            if h.frag.offset != 0 {
                let next = hdrs.get(i + 1).map_or(upper, |n| n.kind);
                return Ok((next, 40 + at + 8));
            }
        }
        at += h.len();
    }
    Ok((upper, 40 + at))
}

fn hdr() -> impl Strategy<Value = Hdr> {
    let kind = prop_oneof![
        8 => prop::sample::select(vec![
            nh::HOP_BY_HOP, nh::ROUTING, nh::FRAGMENT, nh::AUTH, nh::DEST_OPTS
        ]),
        1 => any::<u8>(),
    ];
    let offset = prop_oneof![Just(0u16), 0u16..0x2000];
    (kind, 0u8..4, offset, any::<bool>(), any::<u32>()).prop_map(
        |(kind, units, offset, more, ident)| Hdr {
            kind,
            units,
            frag: FragInfo {
                offset,
                more,
                ident,
            },
        },
    )
}

/// Valid IPv6 frames of each kind the new views read.
static SEEDS: LazyLock<Vec<(Vec<u8>, u8)>> = LazyLock::new(|| {
    let built = |f: &dyn Fn(&mut [u8]) -> uvs::wire::Result<usize>| {
        let mut out = vec![0u8; 14 + 1280];
        let n = f(&mut out).unwrap();
        out.truncate(n);
        out
    };
    let eth = || PacketBuilder::ethernet2(MAC_B.0, MAC_A.0);
    let echo = frame(|v| {
        eth()
            .ipv6(B.octets(), A.octets(), 64)
            .icmpv6_echo_request(7, 1)
            .write(v, &[0x75; 56])
            .unwrap()
    });
    let to_vip = || eth().ipv6(B.octets(), VIP.octets(), 64);
    let syn = frame(|v| {
        to_vip()
            .tcp(40000, 80, 1, 64000)
            .syn()
            .write(v, b"")
            .unwrap()
    });
    let udp = frame(|v| to_vip().udp(40001, 53).write(v, b"NAME").unwrap());
    let error = |e, quote: &[u8]| {
        built(&|o: &mut [u8]| {
            o[..14].copy_from_slice(&udp[..14]);
            Ok(14 + icmpv6::emit_error(&mut o[14..], VIP, B, e, quote)?)
        })
    };
    // TCP behind hop-by-hop, destination options, routing and the header
    // of a first fragment; a later fragment.
    let h = |kind, units| Hdr {
        kind,
        units,
        frag: FragInfo {
            offset: 0,
            more: true,
            ident: 9,
        },
    };
    let exts = [
        h(nh::HOP_BY_HOP, 0),
        h(nh::DEST_OPTS, 1),
        h(nh::ROUTING, 0),
        h(nh::AUTH, 1),
        h(nh::FRAGMENT, 0),
    ];
    let mut chained = udp[..14].to_vec();
    let mut payload = chain_bytes(&exts, ip_proto::TCP);
    payload.extend_from_slice(&syn[54..]);
    chained.extend(ipv6(nh::HOP_BY_HOP, &payload, payload.len()));
    let mut later_frag = h(nh::FRAGMENT, 0);
    later_frag.frag.offset = 100;
    let mut later = udp[..14].to_vec();
    let mut payload = chain_bytes(&[later_frag], ip_proto::TCP);
    payload.extend_from_slice(&[0x75; 16]);
    later.extend(ipv6(nh::FRAGMENT, &payload, payload.len()));
    vec![
        built(&|o| ndp::solicit(o, MAC_B, B, A)),
        built(&|o| ndp::solicited_advert(o, MAC_A, A, B, MAC_B)),
        built(&|o| ndp::unsolicited_advert(o, MAC_A, A)),
        built(&|o| ndp::dad_solicit(o, MAC_A, A)),
        error(Icmpv6Error::PORT_UNREACHABLE, &udp[14..]),
        error(Icmpv6Error::PacketTooBig { mtu: 1280 }, &syn[14..]),
        echo,
        syn,
        udp,
        chained,
        later,
    ]
    .into_iter()
    .map(|f| (f, 0))
    .collect()
});

/// The ICMPv6 and neighbour discovery views over `m`, an upper layer.
fn icmp(m: &[u8], src: Ipv6Addr, dst: Ipv6Addr) -> Result<(), TestCaseError> {
    let Ok(p) = Icmpv6Packet::new_checked(m) else {
        return Ok(());
    };
    let _ = (
        p.msg_type(),
        p.code(),
        p.checksum(),
        p.rest(),
        p.data().len(),
    );
    let _ = (p.echo_ident(), p.echo_seq_no(), p.verify_checksum(src, dst));
    if let Ok(q) = p.quoted() {
        let _ = (
            q.src_addr(),
            q.dst_addr(),
            q.payload().len(),
            q.upper_layer(),
        );
    }
    if let Ok(r) = Icmpv6Repr::parse(&p) {
        let mut out = vec![0u8; r.buffer_len()];
        let n = r.emit(&mut out, src, dst).unwrap();
        let again = Icmpv6Packet::new_checked(&out[..n]).unwrap();
        prop_assert!(again.verify_checksum(src, dst));
        prop_assert_eq!(Icmpv6Repr::parse(&again), Ok(r));
    }
    if let Ok(r) = NdpRepr::parse_icmp(&p) {
        let mut out = vec![0u8; r.buffer_len()];
        let n = r.emit(&mut out, src, dst).unwrap();
        let again = Icmpv6Packet::new_checked(&out[..n]).unwrap();
        prop_assert_eq!(NdpRepr::parse_icmp(&again), Ok(r));
    }
    Ok(())
}

fn addr() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>().prop_map(Ipv6Addr::from)
}

/// Not multicast, not unspecified: an address a neighbour message may be
/// between or about.
fn unicast() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>().prop_map(|a| Ipv6Addr::from((a & !(0xff << 120)) | 1 << 125))
}

fn icmp_repr(data: &[u8]) -> impl Strategy<Value = Icmpv6Repr<'_>> {
    let error = prop_oneof![
        any::<u8>().prop_map(|code| Icmpv6Error::DestUnreachable { code }),
        any::<u32>().prop_map(|mtu| Icmpv6Error::PacketTooBig { mtu }),
        any::<u8>().prop_map(|code| Icmpv6Error::TimeExceeded { code }),
        (any::<u8>(), any::<u32>())
            .prop_map(|(code, pointer)| Icmpv6Error::ParamProblem { code, pointer }),
    ];
    (0u8..3, any::<u16>(), any::<u16>(), error, 0..=data.len()).prop_map(
        move |(kind, ident, seq_no, error, n)| {
            let data = &data[..n];
            match kind {
                0 => Icmpv6Repr::EchoRequest {
                    ident,
                    seq_no,
                    data,
                },
                1 => Icmpv6Repr::EchoReply {
                    ident,
                    seq_no,
                    data,
                },
                _ => Icmpv6Repr::Error { error, quote: data },
            }
        },
    )
}

fn ndp_repr() -> impl Strategy<Value = NdpRepr> {
    let mac = prop::option::of(any::<[u8; 6]>().prop_map(MacAddr));
    (any::<bool>(), any::<u8>(), unicast(), mac).prop_map(|(ns, flags, target, lladdr)| {
        if ns {
            NdpRepr::Solicit {
                target,
                source_lladdr: lladdr,
            }
        } else {
            NdpRepr::Advert {
                flags: flags & ndp::na_flags::ALL,
                target,
                target_lladdr: lladdr,
            }
        }
    })
}

static DATA: LazyLock<Vec<u8>> = LazyLock::new(|| (0..200u8).collect());

/// Every seed is what it is meant to be: its walk ends at its upper
/// layer, and the neighbour messages pass every check.
#[test]
fn seeds_are_valid() {
    for (i, (f, _)) in SEEDS.iter().enumerate() {
        let ip = Ipv6Packet::new_checked(&f[14..]).unwrap();
        let u = ip.upper_layer().unwrap();
        assert!(!is_ext(u.protocol) || u.is_later_fragment(), "seed {i}");
        let icmp = u.protocol == ip_proto::ICMPV6;
        assert_eq!(NdpRepr::parse(&ip).is_ok(), icmp && i < 4, "seed {i}");
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn ipv6_views((f, _) in mutated(&SEEDS)) {
        for at in [0usize, 14] {
            let Some(b) = f.get(at..) else { continue };
            for ip in [Ipv6Packet::new_checked(b), Ipv6Packet::new_quoted(b)].into_iter().flatten() {
                let _ = (ip.version(), ip.traffic_class(), ip.flow_label(), ip.next_header());
                let _ = (ip.hop_limit(), ip.src_addr(), ip.dst_addr(), ip.header().len());
                let _ = Ipv6Repr::parse(&ip);
                let held = ip.payload().len();
                prop_assert!(held <= ip.payload_len() && 40 + held <= b.len());
                let _ = NdpRepr::parse(&ip);
                let Ok(u) = ip.upper_layer() else { continue };
                let _ = (u.is_fragment(), u.is_first_fragment(), u.is_later_fragment());
                prop_assert!(u.offset >= 40 && u.offset <= 40 + held, "{:?}", u);
                prop_assert!(!is_ext(u.protocol) || u.is_later_fragment(), "{:?}", u);
                let up = ip.upper_payload(&u);
                prop_assert_eq!(up.len(), 40 + held - u.offset);
                icmp(up, ip.src_addr(), ip.dst_addr())?;
                if let Ok(t) = TcpPacket::new_checked(up) {
                    let _ = t.verify_checksum_v6(ip.src_addr(), ip.dst_addr());
                }
                if let Ok(d) = UdpPacket::new_checked(up) {
                    let _ = d.verify_checksum_v6(ip.src_addr(), ip.dst_addr());
                }
            }
        }
    }

    #[test]
    fn ipv6_reprs_round_trip(
        (src, dst, next_header, hop_limit, traffic_class, flow_label) in
            (addr(), addr(), any::<u8>(), any::<u8>(), any::<u8>(), 0u32..1 << 20),
        payload_len in 0usize..1500,
        icmp in icmp_repr(&DATA),
        nd in ndp_repr(),
        (nd_src, nd_dst) in (unicast(), unicast()),
    ) {
        let ip = Ipv6Repr { src, dst, next_header, payload_len, hop_limit, traffic_class, flow_label };
        let mut b = vec![0u8; 40 + payload_len];
        ip.emit(&mut b).unwrap();
        prop_assert_eq!(Ipv6Repr::parse(&Ipv6Packet::new_checked(&b[..]).unwrap()), ip);

        let mut m = vec![0u8; icmp.buffer_len()];
        icmp.emit(&mut m, src, dst).unwrap();
        let p = Icmpv6Packet::new_checked(&m[..]).unwrap();
        prop_assert!(p.verify_checksum(src, dst));
        prop_assert_eq!(Icmpv6Repr::parse(&p), Ok(icmp));

        // A neighbour message between two unicast addresses, hop limit
        // 255: valid whole.
        let mut m = vec![0u8; nd.buffer_len()];
        nd.emit(&mut m, nd_src, nd_dst).unwrap();
        let mut b = vec![0u8; 40];
        Ipv6Repr { src: nd_src, dst: nd_dst, next_header: ip_proto::ICMPV6,
            payload_len: m.len(), hop_limit: 255, traffic_class: 0, flow_label: 0 }
            .emit(&mut b).unwrap();
        b.extend_from_slice(&m);
        prop_assert_eq!(NdpRepr::parse(&Ipv6Packet::new_checked(&b[..]).unwrap()), Ok(nd));
    }

    #[test]
    fn extension_header_chains(
        hdrs in prop::collection::vec(hdr(), 0..16),
        upper in any::<u8>().prop_filter("an upper layer", |u| !is_ext(*u)),
        cut in any::<u16>(),
        tail in prop::collection::vec(any::<u8>(), 0..32),
    ) {
        let mut payload = chain_bytes(&hdrs, upper);
        payload.extend_from_slice(&[0xee; 8]);
        let cut = usize::from(cut) % (payload.len() + 1);
        let first = hdrs.first().map_or(upper, |h| h.kind);
        let want = expected(&hdrs, upper, cut);
        // The payload length says `cut`; the buffer holds the rest of the
        // chain and random bytes past it, or ends at the payload.
        let mut long = ipv6(first, &payload, cut);
        long.extend_from_slice(&tail);
        let short = &long[..40 + cut];
        for b in [&long[..], short] {
            let got = Ipv6Packet::new_checked(b).unwrap().upper_layer();
            prop_assert_eq!(got.map(|u| (u.protocol, u.offset)), want, "{:?}", hdrs);
        }
        // A quote cut at `cut` of a packet whose length field says more:
        // the same.
        let whole = ipv6(first, &payload, payload.len());
        let q = Ipv6Packet::new_quoted(&whole[..40 + cut]).unwrap();
        prop_assert_eq!(q.upper_layer().map(|u| (u.protocol, u.offset)), want);
    }
}
