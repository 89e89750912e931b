//! The configuration model the control plane edits. Changes are applied to
//! a copy, all or nothing, and the result is turned into an immutable
//! [`Table`] for the data plane.

use super::proto::{DestSpec, Op};
use crate::control::proto::ServiceDef;
use crate::lvs::mark::{MarkError, MarkRule};
use crate::lvs::sched::mh::MH_SLOTS;
use crate::lvs::service::{Forward, MAX_TIMEOUT, Persistence, SchedulerKind, ServiceKey, Timeouts};
use crate::lvs::stats::DestState;
use crate::lvs::table::NextHop;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct Dest {
    pub id: u64,
    pub spec: DestSpec,
    pub hop: NextHop,
    pub state: Arc<DestState>,
    /// Failed its health check: what is done about it while it is down.
    pub down: Option<FailAction>,
    /// A weight set by its check (exec, misc_dynamic), over the
    /// configured one.
    pub dyn_weight: Option<u32>,
    /// Slow start: its weight's ramp while it runs.
    pub ramp: Option<Ramp>,
}

/// What a failed health check does to its real server, as keepalived's
/// `inhibit_on_failure` chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailAction {
    /// Weight 0: established connections finish, no new ones (the
    /// default, keepalived's inhibit_on_failure).
    #[default]
    Quiesce,
    /// Taken out of the table: its connections end too.
    Remove,
}

impl Dest {
    /// The weight `-Ln` shows: 0 while its check has it down (as under
    /// keepalived, which sets it in IPVS), else the check's (exec) or the
    /// configured one, through its slow start's ramp.
    pub fn shown_weight(&self) -> u32 {
        match self.down {
            Some(_) => 0,
            None => self.set_weight(),
        }
    }

    /// The weight set, down or not (the kernel's last_weight): its
    /// target, or its ramp's step below it.
    pub fn set_weight(&self) -> u32 {
        let t = self.target_weight();
        self.ramp.map_or(t, |r| r.weight.min(t))
    }

    /// What it adds to its service's quorum: its target weight while up
    /// and resolved (a ramp does not lose a quorum).
    pub fn quorum_weight(&self) -> u32 {
        match self.hop.is_resolved() && self.down.is_none() {
            true => self.target_weight(),
            false => 0,
        }
    }

    /// The weight schedulers see: what is shown, and 0 while unresolved.
    pub fn effective_weight(&self) -> u32 {
        match self.hop.is_resolved() {
            true => self.shown_weight(),
            false => 0,
        }
    }

    /// Whether the data plane and listings see it at all.
    pub fn listed(&self) -> bool {
        self.down != Some(FailAction::Remove)
    }
}

/// A service as the model holds it: the published entry's fields, with
/// the model's record of each real server (newest first, like the
/// kernel's svc->destinations); `log` is the changes its scheduler saw
/// (see [`log`]).
pub type Service = crate::lvs::table::ServiceEntry<Dest>;

/// Why an op was refused. The texts of the ipvsadm-compatible variants are
/// libipvs's, so scripts that match them keep working.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    #[error("Service already exists")]
    ServiceExists,
    #[error("No such service")]
    NoSuchService,
    #[error("Service not defined")]
    ServiceNotDefined,
    #[error("Destination already exists")]
    DestExists,
    #[error("No such destination")]
    NoSuchDest,
    #[error(
        "Scheduler or persistence engine not found: '{0}' (uvs schedulers: {known})",
        known = SchedulerKind::known()
    )]
    SchedulerNotFound(String),
    #[error("{0}")]
    Unsupported(String),
    /// An address that can never be used where it was given.
    #[error("{0}")]
    BadAddress(String),
    /// A mark service whose mark no `[[mark]]` defines.
    #[error(
        "Firewall mark {0} is not defined: uvs sees frames before netfilter, so a mark is \
         defined in the config file (a [[mark]] with id = {0}, docs/config.md), not by iptables"
    )]
    MarkNotDefined(u32),
    #[error(
        "mark {0} is used by service FWM {0}: delete the service first (uvsadm -D -f {0}, \
         and -D -f {0} -6 for its IPv6 service)"
    )]
    MarkInUse(u32),
    #[error("{0}")]
    Mark(#[from] MarkError),
    #[error("One-Packet Scheduling is only for UDP virtual services")]
    OpsNotUdp,
    /// mh gives each real server at least one of its table's slots, so a
    /// service holds no more servers than slots (IPVS refuses them too).
    #[error(
        "mh holds at most {} real servers (its table's slots): a server past them would \
         never be chosen",
        crate::lvs::sched::mh::MH_SLOTS
    )]
    MhFull,
    /// A persistence timeout outside ipvsadm's 1..2678400 (`-p`), with
    /// ipvsadm's text.
    #[error("invalid timeout value `{0}' specified")]
    BadTimeout(u32),
    /// A check against the host failed (VIP configured locally, real
    /// server not on-link, MAC not resolvable).
    #[error("{0}")]
    Host(String),
}

