//! An in-memory backend: frames are queued by a test and whatever the data
//! plane sends is collected for inspection.

use super::{AnyFlow, FlowFamily, FlowTuple, Handover, KernelFlow, Offloaded, PacketIo, RxMeta};
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::io;
use std::net::Ipv6Addr;
use std::time::Duration;

#[derive(Default)]
pub struct MemoryIo {
    pub rx: VecDeque<(Vec<u8>, RxMeta)>,
    pub tx: Vec<Vec<u8>>,
    /// The link each frame in `tx` was sent on.
    pub tx_links: Vec<u8>,
    /// Takes super-frames whole (as AF_PACKET with a vnet header does);
    /// each is recorded in `tx` and its segment size in `tx_gso`.
    pub accept_gso: bool,
    pub tx_gso: Vec<(usize, super::Gso, (u16, u16), u16)>,
    /// Takes offloaded flows (as AF_XDP's program does): each is held in
    /// `offloaded` with its link, and gives back `forwarded_each` when
    /// taken back (recorded in `taken_back`).
    pub accept_offload: bool,
    pub offloaded: HashMap<FlowTuple, (u8, Handover)>,
    pub forwarded_each: Offloaded,
    pub taken_back: Vec<FlowTuple>,
    /// The same for IPv6 flows.
    pub offloaded6: HashMap<FlowTuple<Ipv6Addr>, (u8, Handover<Ipv6Addr>)>,
    pub taken_back6: Vec<FlowTuple<Ipv6Addr>>,
    /// What a test has the kernel program report (flows it scheduled,
    /// establishments), handed to the data plane at its next frame or
    /// wake-up; and what the data plane last said of its room.
    pub kernel_flows: VecDeque<KernelFlow>,
    pub room: Option<bool>,
    /// What the program forwarded to each real server, by id (a test
    /// adds to it), for the ids the data plane last asked to count.
    pub real_counts: HashMap<u64, (u64, u64)>,
    pub counted: Vec<u64>,
}

/// Takes flow `k` back from `held` if link `link` holds it, noting it in
/// `taken_back`.
fn take_back<K: Copy + Eq + Hash, V>(
    held: &mut HashMap<K, (u8, V)>,
    taken_back: &mut Vec<K>,
    link: u8,
    k: K,
) -> bool {
    match held.get(&k) {
        Some(h) if h.0 == link => {
            held.remove(&k);
            taken_back.push(k);
            true
        }
        _ => false,
    }
}

impl MemoryIo {
    pub fn new() -> MemoryIo {
        MemoryIo::default()
    }

    /// Queues a plain frame addressed to this host.
    pub fn push(&mut self, frame: Vec<u8>) {
        let meta = RxMeta {
            len: frame.len(),
            ..RxMeta::default()
        };
        self.rx.push_back((frame, meta));
    }

    /// Queues a frame with explicit metadata (offload flags, packet type).
    pub fn push_with(&mut self, frame: Vec<u8>, meta: RxMeta) {
        let len = frame.len();
        self.rx.push_back((frame, RxMeta { len, ..meta }));
    }

    pub fn take_sent(&mut self) -> Vec<Vec<u8>> {
        self.tx_links.clear();
        std::mem::take(&mut self.tx)
    }

    /// What was sent, with the link each frame went out on.
    pub fn take_sent_links(&mut self) -> Vec<(u8, Vec<u8>)> {
        let links = std::mem::take(&mut self.tx_links);
        links
            .into_iter()
            .zip(std::mem::take(&mut self.tx))
            .collect()
    }
}

impl PacketIo for MemoryIo {
    fn recv(&mut self, buf: &mut [u8], _timeout: Duration) -> io::Result<Option<RxMeta>> {
        match self.rx.pop_front() {
            None => Ok(None),
            Some((f, meta)) => {
                if f.len() > buf.len() {
                    return Err(io::Error::other("frame larger than receive buffer"));
                }
                buf[..f.len()].copy_from_slice(&f);
                Ok(Some(meta))
            }
        }
    }

    fn send(&mut self, link: u8, frame: &[u8]) -> io::Result<()> {
        self.tx.push(frame.to_vec());
        self.tx_links.push(link);
        Ok(())
    }

    fn send_gso(&mut self, link: u8, frame: &[u8], tx: super::GsoTx) -> Option<io::Result<()>> {
        if !self.accept_gso {
            return None;
        }
        self.tx_gso
            .push((self.tx.len(), tx.gso, tx.csum, tx.hdr_len));
        Some(self.send(link, frame))
    }

    fn offload<A: FlowFamily>(&mut self, link: u8, h: &Handover<A>) -> bool {
        if self.accept_offload {
            match A::any(h.flow) {
                AnyFlow::V4(f) => {
                    self.offloaded.insert(f, (link, h.of(f)));
                }
                AnyFlow::V6(f) => {
                    self.offloaded6.insert(f, (link, h.of(f)));
                }
            }
        }
        self.accept_offload
    }

    fn unoffload<A: FlowFamily>(&mut self, link: u8, flow: &FlowTuple<A>) -> Option<Offloaded> {
        let held = match A::any(*flow) {
            AnyFlow::V4(f) => take_back(&mut self.offloaded, &mut self.taken_back, link, f),
            AnyFlow::V6(f) => take_back(&mut self.offloaded6, &mut self.taken_back6, link, f),
        };
        held.then_some(self.forwarded_each)
    }

    fn kernel_flows(&mut self, each: &mut impl FnMut(KernelFlow)) {
        self.kernel_flows.drain(..).for_each(each);
    }

    fn set_room(&mut self, room: bool) {
        self.room = Some(room);
    }

    fn real_counts(&mut self, ids: &[u64], each: &mut impl FnMut(u64, u64, u64)) {
        for id in ids {
            self.real_counts.entry(*id).or_default();
        }
        for id in self
            .counted
            .iter()
            .chain(ids)
            .copied()
            .collect::<std::collections::BTreeSet<_>>()
        {
            let gone = !ids.contains(&id);
            let (p, b) = match gone {
                true => self.real_counts.remove(&id).unwrap_or_default(),
                false => self.real_counts[&id],
            };
            each(id, p, b);
        }
        self.counted = ids.to_vec();
    }
}

/// Replays a fixed set of frames forever and counts what is sent without
/// storing it: an allocation-free backend for benchmarks and for checking
/// that forwarding allocates nothing.
pub struct ReplayIo {
    frames: Vec<(Vec<u8>, RxMeta)>,
    next: usize,
    pub sent: usize,
}

impl ReplayIo {
    pub fn new(frames: Vec<(Vec<u8>, RxMeta)>) -> ReplayIo {
        assert!(!frames.is_empty(), "ReplayIo needs at least one frame");
        ReplayIo {
            frames,
            next: 0,
            sent: 0,
        }
    }

    /// Mean frame length, for throughput figures.
    pub fn mean_len(&self) -> usize {
        self.frames.iter().map(|f| f.0.len()).sum::<usize>() / self.frames.len()
    }
}

impl PacketIo for ReplayIo {
    fn recv(&mut self, buf: &mut [u8], _timeout: Duration) -> io::Result<Option<RxMeta>> {
        let (f, m) = &self.frames[self.next % self.frames.len()];
        self.next += 1;
        if f.len() > buf.len() {
            return Err(io::Error::other("frame larger than receive buffer"));
        }
        buf[..f.len()].copy_from_slice(f);
        Ok(Some(RxMeta { len: f.len(), ..*m }))
    }

    fn send(&mut self, _link: u8, _frame: &[u8]) -> io::Result<()> {
        self.sent += 1;
        Ok(())
    }
}
