//! The data plane: one loop over a [`PacketIo`] that classifies each frame,
//! looks up or schedules its connection and forwards it. It reads only the
//! immutable [`Table`] the control plane publishes; the connection table and
//! scheduler state are its own.

use crate::conn::{Conn, ConnKey, ConnState, ConnTable, Direction, InsertError, TcpState};
use crate::gso;
use crate::io::{PacketIo, PacketType, RxMeta};
use crate::nat::{self, End};
use crate::sched::SchedState;
use crate::service::{Forward, Protocol};
use crate::stats::{DataplaneCounters, DestState};
use crate::table::{NextHop, Table};
use crate::wire::icmp::{self, IcmpError};
use crate::wire::{self, checksum, ip_proto};
use crate::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetFrame, Ipv4Packet, MacAddr, TcpPacket,
    UdpPacket,
};
use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// Large enough for a 64 KiB GSO super-frame.
pub const FRAME_BUF: usize = 65536 + 256;
const SWEEP_EVERY_MS: u64 = 1000;

/// One row of `uvsadm -Lnc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnInfo {
    pub protocol: Protocol,
    pub caddr: Ipv4Addr,
    pub cport: u16,
    pub vaddr: Ipv4Addr,
    pub vport: u16,
    pub daddr: Ipv4Addr,
    pub dport: u16,
    pub state: String,
    pub expires_secs: u64,
}

/// Questions the control plane asks the data plane; answered between
/// frames, so the answer is consistent with what was forwarded.
pub enum DpRequest {
    Conns(tokio::sync::oneshot::Sender<Vec<ConnInfo>>),
}

/// The interface facts the data plane needs, for each of its links.
#[derive(Debug, Clone, Copy)]
pub struct LinkParams {
    pub mac: MacAddr,
    pub mtu: u32,
    /// The director's own address there (unspecified if none): the source
    /// of ICMP errors about NAT replies, which are not addressed to a VIP.
    pub addr: Ipv4Addr,
}

pub struct Dataplane {
    shared: Arc<ArcSwap<Table>>,
    table: Arc<Table>,
    sched: Vec<SchedState>,
    conns: ConnTable,
    links: Vec<LinkParams>,
    counters: Arc<DataplaneCounters>,
    requests: Option<Receiver<DpRequest>>,
    scratch: Vec<u8>,
    /// Second buffer: encapsulation of segments built in `scratch`.
    scratch2: Vec<u8>,
    /// IP id of outer IPIP headers sent without DF.
    ip_id: u16,
    clock: Instant,
    next_sweep_ms: u64,
}

/// Parsed facts about an IPv4 frame for a virtual service.
struct Flow {
    key: ConnKey,
    svc: usize,
    tcp_flags: u8,
    ip_len: usize,
    /// Where it came from: the link and the previous hop's MAC.
    link: u8,
    src_mac: MacAddr,
}

/// What an IPv4 frame is to the director.
enum Class {
    /// Client to a virtual service.
    Service(Flow),
    /// A real server's reply on a NAT connection.
    Reply {
        key: ConnKey,
        tcp_flags: u8,
        ip_len: usize,
    },
    /// An ICMP error sent to a VIP about one of its connections (from the
    /// client's side: a router on the way back, or the client itself).
    IcmpToVip(ConnKey),
    /// An ICMP error from the real server's side about a NAT connection.
    IcmpToClient(ConnKey),
    /// Not the director's: the kernel decides.
    Kernel,
}

fn release(state: &DestState, c: &Conn) {
    let counter = if c.state.is_active() {
        &state.active
    } else {
        &state.inactive
    };
    let _ = counter.fetch_update(Relaxed, Relaxed, |v| v.checked_sub(1));
}

impl Dataplane {
    /// A data plane on one link.
    pub fn new(
        shared: Arc<ArcSwap<Table>>,
        link: LinkParams,
        counters: Arc<DataplaneCounters>,
        requests: Option<Receiver<DpRequest>>,
    ) -> Dataplane {
        Dataplane::with_links(shared, vec![link], counters, requests)
    }

    /// A data plane on several links (`RxMeta::link` and `PacketIo::send`
    /// number them in this order). At least one is needed.
    pub fn with_links(
        shared: Arc<ArcSwap<Table>>,
        links: Vec<LinkParams>,
        counters: Arc<DataplaneCounters>,
        requests: Option<Receiver<DpRequest>>,
    ) -> Dataplane {
        assert!(!links.is_empty(), "a data plane needs a link");
        let table = shared.load_full();
        let sched = table
            .services
            .iter()
            .map(|s| SchedState::new(s.scheduler, &s.dests))
            .collect();
        Dataplane {
            shared,
            table,
            sched,
            conns: ConnTable::new(65536, 4 << 20),
            links,
            counters,
            requests,
            scratch: vec![0u8; FRAME_BUF],
            scratch2: vec![0u8; FRAME_BUF],
            ip_id: 1,
            clock: Instant::now(),
            next_sweep_ms: SWEEP_EVERY_MS,
        }
    }

    fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    /// Runs until `stop` is set.
    pub fn run<I: PacketIo>(&mut self, io: &mut I, stop: &AtomicBool) {
        let mut buf = vec![0u8; FRAME_BUF];
        while !stop.load(Relaxed) {
            self.poll_once(io, &mut buf, Duration::from_millis(20));
        }
    }

    /// Receives and handles at most one frame, then does housekeeping.
    /// Returns whether a frame was handled.
    pub fn poll_once<I: PacketIo>(
        &mut self,
        io: &mut I,
        buf: &mut [u8],
        timeout: Duration,
    ) -> bool {
        let got = match io.recv(buf, timeout) {
            Ok(Some(meta)) => {
                // The table may have changed while recv blocked: a frame is
                // always handled with the newest one (one atomic load).
                self.refresh_table(io);
                let len = meta.len.min(buf.len());
                self.handle_frame(io, &mut buf[..len], meta);
                true
            }
            Ok(None) => false,
            Err(_) => {
                DataplaneCounters::bump(&self.counters.malformed);
                false
            }
        };
        self.housekeeping(io);
        got
    }

    fn housekeeping<I: PacketIo>(&mut self, io: &mut I) {
        let now = self.now_ms();
        if now >= self.next_sweep_ms {
            self.expire(now);
            self.next_sweep_ms = now + SWEEP_EVERY_MS;
        }
        // A request answered after a table change must see that change.
        self.refresh_table(io);
        if let Some(rx) = &self.requests {
            while let Ok(req) = rx.try_recv() {
                match req {
                    DpRequest::Conns(reply) => {
                        let _ = reply.send(self.conn_list());
                    }
                }
            }
        }
    }

    /// Drops connections whose timer ran out.
    pub fn expire(&mut self, now: u64) {
        let table = &self.table;
        self.conns.retain(|_, c| {
            if c.expires_ms > now {
                return true;
            }
            if let Some((_, d)) = table.dest(c.svc, c.dest, c.dest_id) {
                release(&d.state, c);
            }
            false
        });
    }

    /// Every tracked connection, for `-Lnc`.
    pub fn conn_list(&self) -> Vec<ConnInfo> {
        let now = self.now_ms();
        self.conns
            .iter()
            .filter_map(|(k, c)| {
                let (_, d) = self.table.dest(c.svc, c.dest, c.dest_id)?;
                Some(ConnInfo {
                    protocol: k.protocol,
                    caddr: k.caddr,
                    cport: k.cport,
                    vaddr: k.vaddr,
                    vport: k.vport,
                    daddr: d.addr,
                    dport: d.port,
                    state: c.state.name().to_string(),
                    expires_secs: c.expires_ms.saturating_sub(now).div_ceil(1000),
                })
            })
            .collect()
    }

    pub fn conn_count(&self) -> usize {
        self.conns.len()
    }

    /// Picks up a newly published table: carries scheduler state over,
    /// remaps connections to the new indexes, ends connections of removed
    /// real servers, and announces new VIPs with gratuitous ARP.
    fn refresh_table<I: PacketIo>(&mut self, io: &mut I) {
        let cur = self.shared.load();
        if cur.generation == self.table.generation {
            return;
        }
        let new = arc_swap::Guard::into_inner(cur);
        let old = std::mem::replace(&mut self.table, new);
        let new = &self.table;
        let mut sched = Vec::with_capacity(new.services.len());
        for s in &new.services {
            let prev = old.services.iter().position(|o| o.id == s.id);
            let st = match prev {
                Some(i) if old.services[i].scheduler == s.scheduler => {
                    let mut st = self.sched[i].clone();
                    if old.services[i].epoch != s.epoch {
                        st.dests_changed(&old.services[i].dests, &s.dests);
                    }
                    st
                }
                _ => SchedState::new(s.scheduler, &s.dests),
            };
            sched.push(st);
        }
        self.sched = sched;
        let pos = new.dest_positions();
        self.conns.retain(|_, c| match pos.get(&c.dest_id) {
            Some(&(s, d)) => {
                c.svc = s;
                c.dest = d;
                true
            }
            None => false,
        });
        let fresh: Vec<Ipv4Addr> = new
            .vips()
            .iter()
            .copied()
            .filter(|v| !old.is_vip(*v))
            .collect();
        for vip in fresh {
            self.send_garp(io, vip);
        }
    }

    /// Announces a VIP on every link.
    fn send_garp<I: PacketIo>(&mut self, io: &mut I, vip: Ipv4Addr) {
        for (i, link) in self.links.iter().enumerate() {
            let f = &mut self.scratch[..42];
            wire::ethernet::emit_header(f, MacAddr::BROADCAST, link.mac, EtherType::ARP);
            let r = ArpRepr {
                operation: ArpOperation::Request,
                sender_hw: link.mac,
                sender_ip: vip,
                target_hw: MacAddr::ZERO,
                target_ip: vip,
            };
            if r.emit(&mut f[14..]).is_ok() && io.send(i as u8, f).is_err() {
                DataplaneCounters::bump(&self.counters.tx_errors);
            }
        }
    }

