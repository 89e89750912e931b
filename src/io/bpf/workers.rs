//! The maps the data plane's workers read, handed out once: each worker
//! gets every link's flow maps (shared: the programs have one table per
//! link) and a ring of its own, which the programs report its flows to
//! (sched.h: worker_of, the fanout program's hash), so a flow's reports
//! and its frames that go up reach the same worker. Worker 0 reads the
//! object's `events`; the others' rings are made here and put in
//! `worker_events`. The programs' counters (forwarded frames, full rings,
//! what each real server got) are totals of every worker's flows: worker
//! 0 alone reads them (`FlowMaps::primary`), or they would count twice.

use super::flows::{FlowMaps, LinkFlows};
use super::{Error, Steering};
use aya::maps::{Map, MapData, MapError};
use std::os::fd::{AsFd, OwnedFd};

/// A worker's ring: as large as `events` (sched.h's event_ring).
const RING_BYTES: u32 = 1 << 21;
/// BPF_MAP_TYPE_RINGBUF (linux/bpf.h).
const RINGBUF: u32 = 27;

impl Steering {
    /// Every link's offloaded-flow maps, counters and report ring for
    /// each of `workers` workers, for the data plane (they leave the
    /// control plane's hands); with several, the programs report each
    /// flow to its worker from here on (`fast`[2]).
    pub fn take_flow_maps(&mut self, workers: usize) -> Result<Vec<FlowMaps>, Error> {
        let mut sets: Vec<Vec<LinkFlows>> = (0..workers.max(1)).map(|_| Vec::new()).collect();
        for l in &mut self.links {
            let mut take = |name: &str| l.bpf.take_map(name).ok_or_else(|| Error::no_map(name));
            let (flows, flows6, fwd) = (take("flows")?, take("flows6")?, take("forwarded")?);
            let (real_counts, events) = (take("real_counts")?, take("events")?);
            let (room, counts) = (take("room")?, take("sched_counts")?);
            let outer = l
                .bpf
                .map_mut("worker_events")
                .ok_or_else(|| Error::no_map("worker_events"))?;
            let mut rings: aya::maps::ArrayOfMaps<&mut MapData> =
                outer.try_into().map_err(Error::map("worker_events"))?;
            for (w, set) in sets.iter_mut().enumerate() {
                let events = match w {
                    0 => dup(&events, "events")?,
                    _ => {
                        let ring = new_ring().map_err(Error::map("worker_events"))?;
                        rings
                            .set(w as u32, &ring, 0)
                            .map_err(Error::map("worker_events"))?;
                        Map::RingBuf(ring)
                    }
                };
                set.push(LinkFlows {
                    fds: [own_fd(&flows, "flows")?, own_fd(&flows6, "flows6")?],
                    counts_fd: own_fd(&real_counts, "real_counts")?,
                    flows: typed(dup(&flows, "flows")?, "flows")?,
                    flows6: typed(dup(&flows6, "flows6")?, "flows6")?,
                    forwarded: typed(dup(&fwd, "forwarded")?, "forwarded")?,
                    events: typed(events, "events")?,
                    room: typed(dup(&room, "room")?, "room")?,
                    sched_counts: typed(dup(&counts, "sched_counts")?, "sched_counts")?,
                    real_counts: typed(dup(&real_counts, "real_counts")?, "real_counts")?,
                });
            }
            if workers > 1 {
                let fast = l.bpf.map_mut("fast").ok_or_else(|| Error::no_map("fast"))?;
                let mut a: aya::maps::Array<_, u32> =
                    fast.try_into().map_err(Error::map("fast"))?;
                a.set(2, workers as u32, 0).map_err(Error::map("fast"))?;
            }
        }
        Ok(sets
            .into_iter()
            .enumerate()
            .map(|(w, maps)| FlowMaps::new(maps, w as u32))
            .collect())
    }
}

/// A ring buffer for one worker's reports.
pub(super) fn new_ring() -> Result<MapData, MapError> {
    let def = aya_obj::Map::new_from_params(RINGBUF, 0, 0, RING_BYTES, 0);
    MapData::create(def, "uvs_worker_ring", None)
}

/// `map` as the typed map the data plane reads.
fn typed<T: TryFrom<Map, Error = MapError>>(map: Map, name: &str) -> Result<T, Error> {
    T::try_from(map).map_err(Error::map(name))
}

/// `map` again, through a descriptor of its own (each worker holds its
/// maps).
fn dup(map: &Map, name: &str) -> Result<Map, Error> {
    let again = |d: &MapData| MapData::from_fd(clone_fd(d, name)?).map_err(Error::map(name));
    Ok(match map {
        Map::LruHashMap(d) => Map::LruHashMap(again(d)?),
        Map::PerCpuHashMap(d) => Map::PerCpuHashMap(again(d)?),
        Map::PerCpuArray(d) => Map::PerCpuArray(again(d)?),
        Map::Array(d) => Map::Array(again(d)?),
        Map::RingBuf(d) => Map::RingBuf(again(d)?),
        _ => return Err(Error::no_map(name)),
    })
}

/// A descriptor of its own for a hash map (`flows`, `flows6`: LRU;
/// `real_counts`: per CPU), for the call aya lacks.
fn own_fd(map: &Map, name: &str) -> Result<OwnedFd, Error> {
    let (Map::LruHashMap(d) | Map::PerCpuHashMap(d)) = map else {
        return Err(Error::no_map(name));
    };
    clone_fd(d, name)
}

fn clone_fd(d: &MapData, name: &str) -> Result<OwnedFd, Error> {
    d.fd().as_fd().try_clone_to_owned().map_err(|e| {
        Error::map(name)(MapError::SyscallError(aya::sys::SyscallError {
            call: "dup",
            io_error: e,
        }))
    })
}
