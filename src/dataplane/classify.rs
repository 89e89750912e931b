//! What an IPv4 frame is to the director: traffic for a virtual service, a
//! NAT real server's reply, an ICMP error about a connection, or the
//! kernel's. The frame's headers are checked here, once; the handlers get
//! the checked [`Layout`] and view the bytes without parsing them again.

use super::Dataplane;
use super::conn::ReplyKey;
use super::nat;
use super::tcp_state::Direction;
use crate::io::{PacketIo, RxMeta};
use crate::lvs::conn::ConnKey;
use crate::lvs::service::Protocol;
use crate::lvs::stats::DataplaneCounters;
use crate::wire::{
    self, EthernetFrame, Ipv4Packet, MacAddr, TcpPacket, UdpPacket, ethernet, ip_proto,
};
use std::net::Ipv4Addr;

/// Where the headers of a checked IPv4 frame lie, and the few fields every
/// handler needs. Kept small (16 bytes): it is passed by value down the
/// per-frame path.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// End of the IP packet in the frame (any Ethernet padding beyond).
    ip_end: u32,
    /// IP header length, options included (at most 60).
    ip_hl: u8,
    /// TCP header length with options (0 for anything but TCP).
    tcp_hl: u8,
    pub ttl: u8,
    pub df: bool,
    /// TCP flags (0 for anything but TCP).
    pub tcp_flags: u8,
    /// The previous hop's MAC.
    pub src_mac: MacAddr,
}

impl Layout {
    /// End of the IP packet in the frame (any Ethernet padding beyond).
    #[inline]
    pub fn ip_end(&self) -> usize {
        self.ip_end as usize
    }

    /// IP header length, options included.
    #[inline]
    pub fn ip_hl(&self) -> usize {
        usize::from(self.ip_hl)
    }

    /// TCP header length with options (0 for anything but TCP).
    #[inline]
    pub fn tcp_hl(&self) -> usize {
        usize::from(self.tcp_hl)
    }

    /// The IP packet's length.
    #[inline]
    pub fn ip_len(&self) -> usize {
        self.ip_end() - ethernet::HEADER_LEN
    }

    /// The IP packet of a frame this layout was taken from.
    #[inline]
    pub fn ip<'a>(&self, frame: &'a mut [u8]) -> Ipv4Packet<&'a mut [u8]> {
        Ipv4Packet::new_unchecked(&mut frame[ethernet::HEADER_LEN..self.ip_end()])
    }
}

/// A client's packet for a virtual service.
#[derive(Debug, Clone, Copy)]
pub struct Flow {
    pub key: ConnKey,
    /// The service's index in the table.
    pub svc: usize,
    /// The link it arrived on.
    pub link: u8,
}

/// What an IPv4 frame is to the director.
pub enum Class {
    /// Client to a virtual service.
    Service(Flow),
    /// A real server's reply on a NAT connection.
    Reply(ConnKey),
    /// An ICMP error about one of the director's connections, with the
    /// way it travels: `Input` when sent to a VIP (from the client's side:
    /// a router on the way back, or the client itself), `Output` when from
    /// the real server's side about a NAT connection.
    IcmpRelated((ConnKey, Direction)),
    /// Not the director's: the kernel decides.
    Kernel,
}

impl Dataplane {
    /// Classifies an IPv4 frame once and hands it, with its checked
    /// layout, to the handler of its class.
    /// While a live trace runs (one relaxed load to know), the frame goes
    /// through `trace.rs` to have its verdict reported.
    pub(super) fn handle_ipv4<I: PacketIo>(&mut self, io: &mut I, frame: &mut [u8], meta: RxMeta) {
        let class = self.classify(frame, meta);
        if self.trace.armed() {
            return self.traced_ipv4(io, frame, meta, class);
        }
        self.dispatch_ipv4(io, frame, meta, class);
    }

