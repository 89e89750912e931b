//! The data plane: one loop over a [`PacketIo`] that classifies each frame
//! ([`classify`]), looks up or schedules its connection ([`flow`], over the
//! [`conn_table`] of [`conn`] entries and the schedulers of
//! [`crate::lvs::sched`]) and forwards it ([`egress`], with [`nat`] and
//! [`gso`] as helpers); [`arp`] answers for the VIPs. Between frames it
//! sweeps the connection table (`sweep.rs`) and answers the control
//! plane (`requests.rs`). It reads only the immutable [`Table`] the
//! control plane publishes; the connection table and scheduler state are
//! its own.
//!
//! This file holds the struct and its loop; each step's file adds its
//! methods to it (`impl Dataplane`) and imports it, never the other way.

mod adopt;
pub mod arp;
mod books;
pub mod classify;
pub mod conn;
pub mod conn_table;
pub mod egress;
pub mod egress6;
pub mod flow;
pub mod gso;
pub mod handoff;
pub mod icmp_limit;
pub mod ipv6;
mod live_counts;
pub mod nat;
pub mod nat6;
mod ndp;
pub mod offload;
mod reply6;
mod requests;
mod schedule;
mod sweep;
pub mod sync;
pub mod tcp_state;
mod trace;
pub mod tunnel;

use crate::io::{FRAME_BUF, PacketIo, PacketType, RxMeta};
use crate::lvs::conn::DEFAULT_MAX_CONNS;
use crate::lvs::request::DpRequest;
use crate::lvs::sched::{Before, SchedState};
use crate::lvs::stats::{DataplaneCounters, LOOP_IDLE_MAX_MS};
use crate::lvs::sync::SyncEvent;
use crate::lvs::table::Table;
use crate::wire::{EtherType, EthernetFrame, MacAddr};
use arc_swap::ArcSwap;
use books::Retired;
use conn_table::ConnTable;
use icmp_limit::{IcmpLimiter, IcmpLimits};
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
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

/// The interface facts the data plane needs, for each of its links.
#[derive(Debug, Clone, Copy)]
pub struct LinkParams {
    pub mac: MacAddr,
    pub mtu: u32,
    /// The director's own address there (unspecified if none): the source
    /// of ICMP errors about NAT replies, which are not addressed to a VIP.
    pub addr: Ipv4Addr,
    /// Its global IPv6 address (unspecified if none): the same for NAT66.
    pub addr6: std::net::Ipv6Addr,
}

pub struct Dataplane {
    shared: Arc<ArcSwap<Table>>,
    table: Arc<Table>,
    sched: Vec<SchedState>,
    conns: ConnTable,
    /// IPv6 connections: a table of their own, so an IPv4 entry stays
    /// 64 bytes (docs/ipv6.md).
    conns6: ConnTable<Ipv6Addr>,
    links: Vec<LinkParams>,
    counters: Arc<DataplaneCounters>,
    requests: Option<Receiver<DpRequest>>,
    scratch: Vec<u8>,
    /// Second buffer: encapsulation of segments built in `scratch`.
    scratch2: Vec<u8>,
    /// IP id of outer IPIP headers sent without DF (its low 16 bits),
    /// and of IPv6 tunnels' fragments.
    ip_id: u32,
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
    sync: Option<std::sync::mpsc::SyncSender<SyncEvent>>,
    /// Sends the gratuitous ARP for new VIPs: one worker of several does.
    announces: bool,
    /// The VIPs are routed here (`--announce routed`): no ARP or
    /// neighbour advertisement for them, asked or not.
    routed: bool,
    /// Hands established DR flows to the backend's kernel program where
    /// it can (`offload.rs`).
    offload: bool,
    /// Sweep wraps to go at the fastest pace: two after a table change,
    /// so one whole pass sees the new table.
    sweep_urgent: u8,
    /// With offload: the counters of real servers that left the table,
    /// until that pass is done (`books::Retired`).
    retired: Retired,
    /// Reports from the kernel program, read and entered in batches
    /// (`adopt.rs`); kept to reuse its room.
    kernel_flows: Vec<crate::io::KernelFlow>,
    /// When the loop must read the program's reports again (ms, 0: no
    /// need): a report wakes uvs only if none did in the last
    /// millisecond (io/bpf/sched.h: submit), so after a read that found
    /// reports, the loop reads again about two milliseconds later.
    kernel_drain_ms: u64,
    /// What the kernel program had forwarded to each real server at the
    /// last read (`live_counts.rs`).
    real_counted: HashMap<u64, (u64, u64)>,
    /// A report was refused for want of room: the program stops
    /// scheduling until the tables have room again (`adopt.rs`).
    kernel_full: bool,
    /// What the control plane writes after a table or a request, and the
    /// backend polls with the sockets (`PacketIo::wake_on`): with it, an
    /// idle data plane sleeps until its next housekeeping is due.
    wake: Option<Arc<crate::host::sys::Wake>>,
    /// `uvs trace --live`'s switch, filter and channel (`trace.rs`).
    trace: Arc<crate::lvs::trace::TraceTap>,
    /// This worker's index (`--workers`), as traces name it.
    worker: u16,
}

