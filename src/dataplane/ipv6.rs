//! What an IPv6 frame is to the director: neighbour discovery for a VIP
//! (`ndp.rs`), a client's TCP or UDP packet for an IPv6 virtual service
//! (forwarded by direct routing or NAT66), a NAT66 reply or an ICMPv6
//! error about a connection (`reply6.rs`), or the kernel's. The extension-header
//! chain is walked once here, bounded (`wire::ipv6`); a frame to a VIP
//! whose chain is refused is dropped and counted, never followed past its
//! end. Fragments to a VIP are dropped and counted, as for IPv4.

use super::Dataplane;
use super::books::count;

use super::conn::{Conn, ReplyKey};
use super::egress6::{Change6, Layout6};
use super::flow::{NoConn, Start};
use super::nat6;
use crate::io::{PacketIo, RxMeta};
use crate::lvs::conn::ConnKey;
use crate::lvs::service::{Forward, Protocol};
use crate::lvs::stats::DataplaneCounters;
use crate::lvs::table::NextHop;
use crate::wire::{End, EthernetFrame, Ipv6Packet, TcpPacket, UdpPacket, icmpv6, ip_proto};
use std::net::{Ipv6Addr, SocketAddrV6};

/// A client's IPv6 packet for a virtual service, as checked once.
#[derive(Debug, Clone, Copy)]
struct Flow6 {
    key: ConnKey<Ipv6Addr>,
    /// The service's index in the table.
    svc: usize,
    link: u8,
    l: Layout6,
}

impl Dataplane {
    /// Checks an IPv6 frame's header and extension headers and hands it
    /// to its handler. The Ethernet header was checked on the way in.
    pub(super) fn handle_ipv6<I: PacketIo>(&mut self, io: &mut I, frame: &mut [u8], meta: RxMeta) {
        let eth = EthernetFrame::new_unchecked(&*frame);
        let src_mac = eth.src_addr();
        let Ok(ip) = Ipv6Packet::new_checked(eth.payload()) else {
            DataplaneCounters::bump(&self.counters.malformed);
            return;
        };
        let to_vip = self.table.is_vip6(ip.dst_addr());
        let upper = match ip.upper_layer() {
            Ok(u) => u,
            Err(_) => {
                if to_vip {
                    DataplaneCounters::bump(&self.counters.ext_headers_dropped);
                }
                return;
            }
        };
        if upper.protocol == ip_proto::ICMPV6 && upper.frag.is_none() {
            let kind = ip.upper_payload(&upper).first().copied();
            if matches!(
                kind,
                Some(icmpv6::TYPE_NEIGHBOR_SOLICIT | icmpv6::TYPE_NEIGHBOR_ADVERT)
            ) {
                self.handle_ndp(io, &ip, src_mac, meta.link);
            } else if let Some(q) = nat6::quoted(ip.upper_payload(&upper))
                && !self.table.standby
            {
                let (l, dst) = (Layout6::new(&ip, &upper, src_mac), ip.dst_addr());
                self.icmp6_related(io, frame, meta, l, (dst, q));
            }
            return;
        }
        // A backup forwards nothing; the kernel drops VIP traffic. Not to
        // a VIP, only a NAT66 reply is the director's.
        if self.table.standby || (!to_vip && !self.conns6.has_replies()) {
            return;
        }
        let Some(protocol) = Protocol::from_number(upper.protocol) else {
            return;
        };
        // An atomic fragment (offset 0, no more) is a whole packet.
        if upper.frag.is_some_and(|f| f.offset != 0 || f.more) {
            if to_vip {
                DataplaneCounters::bump(&self.counters.fragments_dropped);
            }
            return;
        }
        let l4 = ip.upper_payload(&upper);
        let ports = match protocol {
            Protocol::Tcp => {
                TcpPacket::new_checked(l4).map(|t| (t.src_port(), t.dst_port(), t.flags()))
            }
            Protocol::Udp => UdpPacket::new_checked(l4).map(|u| (u.src_port(), u.dst_port(), 0)),
            Protocol::Ip => return,
        };
        let Ok((sport, dport, tcp_flags)) = ports else {
            DataplaneCounters::bump(&self.counters.malformed);
            return;
        };
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let mut l = Layout6::new(&ip, &upper, src_mac);
        l.tcp_flags = tcp_flags;
        if !to_vip {
            let r = ReplyKey::new(protocol, (src, sport), (dst, dport));
            self.nat_reply6(io, frame, meta, l, r);
            return;
        }
        let Some(svc) = self.table.lookup6(protocol, dst, dport) else {
            return;
        };
        let f = Flow6 {
            key: ConnKey {
                protocol,
                caddr: src,
                cport: sport,
                vaddr: dst,
                vport: dport,
            },
            svc,
            link: meta.link,
            l,
        };
        self.for_service6(io, frame, meta, &f);
    }