    /// The link a frame arrived on (link 0 for a number the backend should
    /// not have produced).
    fn link(&self, i: u8) -> LinkParams {
        self.links
            .get(usize::from(i))
            .copied()
            .unwrap_or(self.links[0])
    }

    /// Entry point for one received frame.
    pub fn handle_frame<I: PacketIo>(&mut self, io: &mut I, frame: &mut [u8], meta: RxMeta) {
        DataplaneCounters::bump(&self.counters.rx_frames);
        if meta.pkt_type == PacketType::Outgoing || meta.pkt_type == PacketType::OtherHost {
            return;
        }
        if usize::from(meta.link) >= self.links.len() {
            DataplaneCounters::bump(&self.counters.malformed);
            return;
        }
        let Ok(eth) = EthernetFrame::new_checked(&*frame) else {
            DataplaneCounters::bump(&self.counters.malformed);
            return;
        };
        match eth.ethertype() {
            EtherType::ARP => self.handle_arp(io, frame, meta.link),
            EtherType::IPV4 if meta.pkt_type == PacketType::Host => {
                self.handle_ipv4(io, frame, meta)
            }
            _ => {}
        }
    }

    /// Answers ARP requests for VIPs, on the link they were asked on, by
    /// turning the request into the reply in place.
    fn handle_arp<I: PacketIo>(&mut self, io: &mut I, frame: &mut [u8], link: u8) {
        let Ok(p) = ArpPacket::new_checked(&frame[14..]) else {
            return;
        };
        let Ok(req) = ArpRepr::parse(&p) else {
            return;
        };
        if req.operation != ArpOperation::Request || !self.table.is_vip(req.target_ip) {
            return;
        }
        // A gratuitous announcement by someone else is not a question.
        if req.sender_ip == req.target_ip {
            return;
        }
        let mac = self.link(link).mac;
        let reply = ArpRepr {
            operation: ArpOperation::Reply,
            sender_hw: mac,
            sender_ip: req.target_ip,
            target_hw: req.sender_hw,
            target_ip: req.sender_ip,
        };
        let mut eth = EthernetFrame::new_checked(&mut *frame).expect("checked above");
        eth.set_dst_addr(req.sender_hw);
        eth.set_src_addr(mac);
        if reply.emit(&mut frame[14..]).is_ok() {
            match io.send(link, frame) {
                Ok(()) => DataplaneCounters::bump(&self.counters.arp_replies),
                Err(_) => DataplaneCounters::bump(&self.counters.tx_errors),
            }
        }
    }

    /// Classifies an IPv4 frame: to a virtual service, a NAT reply, an ICMP
    /// error about a connection, or the kernel's.
    fn classify(&self, frame: &[u8], meta: RxMeta) -> Result<Class, wire::Error> {
        let eth = EthernetFrame::new_checked(frame)?;
        let ip = Ipv4Packet::new_checked(eth.payload())?;
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        if ip.protocol() == ip_proto::ICMP {
            return Ok(self.classify_icmp(eth.payload(), dst));
        }
        let to_vip = self.table.is_vip(dst);
        if !to_vip && !self.conns.has_replies() {
            return Ok(Class::Kernel);
        }
        let Some(protocol) = Protocol::from_number(ip.protocol()) else {
            return Ok(Class::Kernel);
        };
        if ip.is_fragment() {
            // Only the first fragment has ports: IPVS would need
            // defragmentation, which uvs does not do.
            if to_vip {
                DataplaneCounters::bump(&self.counters.fragments_dropped);
            }
            return Ok(Class::Kernel);
        }
        let (sport, dport, tcp_flags) = match protocol {
            Protocol::Tcp => {
                let t = TcpPacket::new_checked(ip.payload())?;
                (t.src_port(), t.dst_port(), t.flags())
            }
            Protocol::Udp => {
                let u = UdpPacket::new_checked(ip.payload())?;
                (u.src_port(), u.dst_port(), 0)
            }
        };
        if !to_vip {
            let r = crate::conn::ReplyKey {
                protocol,
                raddr: src,
                rport: sport,
                caddr: dst,
                cport: dport,
            };
            return Ok(match self.conns.by_reply(&r) {
                Some(key) => Class::Reply {
                    key,
                    tcp_flags,
                    ip_len: ip.total_len(),
                },
                None => Class::Kernel,
            });
        }
        let skey = crate::service::ServiceKey {
            protocol,
            addr: dst,
            port: dport,
        };
        let Some(svc) = self.table.service_index(&skey) else {
            return Ok(Class::Kernel);
        };
        Ok(Class::Service(Flow {
            key: ConnKey {
                protocol,
                caddr: src,
                cport: sport,
                vaddr: dst,
                vport: dport,
            },
            svc,
            tcp_flags,
            ip_len: ip.total_len(),
            link: meta.link,
            src_mac: eth.src_addr(),
        }))
    }

