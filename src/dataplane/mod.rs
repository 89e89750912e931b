//! The data plane: one loop over a [`PacketIo`] that classifies each frame
//! ([`classify`]), looks up or schedules its connection ([`flow`], over the
//! [`conn`] table and the [`sched`] schedulers) and forwards it
//! ([`egress`], with [`nat`] and [`gso`] as helpers); [`arp`] answers for
//! the VIPs. It reads only the immutable [`Table`] the control plane
//! publishes; the connection table and scheduler state are its own.

pub mod arp;
pub mod classify;
pub mod conn;
pub mod egress;
pub mod flow;
pub mod gso;
pub mod handoff;
pub mod icmp_limit;
pub mod nat;
pub mod offload;
pub mod sched;
pub mod sync;
pub mod tcp_state;

use crate::io::{FRAME_BUF, PacketIo, PacketType, RxMeta};
use crate::lvs::ConnInfo;
use crate::lvs::stats::{DataplaneCounters, DestState};
use crate::lvs::table::{DestEntry, ServiceEntry, Table};
use crate::wire::{EtherType, EthernetFrame, MacAddr};
use arc_swap::ArcSwap;
use classify::Class;
use conn::{Conn, ConnTable};
use icmp_limit::{IcmpLimiter, IcmpLimits};
use sched::SchedState;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// A sweep of the whole connection table takes between these two, in
/// steps of `SWEEP_STEP_MS`, each bounded, so expiry never pauses
/// forwarding: an eighth of the shortest timeout any entry has now (a
/// timer is acted on at most that late; the data path and the listing
/// already treat an entry past its timer as gone), the shortest after a
/// table change (entries of removed real servers go, the rest are
/// remapped) and while the table is near its limit. Every visit reads a
/// cold slot: a table of 64 Ki UDP flows swept each second cost the
/// director more CPU than the flows' frames did at 15 kpps
/// (docs/performance.md).
const SWEEP_PASS_MS: u64 = 1000;
const SWEEP_PASS_MAX_MS: u64 = 30_000;
const SWEEP_STEP_MS: u64 = 10;
const SWEEP_STEP_MAX_MS: u64 = 250;
/// How often a sweep step runs in a pass of `pass` ms: a hundredth of
/// it, so a slow pass also wakes an idle data plane less often.
fn sweep_step_ms(pass: u64) -> u64 {
    (pass / 100).clamp(SWEEP_STEP_MS, SWEEP_STEP_MAX_MS)
}
/// Removals per sweep step (each is a hash removal, about 0.3 µs): a
/// step stays well under a millisecond; a step that hits the bound
/// continues after the next frame rather than at the next tick.
const SWEEP_REMOVE: usize = 512;
/// Connections per listing chunk (`-Lnc`), answered between frames.
pub const CONN_CHUNK: usize = 4096;
/// The default `--max-conns`.
pub const DEFAULT_MAX_CONNS: usize = 1 << 20;