    /// A client's packet for an IPv6 service: its connection (found or
    /// scheduled) decides the real server; direct routing sends it there
    /// with the hop limit one less, NAT66 to RIP:RPORT.
    fn for_service6<I: PacketIo>(&mut self, io: &mut I, frame: &mut [u8], meta: RxMeta, f: &Flow6) {
        let now = self.now_ms();
        let c = match self.conn6(io, f, now) {
            Ok(c) => c,
            // As IPVS (ip_vs_leave): the client learns at once.
            Err(NoConn::NoRealServer) => {
                let err = icmpv6::Icmpv6Error::PORT_UNREACHABLE;
                self.send_icmp6_error(io, frame, &f.l, meta.link, None, err);
                return;
            }
            Err(NoConn::Refused) => return,
        };
        let Some((svc, dest)) = self.table.dest(c.svc, c.dest, c.dest_id) else {
            return;
        };
        count(svc, dest, true, f.l.ip_len());
        let (hop, rip) = (
            NextHop {
                link: dest.link,
                mac: dest.mac,
            },
            dest.addr,
        );
        let tcp_flags = f.l.tcp_flags;
        let change = match c.fwd {
            Forward::Route => Change6::None,
            // The client's address stays, so the real server sees it.
            Forward::Masq => Change6::Nat {
                end: End::Dst,
                to: SocketAddrV6::new(c.raddr, c.rport, 0, 0),
            },
            // The router's hop, then the outer header.
            Forward::Tunnel => {
                if self.hop6(io, frame, &f.l, meta.link, None) {
                    let end = f.l.ip_end();
                    self.forward_tun6(io, &mut frame[..end], meta, f.l, hop, rip);
                }
                return;
            }
        };
        self.forward_ip6(io, frame, meta, f.l, None, change, hop);
        if c.fwd == Forward::Route {
            self.offload_step(io, meta, tcp_flags, &f.key, &c, hop);
        }
    }

    /// Finds the flow's IPv6 connection (updating its TCP state and
    /// timer) or schedules a new one, as `lookup_or_schedule` does for
    /// IPv4. An error means the frame is dropped.
    fn conn6<I: PacketIo>(
        &mut self,
        io: &mut I,
        f: &Flow6,
        now: u64,
    ) -> Result<Conn<Ipv6Addr>, NoConn> {
        let from = (f.link, f.l.src_mac);
        if let Some(c) = self.touched(io, &f.key, f.l.tcp_flags, from, now) {
            return Ok(c);
        }
        if !self.may_start(f.svc, f.key.protocol, f.l.tcp_flags) {
            return Err(NoConn::Refused);
        }
        self.schedule6(io, f, now)
    }

    /// A new IPv6 connection: the scheduler's real server (through the
    /// client's /prefix template on a persistent service), entered in
    /// the IPv6 table.
    fn schedule6<I: PacketIo>(
        &mut self,
        io: &mut I,
        f: &Flow6,
        now: u64,
    ) -> Result<Conn<Ipv6Addr>, NoConn> {
        let start = Start {
            key: f.key,
            svc: f.svc,
            from: (f.link, f.l.src_mac),
            tcp_flags: f.l.tcp_flags,
        };
        self.schedule(io, &start, now).inspect_err(|e| {
            if matches!(e, NoConn::NoRealServer) {
                DataplaneCounters::bump(&self.counters.no_dest);
            }
        })
    }
}
