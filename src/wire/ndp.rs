//! Neighbour discovery over Ethernet (RFC 4861): the solicitations and
//! advertisements that do for IPv6 what ARP does for IPv4. The director
//! answers them for its VIPs, announces a VIP with an unsolicited
//! advertisement where it sends gratuitous ARP, and resolves neighbours.

use super::ethernet::{self, EtherType, MacAddr};
use super::icmpv6::{self, Icmpv6Packet, TYPE_NEIGHBOR_ADVERT, TYPE_NEIGHBOR_SOLICIT};
use super::ipv6::{self, Ipv6Packet, Ipv6Repr};
use super::{Error, Result, ip_proto, read_ipv6, write_ipv6};
use std::net::Ipv6Addr;

/// The advertisement's flags, in the byte after the checksum.
pub mod na_flags {
    /// The sender is a router.
    pub const ROUTER: u8 = 0x80;
    /// An answer to a solicitation.
    pub const SOLICITED: u8 = 0x40;
    /// Replace a cached link-layer address (what moves a VIP).
    pub const OVERRIDE: u8 = 0x20;
    pub const ALL: u8 = ROUTER | SOLICITED | OVERRIDE;
}

/// ICMPv6 header, reserved word and target: the shortest valid message.
pub const MSG_LEN: usize = 24;
/// A link-layer address option for Ethernet: type, length 1 (8 bytes).
pub const LLADDR_OPT_LEN: usize = 8;
pub const OPT_SOURCE_LLADDR: u8 = 1;
pub const OPT_TARGET_LLADDR: u8 = 2;
/// Sent with 255 and accepted only with it (RFC 4861 §6.1.2): a router
/// would have decremented it, so the sender is on the link.
pub const HOP_LIMIT: u8 = 255;
/// All-nodes on the link (ff02::1): where unsolicited advertisements go.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// An Ethernet frame with a message carrying a link-layer address option;
/// a DAD solicitation has none and is `LLADDR_OPT_LEN` shorter.
pub const FRAME_LEN: usize = ethernet::HEADER_LEN + ipv6::HEADER_LEN + MSG_LEN + LLADDR_OPT_LEN;

const TARGET: usize = 8;
const OPTIONS: usize = MSG_LEN;

/// The solicited-node multicast address of `a` (RFC 4291 §2.7.1):
/// ff02::1:ff00:0 and `a`'s low 24 bits. A solicitation for `a` goes there.
pub fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    let mut s = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, 0, 0, 0];
    s[13..].copy_from_slice(&o[13..]);
    Ipv6Addr::from(s)
}

/// Whether `a` is a solicited-node multicast address.
pub fn is_solicited_node(a: Ipv6Addr) -> bool {
    a.octets()[..13] == solicited_node(Ipv6Addr::UNSPECIFIED).octets()[..13]
}

/// The Ethernet multicast MAC of an IPv6 multicast address (RFC 2464 §7):
/// 33:33 and the address's last four bytes.
pub fn multicast_mac(a: Ipv6Addr) -> MacAddr {
    let o = a.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// A neighbour solicitation or advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdpRepr {
    /// "Who has `target`?" (type 135); `source_lladdr` is the asker's MAC,
    /// absent in a duplicate address detection probe.
    Solicit {
        target: Ipv6Addr,
        source_lladdr: Option<MacAddr>,
    },
    /// "`target` is at `target_lladdr`" (type 136); `flags` of `na_flags`.
    Advert {
        flags: u8,
        target: Ipv6Addr,
        target_lladdr: Option<MacAddr>,
    },
}