/// Questions the control plane asks the data plane; answered between
/// frames, so the answer is consistent with what was forwarded.
pub enum DpRequest {
    /// Stop forwarding and hand every connection over (a planned
    /// restart): the data plane answers and then leaves its loop.
    Handoff(tokio::sync::oneshot::Sender<Vec<handoff::PortableConn>>),
    /// Up to [`CONN_CHUNK`] connections from slot `from` on, and where the
    /// next chunk starts (`None`: that was the last).
    Conns {
        from: usize,
        reply: tokio::sync::oneshot::Sender<(Vec<ConnInfo>, Option<usize>)>,
    },
    /// HA, the active side: queue the table's digest in the sync stream,
    /// as this worker's share of round `.0`.
    SyncDigest(u64),
    /// HA, the active side, a full resync: queue a mark, then answer with
    /// up to [`CONN_CHUNK`] connections from slot `from` on.
    SyncChunk {
        from: usize,
        mark: u64,
        reply: tokio::sync::oneshot::Sender<(Vec<handoff::PortableConn>, Option<usize>)>,
    },
    /// HA, a backup: records received from the active director.
    SyncApply(Vec<sync::Record>),
    /// HA, a backup: a full resync begins, or ends (answered with how
    /// many stale entries went).
    ResyncBegin,
    ResyncEnd(tokio::sync::oneshot::Sender<usize>),
    /// HA, a backup: the table's digest now.
    Digest(tokio::sync::oneshot::Sender<conn::Digest>),
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
    next_stats_ms: u64,
    /// Where each real server id sits in `table`: connections remap
    /// lazily (on use, or when the sweep passes them) after a change, so
    /// a republication never walks the whole connection table.
    positions: HashMap<u32, (u32, u32)>,
    icmp_limit: IcmpLimiter,
    /// When a VIP conflict was last logged.
    conflict_logged_ms: Option<u64>,
    /// The connections were handed to another process: stop.
    handed_off: bool,
    /// HA: where connection changes are queued for the peers.
    sync: Option<std::sync::mpsc::SyncSender<sync::SyncEvent>>,
    /// Sends the gratuitous ARP for new VIPs: one worker of several does.
    announces: bool,
    /// Hands established DR flows to the backend's kernel program where
    /// it can (`offload.rs`).
    offload: bool,
    /// Sweep wraps to go at the fastest pace: two after a table change,
    /// so one whole pass sees the new table.
    sweep_urgent: u8,
    /// With offload: the counters of real servers that left the table,
    /// until that pass is done (`offload::Retired`).
    retired: offload::Retired,
    /// What the control plane writes after a table or a request, and the
    /// backend polls with the sockets (`PacketIo::wake_on`): with it, an
    /// idle data plane sleeps until its next housekeeping is due.
    wake: Option<Arc<crate::host::sys::Wake>>,
}

/// The sweep's rule at `now`: a connection whose real server is gone, or
/// whose timer ran out (its server's count given back), goes; the others
/// are remapped to the current table and stay. A backup's synced timers
/// do not run (the active director removes what ends). Removals are
/// queued for the peers.
fn still_live<'t>(
    table: &'t Table,
    positions: &'t HashMap<u32, (u32, u32)>,
    now: u64,
    sync: Option<&'t std::sync::mpsc::SyncSender<sync::SyncEvent>>,
    counters: &'t DataplaneCounters,
    mut gone_offloaded: impl FnMut(&conn::ConnKey, &Conn) + 't,
) -> impl FnMut(&conn::ConnKey, &mut Conn) -> bool + 't {
    let sync = sync.filter(|_| !table.standby);
    move |k, c| {
        let live = match locate(table, positions, c) {
            None => false,
            Some(_) if c.expires_ms(now) > now || table.standby => true,
            Some((_, d)) => {
                release(&d.state, c);
                false
            }
        };
        if !live && c.offloaded {
            gone_offloaded(k, c);
        }
        if !live && let Some(tx) = sync {
            sync::queue(
                tx,
                counters,
                sync::SyncEvent::Record(sync::Record::Remove(*k)),
            );
        }
        live
    }
}

/// The service and real server of a connection in `table`, remapping its
/// indexes if the table changed since; `None` if the server is gone.
#[inline]
pub(super) fn locate<'t>(
    table: &'t Table,
    positions: &HashMap<u32, (u32, u32)>,
    c: &mut Conn,
) -> Option<(&'t ServiceEntry, &'t DestEntry)> {
    if table.dest(c.svc, c.dest, c.dest_id).is_none() {
        let &(s, d) = positions.get(&c.dest_id)?;
        (c.svc, c.dest) = (s, d);
    }
    table.dest(c.svc, c.dest, c.dest_id)
}

