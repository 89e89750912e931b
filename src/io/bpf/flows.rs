//! The offloaded flows the kernel programs forward themselves (Katran's
//! split): the XDP program's (`--io xdp --offload`) and the tc program's
//! (`--io packet --offload`) share these maps' layout, so both backends
//! hand a flow over, take it back and count what it forwarded alike.
//! IPv4 flows are in map `flows`, IPv6 ones in `flows6`, with the same
//! value.

use super::maps::{
    FLOW_CLOSING, Flow6Key, FlowKey, FlowMap, FlowValue, Forwarded, RealCount, RealCounts,
};
use crate::io::{AnyFlow, FlowFamily, FlowTuple, Handover, KernelFlow, Offloaded};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, OwnedFd};

impl FlowKey {
    /// The program's key for flow `f`.
    pub(super) fn of(f: &FlowTuple<Ipv4Addr>) -> FlowKey {
        FlowKey {
            saddr: f.saddr.octets(),
            daddr: f.daddr.octets(),
            sport: f.sport.to_be_bytes(),
            dport: f.dport.to_be_bytes(),
            proto: f.proto,
            pad: [0; 3],
        }
    }
}

impl Flow6Key {
    /// The program's key for IPv6 flow `f`.
    pub(super) fn of(f: &FlowTuple<Ipv6Addr>) -> Flow6Key {
        Flow6Key {
            saddr: f.saddr.octets(),
            daddr: f.daddr.octets(),
            sport: f.sport.to_be_bytes(),
            dport: f.dport.to_be_bytes(),
            proto: f.proto,
            pad: [0; 3],
        }
    }
}

/// One link's maps: its offloaded IPv4 and IPv6 flows, its program's
/// forwarded count, what it tells uvs of the flows it schedules, and
/// whether it may.
pub(super) struct LinkFlows {
    pub flows: FlowMap,
    pub flows6: FlowMap<Flow6Key>,
    /// The two maps' descriptors again, for the call aya lacks
    /// (`lookup_and_delete`).
    pub fds: [OwnedFd; 2],
    pub forwarded: Forwarded,
    pub events: aya::maps::RingBuf<aya::maps::MapData>,
    pub room: aya::maps::Array<aya::maps::MapData, u32>,
    /// `sched_counts`: scheduled, and new flows and establishments the
    /// full ring sent up, per CPU.
    pub sched_counts: Forwarded,
    /// What the program forwarded to each real server, by id, and the
    /// map's descriptor again (`lookup_and_delete`).
    pub real_counts: RealCounts,
    pub counts_fd: OwnedFd,
}

/// Each link's offloaded-flow maps and its program's forwarded count.
pub struct FlowMaps {
    maps: Vec<LinkFlows>,
    /// The counts as last read (the programs' run from attach).
    forwarded: u64,
    /// What `room` holds on every link.
    room: Option<bool>,
    /// The ring-full counts as last read.
    ring_full: u64,
    /// The real servers `real_counts` has an entry for, on every link.
    counted: std::collections::BTreeSet<u64>,
    /// The worker these are for (`room`'s index; workers.rs).
    worker: u32,
}

/// Writes `h`'s flow under `k` in `map` (again, for a refresh: what it
/// forwarded so far carries over). An entry that already says what `h`
/// says stays as it is: a write replaces the entry, and what the program
/// counts on the old one between the read and the write would be lost.
pub(super) fn write<K: aya::Pod>(map: &mut FlowMap<K>, k: K, h: &Handover<impl Copy>) -> bool {
    let old = map.get(&k, 0).ok();
    let v = FlowValue {
        dmac: h.dmac,
        smac: h.smac,
        // uvs hands over established flows only: nothing to report. But a
        // flow whose FIN or RST the program reported stays closing: a
        // refresh may come from a frame that reached uvs before that FIN
        // (uvs reads the report after it), and a closing flow made live
        // again would send the SYN that reuses its port up to uvs, and
        // that flow's end too (in a web benchmark, 4% of connections).
        state: old.map_or(0, |o| match o.state >= FLOW_CLOSING {
            true => o.state,
            false => 0,
        }),
        pad: [0; 3],
        tun_saddr: h.tun.map_or([0; 4], |t| t.src.octets()),
        tun_daddr: h.tun.map_or([0; 4], |t| t.dst.octets()),
        packets: old.map_or(0, |o| o.packets),
        bytes: old.map_or(0, |o| o.bytes),
        // The next frame up to uvs one interval from now.
        up_ns: crate::host::sys::monotonic_ns(),
        every_ns: h.up_every_ms.saturating_mul(1_000_000),
        id: h.dest_id,
    };
    let same = |o: FlowValue| FlowValue {
        up_ns: v.up_ns,
        ..o
    };
    if old.is_some_and(|o| same(o) == v) {
        return true;
    }
    map.insert(k, v, 0).is_ok()
}