/// Something an op needs checked or looked up on the host before it can be
/// committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// A VIP new to the model: it must not be a local address of the
    /// director nor the network or broadcast address of one of its links,
    /// and no other host may answer ARP or neighbour discovery for it
    /// (address conflict detection) before uvs announces it.
    NewVip(IpAddr),
    /// The link and MAC to send to for a real server: its own MAC (DR) or
    /// the next hop's on the way to it (TUN, NAT), from the kernel's routes
    /// and neighbour table.
    Mac(IpAddr, Forward),
}

#[derive(Debug, Clone, Default)]
pub struct Model {
    pub services: Vec<Service>,
    pub timeouts: Timeouts,
    /// Outer source of IP-in-IP packets: the director's address.
    pub tun_source: Option<Ipv4Addr>,
    /// Outer source of packets tunnelled to IPv6 real servers.
    pub tun_source6: Option<Ipv6Addr>,
    /// Each firewall mark's rules (`Op::SetMark`): which frames a mark
    /// service serves. `-C` leaves them, as it leaves iptables' rules.
    pub marks: BTreeMap<u32, Vec<MarkRule>>,
    next_id: u64,
}

fn scheduler(name: &str) -> Result<SchedulerKind, OpError> {
    SchedulerKind::from_name(name).ok_or_else(|| match SchedulerKind::refusal(name) {
        Some(why) => {
            OpError::Unsupported(format!("scheduler {name} is not supported by uvs: {why}"))
        }
        None => OpError::SchedulerNotFound(name.to_string()),
    })
}

/// Addresses that can never be a VIP: announcing them would break the
/// segment (broadcast, multicast, "this host") or the director itself.
pub fn check_vip(a: impl Into<IpAddr>) -> Result<(), OpError> {
    let a = match a.into() {
        IpAddr::V4(a) => a,
        IpAddr::V6(a) => return check_vip6(a),
    };
    let why = if a.is_unspecified() || a.octets()[0] == 0 {
        "an unspecified (\"this network\") address"
    } else if a.is_broadcast() {
        "the limited broadcast address"
    } else if a.is_multicast() {
        "a multicast address"
    } else if a.is_loopback() {
        "a loopback address"
    } else if u32::from(a) >= 0xf000_0000 {
        "a reserved (class E) address"
    } else {
        return Ok(());
    };
    Err(OpError::BadAddress(format!(
        "{a} cannot be a VIP: it is {why}"
    )))
}

/// An IPv6 VIP: a unicast address a client can reach.
fn check_vip6(a: std::net::Ipv6Addr) -> Result<(), OpError> {
    let why = if a.is_unspecified() {
        "the unspecified address"
    } else if a.is_multicast() {
        "a multicast address"
    } else if a.is_loopback() {
        "the loopback address"
    } else if a.to_ipv4_mapped().is_some() {
        "an IPv4-mapped address (give the IPv4 address itself)"
    } else {
        return Ok(());
    };
    Err(OpError::BadAddress(format!(
        "{a} cannot be a VIP: it is {why}"
    )))
}

/// A service definition's scheduler, once its options are checked.
fn checked(d: &ServiceDef) -> Result<SchedulerKind, OpError> {
    let k = scheduler(&d.scheduler)?;
    check_persistent(&d.key, d.persistent)?;
    check_ops(&d.key, d.ops)?;
    Ok(k)
}

/// What uvs forwards between the families so far (docs/ipv6.md): an
/// IPv6 service's IPv6 real servers are reached by any method; a real
/// server of the other family only by a tunnel, as IPVS
/// allows ("Different address family is allowed only for tunneling
/// servers": IPv4 in IPv6, IPv6 in IPv4).
fn check_family(key: &ServiceKey, d: &DestSpec) -> Result<(), OpError> {
    if d.slow_start > crate::control::proto::MAX_SLOW_START {
        return Err(OpError::BadAddress(format!(
            "slow start of {} s: at most {} s",
            d.slow_start,
            crate::control::proto::MAX_SLOW_START
        )));
    }
    // (An IPv6 mark service's key holds `::`: its family.)
    let v6 = key.addr.is_ipv6();
    let tun = d.forward == Forward::Tunnel;
    match (v6, d.addr.is_ipv6()) {
        (false, false) => Ok(()),
        (true, true) => Ok(()),
        _ if tun && key.fwmark().is_none() => Ok(()),
        _ if d.forward == Forward::Masq => Err(OpError::Unsupported(format!(
            "real server {} is not of the service's address family: NAT (-m) translates \
             within one family only (IPVS mixes families only for tunnels: -i)",
            d.addr
        ))),
        _ => Err(OpError::Unsupported(format!(
            "Different address family is allowed only for tunneling servers: real server {} \
             is not of the service's address family; tunnel to it (-i: IPv4 in IPv6, IPv6 in \
             IPv4), as direct routing and NAT keep the family",
            d.addr
        ))),
    }
}

