//! What the model shows: the data plane's table, uvsadm's snapshot, the
//! operations that rebuild it, and the real servers the watchers follow.

use super::Model;
use crate::control::proto::ServiceDef;
use crate::control::proto::{DestSnap, DestSpec, Op, ServiceSnap, Snapshot};
use crate::lvs::service::Forward;
use crate::lvs::table::{DestEntry, Table};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A NAT real server's reply counters, to notice replies that bypass
/// the director.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MasqDest {
    pub id: u64,
    pub addr: IpAddr,
    pub port: u16,
    /// The link its next hop is on.
    pub link: u8,
    pub inpkts: u64,
    pub outpkts: u64,
}

impl super::Service {
    /// The service as `-A` gives it: what its snapshot shows and the op
    /// that makes it again.
    pub fn def(&self) -> ServiceDef {
        ServiceDef::of(
            self.key,
            self.scheduler,
            self.flags,
            self.ops,
            self.persistence,
        )
    }
}

impl Model {
    /// The data plane's view of this model.
    pub fn table(&self, generation: u64) -> Table {
        let services = self
            .services
            .iter()
            .map(|s| {
                s.with_dests(s.listed().map(|d| DestEntry {
                    id: d.id,
                    addr: d.spec.addr,
                    port: d.spec.port,
                    forward: d.spec.forward,
                    // Not resolved yet, or quiesced: never scheduled.
                    weight: d.effective_weight(),
                    listed_weight: d.shown_weight(),
                    last_weight: d.set_weight(),
                    mac: d.hop.mac,
                    link: d.hop.link,
                    state: d.state.clone(),
                }))
            })
            .collect();
        Table::with_tun_source(
            generation,
            services,
            self.timeouts,
            self.tun_source.unwrap_or(Ipv4Addr::UNSPECIFIED),
        )
        .with_tun_source6(self.tun_source6.unwrap_or(Ipv6Addr::UNSPECIFIED))
        .with_marks(|m| self.mark_rules(m))
    }

    /// What `-L`, `--stats` and `-S` print.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            timeouts: self.timeouts,
            services: self
                .services
                .iter()
                .map(|s| ServiceSnap {
                    def: s.def(),
                    stats: s.stats.snapshot(),
                    rates: s.stats.rates(),
                    dests: s
                        .listed()
                        .map(|d| DestSnap {
                            spec: DestSpec {
                                weight: d.shown_weight(),
                                ..d.spec.clone()
                            },
                            active: d.state.active(),
                            inactive: d.state.inactive(),
                            persistent: d.state.persistent(),
                            ramp_to: d.ramp.map(|_| d.target_weight()),
                            stats: d.state.stats.snapshot(),
                            rates: d.state.stats.rates(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// The ops that rebuild this model from nothing (as configured:
    /// weights as set, not as checks changed them), for a handoff to a
    /// new process.
    pub fn ops(&self) -> Vec<Op> {
        let mut ops = vec![Op::SetTimeouts(self.timeouts)];
        ops.extend(self.marks.iter().map(|(m, r)| Op::SetMark {
            mark: *m,
            rules: r.clone(),
        }));
        for s in &self.services {
            ops.push(Op::AddService(s.def()));
            // Newest first in the model; added oldest first to keep it.
            for d in s.dests.iter().rev() {
                ops.push(Op::AddDest {
                    key: s.key,
                    dest: d.spec.clone(),
                });
            }
        }
        ops
    }

    /// One estimator period for every service and real server.
    pub fn estimate(&self) {
        for s in &self.services {
            s.stats.estimate();
            for d in &s.dests {
                d.state.stats.estimate();
            }
        }
    }

    /// Whether any real server is reached by NAT.
    pub fn has_masq(&self) -> bool {
        self.services
            .iter()
            .any(|s| s.dests.iter().any(|d| d.spec.forward == Forward::Masq))
    }

    /// NAT real servers of TCP services with their link and packet
    /// counters ([`MasqDest`]), to notice
    /// replies that bypass the director. TCP only: every TCP connection is
    /// answered (a SYN-ACK at least), while a UDP service may be one-way by
    /// design (syslog, metrics).
    pub fn masq_dests(&self) -> Vec<MasqDest> {
        self.services
            .iter()
            .filter(|s| s.key.protocol == crate::lvs::service::Protocol::Tcp)
            .flat_map(|s| s.dests.iter())
            .filter(|d| d.spec.forward == Forward::Masq)
            .map(|d| {
                let st = d.state.stats.snapshot();
                MasqDest {
                    id: d.id,
                    addr: d.spec.addr,
                    port: d.spec.port,
                    link: d.hop.link,
                    inpkts: st.inpkts,
                    outpkts: st.outpkts,
                }
            })
            .collect()
    }

    /// Every real-server address with its method and link, to keep their
    /// MACs fresh.
    pub fn dest_targets(&self) -> Vec<(IpAddr, Forward, u8)> {
        let mut v: Vec<(IpAddr, Forward, u8)> = self
            .services
            .iter()
            .flat_map(|s| {
                s.dests
                    .iter()
                    .map(|d| (d.spec.addr, d.spec.forward, d.hop.link))
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }
}