    /// ICMP errors the director relates to a connection, as ip_vs_in_icmp
    /// and ip_vs_out_icmp do; everything else is the kernel's.
    fn classify_icmp(&self, ip: &[u8], dst: Ipv4Addr) -> Class {
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
            return Class::IcmpToVip(ConnKey {
                protocol,
                caddr: q.dst,
                cport: q.dport,
                vaddr: q.src,
                vport: q.sport,
            });
        }
        // About a translated packet a client sent to a real server.
        let r = crate::conn::ReplyKey {
            protocol,
            raddr: q.dst,
            rport: q.dport,
            caddr: q.src,
            cport: q.sport,
        };
        match self.conns.by_reply(&r) {
            Some(k) if q.src == dst => Class::IcmpToClient(k),
            _ => Class::Kernel,
        }
    }

    fn handle_ipv4<I: PacketIo>(&mut self, io: &mut I, frame: &mut [u8], meta: RxMeta) {
        match self.classify(frame, meta) {
            Ok(Class::Service(flow)) => self.for_service(io, frame, meta, &flow),
            Ok(Class::Reply {
                key,
                tcp_flags,
                ip_len,
            }) => self.nat_reply(io, frame, meta, key, tcp_flags, ip_len),
            Ok(Class::IcmpToVip(key)) => self.icmp_to_vip(io, frame, meta, key),
            Ok(Class::IcmpToClient(key)) => self.icmp_to_client(io, frame, meta, key),
            Ok(Class::Kernel) => {}
            Err(_) => DataplaneCounters::bump(&self.counters.malformed),
        }
    }

    /// A client's packet for a virtual service: its connection (found or
    /// scheduled) decides the real server and how it is forwarded.
    fn for_service<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &mut [u8],
        meta: RxMeta,
        flow: &Flow,
    ) {
        let now = self.now_ms();
        let Some(conn) = self.lookup_or_schedule(io, frame, flow, now) else {
            return;
        };
        let Some((svc, dest)) = self.table.dest(conn.svc, conn.dest, conn.dest_id) else {
            return;
        };
        svc.stats.count_in(flow.ip_len);
        dest.state.stats.count_in(flow.ip_len);
        let hop = NextHop {
            link: dest.link,
            mac: dest.mac,
        };
        match conn.fwd {
            Forward::Route => self.forward_ip(io, frame, meta, None, Change::None, hop),
            Forward::Tunnel => self.forward_tun(io, frame, meta, hop, conn.raddr),
            // The client's address stays, so the real server sees it.
            Forward::Masq => {
                let change = Change::Nat {
                    end: End::Dst,
                    addr: conn.raddr,
                    port: conn.rport,
                };
                self.forward_ip(io, frame, meta, None, change, hop)
            }
        }
    }

    /// Finds the flow's connection (updating its TCP state and timer) or
    /// schedules a new one. `None` means the frame is dropped.
    fn lookup_or_schedule<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &[u8],
        flow: &Flow,
        now: u64,
    ) -> Option<Conn> {
        let is_tcp = flow.key.protocol == Protocol::Tcp;
        let syn = flow.tcp_flags & wire::tcp::flags::SYN != 0;
        let rst = flow.tcp_flags & wire::tcp::flags::RST != 0;
        let table = &self.table;
        if let Some(c) = self.conns.get_mut(&flow.key) {
            let stale = table.dest(c.svc, c.dest, c.dest_id).is_none();
            let reuse = is_tcp && syn && !rst && c.reusable_by_syn();
            if !stale && !reuse {
                if let Some((_, d)) = table.dest(c.svc, c.dest, c.dest_id) {
                    let dir = c.input_direction();
                    update_state(c, &d.state, dir, flow.tcp_flags, table, now);
                }
                c.client_link = flow.link;
                c.client_mac = flow.src_mac;
                return Some(*c);
            }
            let old = *c;
            self.conns.remove(&flow.key);
            if let Some((_, d)) = table.dest(old.svc, old.dest, old.dest_id) {
                release(&d.state, &old);
            }
            if !reuse {
                DataplaneCounters::bump(&self.counters.no_conn_dropped);
                return None;
            }
        }
        // A new connection: TCP schedules only on SYN (no sloppy_tcp).
        if is_tcp && (!syn || rst) {
            DataplaneCounters::bump(&self.counters.no_conn_dropped);
            return None;
        }
        let svc = &table.services[flow.svc];
        let Some(di) = self.sched[flow.svc].pick(&svc.dests) else {
            DataplaneCounters::bump(&self.counters.no_dest);
            self.send_icmp_error(io, frame, flow.link, None, IcmpError::PORT_UNREACHABLE);
            return None;
        };
        let d = &svc.dests[di];
        let mut c = Conn {
            svc: flow.svc as u32,
            dest: di as u32,
            dest_id: d.id,
            state: if is_tcp {
                ConnState::Tcp(TcpState::None)
            } else {
                ConnState::Udp
            },
            expires_ms: now + 3000,
            fwd: d.forward,
            raddr: d.addr,
            rport: d.port,
            client_link: flow.link,
            client_mac: flow.src_mac,
        };
        d.state.inactive.fetch_add(1, Relaxed);
        let dir = c.input_direction();
        update_state(&mut c, &d.state, dir, flow.tcp_flags, table, now);
        if let Err(e) = self.conns.insert(flow.key, c) {
            release(&d.state, &c);
            DataplaneCounters::bump(match e {
                InsertError::Full => &self.counters.conn_table_full,
                InsertError::ReplyClash => &self.counters.nat_reply_clash,
            });
            return None;
        }
        svc.stats.conns.fetch_add(1, Relaxed);
        d.state.stats.conns.fetch_add(1, Relaxed);
        Some(c)
    }

    /// DR and NAT: the router's hop (TTL minus one; ICMP errors from
    /// `from`, or else the VIP the packet was sent to), the MTU checked
    /// before anything is rewritten (an error quotes what the sender sent,
    /// as IPVS checks before its DNAT), the `change` (none for DR, whose
    /// addresses stay as they are), then new MACs and the checksum finished
    /// or the super-frame segmented.
    fn forward_ip<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &mut [u8],
        meta: RxMeta,
        from: Option<Ipv4Addr>,
        change: Change,
        to: NextHop,
    ) {
        let Some(hop) = self.hop(io, frame, meta.link, from) else {
            return;
        };
        if self.too_big(io, frame, meta, &hop, to.link, from) {
            return;
        }
        let ip = &mut frame[14..hop.ip_end];
        let changed = match change {
            Change::None => Ok(()),
            Change::Nat { end, addr, port } => {
                nat::rewrite(ip, end, addr, port, meta.csum_partial.is_some())
            }
            Change::Icmp {
                outer,
                inner,
                addr,
                port,
            } => nat::translate_icmp(ip, outer, inner, addr, port),
        };
        if changed.is_err() {
            DataplaneCounters::bump(&self.counters.malformed);
            return;
        }
        self.transmit(io, &mut frame[..hop.ip_end], meta, to);
    }

    /// A real server's reply on a NAT connection: the reply moves the TCP
    /// state (OUTPUT table), its source RIP:RPORT becomes VIP:VPORT, and it
    /// goes to the client by the kernel's routes.
    fn nat_reply<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &mut [u8],
        meta: RxMeta,
        key: ConnKey,
        tcp_flags: u8,
        ip_len: usize,
    ) {
        let now = self.now_ms();
        let table = &self.table;
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        let Some((svc, d)) = table.dest(c.svc, c.dest, c.dest_id) else {
            return;
        };
        update_state(c, &d.state, Direction::Output, tcp_flags, table, now);
        svc.stats.count_out(ip_len);
        d.state.stats.count_out(ip_len);
        let c = *c;
        let to = self.client_hop(&c, key.caddr);
        let from = Some(self.link(meta.link).addr);
        DataplaneCounters::bump(&self.counters.nat_replies);
        let change = Change::Nat {
            end: End::Src,
            addr: key.vaddr,
            port: key.vport,
        };
        self.forward_ip(io, frame, meta, from, change, to);
    }

    /// Where a NAT reply to `caddr` goes: the kernel's most specific route
    /// decides the link and, through a gateway, the MAC; on-link, the
    /// client's own MAC, learned from its packets.
    fn client_hop(&self, c: &Conn, caddr: Ipv4Addr) -> NextHop {
        match self.table.route(caddr) {
            Some(r) => match r.gateway_mac {
                Some(mac) => NextHop { link: r.link, mac },
                None if r.link == c.client_link => NextHop {
                    link: r.link,
                    mac: c.client_mac,
                },
                None => NextHop {
                    link: c.client_link,
                    mac: c.client_mac,
                },
            },
            None => NextHop {
                link: c.client_link,
                mac: c.client_mac,
            },
        }
    }

    /// An ICMP error to a VIP about one of its connections (a router on the
    /// way to the client says "fragmentation needed", say) goes to the real
    /// server that owns the connection, by the connection's method; for NAT
    /// the destination and the quoted source become RIP:RPORT.
    fn icmp_to_vip<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &mut [u8],
        meta: RxMeta,
        key: ConnKey,
    ) {
        let Some((c, to, meta)) = self.related(frame, meta, &key, Direction::Input) else {
            return;
        };
        match c.fwd {
            Forward::Route => self.forward_ip(io, frame, meta, None, Change::None, to),
            Forward::Tunnel => self.forward_tun(io, frame, meta, to, c.raddr),
            Forward::Masq => {
                let change = Change::Icmp {
                    outer: End::Dst,
                    inner: End::Src,
                    addr: c.raddr,
                    port: c.rport,
                };
                self.forward_ip(io, frame, meta, None, change, to);
            }
        }
    }

    /// An ICMP error from the real server's side about a NAT connection (the
    /// real server's "port unreachable", say) reaches the client as if from
    /// the VIP: the source and the quoted destination become VIP:VPORT.
    fn icmp_to_client<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &mut [u8],
        meta: RxMeta,
        key: ConnKey,
    ) {
        let Some((c, _, meta)) = self.related(frame, meta, &key, Direction::Output) else {
            return;
        };
        let to = self.client_hop(&c, key.caddr);
        let from = Some(self.link(meta.link).addr);
        let change = Change::Icmp {
            outer: End::Src,
            inner: End::Dst,
            addr: key.vaddr,
            port: key.vport,
        };
        self.forward_ip(io, frame, meta, from, change, to);
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
        let c = *self.conns.get(key)?;
        let (svc, d) = self.table.dest(c.svc, c.dest, c.dest_id)?;
        let meta = self.complete_first(frame, meta)?;
        let len = frame.len() - 14;
        if dir == Direction::Output {
            svc.stats.count_out(len);
            d.state.stats.count_out(len);
        } else {
            svc.stats.count_in(len);
            d.state.stats.count_in(len);
        }
        DataplaneCounters::bump(&self.counters.icmp_related);
        let to = NextHop {
            link: d.link,
            mac: d.mac,
        };
        Some((c, to, meta))
    }

    /// Finishes an unfinished checksum before a rewrite that recomputes the
    /// ICMP checksum; the returned metadata says it is finished.
    fn complete_first(&self, frame: &mut [u8], meta: RxMeta) -> Option<RxMeta> {
        if meta.gso.is_some() {
            DataplaneCounters::bump(&self.counters.malformed);
            return None;
        }
        self.finish_checksum(frame, meta).then_some(RxMeta {
            csum_partial: None,
            ..meta
        })
    }

    /// A packet too big for the outgoing link that segmentation cannot fix
    /// (not a GSO super-frame) is dropped, as the kernel does; with DF set
    /// the sender learns the MTU ("fragmentation needed", from `from` or
    /// the VIP it was sent to).
    fn too_big<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &[u8],
        meta: RxMeta,
        hop: &Hop,
        out: u8,
        from: Option<Ipv4Addr>,
    ) -> bool {
        let mtu = self.link(out).mtu;
        if hop.ip_end <= mtu as usize + 14 || meta.gso.is_some() {
            return false;
        }
        if hop.df {
            self.send_icmp_error(io, frame, meta.link, from, IcmpError::frag_needed(mtu));
            DataplaneCounters::bump(&self.counters.frag_needed);
        } else {
            DataplaneCounters::bump(&self.counters.malformed);
        }
        true
    }

    /// Sends a packet whose IP part is final to `to`: new MACs, and either
    /// the super-frame cut into segments that fit the link or the checksum
    /// finished.
    fn transmit<I: PacketIo>(&mut self, io: &mut I, frame: &mut [u8], meta: RxMeta, to: NextHop) {
        let link = self.link(to.link);
        {
            let mut eth = EthernetFrame::new_checked(&mut frame[..]).expect("classified");
            eth.set_dst_addr(to.mac);
            eth.set_src_addr(link.mac);
        }
        let max = link.mtu as usize + 14;
        if let Some(g) = meta.gso.filter(|_| frame.len() > max) {
            if !g.tcpv4 {
                DataplaneCounters::bump(&self.counters.malformed);
                return;
            }
            DataplaneCounters::bump(&self.counters.gso_segmented);
            let mss = usize::from(g.size).min(max.saturating_sub(14 + 40)).max(1);
            let counters = &self.counters;
            let r = gso::segment_tcpv4(frame, mss, &mut self.scratch, |seg| {
                counters.count_send(io.send(to.link, seg))
            });
            if r.is_err() {
                DataplaneCounters::bump(&self.counters.malformed);
            }
            return;
        }
        if !self.finish_checksum(frame, meta) {
            return;
        }
        self.counters.count_send(io.send(to.link, frame));
    }

    /// TUN: the client's packet (TTL − 1, checksum finished) wrapped in an
    /// outer IPv4 header from the director to the real server, sent to the
    /// next hop's MAC. Outer TTL, TOS and DF follow IPVS (see
    /// docs/architecture.md); a packet that no longer fits the MTU gets
    /// "fragmentation needed" if DF is set and is fragmented otherwise;
    /// GSO super-frames are cut into segments that fit once wrapped.
    fn forward_tun<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &mut [u8],
        meta: RxMeta,
        to: NextHop,
        rip: Ipv4Addr,
    ) {
        let Some(Hop { ip_end, df, hl }) = self.hop(io, frame, meta.link, None) else {
            return;
        };
        let frame = &mut frame[..ip_end];
        let out = self.link(to.link);
        let room = (out.mtu as usize).saturating_sub(20);
        let tun = TunHeader {
            src: self.table.tun_source,
            dst: rip,
            dst_mac: to.mac,
            src_mac: out.mac,
        };
        if let Some(g) = meta.gso.filter(|_| frame.len() - 14 > room) {
            let tcp_hl = TcpPacket::new_checked(&frame[14 + hl..]).map_or(20, |t| t.header_len());
            let fit = room.saturating_sub(hl + tcp_hl);
            if !g.tcpv4 || fit == 0 {
                DataplaneCounters::bump(&self.counters.malformed);
                return;
            }
            DataplaneCounters::bump(&self.counters.gso_segmented);
            let mss = usize::from(g.size).min(fit).max(1);
            let (counters, out) = (&self.counters, &mut self.scratch2);
            let id = &mut self.ip_id;
            let r = gso::segment_tcpv4(frame, mss, &mut self.scratch, |seg| {
                let n = tun.encapsulate(&seg[14..], out, id);
                counters.count_send(io.send(to.link, &out[..n]));
            });
            if r.is_err() {
                DataplaneCounters::bump(&self.counters.malformed);
            }
            return;
        }
        if !self.finish_checksum(frame, meta) {
            return;
        }
        let inner_len = frame.len() - 14;
        if inner_len > room {
            if df {
                // As IPVS: the client learns the tunnel's smaller MTU.
                let err = IcmpError::frag_needed(room as u32);
                self.send_icmp_error(io, frame, meta.link, None, err);
                DataplaneCounters::bump(&self.counters.frag_needed);
                return;
            }
            let (counters, out) = (&self.counters, &mut self.scratch2);
            let sent = tun.fragments(&frame[14..], room, out, &mut self.ip_id, |f| {
                io.send(to.link, f).is_ok()
            });
            DataplaneCounters::bump(&counters.fragmented);
            match sent {
                true => DataplaneCounters::bump(&counters.forwarded),
                false => DataplaneCounters::bump(&counters.tx_errors),
            }
            return;
        }
        let n = tun.encapsulate(&frame[14..], &mut self.scratch2, &mut self.ip_id);
        self.counters
            .count_send(io.send(to.link, &self.scratch2[..n]));
    }

    /// The router's part of every forwarded packet: TTL ≤ 1 gets ICMP time
    /// exceeded (from `from`, or the VIP the packet was sent to) and `None`;
    /// otherwise the TTL drops by one, as IPVS does for every method.
    fn hop<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &mut [u8],
        link: u8,
        from: Option<Ipv4Addr>,
    ) -> Option<Hop> {
        let (ttl, hop) = {
            let ip = Ipv4Packet::new_checked(&frame[14..]).ok()?;
            let hop = Hop {
                ip_end: 14 + ip.total_len(),
                df: ip.dont_frag(),
                hl: ip.header_len(),
            };
            (ip.ttl(), hop)
        };
        if ttl <= 1 {
            DataplaneCounters::bump(&self.counters.ttl_expired);
            self.send_icmp_error(io, frame, link, from, IcmpError::TTL_EXCEEDED);
            return None;
        }
        Ipv4Packet::new_checked(&mut frame[14..])
            .ok()?
            .decrement_ttl();
        Some(hop)
    }

    /// Completes an unfinished (CHECKSUM_PARTIAL) L4 checksum; false, and
    /// counted as malformed, when its offsets do not fit the packet.
    fn finish_checksum(&self, frame: &mut [u8], meta: RxMeta) -> bool {
        let Some((start, off)) = meta.csum_partial else {
            return true;
        };
        if !complete_checksum(frame, usize::from(start), usize::from(off)) {
            DataplaneCounters::bump(&self.counters.malformed);
            return false;
        }
        DataplaneCounters::bump(&self.counters.csum_completed);
        true
    }

    /// Sends an ICMP error about `frame` back to its sender on the link it
    /// came from, from `from` or else the VIP it was addressed to (as the
    /// kernel does for a local VIP in IPVS). An unspecified `from` (a link
    /// without an address) sends nothing.
    fn send_icmp_error<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &[u8],
        link: u8,
        from: Option<Ipv4Addr>,
        err: IcmpError,
    ) {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return;
        };
        let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
            return;
        };
        // Never answer an ICMP error with one (RFC 1122 3.2.2).
        if ip.protocol() == ip_proto::ICMP {
            return;
        }
        let src = from.unwrap_or(ip.dst_addr());
        if src.is_unspecified() {
            return;
        }
        let end = ip.total_len();
        let mac = self.link(link).mac;
        let out = &mut self.scratch;
        wire::ethernet::emit_header(out, eth.src_addr(), mac, EtherType::IPV4);
        let dst = ip.src_addr();
        let hl = ip.header_len();
        let quoted = &eth.payload()[..end];
        if let Ok(n) = icmp::emit_error(&mut out[14..], src, dst, err, quoted, hl)
            && io.send(link, &out[..14 + n]).is_err()
        {
            DataplaneCounters::bump(&self.counters.tx_errors);
        }
    }
}