/// Removes `k` from `map`, with what the program forwarded of it.
fn remove<K: aya::Pod>(map: &mut FlowMap<K>, fd: &OwnedFd, k: K) -> Option<Offloaded> {
    let v = match lookup_and_delete(fd, &k) {
        Ok(v) => v?,
        // A kernel without it for this map (before 5.14): two calls.
        Err(_) => {
            let v = map.get(&k, 0).ok()?;
            let _ = map.remove(&k);
            v
        }
    };
    Some(Offloaded {
        packets: v.packets,
        bytes: v.bytes,
    })
}

/// The flow under `k`, read and removed in one call: a take-back is one
/// system call, not two.
fn lookup_and_delete<K: aya::Pod>(fd: &OwnedFd, k: &K) -> std::io::Result<Option<FlowValue>> {
    let mut v = [FlowValue::default()];
    Ok(lookup_and_delete_into(fd, k, &mut v)?.then_some(v[0]))
}

/// The value under `k` in the map of `fd` read into `out` (one value, or
/// one per CPU for a per-CPU map) and the entry removed, in one call
/// (BPF_MAP_LOOKUP_AND_DELETE_ELEM); `false`: no such entry.
fn lookup_and_delete_into<K: aya::Pod, V: aya::Pod>(
    fd: &OwnedFd,
    k: &K,
    out: &mut [V],
) -> std::io::Result<bool> {
    // SAFETY: both are plain bytes (aya::Pod, no padding: maps.rs), the
    // slices exactly their sizes, alive for the call.
    let (key, value) = unsafe {
        (
            std::slice::from_raw_parts((k as *const K).cast::<u8>(), size_of::<K>()),
            std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<u8>(), size_of_val(out)),
        )
    };
    crate::host::sys::bpf_lookup_and_delete(fd.as_fd(), key, value)
}

/// Real server `id`'s per-CPU counts in `real_counts` (descriptor
/// `fd`), read and removed in one call. RealCount's 16 bytes need no
/// rounding: the buffer is the per-CPU value's size times the CPUs.
fn take_counts(fd: &OwnedFd, id: u64, cpus: usize) -> Option<Vec<RealCount>> {
    let mut v = vec![RealCount::default(); cpus];
    lookup_and_delete_into(fd, &id, &mut v).ok()?.then_some(v)
}

impl FlowMaps {
    pub(super) fn new(maps: Vec<LinkFlows>, worker: u32) -> FlowMaps {
        FlowMaps {
            worker,
            maps,
            forwarded: 0,
            room: None,
            ring_full: 0,
            counted: Default::default(),
        }
    }

    /// [`crate::io::PacketIo::real_counts`]: entries for the new ids
    /// first (before a flow of theirs is handed over), then each id's
    /// totals over the links, a gone one's read and removed in one call.
    pub fn real_counts(&mut self, ids: &[u64], each: &mut impl FnMut(u64, u64, u64)) {
        if !self.primary() {
            return;
        }
        let want: std::collections::BTreeSet<u64> = ids.iter().copied().collect();
        let cpus = aya::util::nr_cpus().map_or(1, |n| n.max(1));
        for id in want.difference(&self.counted) {
            for m in &mut self.maps {
                let zero = vec![RealCount::default(); cpus];
                if let Ok(v) = aya::maps::PerCpuValues::try_from(zero) {
                    // BPF_NOEXIST: an entry already there keeps counting.
                    let _ = m.real_counts.insert(id, v, 1);
                }
            }
        }
        for &id in want.union(&self.counted) {
            let gone = !want.contains(&id);
            let (mut packets, mut bytes) = (0, 0);
            for m in &mut self.maps {
                let per_cpu = match gone {
                    true => take_counts(&m.counts_fd, id, cpus),
                    false => m.real_counts.get(&id, 0).map(|v| v.to_vec()).ok(),
                };
                for c in per_cpu.unwrap_or_default() {
                    packets += c.packets;
                    bytes += c.bytes;
                }
            }
            each(id, packets, bytes);
        }
        self.counted = want;
    }

