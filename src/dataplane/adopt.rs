//! The flows the kernel program schedules itself (issue 29: `--offload`
//! on a service whose scheduler the program can compute, `io/bpf/
//! sched.rs`): uvs is off their path but keeps knowing each of them. The
//! program reports every flow it scheduled and every establishment of
//! its TCP flows through a ring buffer; here each report becomes what
//! uvs's own path would have made of the same frame: the connection
//! entered (counted, synced to the peers, listed by `-Lnc`, in the
//! digest and the handoff) and marked offloaded, so its FIN, its timer or
//! its server's removal takes it back as for any offloaded flow.
//! Reports are read before each frame uvs handles, so no frame of such a
//! flow reaches uvs before the flow does. A flow's first frame is counted
//! from its report (the program's counts of the flow start after it), and
//! a UDP flow's second datagram is reported too, so uvs knows which of the
//! program's flows carried only one packet. A full table makes room as
//! for uvs's own new connections (the oldest entry that saw one packet);
//! an evicted one-packet UDP flow is not taken back from the program (a
//! system call that, under a flood, finds the program's smaller map has
//! dropped it already): if it sends again, the program reports it and uvs
//! enters it again, or, its real server gone, the frame comes up. The
//! program stops scheduling only when an entry is refused.

use super::books::count_in_many;
use super::conn_table::InsertError;
use super::flow::{Found, touch};
use super::offload::{evicted_back, take_back, tuple};
use super::schedule::{count_new, fresh, held};
use super::{Dataplane, Family};
use crate::io::{AnyFlow, FlowTuple, KernelFlow, KernelFlowEvent, PacketIo};
use crate::lvs::conn::ConnKey;
use crate::lvs::service::Protocol;
use crate::lvs::stats::DataplaneCounters;
use crate::lvs::sync::{Record, SyncEvent};
use crate::wire::MacAddr;
use crate::wire::tcp::flags;

/// The reports' buffer keeps room for this many between calls (a burst
/// may need more, given back after it).
const BATCH: usize = 256;

/// How many reports ahead the connection table's buckets are asked for
/// (and their first slots half as many ahead).
const AHEAD: usize = 8;

impl Dataplane {
    /// Reads what the kernel program did since the last call and enters
    /// it; then tells the program whether the table has room for more.
    pub(super) fn adopt_kernel_flows<I: PacketIo>(&mut self, io: &mut I) {
        if !self.offload {
            return;
        }
        let mut got = std::mem::take(&mut self.kernel_flows);
        io.kernel_flows(&mut |k| got.push(k));
        // Reports may follow without a wake-up for a millisecond after
        // one that woke us (io/bpf/sched.h: submit): read again after
        // that (2 ms: the clock's milliseconds are whole), until a read
        // then finds none.
        // The clock only when there is something to decide: this runs
        // before every frame.
        if !got.is_empty() {
            self.kernel_drain_ms = self.now_ms() + 2;
        } else if self.kernel_drain_ms != 0 && self.now_ms() >= self.kernel_drain_ms {
            self.kernel_drain_ms = 0;
        }
        for (i, k) in got.iter().enumerate() {
            // The table's cache lines a few reports ahead (a flood's
            // reports each miss the caches on a full table).
            for (ahead, slot) in [(AHEAD, false), (AHEAD / 2, true)] {
                if let Some(n) = got.get(i + ahead) {
                    self.prefetch(&n.flow, slot);
                }
            }
            if got.len() > i + AHEAD {
                self.conns.prefetch_victim(AHEAD);
            }
            match k.flow {
                AnyFlow::V4(t) => self.adopt(io, k, t),
                AnyFlow::V6(t) => self.adopt(io, k, t),
            }
        }
        got.clear();
        self.kernel_flows = got;
        self.kernel_flows.shrink_to(BATCH);
        io.set_room(self.has_room());
    }

