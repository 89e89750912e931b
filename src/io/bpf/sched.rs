//! New flows scheduled by the kernel programs themselves (Katran's and
//! Cilium's split, issue 29): for each service whose scheduler's choice
//! can be computed from the published table alone, uvs writes the table
//! the program needs (maps.h: `services`, `slots`, `reals`):
//! - sh: ip_vs_sh's 256 buckets, each resolved to the server uvs's sh
//!   gives (its fallback included), indexed by the client's bucket;
//! - mh: ip_vs_mh's 4093 slots, each its server while that server's
//!   weight is above 0 (otherwise the frame goes up and uvs decides);
//! - rr, wrr, and fo and dh (whose choice is one server): the sequence
//!   uvs's own scheduler gives over one whole turn of the weights, which
//!   the program walks with one position for all CPUs (an atomic add,
//!   as IPVS holds one under a lock): the same order as uvs's own.
//!
//! The rest stay with uvs: lc, wlc, sed, nq and ovf read live counts;
//! persistent services need their templates; `-o`, mark services (tc
//! runs before the marks are set), NAT servers (their rewrite is uvs's),
//! TUN servers but an IPv4 service's IPv4 ones when the table has a
//! tunnel source (wrapped by the tc program, tunnel.h; the XDP program
//! sends their frames up), and servers on another link or not resolved
//! yet. Each link's program gets the servers it can send to (XDP_TX or a
//! redirect out of the link a frame came in on).

use super::Error;
use super::maps::{NO_REAL, Real, SCHED_MH, SCHED_SEQ, SCHED_SH, Svc, SvcKey};
use crate::lvs::conn::{ConnState, TcpState};
use crate::lvs::sched::SchedState;
use crate::lvs::sched::scheduler::{Member, NO_DEST, SchedKey, gcd};
use crate::lvs::service::{Forward, Protocol, SchedulerKind};
use crate::lvs::table::Table;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// The room in the programs' arrays, per half (maps in uvs.bpf.c): a
/// table that needs more leaves the services that do not fit with uvs.
const SLOTS: usize = 65536;
const REALS: usize = 8192;
const SERVICES: usize = 4096;
/// The longest rr/wrr sequence written (weights whose turn is longer
/// stay with uvs).
const MAX_SEQ: usize = 4096;

/// The inverse of hash_32's multiplier modulo 2^32: the client address
/// whose sh bucket is `b` is `(b << 24) * INV`.
const GOLDEN_INV: u32 = {
    let k: u32 = 0x61C8_8647;
    let mut inv = k;
    let mut i = 0;
    while i < 5 {
        inv = inv.wrapping_mul(2u32.wrapping_sub(k.wrapping_mul(inv)));
        i += 1;
    }
    inv
};

/// What one link's program needs: the services it schedules (each
/// `first` counted from 0) and their slots and real servers.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct KernelTable {
    pub services: BTreeMap<SvcKey, Svc>,
    pub slots: Vec<u32>,
    pub reals: Vec<Real>,
}

impl KernelTable {
    /// The table for link `link` (whose MAC is `mac`) of `table`.
    pub(super) fn of(table: &Table, link: u8, mac: [u8; 6]) -> KernelTable {
        let mut k = KernelTable::default();
        for (si, s) in table.services.iter().enumerate() {
            if k.services.len() >= SERVICES || si >= SERVICES {
                break;
            }
            let Some(slots) = slots_of(table, si) else {
                continue;
            };
            let (kind, picks) = slots;
            let (first, base) = (k.slots.len(), k.reals.len());
            if first + picks.len() > SLOTS || base + s.dests.len() > REALS {
                continue;
            }
            // Each of its servers: an entry the program can send to, or
            // none.
            let tun_source = table.tun_source;
            let usable: Vec<bool> = s
                .dests
                .iter()
                .map(|d| {
                    let how = match d.forward {
                        Forward::Route => true,
                        Forward::Tunnel => !tun_source.is_unspecified() && d.addr.is_ipv4(),
                        Forward::Masq => false,
                    };
                    how && d.link == link
                        && d.mac != crate::wire::MacAddr::ZERO
                        && d.addr.is_ipv4() == s.key.addr.is_ipv4()
                })
                .collect();
            k.reals.extend(s.dests.iter().map(|d| {
                let tun = match d.addr {
                    IpAddr::V4(rip) if d.forward == Forward::Tunnel => {
                        (tun_source.octets(), rip.octets())
                    }
                    _ => ([0; 4], [0; 4]),
                };
                Real {
                    dmac: d.mac.0,
                    smac: mac,
                    pad: 0,
                    tun_saddr: tun.0,
                    tun_daddr: tun.1,
                    id: d.id,
                }
            }));
            k.slots.extend(picks.iter().map(|p| match p {
                Some(i) if usable.get(*i).copied().unwrap_or(false) => (base + i) as u32,
                _ => NO_REAL,
            }));
            // A TCP flow's interval at its SYN and once established (the
            // program moves it), a UDP flow's.
            let states = match s.key.protocol {
                Protocol::Tcp => [TcpState::SynRecv, TcpState::Established].map(ConnState::Tcp),
                _ => [ConnState::Udp; 2],
            };
            let [every_ns, est_every_ns] =
                states.map(|st| st.up_every_ms(&table.timeouts) * 1_000_000);
            k.services.insert(
                key_of(s.key.addr, s.key.port, s.key.protocol),
                Svc {
                    index: si as u32,
                    first: first as u32,
                    count: picks.len() as u32,
                    kind,
                    port: u8::from(s.flags.port()),
                    pad: [0; 2],
                    every_ns,
                    est_every_ns,
                },
            );
        }
        k
    }
}