impl NdpRepr {
    /// The checks of RFC 4861 §7.1.1 and §7.1.2 the message alone shows:
    /// code 0, at least 24 bytes, a target that is not multicast, options
    /// that are not zero-length and end with the message. The first
    /// link-layer option of the message's kind is kept, further ones and
    /// unknown options skipped (as Linux); one whose length is not an
    /// Ethernet address's is malformed (Linux drops those too).
    pub fn parse_icmp<T: AsRef<[u8]>>(p: &Icmpv6Packet<T>) -> Result<NdpRepr> {
        // After the ICMPv6 header: the target, then the options.
        let d = p.data();
        if d.len() < MSG_LEN - icmpv6::HEADER_LEN {
            return Err(Error::Truncated);
        }
        let solicit = match p.msg_type() {
            TYPE_NEIGHBOR_SOLICIT => true,
            TYPE_NEIGHBOR_ADVERT => false,
            _ => return Err(Error::Malformed),
        };
        if p.code() != 0 {
            return Err(Error::Malformed);
        }
        let target = read_ipv6(d, 0);
        if target.is_multicast() {
            return Err(Error::Malformed);
        }
        let opt_kind = if solicit {
            OPT_SOURCE_LLADDR
        } else {
            OPT_TARGET_LLADDR
        };
        let lladdr = lladdr_option(&d[16..], opt_kind)?;
        Ok(match solicit {
            true => NdpRepr::Solicit {
                target,
                source_lladdr: lladdr,
            },
            false => NdpRepr::Advert {
                flags: (p.rest() >> 24) as u8 & na_flags::ALL,
                target,
                target_lladdr: lladdr,
            },
        })
    }

    /// `parse_icmp` and the checks that need the IPv6 header: hop limit
    /// 255, a valid checksum, no Fragment header (RFC 6980; Linux's
    /// `suppress_frag_ndisc`), a solicitation from the unspecified address
    /// (DAD) sent to a solicited-node address without a source link-layer
    /// option, an advertisement to a multicast address not solicited.
    pub fn parse<T: AsRef<[u8]>>(ip: &Ipv6Packet<T>) -> Result<NdpRepr> {
        let upper = ip.upper_layer()?;
        if upper.protocol != ip_proto::ICMPV6 || upper.frag.is_some() {
            return Err(Error::Malformed);
        }
        if ip.hop_limit() != HOP_LIMIT {
            return Err(Error::Malformed);
        }
        let msg = Icmpv6Packet::new_checked(ip.upper_payload(&upper))?;
        let repr = NdpRepr::parse_icmp(&msg)?;
        if !msg.verify_checksum(ip.src_addr(), ip.dst_addr()) {
            return Err(Error::Malformed);
        }
        let ok = match repr {
            NdpRepr::Solicit { source_lladdr, .. } => {
                !ip.src_addr().is_unspecified()
                    || (is_solicited_node(ip.dst_addr()) && source_lladdr.is_none())
            }
            NdpRepr::Advert { flags, .. } => {
                !ip.dst_addr().is_multicast() || flags & na_flags::SOLICITED == 0
            }
        };
        if !ok {
            return Err(Error::Malformed);
        }
        Ok(repr)
    }

    fn lladdr(&self) -> Option<MacAddr> {
        match *self {
            NdpRepr::Solicit { source_lladdr, .. } => source_lladdr,
            NdpRepr::Advert { target_lladdr, .. } => target_lladdr,
        }
    }

    pub fn buffer_len(&self) -> usize {
        MSG_LEN + self.lladdr().map_or(0, |_| LLADDR_OPT_LEN)
    }

    /// Writes the ICMPv6 message into `buf` with its checksum over the
    /// pseudo-header of `src` and `dst`; returns its length.
    pub fn emit(&self, buf: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) -> Result<usize> {
        let n = self.buffer_len();
        if buf.len() < n {
            return Err(Error::Truncated);
        }
        let b = &mut buf[..n];
        b[..TARGET].fill(0);
        let (target, opt_kind) = match *self {
            NdpRepr::Solicit { target, .. } => {
                b[0] = TYPE_NEIGHBOR_SOLICIT;
                (target, OPT_SOURCE_LLADDR)
            }
            NdpRepr::Advert { flags, target, .. } => {
                b[0] = TYPE_NEIGHBOR_ADVERT;
                b[4] = flags & na_flags::ALL;
                (target, OPT_TARGET_LLADDR)
            }
        };
        write_ipv6(b, TARGET, target);
        if let Some(mac) = self.lladdr() {
            b[OPTIONS] = opt_kind;
            b[OPTIONS + 1] = 1;
            b[OPTIONS + 2..OPTIONS + 8].copy_from_slice(&mac.0);
        }
        Icmpv6Packet::new_unchecked(b).fill_checksum(src, dst);
        Ok(n)
    }
}

