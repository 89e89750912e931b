//! The listings as JSON (`uvsadm -L --json`, `uvs status --json`): the
//! facts of the text listings, built from the same snapshot in the same
//! order, under stable field names (docs/cli.md) for scripts. Numbers
//! are always exact (no K/M/G) and addresses always numeric: a script
//! wants the value, not its display.

use super::{DaemonRow, daemon_rows, sched_flags, sorted_dests, sorted_services};
use crate::control::proto::{DestSnap, ServiceSnap, Snapshot};
use crate::ha::HaStatus;
use crate::lvs::ConnInfo;
use crate::lvs::service::{Forward, Persistence, Timeouts};
use crate::lvs::stats::{Rates, StatsSnapshot};
use serde::Serialize;
use std::net::IpAddr;

/// Which parts a JSON listing has besides the table itself: the `-L`
/// variants, each adding its columns' facts (any of them together, where
/// the text listing shows one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Parts {
    /// `--stats`: the counters.
    pub stats: bool,
    /// `--rate`: the rates per second.
    pub rates: bool,
    /// `--thresholds`: each real server's thresholds.
    pub thresholds: bool,
    /// `--persistent-conn`: each real server's persistence templates.
    pub persistent_conns: bool,
    /// `--tun-info`: each real server's tunnel.
    pub tunnel: bool,
    /// `--nosort`: the daemon's order.
    pub nosort: bool,
}

/// `-L --json`: the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listing {
    pub services: Vec<ServiceJson>,
}

/// One virtual service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceJson {
    /// `TCP` or `UDP`; null for a firewall-mark service.
    pub protocol: Option<&'static str>,
    /// The mark of a `-f` service, else null.
    pub fwmark: Option<u32>,
    /// `ipv4` or `ipv6`.
    pub family: &'static str,
    /// The VIP and port; null for a firewall-mark service.
    pub address: Option<IpAddr>,
    pub port: Option<u16>,
    pub scheduler: String,
    /// `-b`'s flags by the scheduler's names (`sh-fallback`), or none.
    pub flags: Vec<String>,
    /// One-packet scheduling (`-o`).
    pub ops: bool,
    /// `-p` and `-M`, or null.
    pub persistent: Option<PersistJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<StatsSnapshot>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rates: Option<Rates>,
    pub servers: Vec<ServerJson>,
}

/// A persistent service's timeout and client network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PersistJson {
    /// Seconds.
    pub timeout: u32,
    /// As `-M` gives it: a netmask for an IPv4 service
    /// (`255.255.255.255` by default), a prefix length for an IPv6 one
    /// (`128` by default).
    pub mask: String,
}

/// One real server of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerJson {
    pub address: IpAddr,
    pub port: u16,
    /// `Route`, `Tunnel` or `Masq`, as the text listing's Forward column.
    pub forward: &'static str,
    pub weight: u32,
    pub active: u32,
    pub inactive: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uthreshold: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lthreshold: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persistent_conns: Option<u32>,
    /// `ipip` for a tunnel's server, `none` for others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<StatsSnapshot>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rates: Option<Rates>,
}

/// One entry of `-Lc --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnJson {
    /// `TCP`, `UDP` (or `IP`, a mark service's template).
    pub protocol: &'static str,
    /// The state as `-Lnc` names it (`ESTABLISHED`, `TIME_WAIT`, `UDP`).
    pub state: String,
    /// Seconds until it expires (`-Lnc`'s expire column, mm:ss there).
    pub expires_secs: u64,
    pub source_address: IpAddr,
    pub source_port: u16,
    pub virtual_address: IpAddr,
    pub virtual_port: u16,
    pub destination_address: IpAddr,
    pub destination_port: u16,
}

impl ConnJson {
    pub fn of(c: &ConnInfo) -> ConnJson {
        ConnJson {
            protocol: c.protocol.name(),
            state: c.state.clone(),
            expires_secs: c.expires_secs,
            source_address: c.caddr,
            source_port: c.cport,
            virtual_address: c.vaddr,
            virtual_port: c.vport,
            destination_address: c.daddr,
            destination_port: c.dport,
        }
    }
}

