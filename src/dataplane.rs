//! The data plane: one loop over a [`PacketIo`] that classifies each frame,
//! looks up or schedules its connection and forwards it. It reads only the
//! immutable [`Table`] the control plane publishes; the connection table and
//! scheduler state are its own.

use crate::conn::{Conn, ConnKey, ConnState, ConnTable, TcpState};
use crate::gso;
use crate::io::{PacketIo, PacketType, RxMeta};
use crate::sched::SchedState;
use crate::service::{Forward, Protocol};
use crate::stats::{DataplaneCounters, DestState};
use crate::table::Table;
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

/// The interface facts the data plane needs.
#[derive(Debug, Clone, Copy)]
pub struct LinkParams {
    pub mac: MacAddr,
    pub mtu: u32,
}

pub struct Dataplane {
    shared: Arc<ArcSwap<Table>>,
    table: Arc<Table>,
    sched: Vec<SchedState>,
    conns: ConnTable,
    link: LinkParams,
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
    pub fn new(
        shared: Arc<ArcSwap<Table>>,
        link: LinkParams,
        counters: Arc<DataplaneCounters>,
        requests: Option<Receiver<DpRequest>>,
    ) -> Dataplane {
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
            link,
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

    fn send_garp<I: PacketIo>(&mut self, io: &mut I, vip: Ipv4Addr) {
        let f = &mut self.scratch[..42];
        wire::ethernet::emit_header(f, MacAddr::BROADCAST, self.link.mac, EtherType::ARP);
        let r = ArpRepr {
            operation: ArpOperation::Request,
            sender_hw: self.link.mac,
            sender_ip: vip,
            target_hw: MacAddr::ZERO,
            target_ip: vip,
        };
        if r.emit(&mut f[14..]).is_ok() && io.send(f).is_err() {
            DataplaneCounters::bump(&self.counters.tx_errors);
        }
    }

    /// Entry point for one received frame.
    pub fn handle_frame<I: PacketIo>(&mut self, io: &mut I, frame: &mut [u8], meta: RxMeta) {
        DataplaneCounters::bump(&self.counters.rx_frames);
        if meta.pkt_type == PacketType::Outgoing || meta.pkt_type == PacketType::OtherHost {
            return;
        }
        let Ok(eth) = EthernetFrame::new_checked(&*frame) else {
            DataplaneCounters::bump(&self.counters.malformed);
            return;
        };
        match eth.ethertype() {
            EtherType::ARP => self.handle_arp(io, frame),
            EtherType::IPV4 if meta.pkt_type == PacketType::Host => {
                self.handle_ipv4(io, frame, meta)
            }
            _ => {}
        }
    }

    /// Answers ARP requests for VIPs by turning the request into the reply
    /// in place.
    fn handle_arp<I: PacketIo>(&mut self, io: &mut I, frame: &mut [u8]) {
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
        let reply = ArpRepr {
            operation: ArpOperation::Reply,
            sender_hw: self.link.mac,
            sender_ip: req.target_ip,
            target_hw: req.sender_hw,
            target_ip: req.sender_ip,
        };
        let mut eth = EthernetFrame::new_checked(&mut *frame).expect("checked above");
        eth.set_dst_addr(req.sender_hw);
        eth.set_src_addr(self.link.mac);
        if reply.emit(&mut frame[14..]).is_ok() {
            match io.send(frame) {
                Ok(()) => DataplaneCounters::bump(&self.counters.arp_replies),
                Err(_) => DataplaneCounters::bump(&self.counters.tx_errors),
            }
        }
    }

    /// Classifies an IPv4 frame: `None` leaves it to the kernel.
    fn classify(&self, frame: &[u8]) -> Result<Option<Flow>, wire::Error> {
        let ip = Ipv4Packet::new_checked(&frame[14..])?;
        let dst = ip.dst_addr();
        if !self.table.is_vip(dst) {
            return Ok(None);
        }
        let Some(protocol) = Protocol::from_number(ip.protocol()) else {
            return Ok(None);
        };
        if ip.is_fragment() {
            DataplaneCounters::bump(&self.counters.fragments_dropped);
            return Ok(None);
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
        let skey = crate::service::ServiceKey {
            protocol,
            addr: dst,
            port: dport,
        };
        let Some(svc) = self.table.service_index(&skey) else {
            return Ok(None);
        };
        Ok(Some(Flow {
            key: ConnKey {
                protocol,
                caddr: ip.src_addr(),
                cport: sport,
                vaddr: dst,
                vport: dport,
            },
            svc,
            tcp_flags,
            ip_len: ip.total_len(),
        }))
    }

    fn handle_ipv4<I: PacketIo>(&mut self, io: &mut I, frame: &mut [u8], meta: RxMeta) {
        let flow = match self.classify(frame) {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(_) => {
                DataplaneCounters::bump(&self.counters.malformed);
                return;
            }
        };
        let now = self.now_ms();
        let Some(conn) = self.lookup_or_schedule(io, frame, &flow, now) else {
            return;
        };
        let Some((svc, dest)) = self.table.dest(conn.svc, conn.dest, conn.dest_id) else {
            return;
        };
        svc.stats.count_in(flow.ip_len);
        dest.state.stats.count_in(flow.ip_len);
        match dest.forward {
            Forward::Route => {
                let mac = dest.mac;
                self.forward_dr(io, frame, meta, mac);
            }
            Forward::Tunnel => {
                let (mac, rip) = (dest.mac, dest.addr);
                self.forward_tun(io, frame, meta, mac, rip);
            }
            // The control plane refuses NAT until it lands.
            Forward::Masq => {}
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
                    update_state(c, &d.state, flow.tcp_flags, table, now);
                }
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
            self.send_icmp_error(io, frame, IcmpError::PORT_UNREACHABLE);
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
        };
        d.state.inactive.fetch_add(1, Relaxed);
        update_state(&mut c, &d.state, flow.tcp_flags, table, now);
        if !self.conns.insert(flow.key, c) {
            release(&d.state, &c);
            DataplaneCounters::bump(&self.counters.conn_table_full);
            return None;
        }
        svc.stats.conns.fetch_add(1, Relaxed);
        d.state.stats.conns.fetch_add(1, Relaxed);
        Some(c)
    }

    /// DR: new MACs, TTL minus one, checksum finished or the super-frame
    /// segmented; the IP addresses stay as they are.
    fn forward_dr<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &mut [u8],
        meta: RxMeta,
        mac: MacAddr,
    ) {
        let Some(Hop { ip_end, df, .. }) = self.hop(io, frame) else {
            return;
        };
        {
            let mut eth = EthernetFrame::new_checked(&mut frame[..]).expect("classified");
            eth.set_dst_addr(mac);
            eth.set_src_addr(self.link.mac);
        }
        let frame = &mut frame[..ip_end];
        let max = self.link.mtu as usize + 14;
        if let Some(g) = meta.gso.filter(|_| frame.len() > max) {
            if !g.tcpv4 {
                DataplaneCounters::bump(&self.counters.malformed);
                return;
            }
            DataplaneCounters::bump(&self.counters.gso_segmented);
            let mss = usize::from(g.size).min(max.saturating_sub(14 + 40)).max(1);
            let counters = &self.counters;
            let r = gso::segment_tcpv4(frame, mss, &mut self.scratch, |seg| {
                counters.count_send(io.send(seg))
            });
            if r.is_err() {
                DataplaneCounters::bump(&self.counters.malformed);
            }
            return;
        }
        if frame.len() > max {
            // Too big for the wire and not a GSO frame: what IPVS does.
            if df {
                self.send_icmp_error(io, frame, IcmpError::frag_needed(self.link.mtu));
            }
            DataplaneCounters::bump(&self.counters.malformed);
            return;
        }
        if !self.finish_checksum(frame, meta) {
            return;
        }
        self.counters.count_send(io.send(frame));
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
        mac: MacAddr,
        rip: Ipv4Addr,
    ) {
        let Some(Hop { ip_end, df, hl }) = self.hop(io, frame) else {
            return;
        };
        let frame = &mut frame[..ip_end];
        let room = (self.link.mtu as usize).saturating_sub(20);
        let tun = TunHeader {
            src: self.table.tun_source,
            dst: rip,
            dst_mac: mac,
            src_mac: self.link.mac,
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
                counters.count_send(io.send(&out[..n]));
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
                self.send_icmp_error(io, frame, IcmpError::frag_needed(room as u32));
                DataplaneCounters::bump(&self.counters.frag_needed);
                return;
            }
            let (counters, out) = (&self.counters, &mut self.scratch2);
            let sent = tun.fragments(&frame[14..], room, out, &mut self.ip_id, |f| {
                io.send(f).is_ok()
            });
            DataplaneCounters::bump(&counters.fragmented);
            match sent {
                true => DataplaneCounters::bump(&counters.forwarded),
                false => DataplaneCounters::bump(&counters.tx_errors),
            }
            return;
        }
        let n = tun.encapsulate(&frame[14..], &mut self.scratch2, &mut self.ip_id);
        self.counters.count_send(io.send(&self.scratch2[..n]));
    }

    /// The router's part of every forwarded packet: TTL ≤ 1 gets ICMP time
    /// exceeded (and `None`), otherwise the TTL drops by one, as IPVS does
    /// for DR and TUN alike.
    fn hop<I: PacketIo>(&mut self, io: &mut I, frame: &mut [u8]) -> Option<Hop> {
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
            self.send_icmp_error(io, frame, IcmpError::TTL_EXCEEDED);
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

    /// Sends an ICMP error about `frame` back to its sender, from the VIP
    /// it was addressed to (as the kernel does for a local VIP in IPVS).
    fn send_icmp_error<I: PacketIo>(&mut self, io: &mut I, frame: &[u8], err: IcmpError) {
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
        let end = ip.total_len();
        let out = &mut self.scratch;
        wire::ethernet::emit_header(out, eth.src_addr(), self.link.mac, EtherType::IPV4);
        let src = ip.dst_addr();
        let dst = ip.src_addr();
        let hl = ip.header_len();
        let quoted = &eth.payload()[..end];
        if let Ok(n) = icmp::emit_error(&mut out[14..], src, dst, err, quoted, hl)
            && io.send(&out[..14 + n]).is_err()
        {
            DataplaneCounters::bump(&self.counters.tx_errors);
        }
    }
}

/// Applies a client-to-server segment to a connection: TCP state machine,
/// active/inactive accounting, and the idle timer.
fn update_state(c: &mut Conn, ds: &DestState, tcp_flags: u8, table: &Table, now: u64) {
    if let ConnState::Tcp(s) = c.state {
        let n = s.next(tcp_flags);
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