    /// [`ConnTable::prefetch`] for flow `f`'s entry.
    fn prefetch(&self, f: &AnyFlow, slot: bool) {
        match f {
            AnyFlow::V4(t) => {
                if let Some(k) = key_of(t) {
                    self.conns.prefetch(&k, slot);
                }
            }
            AnyFlow::V6(t) => {
                if let Some(k) = key_of(t) {
                    self.conns6.prefetch(&k, slot);
                }
            }
        }
    }

    /// Whether the program may go on scheduling: yes while uvs enters
    /// what it reports, evicting as its own path does when its table is
    /// full (a flood of new flows stays in the kernel); no once an entry
    /// was refused for want of room (every entry established), until
    /// both tables have room again. Meanwhile new flows come up to uvs,
    /// which applies its limit itself.
    fn has_room(&mut self) -> bool {
        let room = |len: usize, limit: usize| len + (limit / 8).min(4096) < limit;
        if self.kernel_full
            && room(self.conns.len(), self.conns.limit())
            && room(self.conns6.len(), self.conns6.limit())
        {
            self.kernel_full = false;
        }
        !self.kernel_full
    }

    fn adopt<I: PacketIo, A: Family>(&mut self, io: &mut I, k: &KernelFlow, t: FlowTuple<A>) {
        let Some(key) = key_of(&t) else {
            return;
        };
        let from = (k.link, MacAddr(k.client_mac));
        match k.what {
            KernelFlowEvent::New {
                dest_id,
                tcp_flags,
                packets,
                bytes,
            } => {
                if !self.adopt_new(io, from, &key, dest_id, tcp_flags, Some((packets, bytes))) {
                    DataplaneCounters::bump(&self.counters.kernel_refused);
                    // Its next frame comes up, and uvs decides.
                    let _ = io.unoffload(k.link, &t);
                }
            }
            KernelFlowEvent::Established => self.adopt_established(io, from, &key),
            KernelFlowEvent::Close { tcp_flags } => self.adopt_close(io, from, &key, tcp_flags),
            KernelFlowEvent::Seen { dest_id } => {
                // Known: no longer a one-packet entry. Evicted meanwhile:
                // entered again, as the program still carries it (the
                // datagram is in the program's counts).
                let known = self.conns_of::<A>().get(&key).is_some()
                    || self.adopt_new(io, from, &key, dest_id, 0, None);
                if known {
                    self.conns_mut::<A>().mark_seen_twice(&key);
                } else {
                    DataplaneCounters::bump(&self.counters.kernel_refused);
                    let _ = io.unoffload(k.link, &t);
                }
            }
        }
    }