/// The first option of kind `want` in `opts`, an Ethernet address. Each
/// step skips at least 8 bytes, and a zero length is refused before it
/// could stall the walk (RFC 4861 §4.6).
fn lladdr_option(mut opts: &[u8], want: u8) -> Result<Option<MacAddr>> {
    let mut found = None;
    while !opts.is_empty() {
        let [kind, units, ..] = *opts else {
            return Err(Error::Truncated);
        };
        let len = usize::from(units) * 8;
        if len == 0 {
            return Err(Error::Malformed);
        }
        let opt = opts.get(..len).ok_or(Error::Truncated)?;
        if kind == want && found.is_none() {
            if len != LLADDR_OPT_LEN {
                return Err(Error::Malformed);
            }
            found = MacAddr::from_slice(&opt[2..]);
        }
        opts = &opts[len..];
    }
    Ok(found)
}

/// Writes an Ethernet frame from `mac` to `eth_dst` carrying `msg` from
/// `src` to `dst` with hop limit 255, into `out`; returns its length.
fn emit_frame(
    out: &mut [u8],
    eth_dst: MacAddr,
    mac: MacAddr,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    msg: NdpRepr,
) -> Result<usize> {
    const IP: usize = ethernet::HEADER_LEN;
    const MSG: usize = IP + ipv6::HEADER_LEN;
    let n = MSG + msg.buffer_len();
    if out.len() < n {
        return Err(Error::Truncated);
    }
    ethernet::emit_header(out, eth_dst, mac, EtherType::IPV6);
    Ipv6Repr {
        src,
        dst,
        next_header: ip_proto::ICMPV6,
        payload_len: msg.buffer_len(),
        hop_limit: HOP_LIMIT,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut out[IP..MSG])?;
    msg.emit(&mut out[MSG..n], src, dst)?;
    Ok(n)
}

/// The answer to a solicitation from `solicitor` (at `solicitor_mac`) for
/// `target`, an address the director owns on the link of `mac` (RFC 4861
/// §7.2.4): solicited and override set (the director claims its VIPs, as
/// its ARP replies do), router clear (a VIP is not a router), our MAC as
/// target link-layer address, sent back to the solicitor. A solicitation
/// from the unspecified address (DAD) is answered to all-nodes instead,
/// not solicited.
pub fn solicited_advert(
    out: &mut [u8],
    mac: MacAddr,
    target: Ipv6Addr,
    solicitor: Ipv6Addr,
    solicitor_mac: MacAddr,
) -> Result<usize> {
    if solicitor.is_unspecified() {
        return unsolicited_advert(out, mac, target);
    }
    let msg = NdpRepr::Advert {
        flags: na_flags::SOLICITED | na_flags::OVERRIDE,
        target,
        target_lladdr: Some(mac),
    };
    emit_frame(out, solicitor_mac, mac, target, solicitor, msg)
}

/// Announces that `target` is at `mac` to all nodes (RFC 4861 §7.2.6),
/// with override so that caches switch at once: what the director sends
/// where it sends gratuitous ARP for an IPv4 VIP.
pub fn unsolicited_advert(out: &mut [u8], mac: MacAddr, target: Ipv6Addr) -> Result<usize> {
    let msg = NdpRepr::Advert {
        flags: na_flags::OVERRIDE,
        target,
        target_lladdr: Some(mac),
    };
    emit_frame(out, multicast_mac(ALL_NODES), mac, target, ALL_NODES, msg)
}

