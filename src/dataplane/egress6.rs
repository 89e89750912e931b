//! The IPv6 way out, as `egress` is IPv4's: the MTU check (an IPv6 router
//! never fragments: a packet over the link's MTU gets "packet too big"),
//! the router's hop (ICMPv6 time exceeded at hop limit 1), the change a
//! forwarding method makes (none for DR, NAT66's rewrite, ICMPv6
//! translation), then `transmit`. IPVS checks the MTU before the hop
//! limit, both before its rewrite, so an error quotes what the sender
//! sent. Also the ICMPv6 errors the director originates, rate limited as
//! the kernel's (`icmp_limit`).

use super::Dataplane;
use super::icmp_limit::limited6;
use super::nat6;
use crate::io::{PacketIo, RxMeta};
use crate::lvs::stats::DataplaneCounters;
use crate::lvs::table::NextHop;
use crate::wire::End;
use crate::wire::icmpv6::{self, Icmpv6Error};
use crate::wire::ipv6::{self, Ipv6Packet, UpperLayer};
use crate::wire::{EtherType, MacAddr, ethernet, ip_proto};
use std::net::{Ipv6Addr, SocketAddrV6};

const ETH: usize = ethernet::HEADER_LEN;

/// Where a checked IPv6 frame's packet ends and its upper layer starts,
/// with the few fields the way out needs.
#[derive(Debug, Clone, Copy)]
pub struct Layout6 {
    /// End of the IPv6 packet in the frame (any Ethernet padding beyond).
    ip_end: u32,
    /// The upper-layer header, from the IPv6 header's start (40 plus the
    /// extension headers).
    l4: u16,
    /// The upper-layer protocol.
    pub protocol: u8,
    /// TCP flags (0 for anything but TCP).
    pub tcp_flags: u8,
    /// The previous hop's MAC.
    pub src_mac: MacAddr,
}

impl Layout6 {
    /// The layout of `ip`, a whole unfragmented packet (or an atomic
    /// fragment) whose walk ended at `upper`, from `src_mac`.
    pub fn new<T: AsRef<[u8]>>(ip: &Ipv6Packet<T>, upper: &UpperLayer, src_mac: MacAddr) -> Self {
        Layout6 {
            // A payload length is 16 bits; the walk ends inside it.
            ip_end: (ETH + ipv6::HEADER_LEN + ip.payload_len()) as u32,
            l4: upper.offset as u16,
            protocol: upper.protocol,
            tcp_flags: 0,
            src_mac,
        }
    }

    #[inline]
    pub fn ip_end(&self) -> usize {
        self.ip_end as usize
    }

    /// The IPv6 packet's length.
    #[inline]
    pub fn ip_len(&self) -> usize {
        self.ip_end() - ETH
    }

    /// The upper layer, where the walk ended (fragments never get here).
    fn upper(&self) -> UpperLayer {
        UpperLayer {
            protocol: self.protocol,
            offset: usize::from(self.l4),
            frag: None,
        }
    }

    /// The IPv6 packet of a frame this layout was taken from.
    fn ip<'a>(&self, frame: &'a mut [u8]) -> Ipv6Packet<&'a mut [u8]> {
        Ipv6Packet::new_unchecked(&mut frame[ETH..self.ip_end()])
    }
}

/// What the director changes in an IPv6 packet it forwards, besides the
/// hop limit.
#[derive(Clone, Copy)]
pub enum Change6 {
    /// DR: nothing.
    None,
    /// NAT66: one end of a TCP or UDP packet becomes `to`.
    Nat { end: End, to: SocketAddrV6 },
    /// NAT66: an ICMPv6 error's `outer` end and its quoted packet's
    /// `inner` end become `to`.
    Icmp {
        outer: End,
        inner: End,
        to: SocketAddrV6,
    },
}