/// Applies a segment travelling in `dir` to a connection: TCP state
/// machine, active/inactive accounting, and the idle timer.
fn update_state(
    c: &mut Conn,
    ds: &DestState,
    dir: Direction,
    tcp_flags: u8,
    table: &Table,
    now: u64,
) {
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
    c.expires_ms = now + u64::from(c.state.timeout(&table.timeouts)) * 1000;
}

/// Finishes a CHECKSUM_PARTIAL L4 checksum as skb_checksum_help does: the
/// field already holds the pseudo-header sum, so summing from `start` to
/// the end of the packet and complementing gives the final value.
pub fn complete_checksum(frame: &mut [u8], start: usize, offset: usize) -> bool {
    let end = frame.len();
    let at = start + offset;
    if start >= end || at + 2 > end {
        return false;
    }
    let c = checksum::finish(checksum::sum(&frame[start..end]));
    let c = if c == 0 { 0xffff } else { c };
    frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
    true
}

/// What the director changes in a packet it forwards, besides the TTL.
#[derive(Clone, Copy)]
enum Change {
    /// DR: nothing.
    None,
    /// NAT: one end of a TCP or UDP packet becomes `addr:port`.
    Nat { end: End, addr: Ipv4Addr, port: u16 },
    /// NAT: an ICMP error's `outer` end and its quoted packet's `inner`
    /// end become `addr:port`.
    Icmp {
        outer: End,
        inner: End,
        addr: Ipv4Addr,
        port: u16,
    },
}

