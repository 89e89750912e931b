//! The connection side of each class of frame: a client's packet finds
//! its connection or schedules a new one, a NAT reply and a related ICMP
//! error find theirs; TCP state, timers and counters move; then the frame
//! goes to [`egress`](super::egress) with what to change in it.

use super::books::{count, locate, release};
use super::classify::{Flow, Layout};
use super::conn::Conn;
use super::conn_table::{ConnTable, Entry, InsertError};
use super::egress::Change;
use super::offload::take_back;
use super::tcp_state::Direction;
use super::{Dataplane, Family};
use crate::io::{PacketIo, RxMeta};
use crate::lvs::addr::Addr;
use crate::lvs::conn::{ConnKey, ConnState, TcpState};
use crate::lvs::service::{Forward, Protocol};
use crate::lvs::stats::{DataplaneCounters, DestState};
use crate::lvs::sync::{Record, SyncEvent};
use crate::lvs::table::{NextHop, Table};
use crate::wire::End;
use crate::wire::icmp::IcmpError;
use crate::wire::tcp::flags;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::Ordering::Relaxed;

/// A client's first packet of a flow, as scheduling needs it.
pub(super) struct Start<A> {
    pub key: ConnKey<A>,
    /// The service's index in the table.
    pub svc: usize,
    /// The client's link and MAC (its packets' source).
    pub from: (u8, crate::wire::MacAddr),
    pub tcp_flags: u8,
}

/// Why a new connection was not made.
pub(super) enum NoConn {
    /// The scheduler found no usable real server (the client is told).
    NoRealServer,
    /// The connection table refused it (counted there).
    Refused,
}