impl Dataplane {
    /// DR and NAT66: the MTU of link `to.link` and the hop limit checked
    /// (errors from `from`, or else the VIP the packet was sent to), the
    /// `change` made, then new MACs and the checksum finished or the
    /// super-frame segmented.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn forward_ip6<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &mut [u8],
        meta: RxMeta,
        l: Layout6,
        from: Option<Ipv6Addr>,
        change: Change6,
        to: NextHop,
    ) {
        if self.too_big6(io, frame, meta, &l, to.link, from)
            || !self.hop6(io, frame, &l, meta.link, from)
        {
            return;
        }
        let upper = l.upper();
        let mut ip = l.ip(frame);
        // An unfinished checksum is patched where the rewrite finds the
        // transport header: it must be the one the sender left unfinished.
        let partial = meta.csum_partial.map(|(start, _)| usize::from(start));
        let changed = match change {
            Change6::None => Ok(()),
            Change6::Nat { .. } if partial.is_some_and(|s| s != ETH + upper.offset) => {
                Err(crate::wire::Error::Malformed)
            }
            Change6::Nat { end, to } => nat6::rewrite(&mut ip, &upper, end, to, partial.is_some()),
            Change6::Icmp { outer, inner, to } => {
                nat6::translate_icmp(&mut ip, &upper, outer, inner, to)
            }
        };
        if changed.is_err() {
            DataplaneCounters::bump(&self.counters.malformed);
            return;
        }
        self.transmit(io, &mut frame[..l.ip_end()], meta, to);
    }

    /// A packet over the outgoing link's MTU that segmentation cannot fix
    /// (not a GSO super-frame) is dropped, and its sender learns the MTU
    /// (packet too big, counted with IPv4's fragmentation needed).
    fn too_big6<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &[u8],
        meta: RxMeta,
        l: &Layout6,
        out: u8,
        from: Option<Ipv6Addr>,
    ) -> bool {
        let mtu = self.link(out).mtu;
        if l.ip_len() <= mtu as usize || meta.gso.is_some() {
            return false;
        }
        let err = Icmpv6Error::PacketTooBig { mtu };
        self.send_icmp6_error(io, frame, l, meta.link, from, err);
        DataplaneCounters::bump(&self.counters.frag_needed);
        true
    }

    /// The router's part: hop limit ≤ 1 gets ICMPv6 time exceeded and
    /// false; otherwise the hop limit drops by one.
    pub(super) fn hop6<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &mut [u8],
        l: &Layout6,
        link: u8,
        from: Option<Ipv6Addr>,
    ) -> bool {
        let mut ip = l.ip(frame);
        if ip.hop_limit() <= 1 {
            DataplaneCounters::bump(&self.counters.ttl_expired);
            let err = Icmpv6Error::HOP_LIMIT_EXCEEDED;
            self.send_icmp6_error(io, frame, l, link, from, err);
            return false;
        }
        ip.decrement_hop_limit();
        true
    }

    /// Sends an ICMPv6 error about `frame` back to its sender on the link
    /// it came from, from `from` or else the address it was sent to (a
    /// VIP, as the kernel answers for a local VIP in IPVS), quoting as
    /// much as fits in 1280 bytes. Never about an ICMPv6 error, nor to an
    /// unspecified or multicast source (RFC 4443 2.4 (e)); rate limited
    /// as the kernel's.
    pub(super) fn send_icmp6_error<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &[u8],
        l: &Layout6,
        link: u8,
        from: Option<Ipv6Addr>,
        err: Icmpv6Error,
    ) {
        let quoted = &frame[ETH..l.ip_end()];
        if l.protocol == ip_proto::ICMPV6 {
            let kind = quoted.get(usize::from(l.l4)).copied();
            if kind.is_none_or(|t| t < icmpv6::TYPE_ECHO_REQUEST) {
                return;
            }
        }
        let ip = Ipv6Packet::new_unchecked(quoted);
        let dst = ip.src_addr();
        let src = from.unwrap_or(ip.dst_addr());
        if dst.is_unspecified() || dst.is_multicast() || src.is_unspecified() {
            return;
        }
        let limited = limited6(err.msg_type());
        if limited && !self.icmp_limit.allow(dst, self.now_ms(), true) {
            DataplaneCounters::bump(&self.counters.icmp_rate_limited);
            return;
        }
        let mac = self.link(link).mac;
        let out = &mut self.scratch;
        ethernet::emit_header(out, l.src_mac, mac, EtherType::IPV6);
        if let Ok(n) = icmpv6::emit_error(&mut out[ETH..], src, dst, err, quoted)
            && io.send(link, &out[..ETH + n]).is_err()
        {
            DataplaneCounters::bump(&self.counters.tx_errors);
        }
    }
}