    /// Enters a flow the program scheduled to real server `dest_id` at a
    /// frame with `tcp_flags`, as `schedule` enters one of uvs's own, and
    /// counts that frame (`first`: packets on the wire, IP bytes) and the
    /// flow as one the program scheduled. `first` `None`: a flow entered
    /// again (evicted, then reported seen), a new connection as after any
    /// eviction, but not scheduled again. `false`: not entered (the caller
    /// takes it back from the program).
    fn adopt_new<I: PacketIo, A: Family>(
        &mut self,
        io: &mut I,
        from: (u8, MacAddr),
        key: &ConnKey<A>,
        dest_id: u64,
        tcp_flags: u8,
        first: Option<(u64, u64)>,
    ) -> bool {
        let Some(&(si, di)) = self.positions.get(&(dest_id as u32)) else {
            return false;
        };
        let (si, di) = (si as usize, di as usize);
        let svc = &self.table.services[si];
        let d = &svc.dests[di];
        let same = svc.key.protocol == key.protocol
            && svc.key.port == key.vport
            && svc.key.addr == key.vaddr.into()
            && d.id == dest_id;
        if !same {
            return false;
        }
        let now = self.now_ms();
        if let Some(c) = self.conns_of::<A>().get(key).copied() {
            let syn = key.protocol == Protocol::Tcp && tcp_flags & flags::SYN != 0;
            if !(syn && c.reusable_by_syn()) && c.expires_ms(now) > now {
                // A live flow uvs already has (the program's map had
                // dropped it, and it scheduled it again): uvs's entry
                // stands, and the flow's frames come up until uvs hands it
                // over again. The frame the program forwarded is the flow's.
                let books = self.books();
                if let Some((packets, bytes)) = first {
                    count_in_many(books.stats_of(&c), packets, bytes);
                }
                take_back(io, &books, key, &c);
                if let Some(e) = self.conns_mut::<A>().get_mut(key) {
                    e.offloaded = false;
                }
                return true;
            }
            // A SYN that reuses an ending entry (a client's port again
            // after TIME_WAIT), or an entry whose timer ran out: it ends
            // as in uvs's own path, and the program's flow is the new one.
            // (The program entered it only because the old one was no
            // longer in its map.)
            let places = (&*self.table, &self.positions);
            let conns = A::table_mut(&mut self.conns, &mut self.conns6);
            if let Found::Ended(_) = touch(conns, places, key, tcp_flags, from, now) {
                self.emit_with(|| SyncEvent::Record(Record::Remove(key.portable())));
            }
        }
        let d = &self.table.services[si].dests[di];
        let Ok(raddr) = held::<A>(d) else {
            return false;
        };
        let (mut c, entered) = fresh(&self.table, (si, di), key, raddr, from, tcp_flags, now);
        if !entered {
            return false;
        }
        c.offloaded = true;
        let inserted = self.conns_mut::<A>().insert(*key, c);
        evicted_back(io, &self.books(), &inserted);
        let full = matches!(inserted, Err(InsertError::Full));
        if self.entered(inserted, &c, (si, di)).is_err() {
            self.kernel_full |= full;
            return false;
        }
        self.emit_upsert(key, &c, false);
        count_new(&self.table, (si, di));
        if let Some((packets, bytes)) = first {
            count_in_many(self.books().stats_of(&c), packets, bytes);
            DataplaneCounters::bump(&self.counters.kernel_scheduled);
        }
        true
    }

    /// The client's FIN or RST on a flow the program carries: the entry
    /// moves as that frame would have moved it (FIN_WAIT or CLOSE, its
    /// timer, the peers told) and stays offloaded, so the flow's last
    /// frames stay in the kernel; the timer takes it back. A flow uvs
    /// does not have is taken back (its frames come up).
    fn adopt_close<I: PacketIo, A: Family>(
        &mut self,
        io: &mut I,
        from: (u8, MacAddr),
        key: &ConnKey<A>,
        tcp_flags: u8,
    ) {
        if self.conns_of::<A>().get(key).is_none() {
            let _ = io.unoffload(from.0, &tuple(key));
            return;
        }
        let now = self.now_ms();
        let _ = self.touched(io, key, tcp_flags, from, now);
    }

    /// The client's first ACK of a TCP flow the program scheduled: the
    /// entry moves as that frame would have moved it (established, its
    /// timer, its server's active count, the peers told). The program has
    /// moved its entry to the new state's interval itself, so writing it
    /// again changes nothing, unless the table changed meanwhile.
    fn adopt_established<I: PacketIo, A: Family>(
        &mut self,
        io: &mut I,
        from: (u8, MacAddr),
        key: &ConnKey<A>,
    ) {
        let now = self.now_ms();
        // Absent: not uvs's (refused when it was reported), so its frames
        // come up. (Ended: taken back already.)
        if self.conns_of::<A>().get(key).is_none() {
            let _ = io.unoffload(from.0, &tuple(key));
            return;
        }
        let Some(c) = self.touched(io, key, flags::ACK, from, now) else {
            return;
        };
        let Some((_, d)) = self.table.dest(c.svc, c.dest, c.dest_id) else {
            return;
        };
        if let Some(h) = self.handover(key, &c, from.0, d.mac)
            && c.offloaded
        {
            io.offload(from.0, &h);
        }
    }
}

/// uvs's key for the program's flow (`None`: not TCP or UDP).
fn key_of<A: Family>(t: &FlowTuple<A>) -> Option<ConnKey<A>> {
    Some(ConnKey {
        protocol: Protocol::from_number(t.proto)?,
        caddr: t.saddr,
        cport: t.sport,
        vaddr: t.daddr,
        vport: t.dport,
    })
}