impl Dataplane {
    /// A client's packet for a virtual service: its connection (found or
    /// scheduled) decides the real server and how it is forwarded.
    pub(super) fn for_service<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &mut [u8],
        meta: RxMeta,
        l: Layout,
        flow: &Flow,
    ) {
        let now = self.now_ms();
        let Some(conn) = self.lookup_or_schedule(io, frame, &l, flow, now) else {
            return;
        };
        let Some((svc, dest)) = self.table.dest(conn.svc, conn.dest, conn.dest_id) else {
            return;
        };
        count(svc, dest, true, l.ip_len());
        let hop = NextHop {
            link: dest.link,
            mac: dest.mac,
        };
        let tcp_flags = l.tcp_flags;
        self.forward_by_method(io, frame, meta, l, &conn, hop, false);
        if conn.fwd != Forward::Masq {
            self.offload_step(io, meta, tcp_flags, &flow.key, &conn, hop);
        }
    }

    /// Sends a client-side packet, or an ICMP error about one (`icmp`), to
    /// the connection's real server by its forwarding method. For NAT the
    /// packet's destination becomes RIP:RPORT; for an ICMP error its
    /// destination and the quoted packet's source do.
    #[allow(clippy::too_many_arguments)]
    fn forward_by_method<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &mut [u8],
        meta: RxMeta,
        l: Layout,
        c: &Conn,
        hop: NextHop,
        icmp: bool,
    ) {
        match c.fwd {
            Forward::Route => self.forward_ip(io, frame, meta, l, None, Change::None, hop),
            Forward::Tunnel => {
                if let Some(rip) = c.dest_addr(&self.table) {
                    self.forward_tun(io, frame, meta, l, hop, rip)
                }
            }
            // The client's address stays, so the real server sees it.
            Forward::Masq => {
                let to = SocketAddrV4::new(c.raddr, c.rport);
                let change = match icmp {
                    false => Change::Nat { end: End::Dst, to },
                    true => Change::Icmp {
                        outer: End::Dst,
                        inner: End::Src,
                        to,
                    },
                };
                self.forward_ip(io, frame, meta, l, None, change, hop)
            }
        }
    }

    /// Finds the flow's connection (updating its TCP state and timer) or
    /// schedules a new one. `None` means the frame is dropped.
    fn lookup_or_schedule<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &[u8],
        l: &Layout,
        flow: &Flow,
        now: u64,
    ) -> Option<Conn> {
        let from = (flow.link, l.src_mac);
        if let Some(c) = self.touched(io, &flow.key, l.tcp_flags, from, now) {
            return Some(c);
        }
        if !self.may_start(flow.svc, flow.key.protocol, l.tcp_flags) {
            return None;
        }
        let start = Start {
            key: flow.key,
            svc: flow.svc,
            from: (flow.link, l.src_mac),
            tcp_flags: l.tcp_flags,
        };
        match self.schedule(io, &start, now) {
            Ok(c) => Some(c),
            Err(NoConn::NoRealServer) => {
                DataplaneCounters::bump(&self.counters.no_dest);
                let err = IcmpError::PORT_UNREACHABLE;
                self.send_icmp_error(io, frame, l, flow.link, None, err);
                None
            }
            Err(NoConn::Refused) => None,
        }
    }

    /// Applies a client's frame (`tcp_flags`, from link and MAC `from`)
    /// to flow `key`'s entry, in either family's table, and what follows:
    /// a state that moved is told to the peers; an entry that ended
    /// ([`Found::Ended`]) is taken back from the kernel program if it had
    /// it, and its removal told. The entry, if it is still in use.
    pub(super) fn touched<I: PacketIo, A: Family>(
        &mut self,
        io: &mut I,
        key: &ConnKey<A>,
        tcp_flags: u8,
        from: (u8, crate::wire::MacAddr),
        now: u64,
    ) -> Option<Conn<A>> {
        let places = (&*self.table, &self.positions);
        let conns = A::table_mut(&mut self.conns, &mut self.conns6);
        match touch(conns, places, key, tcp_flags, from, now) {
            Found::Live(c, was) => {
                if was.is_some() {
                    self.state_moved(key, &c);
                }
                Some(c)
            }
            Found::Ended(old) => {
                if old.offloaded {
                    take_back(io, &self.books(), key, &old);
                }
                self.emit_with(|| SyncEvent::Record(Record::removal(key, old.state)));
                None
            }
            Found::Absent => None,
        }
    }

    /// Whether a frame of `protocol` with `tcp_flags` and no entry may
    /// start a connection of service `svc`: TCP schedules only on SYN
    /// (no sloppy_tcp), except where the scheduler derives the server
    /// from the flow alone (sh): there a mid-flow packet without an entry
    /// (after a crash or a restart without handoff) goes where the flow
    /// went. A refusal is counted.
    pub(super) fn may_start(&self, svc: usize, protocol: Protocol, tcp_flags: u8) -> bool {
        let (syn, rst) = (tcp_flags & flags::SYN != 0, tcp_flags & flags::RST != 0);
        let rederive = self.table.services[svc].scheduler.rederives();
        let refused = protocol == Protocol::Tcp && (rst || (!syn && !rederive));
        if refused {
            DataplaneCounters::bump(&self.counters.no_conn_dropped);
        }
        !refused
    }

    /// What became of a new entry `c` for real server `di` of service
    /// `si`, whose count it already took, in either family's table: a
    /// full table's oldest cheap entry made room (its server's count goes
    /// back); a refusal gives the count back and is counted.
    pub(super) fn entered<A: Addr>(
        &self,
        inserted: Result<Option<Entry<A>>, InsertError>,
        c: &Conn<A>,
        (si, di): (usize, usize),
    ) -> Result<(), NoConn> {
        let d = &self.table.services[si].dests[di];
        match inserted {
            Ok(None) => Ok(()),
            Ok(Some((gone, mut old))) => {
                DataplaneCounters::bump(&self.counters.conn_evictions);
                if let Some((_, od)) = locate(&self.table, &self.positions, &mut old) {
                    release(&od.state, &old);
                }
                self.emit_with(|| SyncEvent::Record(Record::removal(&gone, old.state)));
                Ok(())
            }
            Err(e) => {
                release(&d.state, c);
                DataplaneCounters::bump(match e {
                    InsertError::Full => &self.counters.conn_table_full,
                    InsertError::ReplyClash => &self.counters.nat_reply_clash,
                });
                Err(NoConn::Refused)
            }
        }
    }

    /// A real server's reply on a NAT connection: the reply moves the TCP
    /// state (OUTPUT table), its source RIP:RPORT becomes VIP:VPORT, and it
    /// goes to the client by the kernel's routes.
    pub(super) fn nat_reply<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &mut [u8],
        meta: RxMeta,
        l: Layout,
        key: ConnKey,
    ) {
        let Some(c) = self.reply_seen(&key, l.tcp_flags, l.ip_len()) else {
            return;
        };
        let to = self.client_hop(&c, key.caddr);
        let from = Some(self.link(meta.link).addr);
        DataplaneCounters::bump(&self.counters.nat_replies);
        let change = Change::Nat {
            end: End::Src,
            to: key.vip(),
        };
        self.forward_ip(io, frame, meta, l, from, change, to);
    }

    /// A real server's reply of `ip_len` bytes on NAT connection `key`,
    /// of either family: it moves the TCP state (OUTPUT table) and is
    /// counted; a new state goes to the peers and may assure the
    /// persistence template. The connection after, or `None` if it or its
    /// real server is gone.
    pub(super) fn reply_seen<A: Family>(
        &mut self,
        key: &ConnKey<A>,
        tcp_flags: u8,
        ip_len: usize,
    ) -> Option<Conn<A>> {
        let now = self.now_ms();
        let (table, positions) = (&self.table, &self.positions);
        let conns = A::table_mut(&mut self.conns, &mut self.conns6);
        let c = conns.get_mut(key)?;
        let (svc, d) = locate(table, positions, c)?;
        let was = update_state(c, &d.state, Direction::Output, tcp_flags, table, now);
        count(svc, d, false, ip_len);
        let c = *c;
        if let Some(was) = was {
            conns.restated(key, &c, was);
            self.state_moved(key, &c);
        }
        Some(c)
    }

    /// A packet moved connection `key`'s state to `c`'s: the peers learn
    /// it, and an established one assures its persistence template.
    pub(super) fn state_moved<A: Family>(&mut self, key: &ConnKey<A>, c: &Conn<A>) {
        self.emit_upsert(key, c, true);
        if c.state == ConnState::Tcp(TcpState::Established) {
            self.assure_template(key);
        }
    }

    /// Where a NAT reply to `caddr` goes: the kernel's most specific route
    /// decides the link and, through a gateway, the MAC; on-link, the
    /// client's own MAC, learned from its packets.
    fn client_hop(&self, c: &Conn, caddr: Ipv4Addr) -> NextHop {
        let via_gateway = self.table.route(caddr).and_then(|r| {
            let mac = r.gateway_mac?;
            Some(NextHop { link: r.link, mac })
        });
        via_gateway.unwrap_or(NextHop {
            link: c.client_link,
            mac: c.client_mac,
        })
    }

    /// An ICMP error about one of the director's connections. One sent to
    /// a VIP (a router on the way to the client says "fragmentation
    /// needed", say) goes to the real server that owns the connection, by
    /// the connection's method; for NAT the destination and the quoted
    /// source become RIP:RPORT. One from the real server's side about a
    /// NAT connection (`Direction::Output`: the real server's "port
    /// unreachable", say) reaches the client as if from the VIP: the
    /// source and the quoted destination become VIP:VPORT.
    pub(super) fn icmp_related<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &mut [u8],
        meta: RxMeta,
        l: Layout,
        (key, dir): (ConnKey, Direction),
    ) {
        let Some((c, to, meta)) = self.related(frame, meta, &key, dir) else {
            return;
        };
        if dir != Direction::Output {
            self.forward_by_method(io, frame, meta, l, &c, to, true);
            return;
        }
        let to = self.client_hop(&c, key.caddr);
        let from = Some(self.link(meta.link).addr);
        let change = Change::Icmp {
            outer: End::Src,
            inner: End::Dst,
            to: key.vip(),
        };
        self.forward_ip(io, frame, meta, l, from, change, to);
    }

    /// The connection an ICMP error is about and the next hop of its real
    /// server; the error is counted in the connection's stats (in or out,
    /// as IPVS does) and its checksum finished. `None`: not forwarded.
    fn related(
        &self,
        frame: &mut [u8],
        meta: RxMeta,
        key: &ConnKey,
        dir: Direction,
    ) -> Option<(Conn, NextHop, RxMeta)> {
        let mut c = *self.conns.get(key)?;
        let (svc, d) = locate(&self.table, &self.positions, &mut c)?;
        let meta = self.complete_first(frame, meta)?;
        let len = frame.len() - crate::wire::ethernet::HEADER_LEN;
        count(svc, d, dir != Direction::Output, len);
        DataplaneCounters::bump(&self.counters.icmp_related);
        let to = NextHop {
            link: d.link,
            mac: d.mac,
        };
        Some((c, to, meta))
    }
}

