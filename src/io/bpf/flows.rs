//! The offloaded flows the kernel programs forward themselves (Katran's
//! split): the XDP program's (`--io xdp --offload`) and the tc program's
//! (`--io packet --offload`) share these maps' layout, so both backends
//! hand a flow over, take it back and count what it forwarded alike.

use super::maps::{FlowKey, FlowMap, FlowValue, Forwarded};
use crate::io::{FlowTuple, Handover, Offloaded};

impl FlowKey {
    fn of(f: &FlowTuple) -> FlowKey {
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

/// Each link's offloaded-flow map and its program's forwarded count.
pub struct FlowMaps {
    maps: Vec<(FlowMap, Forwarded)>,
    /// The counts as last read (the programs' run from attach).
    forwarded: u64,
}

impl FlowMaps {
    pub(super) fn new(maps: Vec<(FlowMap, Forwarded)>) -> FlowMaps {
        FlowMaps { maps, forwarded: 0 }
    }

    /// Hands `h`'s flow to link `link`'s program (or writes it again: a
    /// refresh, with the real server's MAC as it is now).
    pub fn offload(&mut self, link: u8, h: &Handover) -> bool {
        let Some((map, _)) = self.maps.get_mut(usize::from(link)) else {
            return false;
        };
        let k = FlowKey::of(&h.flow);
        // Written again (a refresh): what it forwarded so far carries over.
        let (packets, bytes) = map.get(&k, 0).map_or((0, 0), |v| (v.packets, v.bytes));
        let v = FlowValue {
            dmac: h.dmac,
            smac: h.smac,
            pad: 0,
            packets,
            bytes,
            // The next frame up to uvs one interval from now.
            up_ns: crate::host::sys::monotonic_ns(),
            every_ns: h.up_every_ms.saturating_mul(1_000_000),
        };
        map.insert(k, v, 0).is_ok()
    }

    /// Takes `flow` back from link `link`'s program, with what it
    /// forwarded.
    pub fn unoffload(&mut self, link: u8, flow: &FlowTuple) -> Option<Offloaded> {
        let (map, _) = self.maps.get_mut(usize::from(link))?;
        let k = FlowKey::of(flow);
        let v = map.get(&k, 0).ok()?;
        let _ = map.remove(&k);
        Some(Offloaded {
            packets: v.packets,
            bytes: v.bytes,
        })
    }

    /// Frames the programs forwarded since the last call.
    pub fn offloaded_frames(&mut self) -> u64 {
        let total: u64 = self
            .maps
            .iter()
            .filter_map(|(_, f)| f.get(&0, 0).ok())
            .map(|per_cpu| per_cpu.iter().sum::<u64>())
            .sum();
        let new = total.saturating_sub(self.forwarded);
        self.forwarded = total;
        new
    }
}