/// What forwarding needs to know of a packet once its TTL is dealt with.
struct Hop {
    /// End of the IP packet in the frame (any Ethernet padding beyond).
    ip_end: usize,
    df: bool,
    /// IP header length.
    hl: usize,
}

/// Addresses of an IP-in-IP encapsulation.
#[derive(Clone, Copy)]
struct TunHeader {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    dst_mac: MacAddr,
    src_mac: MacAddr,
}

impl TunHeader {
    /// Ethernet + outer IPv4 (protocol 4) for `inner`, with `payload_len`
    /// bytes of payload, into `out[..34]`. TTL and DF are the inner
    /// packet's; TOS copies the DSCP and ECN, except that CE becomes
    /// ECT(0), as INET_ECN_encapsulate does; the id is 0 with DF (as Linux)
    /// and a counter otherwise.
    fn header(&self, inner: &[u8], payload_len: usize, out: &mut [u8], id: &mut u16, frag: u16) {
        wire::ethernet::emit_header(out, self.dst_mac, self.src_mac, EtherType::IPV4);
        let (tos, ttl, df) = match Ipv4Packet::new_checked(inner) {
            Ok(p) => (p.tos(), p.ttl(), p.dont_frag()),
            Err(_) => (0, 64, false),
        };
        let ecn = tos & 3;
        let tos = (tos & !3) | if ecn == 3 { 2 } else { ecn };
        let ident = if df {
            0
        } else {
            if frag & 0x1fff == 0 {
                *id = id.wrapping_add(1);
            }
            *id
        };
        let repr = wire::ipv4::Ipv4Repr {
            src: self.src,
            dst: self.dst,
            protocol: ip_proto::IPIP,
            payload_len,
            ttl,
            tos,
            ident,
            dont_frag: df,
        };
        let _ = repr.emit(&mut out[14..34]);
        if frag != 0 {
            // Fragment flags and offset: patch and re-checksum the header.
            out[20..22].copy_from_slice(&frag.to_be_bytes());
            out[24..26].copy_from_slice(&[0, 0]);
            let c = checksum::finish(checksum::sum(&out[14..34]));
            out[24..26].copy_from_slice(&c.to_be_bytes());
        }
    }

