//! The IPv6 frames about connections that are not a client's packet for
//! a VIP: a NAT66 real server's reply (found by its reply 5-tuple, as for
//! IPv4) and an ICMPv6 error about a connection, in either direction.
//! Both go to `egress6` with what to change in them.

use super::Dataplane;
use super::books::{count, locate};
use super::conn::ReplyKey;
use super::egress6::{Change6, Layout6};
use crate::io::{PacketIo, RxMeta};
use crate::lvs::conn::ConnKey;
use crate::lvs::service::{Forward, Protocol};
use crate::lvs::stats::DataplaneCounters;
use crate::lvs::table::NextHop;
use crate::wire::End;
use std::net::{Ipv6Addr, SocketAddrV6};

/// The virtual service's address and port of an IPv6 connection.
fn vip6(k: &ConnKey<Ipv6Addr>) -> SocketAddrV6 {
    SocketAddrV6::new(k.vaddr, k.vport, 0, 0)
}

impl Dataplane {
    /// A real server's reply on a NAT66 connection: it moves the TCP state
    /// (OUTPUT table), its source RIP:RPORT becomes VIP:VPORT, and it goes
    /// back the way the client's packets came (their link and MAC: the
    /// director holds no IPv6 routes towards clients yet). Anything else
    /// not for a VIP is the kernel's.
    pub(super) fn nat_reply6<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &mut [u8],
        meta: RxMeta,
        l: Layout6,
        r: ReplyKey<Ipv6Addr>,
    ) {
        let Some(key) = self.conns6.by_reply(&r) else {
            return;
        };
        let Some(c) = self.reply_seen(&key, l.tcp_flags, l.ip_len()) else {
            return;
        };
        let to = NextHop {
            link: c.client_link,
            mac: c.client_mac,
        };
        let from = Some(self.link(meta.link).addr6);
        DataplaneCounters::bump(&self.counters.nat_replies);
        let change = Change6::Nat {
            end: End::Src,
            to: vip6(&key),
        };
        self.forward_ip6(io, frame, meta, l, from, change, to);
    }

    /// An ICMPv6 error (of a kind `nat6::relates`) to `dst` quoting `q`.
    /// One sent to a VIP about a packet the VIP sent (a router on the way
    /// to the client says "packet too big", say) goes to the connection's
    /// real server: unchanged for DR; for NAT66 its destination and the
    /// quoted source become RIP:RPORT. One from the real server's side
    /// about a NAT66 connection (its "port unreachable", say) reaches
    /// the client as if from the VIP: the source and the quoted
    /// destination become VIP:VPORT. Counted in the connection's stats
    /// (in or out) as IPVS does; anything else is the kernel's.
    pub(super) fn icmp6_related<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &mut [u8],
        meta: RxMeta,
        l: Layout6,
        (dst, q): (Ipv6Addr, super::nat::Quoted<Ipv6Addr>),
    ) {
        let Some(protocol) = Protocol::from_number(q.protocol) else {
            return;
        };
        // Either way the quoted packet left the outer destination.
        if q.src != dst {
            return;
        }
        // To a VIP: about a packet for the client; else from the server.
        let inbound = self.table.is_vip6(dst);
        let key = match inbound {
            true => Some(q.vip_conn(protocol)),
            false => self.conns6.by_reply(&q.reply_key(protocol)),
        };
        let Some(key) = key else {
            return;
        };
        let Some(mut c) = self.conns6.get(&key).copied() else {
            return;
        };
        let Some((svc, d)) = locate(&self.table, &self.positions, &mut c) else {
            return;
        };
        let hop = NextHop {
            link: d.link,
            mac: d.mac,
        };
        let change = match (inbound, c.fwd) {
            (true, Forward::Route) => Change6::None,
            (true, Forward::Masq) => Change6::Icmp {
                outer: End::Dst,
                inner: End::Src,
                to: SocketAddrV6::new(c.raddr, c.rport, 0, 0),
            },
            (false, Forward::Masq) => Change6::Icmp {
                outer: End::Src,
                inner: End::Dst,
                to: vip6(&key),
            },
            _ => return,
        };
        let Some(meta) = self.complete_first(frame, meta) else {
            return;
        };
        count(svc, d, inbound, l.ip_len());
        DataplaneCounters::bump(&self.counters.icmp_related);
        if inbound {
            self.forward_ip6(io, frame, meta, l, None, change, hop);
            return;
        }
        let to = NextHop {
            link: c.client_link,
            mac: c.client_mac,
        };
        let from = Some(self.link(meta.link).addr6);
        self.forward_ip6(io, frame, meta, l, from, change, to);
    }
}
