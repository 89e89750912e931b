//! TUN: the client's packet, after the router's hop, wrapped in an outer
//! header of the real server's family from the director's tunnel source
//! of that family (`wire::tunnel::TunnelRepr`: IP-in-IP or IPv6-in-IPv4 to
//! an IPv4 server, IPv6-in-IPv6 or IPv4-in-IPv6 to an IPv6 one), and sent
//! to the next hop's MAC. A packet that no longer fits once wrapped: a
//! GSO super-frame is cut into segments that fit; otherwise, as IPVS
//! does, the client learns the tunnel's smaller MTU (ICMP fragmentation
//! needed for IPv4 with DF, ICMPv6 packet too big for IPv6), and an IPv4
//! packet without DF goes out in outer fragments.

use super::Dataplane;
use super::classify::Layout;
use super::egress6::Layout6;
use super::gso;
use crate::io::{PacketIo, RxMeta};
use crate::lvs::stats::DataplaneCounters;
use crate::lvs::table::NextHop;
use crate::wire::icmp::IcmpError;
use crate::wire::icmpv6::Icmpv6Error;
use crate::wire::ip6tnl::Ip6TnlRepr;
use crate::wire::ipip::IpipRepr;
use crate::wire::tunnel::TunnelRepr;
use crate::wire::{TcpPacket, ethernet, ipv6, tcp};
use std::net::IpAddr;

const ETH: usize = ethernet::HEADER_LEN;

/// What [`Dataplane::encapsulate`] did with a packet.
enum Wrapped {
    /// Sent (whole or in segments), or dropped and counted.
    Done,
    /// It does not fit the tunnel and is not a super-frame: the caller
    /// decides (an error to the client, or outer fragments).
    TooBig,
}

impl Dataplane {
    /// The outer header to real server `rip`, from this director's
    /// tunnel source of its family.
    fn tunnel(&self, rip: IpAddr) -> TunnelRepr {
        match rip {
            IpAddr::V4(dst) => TunnelRepr::V4(IpipRepr {
                src: self.table.tun_source,
                dst,
            }),
            IpAddr::V6(dst) => TunnelRepr::V6(Ip6TnlRepr {
                src: self.table.tun_source6,
                dst,
            }),
        }
    }

    /// A client's IPv4 packet to real server `rip` (of either family):
    /// TTL − 1, then wrapped. Too big with DF set: "fragmentation needed"
    /// with the tunnel's MTU; without: sent in outer fragments.
    pub(super) fn forward_tun<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &mut [u8],
        meta: RxMeta,
        l: Layout,
        to: NextHop,
        rip: IpAddr,
    ) {
        if !self.hop(io, frame, &l, meta.link, None) {
            return;
        }
        let frame = &mut frame[..l.ip_end()];
        let tun = self.tunnel(rip);
        let room = (self.link(to.link).mtu as usize).saturating_sub(tun.overhead());
        let hdrs = l.ip_hl() + l.tcp_hl().max(tcp::HEADER_LEN);
        if let Wrapped::Done = self.encapsulate(io, frame, meta, to, tun, room, hdrs) {
            return;
        }
        if l.df {
            // As IPVS: the client learns the tunnel's smaller MTU.
            let err = IcmpError::frag_needed(room as u32);
            self.send_icmp_error(io, frame, &l, meta.link, None, err);
            DataplaneCounters::bump(&self.counters.frag_needed);
            return;
        }
        // `encapsulate` left the link header in `scratch2`.
        let (counters, out) = (&self.counters, &mut self.scratch2);
        let sent = tun.emit_fragments(&frame[ETH..], room, out, ETH, &mut self.ip_id, |f| {
            io.send(to.link, f).is_ok()
        });
        DataplaneCounters::bump(&counters.fragmented);
        match sent {
            Ok(true) => DataplaneCounters::bump(&counters.forwarded),
            _ => DataplaneCounters::bump(&counters.tx_errors),
        }
    }

    /// A client's IPv6 packet (`frame` ends with it; the caller took the
    /// router's hop) to real server `rip` of either family. Too big: an
    /// IPv6 packet is never cut on the way, so the client (`l.src_mac`)
    /// gets "packet too big" with the tunnel's MTU, as IPVS sends it; a
    /// tunnel whose MTU is under IPv6's least drops it.
    pub(super) fn forward_tun6<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &mut [u8],
        meta: RxMeta,
        l: Layout6,
        to: NextHop,
        rip: IpAddr,
    ) {
        let tun = self.tunnel(rip);
        let room = (self.link(to.link).mtu as usize).saturating_sub(tun.overhead());
        // A super-frame has no extension headers (`gso::segment_tcp`).
        let tcp_hl = frame
            .get(ETH + ipv6::HEADER_LEN..)
            .and_then(|b| TcpPacket::new_checked(b).ok())
            .map_or(tcp::HEADER_LEN, |t| t.header_len());
        let hdrs = ipv6::HEADER_LEN + tcp_hl;
        if let Wrapped::Done = self.encapsulate(io, frame, meta, to, tun, room, hdrs) {
            return;
        }
        if room < ipv6::MIN_MTU {
            DataplaneCounters::bump(&self.counters.malformed);
            return;
        }
        let err = Icmpv6Error::PacketTooBig { mtu: room as u32 };
        self.send_icmp6_error(io, frame, &l, meta.link, None, err);
        DataplaneCounters::bump(&self.counters.frag_needed);
    }

    /// Wraps `frame`'s packet in `tun` and sends it, if it fits the
    /// tunnel's `room` (the link MTU less the outer header); a super-frame
    /// that does not is cut into segments of at most `room` with `hdrs`
    /// bytes of IP and TCP headers, each wrapped. Leaves the outer link
    /// header in `scratch2` for the caller's fragments.
    #[allow(clippy::too_many_arguments)]
    fn encapsulate<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &mut [u8],
        meta: RxMeta,
        to: NextHop,
        tun: TunnelRepr,
        room: usize,
        hdrs: usize,
    ) -> Wrapped {
        let mac = self.link(to.link).mac;
        ethernet::emit_header(&mut self.scratch2, to.mac, mac, tun.ethertype());
        if let Some(g) = meta.gso.filter(|_| frame.len() - ETH > room) {
            let fit = room.saturating_sub(hdrs);
            if !(g.tcpv4 || g.tcpv6) || fit == 0 {
                DataplaneCounters::bump(&self.counters.malformed);
                return Wrapped::Done;
            }
            DataplaneCounters::bump(&self.counters.gso_segmented);
            let mss = usize::from(g.size).min(fit).max(1);
            let (counters, out) = (&self.counters, &mut self.scratch2);
            let id = &mut self.ip_id;
            let r = gso::segment_tcp(frame, mss, &mut self.scratch, |seg| {
                match tun.emit(&seg[ETH..], out, ETH, id) {
                    Ok(n) => counters.count_send(io.send(to.link, &out[..n])),
                    Err(_) => DataplaneCounters::bump(&counters.malformed),
                }
            });
            if r.is_err() {
                DataplaneCounters::bump(&self.counters.malformed);
            }
            return Wrapped::Done;
        }
        if !self.finish_checksum(frame, meta) {
            return Wrapped::Done;
        }
        let inner = &frame[ETH..];
        if inner.len() > room {
            return Wrapped::TooBig;
        }
        match tun.emit(inner, &mut self.scratch2, ETH, &mut self.ip_id) {
            Ok(n) => self
                .counters
                .count_send(io.send(to.link, &self.scratch2[..n])),
            Err(_) => DataplaneCounters::bump(&self.counters.malformed),
        }
        Wrapped::Done
    }
}