/// Gives a connection's slot back in its real server's active or inactive
/// count.
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
        Dataplane::with_links(shared, vec![link], counters, requests, DEFAULT_MAX_CONNS)
    }

    /// A data plane on several links (`RxMeta::link` and `PacketIo::send`
    /// number them in this order). At least one is needed. The connection
    /// table holds at most `max_conns` entries.
    pub fn with_links(
        shared: Arc<ArcSwap<Table>>,
        links: Vec<LinkParams>,
        counters: Arc<DataplaneCounters>,
        requests: Option<Receiver<DpRequest>>,
        max_conns: usize,
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
            sched,
            conns: ConnTable::new(max_conns),
            links,
            counters,
            requests,
            scratch: vec![0u8; FRAME_BUF],
            scratch2: vec![0u8; FRAME_BUF],
            ip_id: 1,
            clock: Instant::now(),
            next_sweep_ms: SWEEP_STEP_MS,
            next_stats_ms: 0,
            positions: table.dest_positions(),
            icmp_limit: IcmpLimiter::new(IcmpLimits::default()),
            conflict_logged_ms: None,
            handed_off: false,
            sync: None,
            announces: true,
            offload: false,
            sweep_urgent: 0,
            retired: offload::Retired::default(),
            wake: None,
            table,
        }
    }

    /// This data plane is worker `index` of several (`--workers`): only
    /// the first announces VIPs, so a new VIP is announced once.
    pub fn set_worker(&mut self, index: usize) {
        self.announces = index == 0;
    }

    /// Replaces the limits on the ICMP errors the director originates.
    pub fn set_icmp_limits(&mut self, limits: IcmpLimits) {
        self.icmp_limit = IcmpLimiter::new(limits);
    }

    #[inline]
    fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    /// The control plane's wake-up, already in `io`'s poll set
    /// (`PacketIo::wake_on`).
    pub fn set_wake(&mut self, wake: Arc<crate::host::sys::Wake>) {
        self.wake = Some(wake);
    }

    /// Runs until `stop` is set (and the wake-up written).
    pub fn run<I: PacketIo>(&mut self, io: &mut I, stop: &AtomicBool) {
        let mut buf = vec![0u8; FRAME_BUF];
        // Without a wake-up, requests and tables wait for a timeout.
        let longest = match self.wake {
            Some(_) => 1000,
            None => 20,
        };
        while !stop.load(Relaxed) && !self.handed_off {
            // Until the next housekeeping is due: a sweep with work left
            // does not wait for traffic.
            let due = self.next_sweep_ms.min(self.next_stats_ms);
            let wait = due.saturating_sub(self.now_ms()).min(longest);
            self.poll_once(io, &mut buf, Duration::from_millis(wait));
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
            Ok(None) => {
                // Woken (or timed out): the next wake-up starts now.
                if let Some(w) = &self.wake {
                    w.drain();
                }
                false
            }
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
            let pass = self.sweep_pass_ms();
            let step = self.sweep_step(io, now, pass);
            self.next_sweep_ms = match step.removed >= SWEEP_REMOVE {
                true => now,
                false => now + sweep_step_ms(pass),
            };
        }
        if now >= self.next_stats_ms {
            let c = &self.counters;
            c.rx_socket_drops.fetch_add(io.rx_drops(), Relaxed);
            c.tx_errors.fetch_add(io.tx_errors(), Relaxed);
            c.xdp_rx.fetch_add(io.steered(), Relaxed);
            c.offload_forwarded
                .fetch_add(io.offloaded_frames(), Relaxed);
            c.conns.store(self.conns.len() as u64, Relaxed);
            c.conns_limit.store(self.conns.limit() as u64, Relaxed);
            self.next_stats_ms = now + 1000;
        }
        // A request answered after a table change must see that change.
        self.refresh_table(io);
        let requests = self.requests.take();
        if let Some(rx) = &requests {
            while let Ok(req) = rx.try_recv() {
                match req {
                    DpRequest::Conns { from, reply } => {
                        let _ = reply.send(self.conn_chunk(from, CONN_CHUNK));
                    }
                    DpRequest::Handoff(reply) => {
                        let _ = reply.send(self.export_conns());
                        self.handed_off = true;
                    }
                    DpRequest::SyncDigest(round) => {
                        self.emit(sync::SyncEvent::Digest(round, self.digest()))
                    }
                    DpRequest::SyncChunk { from, mark, reply } => {
                        let _ = reply.send(self.sync_chunk(from, CONN_CHUNK, mark));
                    }
                    DpRequest::SyncApply(recs) => {
                        self.apply_sync(&recs);
                    }
                    DpRequest::ResyncBegin => self.resync_begin(),
                    DpRequest::ResyncEnd(reply) => {
                        let _ = reply.send(self.resync_end());
                    }
                    DpRequest::Digest(reply) => {
                        let _ = reply.send(self.digest());
                    }
                }
            }
        }
        self.requests = requests;
    }

    /// One bounded step of the table's sweep: drops connections whose
    /// timer ran out or whose real server is gone, and remaps the rest to
    /// the current table. Sized so a whole pass takes `pass` ms.
    fn sweep_step<I: PacketIo>(&mut self, io: &mut I, now: u64, pass: u64) -> conn::SweepStep {
        let visit = (self.conns.slots() * sweep_step_ms(pass) as usize)
            .div_ceil(pass as usize)
            .max(64);
        let books = offload::Books {
            table: &self.table,
            positions: &self.positions,
            retired: &self.retired,
        };
        let keep = still_live(
            books.table,
            books.positions,
            now,
            self.sync.as_ref(),
            &self.counters,
            |k, c| offload::take_back(io, &books, k, c),
        );
        let step = self.conns.sweep_step(visit, SWEEP_REMOVE, keep);
        self.counters.conns.store(self.conns.len() as u64, Relaxed);
        if step.wrapped && self.sweep_urgent > 0 {
            self.sweep_urgent -= 1;
            if self.sweep_urgent == 0 {
                self.retired.forget();
            }
        }
        step
    }

    /// How long the sweep's pass may take now (`SWEEP_PASS_MS`).
    fn sweep_pass_ms(&self) -> u64 {
        if self.sweep_urgent > 0 || self.conns.len() * 10 >= self.conns.limit() * 9 {
            return SWEEP_PASS_MS;
        }
        match self.conns.shortest_timeout(&self.table.timeouts) {
            None => SWEEP_PASS_MAX_MS,
            Some(t) => (u64::from(t) * 1000 / 8).clamp(SWEEP_PASS_MS, SWEEP_PASS_MAX_MS),
        }
    }

    /// Drops every connection whose timer ran out by `now`, in one pass
    /// (tests; the data plane itself sweeps in bounded steps).
    pub fn expire(&mut self, now: u64) {
        // "Later than every timer": within the timers' 99-day window of the
        // clock (the longest timeout is 31 days).
        let now = now.min(self.now_ms() + 32 * 86_400_000);
        // (Tests: their backends offload nothing.)
        let keep = still_live(
            &self.table,
            &self.positions,
            now,
            self.sync.as_ref(),
            &self.counters,
            |_, _| {},
        );
        self.conns.retain(keep);
    }

    /// Up to `n` connections from slot `from` on, for `-Lnc`, and where
    /// the next chunk starts.
    pub fn conn_chunk(&self, from: usize, n: usize) -> (Vec<ConnInfo>, Option<usize>) {
        let now = self.now_ms();
        let (chunk, next) = self.conns.chunk(from, n);
        let infos = chunk
            .into_iter()
            .filter_map(|(k, mut c)| {
                // Past its timer, not yet swept: gone (a backup's synced
                // timers do not run, its entries stay listed).
                if c.expires_ms(now) <= now && !self.table.standby {
                    return None;
                }
                let (_, d) = locate(&self.table, &self.positions, &mut c)?;
                Some(ConnInfo {
                    protocol: k.protocol,
                    caddr: k.caddr,
                    cport: k.cport,
                    vaddr: k.vaddr,
                    vport: k.vport,
                    daddr: d.addr,
                    dport: d.port,
                    state: c.state.name().to_string(),
                    expires_secs: c.expires_ms(now).saturating_sub(now).div_ceil(1000),
                })
            })
            .collect();
        (infos, next)
    }

    /// Every tracked connection (tests; the daemon lists in chunks).
    pub fn conn_list(&self) -> Vec<ConnInfo> {
        let mut all = Vec::new();
        let mut from = Some(0);
        while let Some(f) = from {
            let (mut part, next) = self.conn_chunk(f, CONN_CHUNK);
            all.append(&mut part);
            from = next;
        }
        all
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
        self.positions = new.dest_positions();
        self.sweep_urgent = 2;
        if self.offload {
            self.retired.table_changed(&old, &self.positions);
        }
        // Announce what is new to this director: every VIP when it becomes
        // active (or is asked to repeat), else the VIPs that appeared. A
        // backup announces nothing.
        let all = (old.standby && !new.standby) || old.announce != new.announce;
        let fresh: Vec<Ipv4Addr> = match new.standby || !self.announces {
            true => Vec::new(),
            false => new
                .vips()
                .iter()
                .copied()
                .filter(|v| all || !old.is_vip(*v))
                .collect(),
        };
        for vip in fresh {
            self.send_garp(io, vip);
        }
        if old.standby && !self.table.standby {
            self.restart_timers();
        }
        if !old.standby && self.table.standby {
            self.take_back_all(io);
        }
    }

    /// The link a frame arrived on (link 0 for a number the backend should
    /// not have produced).
    #[inline]
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

    /// Classifies an IPv4 frame once and hands it, with its checked
    /// layout, to the handler of its class.
    fn handle_ipv4<I: PacketIo>(&mut self, io: &mut I, frame: &mut [u8], meta: RxMeta) {
        match self.classify(frame, meta) {
            Ok((Class::Service(flow), l)) => self.for_service(io, frame, meta, l, &flow),
            Ok((Class::Reply(key), l)) => self.nat_reply(io, frame, meta, l, key),
            Ok((Class::IcmpRelated(related), l)) => self.icmp_related(io, frame, meta, l, related),
            Ok((Class::Kernel, _)) => {}
            Err(_) => DataplaneCounters::bump(&self.counters.malformed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::conn::{ConnKey, ConnState};
    use crate::dataplane::tcp_state::TcpState;
    use crate::lvs::service::{Forward, Protocol, Timeouts};

    fn dataplane(max_conns: usize) -> (Dataplane, Arc<ArcSwap<Table>>) {
        let shared = Arc::new(ArcSwap::from_pointee(Table::new(
            1,
            vec![],
            Timeouts::default(),
        )));
        let link = LinkParams {
            mac: MacAddr::ZERO,
            mtu: 1500,
            addr: Ipv4Addr::UNSPECIFIED,
        };
        let counters = Arc::new(DataplaneCounters::default());
        let dp = Dataplane::with_links(shared.clone(), vec![link], counters, None, max_conns);
        (dp, shared)
    }

    fn add(dp: &mut Dataplane, port: u16, state: ConnState) {
        let k = ConnKey {
            protocol: Protocol::Udp,
            caddr: Ipv4Addr::new(198, 19, 0, 1),
            cport: port,
            vaddr: Ipv4Addr::new(198, 18, 0, 100),
            vport: 9,
        };
        let c = Conn::new(
            0,
            0,
            1,
            state,
            300_000,
            Forward::Route,
            Ipv4Addr::new(198, 18, 0, 11),
            9,
            0,
            MacAddr::ZERO,
        );
        dp.conns.insert(k, c).unwrap();
    }

    /// The sweep's pace: slow while every entry's timer is long, an eighth
    /// of the shortest one, the fastest after a table change (until a
    /// whole pass has seen it) and near the table's limit.
    #[test]
    fn the_sweep_goes_as_fast_as_the_shortest_timer_needs() {
        let (mut dp, _) = dataplane(100);
        assert_eq!(dp.sweep_pass_ms(), SWEEP_PASS_MAX_MS);
        for p in 0..10 {
            add(&mut dp, p, ConnState::Udp);
        }
        // UDP's 300 s: 37.5 s, held to the slowest pace.
        assert_eq!(dp.sweep_pass_ms(), SWEEP_PASS_MAX_MS);
        add(&mut dp, 100, ConnState::Tcp(TcpState::LastAck));
        assert_eq!(dp.sweep_pass_ms(), 30_000 / 8);
        add(&mut dp, 101, ConnState::Tcp(TcpState::None));
        assert_eq!(dp.sweep_pass_ms(), SWEEP_PASS_MS);

        let (mut dp, shared) = dataplane(100);
        add(&mut dp, 1, ConnState::Udp);
        let mut io = crate::io::memory::MemoryIo::default();
        shared.store(Arc::new(Table::new(2, vec![], Timeouts::default())));
        dp.refresh_table(&mut io);
        assert_eq!(dp.sweep_pass_ms(), SWEEP_PASS_MS);
        // Two wraps: the pass under way when the table changed, then a
        // whole one.
        for _ in 0..2 {
            while !dp.sweep_step(&mut io, 0, SWEEP_PASS_MS).wrapped {}
        }
        assert_eq!(dp.sweep_pass_ms(), SWEEP_PASS_MAX_MS);

        let (mut dp, _) = dataplane(10);
        for p in 0..9 {
            add(&mut dp, p, ConnState::Udp);
        }
        assert_eq!(dp.sweep_pass_ms(), SWEEP_PASS_MS, "near the limit");
    }
}