/// A persistence timeout in ipvsadm's range, an IPv6 prefix in IPVS's;
/// port 0 (every port of the
/// VIP) only for a persistent service, as ipvsadm says.
fn check_persistent(key: &ServiceKey, p: Option<Persistence>) -> Result<(), OpError> {
    match p {
        None if key.port == 0 && key.fwmark == 0 => Err(OpError::BadAddress(
            "Zero port specified for non-persistent service".into(),
        )),
        Some(p) if !(1..=MAX_TIMEOUT).contains(&p.timeout) => Err(OpError::BadTimeout(p.timeout)),
        // IPVS refuses an IPv6 service's prefix outside 1..128 (EINVAL).
        Some(p) if key.addr.is_ipv6() && !(1..=128).contains(&p.prefix6) => Err(
            OpError::BadAddress(format!("illegal ipv6 netmask {} (1..128)", p.prefix6)),
        ),
        _ => Ok(()),
    }
}

impl Model {
    /// An empty model whose TUN real servers get `src` as outer source.
    pub fn with_tun_source(src: Option<Ipv4Addr>) -> Model {
        Model::with_tun_sources(src, None)
    }

    /// An empty model with an outer source for each family's tunnels.
    pub fn with_tun_sources(src: Option<Ipv4Addr>, src6: Option<Ipv6Addr>) -> Model {
        Model {
            tun_source: src,
            tun_source6: src6,
            ..Model::default()
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// A tunnelled real server needs the director's address of its own
    /// family as the outer source.
    fn check_tun_source(&self, d: &DestSpec) -> Result<(), OpError> {
        if d.forward != Forward::Tunnel {
            return Ok(());
        }
        let why = match d.addr {
            IpAddr::V4(_) if self.tun_source.is_none() => {
                "Tunneling needs the director's own IPv4 address as outer source: the capture \
                 interface has none; start `uvs director` with --tun-source ADDR"
            }
            IpAddr::V6(_) if self.tun_source6.is_none() => {
                "Tunneling to an IPv6 real server needs the director's own IPv6 address as \
                 outer source: the capture interface has none; start `uvs director` with \
                 --tun-source6 ADDR"
            }
            _ => return Ok(()),
        };
        Err(OpError::Host(why.into()))
    }

    /// A configured real server with this address, as `ADDR:PORT of VIP`.
    fn dest_with_addr(&self, a: IpAddr) -> Option<String> {
        self.services.iter().find_map(|s| {
            let d = s.dests.iter().find(|d| d.spec.addr == a)?;
            Some(format!("{} of {}", SocketAddr::new(a, d.spec.port), s.key))
        })
    }

    fn service_mut(&mut self, key: &ServiceKey) -> Option<&mut Service> {
        self.services.iter_mut().find(|s| s.key == *key)
    }

    /// Applies one op. `mac` is asked for the MAC of every real server added
    /// or whose address is new; `need` records host checks.
    pub fn apply(
        &mut self,
        op: &Op,
        mac: &mut dyn FnMut(IpAddr, Forward) -> Result<NextHop, OpError>,
        need: &mut dyn FnMut(Need),
    ) -> Result<(), OpError> {
        match op {
            Op::AddService(d) => {
                if self.services.iter().any(|x| x.key == d.key) {
                    return Err(OpError::ServiceExists);
                }
                let k = checked(d)?;
                for vip in self.key_vips(&d.key)? {
                    self.claim_vip(vip, need)?;
                }
                let id = self.id();
                self.services.push(Service {
                    id,
                    key: d.key,
                    scheduler: k,
                    flags: d.flags,
                    ops: d.ops,
                    persistence: d.persistent,
                    epoch: 0,
                    log: Arc::default(),
                    dests: Vec::new(),
                    stats: Arc::default(),
                });
            }
            Op::EditService(d) => {
                let k = checked(d);
                let svc = self.service_mut(&d.key).ok_or(OpError::NoSuchService)?;
                let k = k?;
                if k == SchedulerKind::Mh && svc.dests.len() > MH_SLOTS {
                    return Err(OpError::MhFull);
                }
                (svc.flags, svc.ops, svc.persistence) = (d.flags, d.ops, d.persistent);
                if svc.scheduler != k {
                    svc.scheduler = k;
                    svc.rebound();
                }
            }
            Op::DelService { key } => {
                let before = self.services.len();
                self.services.retain(|s| s.key != *key);
                if self.services.len() == before {
                    return Err(OpError::NoSuchService);
                }
            }
            Op::Clear => self.services.clear(),
            Op::AddDest { key, dest } => {
                let id = self.id();
                let exists = self
                    .services
                    .iter()
                    .find(|s| s.key == *key)
                    .ok_or(OpError::ServiceNotDefined)?
                    .dests
                    .iter()
                    .any(|d| d.spec.addr == dest.addr && d.spec.port == dest.port);
                if exists {
                    return Err(OpError::DestExists);
                }
                let svc = self.service_mut(key).ok_or(OpError::ServiceNotDefined)?;
                if svc.scheduler == SchedulerKind::Mh && svc.dests.len() >= MH_SLOTS {
                    return Err(OpError::MhFull);
                }
                check_family(key, dest)?;
                if self.has_vip(dest.addr) {
                    return Err(OpError::BadAddress(format!(
                        "real server {} is a VIP of this director: its traffic would loop back \
                         to the director",
                        dest.addr
                    )));
                }
                self.check_tun_source(dest)?;
                need(Need::Mac(dest.addr, dest.forward));
                let m = mac(dest.addr, dest.forward)?;
                let svc = self.service_mut(key).ok_or(OpError::ServiceNotDefined)?;
                svc.dests.insert(
                    0,
                    Dest {
                        id,
                        spec: dest.clone(),
                        hop: m,
                        state: Arc::default(),
                        down: None,
                        dyn_weight: None,
                        ramp: None,
                    },
                );
                svc.changed();
            }
            Op::EditDest { key, dest } => {
                check_family(key, dest)?;
                let tun_ok = self.check_tun_source(dest);
                let svc = self.service_mut(key).ok_or(OpError::ServiceNotDefined)?;
                let d = svc
                    .dests
                    .iter_mut()
                    .find(|d| d.spec.addr == dest.addr && d.spec.port == dest.port)
                    .ok_or(OpError::NoSuchDest)?;
                tun_ok?;
                if d.spec.forward != dest.forward {
                    // DR sends to the server's MAC, TUN and NAT to the next
                    // hop's.
                    need(Need::Mac(dest.addr, dest.forward));
                    d.hop = mac(dest.addr, dest.forward)?;
                }
                d.spec = dest.clone();
                svc.changed();
            }
            Op::DelDest { key, addr, port } => {
                let svc = self.service_mut(key).ok_or(OpError::ServiceNotDefined)?;
                let before = svc.dests.len();
                svc.dests
                    .retain(|d| !(d.spec.addr == *addr && d.spec.port == *port));
                if svc.dests.len() == before {
                    return Err(OpError::NoSuchDest);
                }
                svc.changed();
            }
            Op::Zero { key } => {
                let svcs: Vec<&Service> = match key {
                    None => self.services.iter().collect(),
                    Some(k) => vec![
                        self.services
                            .iter()
                            .find(|s| s.key == *k)
                            .ok_or(OpError::NoSuchService)?,
                    ],
                };
                for s in svcs {
                    s.stats.zero();
                    for d in &s.dests {
                        d.state.stats.zero();
                    }
                }
            }
            Op::SetMark { mark, rules } => self.set_mark(*mark, rules, need)?,
            Op::SetTimeouts(t) => {
                if t.tcp != 0 {
                    self.timeouts.tcp = t.tcp;
                }
                if t.tcpfin != 0 {
                    self.timeouts.tcpfin = t.tcpfin;
                }
                if t.udp != 0 {
                    self.timeouts.udp = t.udp;
                }
            }
        }
        Ok(())
    }

    /// Applies `ops` to a copy: the copy on success, otherwise the index of
    /// the first failing op and why. `self` is never changed.
    pub fn apply_all(
        &self,
        ops: &[Op],
        mac: &mut dyn FnMut(IpAddr, Forward) -> Result<NextHop, OpError>,
        need: &mut dyn FnMut(usize, Need),
    ) -> Result<Model, (usize, OpError)> {
        let mut m = self.clone();
        for (i, op) in ops.iter().enumerate() {
            m.apply(op, mac, &mut |n| need(i, n)).map_err(|e| (i, e))?;
        }
        Ok(m)
    }
}

mod log;
mod marks;
mod ramp;
mod state;
mod views;

pub use marks::check_ops;
pub use ramp::{Ramp, ramp_weight};
pub use state::CheckVerdict;
pub use views::MasqDest;

#[cfg(test)]
pub(crate) mod tests;