    /// Hands a classified frame to the handler of its class.
    #[inline]
    pub(super) fn dispatch_ipv4<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &mut [u8],
        meta: RxMeta,
        class: wire::Result<(Class, Layout)>,
    ) {
        match class {
            Ok((Class::Service(flow), l)) => self.for_service(io, frame, meta, l, &flow),
            Ok((Class::Reply(key), l)) => self.nat_reply(io, frame, meta, l, key),
            Ok((Class::IcmpRelated(related), l)) => self.icmp_related(io, frame, meta, l, related),
            Ok((Class::Kernel, _)) => {}
            Err(_) => DataplaneCounters::bump(&self.counters.malformed),
        }
    }

    /// Checks an IPv4 frame's headers and classifies it. The Ethernet
    /// header was checked on the way in (`handle_frame`).
    fn classify(&self, frame: &[u8], meta: RxMeta) -> wire::Result<(Class, Layout)> {
        let eth = EthernetFrame::new_unchecked(frame);
        let ip = Ipv4Packet::new_checked(eth.payload())?;

        // A router drops a header whose checksum is wrong (RFC 1812
        // 5.2.2) rather than pass the damage on; so does the kernel.
        if !ip.verify_checksum() {
            return Err(wire::Error::Malformed);
        }
        // An unfinished L4 checksum (CHECKSUM_PARTIAL) must start at the
        // transport header and end inside the packet: finishing it writes
        // there, and anywhere else it would corrupt the headers.
        if let Some((start, off)) = meta.csum_partial {
            let l4 = ethernet::HEADER_LEN + ip.header_len();
            let end = ethernet::HEADER_LEN + ip.total_len();
            if usize::from(start) != l4 || l4 + usize::from(off) + 2 > end {
                return Err(wire::Error::Malformed);
            }
        }
        let mut l = Layout {
            // A total length is 16 bits and a header at most 60 bytes.
            ip_end: (ethernet::HEADER_LEN + ip.total_len()) as u32,
            ip_hl: ip.header_len() as u8,
            tcp_hl: 0,
            ttl: ip.ttl(),
            df: ip.dont_frag(),
            tcp_flags: 0,
            src_mac: eth.src_addr(),
        };
        if self.table.standby {
            // A backup forwards nothing: everything is the kernel's (which
            // drops VIP traffic, the VIP not being local).
            return Ok((Class::Kernel, l));
        }
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        if ip.protocol() == ip_proto::ICMP {
            return Ok((self.classify_icmp(&ip, dst), l));
        }
        let to_vip = self.table.is_vip(dst);
        if !to_vip && !self.conns.has_replies() {
            return Ok((Class::Kernel, l));
        }
        let Some(protocol) = Protocol::from_number(ip.protocol()) else {
            return Ok((Class::Kernel, l));
        };
        if ip.is_fragment() {
            // Only the first fragment has ports: IPVS would need
            // defragmentation, which uvs does not do.
            if to_vip {
                DataplaneCounters::bump(&self.counters.fragments_dropped);
            }
            return Ok((Class::Kernel, l));
        }
        let (sport, dport) = match protocol {
            Protocol::Tcp => {
                let t = TcpPacket::new_checked(ip.payload())?;
                l.tcp_hl = t.header_len() as u8;
                l.tcp_flags = t.flags();
                (t.src_port(), t.dst_port())
            }
            Protocol::Udp => {
                let u = UdpPacket::new_checked(ip.payload())?;
                (u.src_port(), u.dst_port())
            }
            // Not a frame's (`from_number` never gives it).
            Protocol::Ip => return Ok((Class::Kernel, l)),
        };
        if !to_vip {
            let r = ReplyKey::new(protocol, (src, sport), (dst, dport));
            let class = self.conns.by_reply(&r).map_or(Class::Kernel, Class::Reply);
            return Ok((class, l));
        }
        let Some(svc) = self.table.lookup(protocol, dst, dport) else {
            return Ok((Class::Kernel, l));
        };
        let key = ConnKey {
            protocol,
            caddr: src,
            cport: sport,
            vaddr: dst,
            vport: dport,
        };
        let flow = Flow {
            key,
            svc,
            link: meta.link,
        };
        Ok((Class::Service(flow), l))
    }

    /// ICMP errors the director relates to a connection, as ip_vs_in_icmp
    /// and ip_vs_out_icmp do; everything else is the kernel's.
    fn classify_icmp(&self, ip: &Ipv4Packet<&[u8]>, dst: Ipv4Addr) -> Class {
        let Some(q) = nat::quoted(ip) else {
            return Class::Kernel;
        };
        let Some(protocol) = Protocol::from_number(q.protocol) else {
            return Class::Kernel;
        };
        if self.table.is_vip(dst) {
            // About a packet the VIP sent to a client.
            if q.src != dst {
                return Class::Kernel;
            }
            return Class::IcmpRelated((q.vip_conn(protocol), Direction::Input));
        }
        // About a translated packet a client sent to a real server.
        match self.conns.by_reply(&q.reply_key(protocol)) {
            Some(k) if q.src == dst => Class::IcmpRelated((k, Direction::Output)),
            _ => Class::Kernel,
        }
    }
}