    /// The whole encapsulated frame in `out`; returns its length.
    fn encapsulate(&self, inner: &[u8], out: &mut [u8], id: &mut u16) -> usize {
        let n = 34 + inner.len();
        self.header(inner, inner.len(), out, id, 0);
        out[34..n].copy_from_slice(inner);
        n
    }

    /// Fragments the outer packet so each piece fits `room + 20` bytes of
    /// IP, calling `send` for each; false if any send failed.
    fn fragments(
        &self,
        inner: &[u8],
        room: usize,
        out: &mut [u8],
        id: &mut u16,
        mut send: impl FnMut(&[u8]) -> bool,
    ) -> bool {
        let step = (room & !7).max(8);
        let mut ok = true;
        let mut off = 0;
        while off < inner.len() {
            let end = (off + step).min(inner.len());
            let more = end < inner.len();
            let flags = (if more { 0x2000 } else { 0 }) | (off / 8) as u16;
            // The first fragment allocates the id; the rest reuse it.
            self.header(
                inner,
                end - off,
                out,
                id,
                if off == 0 && more { 0x2000 } else { flags },
            );
            out[34..34 + end - off].copy_from_slice(&inner[off..end]);
            ok &= send(&out[..34 + end - off]);
            off = end;
        }
        ok
    }
}
