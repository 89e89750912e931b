//! A real server's state as the host and its health check change it:
//! down or up, a dynamic weight, its next hop and MAC.

use super::{Dest, FailAction, Model};
use crate::lvs::service::{Forward, ServiceKey};
use crate::lvs::table::NextHop;
use crate::wire::MacAddr;
use std::net::IpAddr;

impl Model {
    /// Changes one real server of a service with `f` (which says whether
    /// it changed anything); its scheduler sees the change.
    fn change_dest(
        &mut self,
        key: &ServiceKey,
        addr: IpAddr,
        port: u16,
        f: impl FnOnce(&mut Dest) -> bool,
    ) -> bool {
        let Some(s) = self.service_mut(key) else {
            return false;
        };
        let Some(d) = s
            .dests
            .iter_mut()
            .find(|d| d.spec.addr == addr && d.spec.port == port)
        else {
            return false;
        };
        let changed = f(d);
        if changed {
            s.changed();
        }
        changed
    }

    /// Applies what a check found on a real server of a service; returns
    /// whether anything changed.
    pub fn apply_check(
        &mut self,
        key: &ServiceKey,
        addr: IpAddr,
        port: u16,
        v: CheckVerdict,
    ) -> bool {
        self.change_dest(key, addr, port, |d| match v {
            CheckVerdict::Down(v) => {
                let was = std::mem::replace(&mut d.down, v);
                if was.is_some() && v.is_none() {
                    // Restored by its check: it joins again.
                    d.start_ramp(std::time::Instant::now());
                }
                was != v
            }
            CheckVerdict::Weight(w) => d.dyn_weight.replace(w) != Some(w),
        })
    }

    /// The total weight of a service's real servers that are up and
    /// resolved (their target, a ramp aside), leaving out `except` (its
    /// sorry server).
    pub fn live_weight(&self, key: &ServiceKey, except: Option<(IpAddr, u16)>) -> u32 {
        self.services
            .iter()
            .filter(|s| s.key == *key)
            .flat_map(|s| s.dests.iter())
            .filter(|d| Some((d.spec.addr, d.spec.port)) != except)
            .map(|d| d.quorum_weight())
            .fold(0u32, |a, w| a.saturating_add(w))
    }

    /// Whether a real server of a service is marked down by its check.
    pub fn is_down(&self, key: &ServiceKey, addr: IpAddr, port: u16) -> bool {
        self.services
            .iter()
            .filter(|s| s.key == *key)
            .flat_map(|s| s.dests.iter())
            .any(|d| d.spec.addr == addr && d.spec.port == port && d.down.is_some())
    }

    /// The real servers (address and method) whose next hop is not
    /// resolved yet.
    pub fn pending_targets(&self) -> Vec<(IpAddr, Forward)> {
        let mut v: Vec<(IpAddr, Forward)> = self
            .services
            .iter()
            .flat_map(|s| s.dests.iter())
            .filter(|d| !d.hop.is_resolved())
            .map(|d| (d.spec.addr, d.spec.forward))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Gives the still unresolved real servers at `addr` (for `fwd`) their
    /// next hop; their services' schedulers see the weight appear.
    /// Returns whether anything changed.
    pub fn set_hop(&mut self, addr: IpAddr, fwd: Forward, hop: NextHop) -> bool {
        let mut changed = false;
        for s in &mut self.services {
            let mut here = false;
            for d in &mut s.dests {
                if d.spec.addr == addr && d.spec.forward == fwd && !d.hop.is_resolved() {
                    d.hop = hop;
                    // Resolved after being absent: it joins.
                    d.start_ramp(std::time::Instant::now());
                    here = true;
                }
            }
            if here {
                s.changed();
                changed = true;
            }
        }
        changed
    }

    /// Replaces the MAC of a real server (for one forwarding method)
    /// wherever it is used; returns whether anything changed.
    pub fn set_mac(&mut self, addr: IpAddr, fwd: Forward, mac: MacAddr) -> bool {
        let mut changed = false;
        for s in &mut self.services {
            for d in &mut s.dests {
                if d.spec.addr == addr
                    && d.spec.forward == fwd
                    && d.hop.is_resolved()
                    && d.hop.mac != mac
                {
                    d.hop.mac = mac;
                    changed = true;
                }
            }
        }
        changed
    }
}

/// What a check may say of a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckVerdict {
    /// Down (with what that does), or up again (`None`).
    Down(Option<FailAction>),
    /// The weight the check gives it.
    Weight(u32),
}