/// Asks for `target`'s link-layer address from `src` (an address of ours
/// on the link of `mac`), at the target's solicited-node address, with our
/// source link-layer address so the answer needs no resolution (§7.2.2).
pub fn solicit(out: &mut [u8], mac: MacAddr, src: Ipv6Addr, target: Ipv6Addr) -> Result<usize> {
    let msg = NdpRepr::Solicit {
        target,
        source_lladdr: Some(mac),
    };
    let dst = solicited_node(target);
    emit_frame(out, multicast_mac(dst), mac, src, dst, msg)
}

/// A duplicate address detection probe for `target` (RFC 4862 §5.4.2):
/// from the unspecified address, which must carry no source link-layer
/// option. Anyone answering owns the address.
pub fn dad_solicit(out: &mut [u8], mac: MacAddr, target: Ipv6Addr) -> Result<usize> {
    let msg = NdpRepr::Solicit {
        target,
        source_lladdr: None,
    };
    let dst = solicited_node(target);
    emit_frame(
        out,
        multicast_mac(dst),
        mac,
        Ipv6Addr::UNSPECIFIED,
        dst,
        msg,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::EthernetFrame;

    const A: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0xa);
    const B: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0xb);
    const MAC_A: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xa]);
    const MAC_B: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xb]);

    /// An IPv6 packet carrying the NDP message `msg` with its checksum
    /// filled in, behind any extension headers `ext` (next header first).
    fn packet(src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8, ext: &[u8], msg: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; ipv6::HEADER_LEN];
        Ipv6Repr {
            src,
            dst,
            next_header: if ext.is_empty() {
                ip_proto::ICMPV6
            } else {
                ext[0]
            },
            payload_len: ext.len().saturating_sub(1) + msg.len(),
            hop_limit,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(&mut b)
        .unwrap();
        b.extend_from_slice(ext.get(1..).unwrap_or_default());
        let at = b.len();
        b.extend_from_slice(msg);
        Icmpv6Packet::new_unchecked(&mut b[at..]).fill_checksum(src, dst);
        b
    }

    fn msg(r: NdpRepr) -> Vec<u8> {
        let mut m = vec![0u8; r.buffer_len()];
        r.emit(&mut m, A, B).unwrap();
        m
    }

    fn parse(b: &[u8]) -> Result<NdpRepr> {
        NdpRepr::parse(&Ipv6Packet::new_checked(b)?)
    }

    fn parse_msg(m: &[u8]) -> Result<NdpRepr> {
        NdpRepr::parse_icmp(&Icmpv6Packet::new_checked(m)?)
    }

    const NS: NdpRepr = NdpRepr::Solicit {
        target: A,
        source_lladdr: Some(MAC_B),
    };
    const NA: NdpRepr = NdpRepr::Advert {
        flags: na_flags::SOLICITED | na_flags::OVERRIDE,
        target: A,
        target_lladdr: Some(MAC_A),
    };
    const DAD: NdpRepr = NdpRepr::Solicit {
        target: A,
        source_lladdr: None,
    };

    #[test]
    fn solicited_node_address_and_multicast_mac() {
        let a: Ipv6Addr = "2001:2::12:3456:789a".parse().unwrap();
        let sn = solicited_node(a);
        assert_eq!(sn, "ff02::1:ff56:789a".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            solicited_node(A),
            "ff02::1:ff00:a".parse::<Ipv6Addr>().unwrap()
        );
        assert!(is_solicited_node(sn) && !is_solicited_node(ALL_NODES) && !is_solicited_node(a));
        assert_eq!(
            multicast_mac(sn),
            MacAddr([0x33, 0x33, 0xff, 0x56, 0x78, 0x9a])
        );
        assert_eq!(multicast_mac(ALL_NODES), MacAddr([0x33, 0x33, 0, 0, 0, 1]));
        assert!(multicast_mac(sn).is_multicast());
    }

    #[test]
    fn every_message_round_trips() {
        let bare = NdpRepr::Advert {
            flags: na_flags::ROUTER,
            target: B,
            target_lladdr: None,
        };
        for r in [NS, NA, DAD, bare] {
            let m = msg(r);
            assert_eq!(m.len(), r.buffer_len());
            assert!(
                Icmpv6Packet::new_checked(&m[..])
                    .unwrap()
                    .verify_checksum(A, B)
            );
            assert_eq!(parse_msg(&m), Ok(r));
            assert_eq!(
                r.emit(&mut vec![0u8; m.len() - 1], A, B),
                Err(Error::Truncated)
            );
        }
        assert_eq!(msg(NS).len(), 32);
        assert_eq!(msg(DAD).len(), 24);
    }

    #[test]
    fn malformed_messages_are_refused() {
        let ns = msg(NS);
        assert_eq!(parse_msg(&ns[..23]), Err(Error::Truncated));
        assert_eq!(parse_msg(&ns[..24]), Ok(DAD));
        let mut m = ns.clone();
        m[1] = 1; // code
        assert_eq!(parse_msg(&m), Err(Error::Malformed));
        let mut m = ns.clone();
        m[0] = icmpv6::TYPE_ECHO_REQUEST;
        assert_eq!(parse_msg(&m), Err(Error::Malformed));
        let mut m = ns.clone();
        m[8] = 0xff; // a multicast target
        assert_eq!(parse_msg(&m), Err(Error::Malformed));
        let mut m = ns.clone();
        m[25] = 0; // a zero-length option: refused, not looped on
        assert_eq!(parse_msg(&m), Err(Error::Malformed));
        let mut m = ns.clone();
        m[25] = 2; // runs past the message
        assert_eq!(parse_msg(&m), Err(Error::Truncated));
        let mut m = ns.clone();
        m.push(1); // a byte left over after the options
        assert_eq!(parse_msg(&m), Err(Error::Truncated));
        let mut m = ns.clone();
        m[25] = 2; // an Ethernet address option 16 bytes long
        m.extend_from_slice(&[0; 8]);
        assert_eq!(parse_msg(&m), Err(Error::Malformed));
    }

    #[test]
    fn unknown_and_repeated_options_are_skipped() {
        let mut m = msg(DAD);
        // A nonce (14, RFC 7527), a target address option (not an NS's), the
        // source address option, and a second one.
        m.extend_from_slice(&[14, 1, 1, 2, 3, 4, 5, 6]);
        m.extend_from_slice(&[OPT_TARGET_LLADDR, 1, 9, 9, 9, 9, 9, 9]);
        m.extend_from_slice(&[OPT_SOURCE_LLADDR, 1, 2, 0, 0, 0, 0, 0xb]);
        m.extend_from_slice(&[
            OPT_SOURCE_LLADDR,
            2,
            7,
            7,
            7,
            7,
            7,
            7,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
        ]);
        assert_eq!(parse_msg(&m), Ok(NS));
        // An NA's reserved bits are not flags.
        let mut m = msg(NA);
        m[4] |= 0x1f;
        m[7] = 1;
        assert_eq!(parse_msg(&m), Ok(NA));
    }

    #[test]
    fn the_ip_header_must_say_on_link_and_whole() {
        let sn = solicited_node(A);
        assert_eq!(parse(&packet(B, sn, 255, &[], &msg(NS))), Ok(NS));
        assert_eq!(
            parse(&packet(B, sn, 254, &[], &msg(NS))),
            Err(Error::Malformed)
        );
        let mut bad = packet(B, sn, 255, &[], &msg(NS));
        bad[ipv6::HEADER_LEN + 2] ^= 1;
        assert_eq!(parse(&bad), Err(Error::Malformed));
        // Behind a Destination Options header: fine; behind a Fragment
        // header, even an atomic one: refused (RFC 6980).
        let dest = [60, 58, 0, 1, 4, 0, 0, 0, 0];
        assert_eq!(parse(&packet(B, sn, 255, &dest, &msg(NS))), Ok(NS));
        let frag = [44, 58, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(
            parse(&packet(B, sn, 255, &frag, &msg(NS))),
            Err(Error::Malformed)
        );
        let cut = [60, 58, 200, 1, 4, 0, 0, 0, 0];
        assert_eq!(
            parse(&packet(B, sn, 255, &cut, &msg(NS))),
            Err(Error::Truncated)
        );
        // Not ICMPv6 at all.
        let mut udp = packet(B, sn, 255, &[], &msg(NS));
        udp[6] = ip_proto::UDP;
        assert_eq!(parse(&udp), Err(Error::Malformed));
    }

    #[test]
    fn dad_and_multicast_rules() {
        let sn = solicited_node(A);
        let any = Ipv6Addr::UNSPECIFIED;
        let dad = msg(DAD);
        assert!(parse(&packet(any, sn, 255, &[], &dad)).is_ok());
        // DAD carries no source link-layer address, and asks the target's
        // solicited-node group.
        assert_eq!(
            parse(&packet(any, sn, 255, &[], &msg(NS))),
            Err(Error::Malformed)
        );
        assert_eq!(
            parse(&packet(any, A, 255, &[], &dad)),
            Err(Error::Malformed)
        );
        // A multicast advertisement is not solicited.
        assert_eq!(
            parse(&packet(A, ALL_NODES, 255, &[], &msg(NA))),
            Err(Error::Malformed)
        );
        assert!(parse(&packet(A, B, 255, &[], &msg(NA))).is_ok());
    }

    /// The frame's Ethernet destination and NDP message, checked whole.
    fn frame(f: &[u8]) -> (MacAddr, MacAddr, Ipv6Addr, Ipv6Addr, NdpRepr) {
        let eth = EthernetFrame::new_checked(f).unwrap();
        assert_eq!(eth.ethertype(), EtherType::IPV6);
        let ip = Ipv6Packet::new_checked(eth.payload()).unwrap();
        assert_eq!(ip.payload_len() + 54, f.len());
        let r = NdpRepr::parse(&ip).unwrap();
        (
            eth.dst_addr(),
            eth.src_addr(),
            ip.src_addr(),
            ip.dst_addr(),
            r,
        )
    }

    #[test]
    fn frame_builders() {
        let mut out = [0u8; FRAME_LEN];
        let n = solicited_advert(&mut out, MAC_A, A, B, MAC_B).unwrap();
        assert_eq!(n, FRAME_LEN);
        assert_eq!(frame(&out[..n]), (MAC_B, MAC_A, A, B, NA));
        // DAD for our address is answered to everyone.
        let n = solicited_advert(&mut out, MAC_A, A, Ipv6Addr::UNSPECIFIED, MAC_B).unwrap();
        let announce = NdpRepr::Advert {
            flags: na_flags::OVERRIDE,
            target: A,
            target_lladdr: Some(MAC_A),
        };
        let all = multicast_mac(ALL_NODES);
        assert_eq!(frame(&out[..n]), (all, MAC_A, A, ALL_NODES, announce));
        let n = unsolicited_advert(&mut out, MAC_A, A).unwrap();
        assert_eq!(frame(&out[..n]), (all, MAC_A, A, ALL_NODES, announce));
        let sn = solicited_node(A);
        let n = solicit(&mut out, MAC_B, B, A).unwrap();
        assert_eq!(frame(&out[..n]), (multicast_mac(sn), MAC_B, B, sn, NS));
        let n = dad_solicit(&mut out, MAC_B, A).unwrap();
        assert_eq!(n, FRAME_LEN - LLADDR_OPT_LEN);
        let any = Ipv6Addr::UNSPECIFIED;
        assert_eq!(frame(&out[..n]), (multicast_mac(sn), MAC_B, any, sn, DAD));
        assert_eq!(
            solicit(&mut out[..FRAME_LEN - 1], MAC_B, B, A),
            Err(Error::Truncated)
        );
        assert_eq!(dad_solicit(&mut out[..77], MAC_B, A), Err(Error::Truncated));
    }
}