/// The program's key for a service.
fn key_of(addr: IpAddr, port: u16, protocol: Protocol) -> SvcKey {
    let mut a = [0u8; 16];
    let family = match addr {
        IpAddr::V4(v4) => {
            a[..4].copy_from_slice(&v4.octets());
            4
        }
        IpAddr::V6(v6) => {
            a = v6.octets();
            6
        }
    };
    SvcKey {
        addr: a,
        port: port.to_be_bytes(),
        proto: protocol.number(),
        family,
    }
}

/// How the program finds service `si`'s server and what each slot holds
/// (a server's index in the service's list, or none), if the program can
/// schedule it at all.
fn slots_of(table: &Table, si: usize) -> Option<(u8, Vec<Option<usize>>)> {
    let s = &table.services[si];
    // A mark service takes its VIP and ports' frames first (uvs looks a
    // frame up by its marks first, as IPVS does).
    let marked = table
        .marks()
        .lookup(s.key.protocol, s.key.addr, s.key.port)
        .is_some();
    let plain = s.persistence.is_none() && !s.ops && s.key.fwmark().is_none() && !marked;
    if !plain || !matches!(s.key.protocol, Protocol::Tcp | Protocol::Udp) || s.dests.is_empty() {
        return None;
    }
    let pool = table.pool(si)?;
    let mut st = SchedState::new(s.scheduler, &Member::of(&s.dests));
    let vaddr = crate::lvs::sched::scheduler::fold(s.key.addr);
    let key = |caddr: u32| SchedKey {
        caddr,
        cport: 0,
        vaddr,
    };
    match s.scheduler {
        SchedulerKind::Sh => {
            let picks = (0..256u32)
                .map(|b| st.schedule(&pool, &key((b << 24).wrapping_mul(GOLDEN_INV))))
                .collect();
            Some((SCHED_SH, picks))
        }
        SchedulerKind::Mh => {
            let picks = pool
                .buckets
                .iter()
                .map(|b| {
                    let i = usize::from(*b);
                    (*b != NO_DEST && s.dests.get(i)?.weight > 0).then_some(i)
                })
                .collect::<Vec<_>>();
            (!picks.is_empty()).then_some((SCHED_MH, picks))
        }
        SchedulerKind::Rr | SchedulerKind::Wrr | SchedulerKind::Fo | SchedulerKind::Dh => {
            let weights = s.dests.iter().map(|d| d.weight).filter(|w| *w > 0);
            let turn = match s.scheduler {
                SchedulerKind::Rr => weights.count(),
                // wrr's step is the gcd of the listed weights (wrr.rs's
                // marks), a server whose MAC is not resolved yet included:
                // its turn is the whole cycle uvs's wrr walks with it.
                SchedulerKind::Wrr => {
                    let g = s.dests.iter().map(|d| d.listed_weight).fold(0, gcd);
                    weights.map(|w| (w / g.max(1)) as usize).sum()
                }
                _ => usize::from(weights.count() > 0),
            };
            if turn == 0 || turn > MAX_SEQ {
                return None;
            }
            let picks: Vec<Option<usize>> =
                (0..turn).map(|_| st.schedule(&pool, &key(0))).collect();
            picks
                .iter()
                .all(Option::is_some)
                .then_some((SCHED_SEQ, picks))
        }
        _ => None,
    }
}

/// What the links' programs hold, and which half of their arrays is in
/// use.
#[derive(Default)]
pub(super) struct Scheduling {
    held: Vec<KernelTable>,
    half: usize,
}