/// A flow's entry as a client's frame finds it, in either family's table.
pub(super) enum Found<A: Addr> {
    /// In use: its TCP state and timer moved by the frame (with the state
    /// before, if it changed), its client's link and MAC noted.
    Live(Conn<A>, Option<ConnState>),
    /// Ended here, its real server's count given back: the server is
    /// gone, its timer ran out (the sweep has not reached it yet) or a new
    /// SYN replaces it. The frame may start a new one.
    Ended(Conn<A>),
    Absent,
}

/// Finds flow `k`'s entry in `conns` and applies the client's frame
/// (`tcp_flags`, from link and MAC `from`) to it, or ends it.
pub(super) fn touch<A: Addr>(
    conns: &mut ConnTable<A>,
    (table, positions): (&Table, &HashMap<u32, (u32, u32)>),
    k: &ConnKey<A>,
    tcp_flags: u8,
    from: (u8, crate::wire::MacAddr),
    now: u64,
) -> Found<A> {
    let Some(c) = conns.get_mut(k) else {
        return Found::Absent;
    };
    let (syn, rst) = (tcp_flags & flags::SYN != 0, tcp_flags & flags::RST != 0);
    let reuse = k.protocol == Protocol::Tcp && syn && !rst && c.reusable_by_syn();
    let dest = locate(table, positions, c).map(|(_, d)| d);
    let expired = c.expires_ms(now) <= now;
    if let Some(d) = dest.filter(|_| !reuse && !expired) {
        let dir = c.input_direction();
        let was = update_state(c, &d.state, dir, tcp_flags, table, now);
        (c.client_link, c.client_mac) = from;
        let c = *c;
        if let Some(was) = was {
            conns.restated(k, &c, was);
        }
        return Found::Live(c, was);
    }
    let old = *c;
    conns.remove(k);
    if let Some(d) = dest {
        release(&d.state, &old);
    }
    Found::Ended(old)
}

/// Applies a segment travelling in `dir` to a connection: TCP state
/// machine, active/inactive accounting, and the idle timer. Returns the
/// state before, if it changed (the digest and the peers follow).
pub(super) fn update_state<A: Addr>(
    c: &mut Conn<A>,
    ds: &DestState,
    dir: Direction,
    tcp_flags: u8,
    table: &Table,
    now: u64,
) -> Option<ConnState> {
    let before = c.state;
    if let ConnState::Tcp(s) = c.state {
        let n = s.transition(dir, tcp_flags);
        if n != s {
            let was = s.is_active();
            let is = n.is_active();
            if was != is {
                let (from, to) = if is {
                    (&ds.inactive, &ds.active)
                } else {
                    (&ds.active, &ds.inactive)
                };
                let _ = from.fetch_update(Relaxed, Relaxed, |v| v.checked_sub(1));
                to.fetch_add(1, Relaxed);
            }
            c.state = ConnState::Tcp(n);
        }
    }
    c.set_expires_ms(now + u64::from(c.state.timeout(&table.timeouts)) * 1000);
    (c.state != before).then_some(before)
}