    /// Hands `h`'s flow to link `link`'s program (or writes it again: a
    /// refresh, with the real server's MAC as it is now).
    pub fn offload<A: FlowFamily>(&mut self, link: u8, h: &Handover<A>) -> bool {
        let Some(m) = self.maps.get_mut(usize::from(link)) else {
            return false;
        };
        match A::any(h.flow) {
            AnyFlow::V4(f) => write(&mut m.flows, FlowKey::of(&f), h),
            AnyFlow::V6(f) => write(&mut m.flows6, Flow6Key::of(&f), h),
        }
    }

    /// Whether these are worker 0's, which reads the programs' counters
    /// (totals over every worker's flows) for all.
    fn primary(&self) -> bool {
        self.worker == 0
    }

    /// Takes `flow` back from link `link`'s program, with what it
    /// forwarded.
    pub fn unoffload<A: FlowFamily>(&mut self, link: u8, flow: &FlowTuple<A>) -> Option<Offloaded> {
        let m = self.maps.get_mut(usize::from(link))?;
        match A::any(*flow) {
            AnyFlow::V4(f) => remove(&mut m.flows, &m.fds[0], FlowKey::of(&f)),
            AnyFlow::V6(f) => remove(&mut m.flows6, &m.fds[1], Flow6Key::of(&f)),
        }
    }

    /// The flows the programs scheduled, and the establishments of theirs,
    /// since the last call, link by link.
    pub fn kernel_flows(&mut self, each: &mut impl FnMut(KernelFlow)) {
        for (i, m) in self.maps.iter_mut().enumerate() {
            while let Some(r) = m.events.next() {
                if let Some(k) = super::events::parse(i as u8, &r) {
                    each(k);
                }
            }
        }
    }

    /// The ring buffers' descriptors: readable when an event waits.
    pub fn event_fds(&self) -> Vec<i32> {
        use std::os::fd::{AsFd, AsRawFd};
        self.maps
            .iter()
            .map(|m| m.events.as_fd().as_raw_fd())
            .collect()
    }

    /// Lets the programs schedule new flows, or stops them (uvs's table
    /// is near its limit: new flows come up, and uvs applies the limit).
    pub fn set_room(&mut self, room: bool) {
        if self.room == Some(room) {
            return;
        }
        let mut all = true;
        for m in &mut self.maps {
            all &= m.room.set(self.worker, u32::from(room), 0).is_ok();
        }
        self.room = all.then_some(room);
    }

    /// New flows and establishments the programs could not report since
    /// the last call (a full ring): the flows went up to uvs instead, and
    /// the establishments wait for a later ACK.
    pub fn ring_full(&mut self) -> u64 {
        if !self.primary() {
            return 0;
        }
        let total: u64 = self
            .maps
            .iter()
            .flat_map(|m| [1, 2].map(|i| m.sched_counts.get(&i, 0)))
            .filter_map(Result::ok)
            .map(|per_cpu| per_cpu.iter().sum::<u64>())
            .sum();
        let new = total.saturating_sub(self.ring_full);
        self.ring_full = total;
        new
    }

    /// Frames the programs forwarded since the last call.
    pub fn offloaded_frames(&mut self) -> u64 {
        if !self.primary() {
            return 0;
        }
        let total: u64 = self
            .maps
            .iter()
            .filter_map(|m| m.forwarded.get(&0, 0).ok())
            .map(|per_cpu| per_cpu.iter().sum::<u64>())
            .sum();
        let new = total.saturating_sub(self.forwarded);
        self.forwarded = total;
        new
    }
}