/// An address family's connection table among the data plane's two, so
/// what enters, updates, removes and walks entries (sync, the handoff) is
/// written once for both: `A::table_mut(&mut self.conns, &mut self.conns6)`
/// borrows only the tables, leaving the rest of the data plane free.
pub(crate) trait Family: crate::io::FlowFamily {
    fn table<'a>(v4: &'a ConnTable, v6: &'a ConnTable<Ipv6Addr>) -> &'a ConnTable<Self>;
    fn table_mut<'a>(
        v4: &'a mut ConnTable,
        v6: &'a mut ConnTable<Ipv6Addr>,
    ) -> &'a mut ConnTable<Self>;
}

impl Family for Ipv4Addr {
    fn table<'a>(v4: &'a ConnTable, _: &'a ConnTable<Ipv6Addr>) -> &'a ConnTable {
        v4
    }
    fn table_mut<'a>(v4: &'a mut ConnTable, _: &'a mut ConnTable<Ipv6Addr>) -> &'a mut ConnTable {
        v4
    }
}

impl Family for Ipv6Addr {
    fn table<'a>(_: &'a ConnTable, v6: &'a ConnTable<Ipv6Addr>) -> &'a ConnTable<Ipv6Addr> {
        v6
    }
    fn table_mut<'a>(
        _: &'a mut ConnTable,
        v6: &'a mut ConnTable<Ipv6Addr>,
    ) -> &'a mut ConnTable<Ipv6Addr> {
        v6
    }
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
            .map(|s| SchedState::carried(None, s.scheduler, &s.log, &s.dests))
            .collect();
        Dataplane {
            shared,
            sched,
            conns: ConnTable::new(max_conns),
            conns6: ConnTable::new(max_conns),
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
            routed: false,
            offload: false,
            sweep_urgent: 0,
            retired: Retired::default(),
            kernel_flows: Vec::new(),
            kernel_drain_ms: 0,
            real_counted: HashMap::new(),
            kernel_full: false,
            wake: None,
            trace: Arc::default(),
            worker: 0,
            table,
        }
    }

    /// This data plane is worker `index` of several (`--workers`): only
    /// the first announces VIPs, so a new VIP is announced once.
    pub fn set_worker(&mut self, index: usize) {
        self.announces = index == 0;
        self.worker = index as u16;
    }

    /// The live trace's tap, shared with the control plane and the other
    /// workers (`uvs trace --live`).
    pub fn set_trace(&mut self, tap: Arc<crate::lvs::trace::TraceTap>) {
        self.trace = tap;
    }

    /// The VIPs reach this director by routing (`--announce routed`):
    /// it answers no ARP or neighbour solicitation for them and announces
    /// none, so several directors can hold the same VIPs.
    pub fn set_routed(&mut self, routed: bool) {
        self.routed = routed;
    }

    /// Replaces the limits on the ICMP errors the director originates.
    pub fn set_icmp_limits(&mut self, limits: IcmpLimits) {
        self.icmp_limit = IcmpLimiter::new(limits);
    }

    #[inline]
    fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    /// Family `A`'s connection table.
    #[inline]
    fn conns_of<A: Family>(&self) -> &ConnTable<A> {
        A::table(&self.conns, &self.conns6)
    }

    #[inline]
    fn conns_mut<A: Family>(&mut self) -> &mut ConnTable<A> {
        A::table_mut(&mut self.conns, &mut self.conns6)
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
            Some(_) => LOOP_IDLE_MAX_MS,
            None => 20,
        };
        let mut turns = self.counters.loops.load(Relaxed);
        while !stop.load(Relaxed) && !self.handed_off {
            // The watchdog's mark: a plain store of a local count, no
            // read-modify-write and no syscall per frame.
            turns = turns.wrapping_add(1);
            self.counters.loops.store(turns, Relaxed);
            // Until the next housekeeping is due: a sweep with work left
            // does not wait for traffic.
            let wait = self.wait_ms(longest);
            self.poll_once(io, &mut buf, Duration::from_millis(wait));
        }
    }

    /// How long the loop may wait for a frame or a wake-up (at most
    /// `longest` ms): until the next housekeeping, or until the next read
    /// of the kernel program's reports that a report without its own
    /// wake-up may need ([`Self::reports_due_ms`]).
    pub fn wait_ms(&self, longest: u64) -> u64 {
        let now = self.now_ms();
        let housekeeping = self.next_sweep_ms.min(self.next_stats_ms);
        let reports = self.reports_due_ms().unwrap_or(u64::MAX);
        housekeeping.saturating_sub(now).min(reports).min(longest)
    }

    /// In how many ms the loop must read the program's reports again,
    /// woken or not: `None` until a read finds reports, and again once a
    /// read past that time finds none (`adopt.rs`).
    pub fn reports_due_ms(&self) -> Option<u64> {
        (self.kernel_drain_ms != 0).then(|| self.kernel_drain_ms.saturating_sub(self.now_ms()))
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
                // The flows the kernel program scheduled before this frame
                // came up: its flow may be one of them.
                self.adopt_kernel_flows(io);
                let len = meta.len.min(buf.len());
                self.handle_frame(io, &mut buf[..len], meta);
                true
            }
            Ok(None) => {
                // Woken (or timed out): the next wake-up starts now.
                if let Some(w) = &self.wake {
                    w.drain();
                }
                // The programs' maps are written before a table is
                // published: a report may name a server of the table that
                // woke us.
                self.refresh_table(io);
                self.adopt_kernel_flows(io);
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
            c.kernel_ring_full.fetch_add(io.kernel_ring_full(), Relaxed);
            c.conns
                .store((self.conns.len() + self.conns6.len()) as u64, Relaxed);
            c.conns_limit.store(self.conns.limit() as u64, Relaxed);
            self.fold_real_counts(io);
            self.next_stats_ms = now + 1000;
        }
        // A request answered after a table change must see that change.
        self.refresh_table(io);
        let requests = self.requests.take();
        if let Some(rx) = &requests {
            while let Ok(req) = rx.try_recv() {
                self.answer(req);
            }
        }
        self.requests = requests;
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
            let before = old
                .services
                .iter()
                .position(|o| o.id == s.id)
                .map(|i| Before {
                    state: &self.sched[i],
                    epoch: old.services[i].epoch,
                    dests: &old.services[i].dests,
                });
            sched.push(SchedState::carried(before, s.scheduler, &s.log, &s.dests));
        }
        self.sched = sched;
        self.positions = new.dest_positions();
        self.sweep_urgent = 2;
        if self.offload {
            self.retired.table_changed(&old, &self.positions);
        }
        // Announce what is new to this director: every VIP when it becomes
        // active (or is asked to repeat), else the VIPs that appeared. A
        // backup announces nothing, nor does a director the VIPs are
        // routed to.
        let all = (old.standby && !new.standby) || old.announce != new.announce;
        let quiet = new.standby || !self.announces || self.routed;
        let fresh: Vec<Ipv4Addr> = match quiet {
            true => Vec::new(),
            false => new
                .vips()
                .iter()
                .copied()
                .filter(|v| all || !old.is_vip(*v))
                .collect(),
        };
        let fresh6: Vec<Ipv6Addr> = match quiet {
            true => Vec::new(),
            false => new
                .vips6()
                .iter()
                .copied()
                .filter(|v| all || !old.is_vip6(*v))
                .collect(),
        };
        for vip in fresh {
            self.send_garp(io, vip);
        }
        for vip in fresh6 {
            self.send_unsolicited_na(io, vip);
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
            // Solicitations go to a solicited-node multicast address.
            EtherType::IPV6
                if matches!(meta.pkt_type, PacketType::Host | PacketType::Multicast) =>
            {
                self.handle_ipv6(io, frame, meta)
            }
            _ => {}
        }
    }
}
