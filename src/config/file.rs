//! The config file's shape, as serde reads it (with spans, for errors at
//! their line and column) and as the keepalived importer writes it.

use serde::{Deserialize, Serialize};
use toml::Spanned;

/// The file as written: read by [`parse`], and written by the keepalived
/// importer (`crate::import::keepalived`), so what one writes the other
/// reads. `None` and empty lists are left out of what is written; spans
/// are only read (a written value has none).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct File {
    /// The director's settings (`settings::SETTINGS`), by their keys.
    #[serde(default)]
    pub(crate) director: std::collections::BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    pub(crate) timeouts: Option<TimeoutsSection>,
    /// Firewall marks, one iptables MARK rule each (`lvs::mark`).
    #[serde(default, rename = "mark", skip_serializing_if = "Vec::is_empty")]
    pub(crate) marks: Vec<MarkSection>,
    #[serde(default, rename = "service", skip_serializing_if = "Vec::is_empty")]
    pub(crate) services: Vec<ServiceSection>,
}

/// One rule of a firewall mark: `iptables -t mangle -A PREROUTING -d VIP
/// -p PROTOCOL -m multiport --dports PORTS -j MARK --set-mark ID`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MarkSection {
    pub(crate) id: Spanned<u32>,
    /// tcp, udp or all (the default).
    pub(crate) protocol: Option<Spanned<String>>,
    pub(crate) vip: Spanned<String>,
    /// `80,443`, `8000:8100`; every port if left out.
    pub(crate) ports: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TimeoutsSection {
    pub(crate) tcp: Option<u32>,
    pub(crate) tcpfin: Option<u32>,
    pub(crate) udp: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServiceSection {
    /// tcp or udp, with `address`; or `fwmark` instead of both.
    pub(crate) protocol: Option<Spanned<String>>,
    pub(crate) address: Option<Spanned<String>>,
    /// A firewall-mark service (`-f`): the frames of a `[[mark]]`.
    pub(crate) fwmark: Option<Spanned<u32>>,
    /// With `fwmark`: the mark's IPv6 service (ipvsadm's `-f N -6`),
    /// serving its IPv6 VIPs' frames.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ipv6: Option<Spanned<bool>>,
    pub(crate) scheduler: Option<Spanned<String>>,
    /// ipvsadm's `-b`: "sh-fallback", "sh-port", "mh-fallback",
    /// "mh-port", "flag-1".."flag-3".
    pub(crate) sched_flags: Option<Spanned<Vec<String>>>,
    /// One-packet scheduling (`-o`): each UDP datagram on its own.
    pub(crate) ops: Option<Spanned<bool>>,
    /// Seconds a client network keeps its real server (`-p`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) persistence_timeout: Option<Spanned<i64>>,
    /// The client network's mask (`-M`), dotted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) persistence_mask: Option<Spanned<String>>,
    /// quiesce (default) or remove.
    pub(crate) on_failure: Option<Spanned<String>>,
    /// The check of every real server of the service (each may override).
    pub(crate) check: Option<CheckSection>,
    /// Takes new connections while the live weight is below `quorum`.
    pub(crate) sorry_server: Option<RealServerSection>,
    /// The least total weight of live real servers (default 1).
    pub(crate) quorum: Option<Spanned<u32>>,
    /// Commands run when the quorum is regained and lost.
    pub(crate) quorum_up: Option<String>,
    pub(crate) quorum_down: Option<String>,
    /// Seconds over which a joining real server's weight ramps up (each
    /// real server may override).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) slow_start: Option<Spanned<u32>>,
    #[serde(default, rename = "real_server", skip_serializing_if = "Vec::is_empty")]
    pub(crate) real_servers: Vec<RealServerSection>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RealServerSection {
    pub(crate) address: Spanned<String>,
    pub(crate) forward: Option<Spanned<String>>,
    pub(crate) weight: Option<Spanned<i64>>,
    pub(crate) check: Option<CheckSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) slow_start: Option<Spanned<u32>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckSection {
    #[serde(rename = "type")]
    pub(crate) kind: Spanned<String>,
    pub(crate) interval: Option<Spanned<toml::Value>>,
    pub(crate) timeout: Option<Spanned<toml::Value>>,
    pub(crate) warmup: Option<Spanned<toml::Value>>,
    pub(crate) rise: Option<Spanned<u32>>,
    pub(crate) fall: Option<Spanned<u32>>,
    pub(crate) port: Option<u16>,
    pub(crate) path: Option<String>,
    pub(crate) status: Option<Vec<Spanned<toml::Value>>>,
    pub(crate) body_contains: Option<String>,
    /// http: the body's MD5 in hex (keepalived's `digest`).
    pub(crate) digest: Option<String>,
    pub(crate) host: Option<String>,
    /// udp: what to send, and what the reply must contain.
    pub(crate) payload: Option<String>,
    pub(crate) expect: Option<String>,
    /// dns: the name to query (type A).
    pub(crate) name: Option<String>,
    /// exec: the command (`sh -c`).
    pub(crate) command: Option<String>,
    /// exec: exit 2-255 is up with weight code - 2 (keepalived's
    /// misc_dynamic); without it every non-zero exit is down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) dynamic: Option<bool>,
    /// Tries again after a failure of an up server (keepalived's `retry`,
    /// `delay_before_retry`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) retry: Option<Spanned<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) retry_delay: Option<Spanned<toml::Value>>,
    /// tcp: the SYN goes to the VIP through the data path (DR/TUN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) via_vip: Option<Spanned<bool>>,
}