impl Scheduling {
    /// Brings link `i`'s maps in `bpf` to `want`: the slots and real
    /// servers into the unused half, then the services pointed at it, then
    /// the services gone removed.
    pub(super) fn sync(
        &mut self,
        links: &mut [&mut aya::Ebpf],
        want: Vec<KernelTable>,
    ) -> Result<(), Error> {
        if want == self.held {
            return Ok(());
        }
        let half = 1 - self.half;
        for (i, (bpf, k)) in links.iter_mut().zip(&want).enumerate() {
            write(bpf, k, half)?;
            restart_changed(bpf, self.held.get(i), k)?;
        }
        for (i, bpf) in links.iter_mut().enumerate() {
            let ids = |k: Option<&KernelTable>| -> BTreeSet<u64> {
                k.into_iter()
                    .flat_map(|k| k.reals.iter().map(|r| r.id))
                    .collect()
            };
            let map = bpf
                .map_mut("real_ids")
                .ok_or_else(|| Error::no_map("real_ids"))?;
            let mut m: aya::maps::HashMap<_, u64, u32> =
                map.try_into().map_err(Error::map("real_ids"))?;
            for id in ids(self.held.get(i)).difference(&ids(want.get(i))) {
                let _ = m.remove(id);
            }
        }
        for (i, bpf) in links.iter_mut().enumerate() {
            let map = bpf
                .map_mut("services")
                .ok_or_else(|| Error::no_map("services"))?;
            let mut m: aya::maps::HashMap<_, SvcKey, Svc> =
                map.try_into().map_err(Error::map("services"))?;
            let old = self.held.get(i).map(|k| &k.services);
            let gone: Vec<SvcKey> = old
                .into_iter()
                .flatten()
                .map(|(k, _)| *k)
                .filter(|k| !want.get(i).is_some_and(|w| w.services.contains_key(k)))
                .collect();
            for k in gone {
                let _ = m.remove(&k);
            }
        }
        self.held = want;
        self.half = half;
        Ok(())
    }
}

/// A sequence that changed (its servers or weights, or the service's
/// place) starts again at its head: the program's rotation is uvs's own
/// from a fresh start after each change of the service (IPVS carries its
/// position over; docs/io.md). An unchanged one goes on where it is.
fn restart_changed(
    bpf: &mut aya::Ebpf,
    old: Option<&KernelTable>,
    new: &KernelTable,
) -> Result<(), Error> {
    let seq = |k: &KernelTable, s: &Svc| {
        let (a, b) = (s.first as usize, (s.first + s.count) as usize);
        let reals = k.slots.get(a..b).unwrap_or_default().iter();
        reals
            .map(|r| k.reals.get(*r as usize).map(|r| r.id))
            .collect::<Vec<_>>()
    };
    let map = bpf
        .map_mut("seq_pos")
        .ok_or_else(|| Error::no_map("seq_pos"))?;
    let mut pos: aya::maps::Array<_, u64> = map.try_into().map_err(Error::map("seq_pos"))?;
    for (key, s) in new.services.iter().filter(|(_, s)| s.kind == SCHED_SEQ) {
        let same = old
            .and_then(|o| Some((o, o.services.get(key)?)))
            .is_some_and(|(o, was)| was.index == s.index && seq(o, was) == seq(new, s));
        if !same {
            pos.set(s.index, 0, 0).map_err(Error::map("seq_pos"))?;
        }
    }
    Ok(())
}

/// Link `bpf`'s slots and real servers of `k` into half `half` of their
/// arrays, and its services pointed there.
fn write(bpf: &mut aya::Ebpf, k: &KernelTable, half: usize) -> Result<(), Error> {
    let (slot0, real0) = ((half * SLOTS) as u32, (half * REALS) as u32);
    {
        let map = bpf.map_mut("reals").ok_or_else(|| Error::no_map("reals"))?;
        let mut reals: aya::maps::Array<_, Real> = map.try_into().map_err(Error::map("reals"))?;
        for (i, r) in k.reals.iter().enumerate() {
            reals
                .set(real0 + i as u32, r, 0)
                .map_err(Error::map("reals"))?;
        }
    }
    {
        // Before any slot names them (real_left in sched.h).
        let map = bpf
            .map_mut("real_ids")
            .ok_or_else(|| Error::no_map("real_ids"))?;
        let mut ids: aya::maps::HashMap<_, u64, u32> =
            map.try_into().map_err(Error::map("real_ids"))?;
        for r in &k.reals {
            ids.insert(r.id, 1, 0).map_err(Error::map("real_ids"))?;
        }
    }
    {
        let map = bpf.map_mut("slots").ok_or_else(|| Error::no_map("slots"))?;
        let mut slots: aya::maps::Array<_, u32> = map.try_into().map_err(Error::map("slots"))?;
        for (i, s) in k.slots.iter().enumerate() {
            let v = if *s == NO_REAL { NO_REAL } else { real0 + s };
            slots
                .set(slot0 + i as u32, v, 0)
                .map_err(Error::map("slots"))?;
        }
    }
    let map = bpf
        .map_mut("services")
        .ok_or_else(|| Error::no_map("services"))?;
    let mut m: aya::maps::HashMap<_, SvcKey, Svc> =
        map.try_into().map_err(Error::map("services"))?;
    for (key, s) in &k.services {
        let v = Svc {
            first: slot0 + s.first,
            ..*s
        };
        m.insert(key, v, 0).map_err(Error::map("services"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