impl ServiceJson {
    pub fn of(s: &ServiceSnap, parts: &Parts) -> ServiceJson {
        let key = &s.def.key;
        let mark = key.fwmark();
        let v6 = key.addr.is_ipv6();
        let persistent = s.def.persistent.map(|p| PersistJson {
            timeout: p.timeout,
            mask: p.shown_mask(v6).unwrap_or_else(|| match v6 {
                true => Persistence::DEFAULT_PREFIX6.to_string(),
                false => Persistence::DEFAULT_NETMASK.to_string(),
            }),
        });
        ServiceJson {
            protocol: mark.is_none().then(|| key.protocol.name()),
            fwmark: mark,
            family: if v6 { "ipv6" } else { "ipv4" },
            address: mark.is_none().then_some(key.addr),
            port: mark.is_none().then_some(key.port),
            scheduler: s.def.scheduler.clone(),
            flags: sched_flags(s)
                .map_or_else(Vec::new, |f| f.split(',').map(str::to_string).collect()),
            ops: s.def.ops,
            persistent,
            stats: parts.stats.then_some(s.stats),
            rates: parts.rates.then_some(s.rates),
            servers: sorted_dests(s, parts.nosort)
                .iter()
                .map(|d| ServerJson::of(d, parts))
                .collect(),
        }
    }
}

impl ServerJson {
    pub fn of(d: &DestSnap, parts: &Parts) -> ServerJson {
        let spec = &d.spec;
        let tunnel = match spec.forward {
            Forward::Tunnel => "ipip",
            _ => "none",
        };
        ServerJson {
            address: spec.addr,
            port: spec.port,
            forward: spec.forward.name(),
            weight: spec.weight,
            active: d.active,
            inactive: d.inactive,
            uthreshold: parts.thresholds.then_some(spec.uthreshold),
            lthreshold: parts.thresholds.then_some(spec.lthreshold),
            persistent_conns: parts.persistent_conns.then_some(d.persistent),
            tunnel: parts.tunnel.then_some(tunnel),
            stats: parts.stats.then_some(d.stats),
            rates: parts.rates.then_some(d.rates),
        }
    }
}

/// Pretty JSON and a newline: what every `--json` prints.
pub fn to_text<T: Serialize + ?Sized>(v: &T) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_else(|e| {
        // Only a map with non-string keys fails; none of these has one.
        serde_json::json!({ "error": e.to_string() }).to_string()
    });
    s.push('\n');
    s
}

/// `-L --json`: the whole table, in the text listing's order.
pub fn list_all(snap: &Snapshot, parts: &Parts) -> String {
    let services = sorted_services(snap, parts.nosort);
    to_text(&Listing {
        services: services.iter().map(|s| ServiceJson::of(s, parts)).collect(),
    })
}

/// `-L -t VIP:PORT --json`: one service, as a table of one.
pub fn list_service(s: &ServiceSnap, parts: &Parts) -> String {
    to_text(&Listing {
        services: vec![ServiceJson::of(s, parts)],
    })
}

/// What `-Lc --json` prints first; then each entry ([`conn_entry`]),
/// then [`CONNS_TAIL`]. The daemon streams the table in chunks, and so
/// does uvsadm: the listing is never held whole.
pub const CONNS_HEAD: &str = "{\n  \"connections\": [";
pub const CONNS_TAIL: &str = "\n  ]\n}\n";

/// One connection of `-Lc --json`, appended to `out`; `first` says
/// whether it is the first (no comma before it).
pub fn conn_entry(out: &mut String, c: &ConnInfo, first: bool) {
    if !first {
        out.push(',');
    }
    out.push_str("\n    ");
    out.push_str(&serde_json::to_string(&ConnJson::of(c)).unwrap_or_default());
}

/// `-Lc --json` of a table held whole (tests; uvsadm streams it).
pub fn list_conns(conns: &[ConnInfo]) -> String {
    let mut out = String::from(CONNS_HEAD);
    for (i, c) in conns.iter().enumerate() {
        conn_entry(&mut out, c, i == 0);
    }
    out.push_str(CONNS_TAIL);
    out
}

/// `-L --timeout --json`: `{"tcp": …, "tcpfin": …, "udp": …}`.
pub fn list_timeout(t: &Timeouts) -> String {
    to_text(t)
}

/// `-L --daemon --json`: one row per peer (none without peers).
pub fn list_daemon(h: Option<&HaStatus>) -> String {
    #[derive(Serialize)]
    struct Daemons {
        daemons: Vec<DaemonRow>,
    }
    to_text(&Daemons {
        daemons: h.map_or_else(Vec::new, daemon_rows),
    })
}

/// `uvs status --json`: the counters as one object, in the text's order.
pub fn status(pairs: &[(String, u64)]) -> String {
    struct Ordered<'a>(&'a [(String, u64)]);
    impl Serialize for Ordered<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
        }
    }
    to_text(&Ordered(pairs))
}

#[cfg(test)]
mod tests;
