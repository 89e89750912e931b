//! Virtual services and real servers: the LVS vocabulary shared by the
//! control plane, the data plane and `uvsadm`.

use crate::lvs::addr::Addr;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Transport protocol of a virtual service, or of a connection entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Protocol {
    Tcp,
    Udp,
    /// IPVS's `IPPROTO_IP` (0): every protocol. Only a firewall-mark
    /// service's persistence template has it (one template for the
    /// mark's every protocol, VIP and port, as IPVS keys it); never a
    /// frame's ([`Protocol::from_number`] does not give it) nor a
    /// service's (the model refuses it).
    Ip,
}

impl Protocol {
    /// IP protocol number, which is also ipvsadm's sort key.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Ip => 0,
        }
    }

    pub fn from_number(n: u8) -> Option<Protocol> {
        match n {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            _ => None,
        }
    }

    /// The upper-case name used in listings ("TCP", "UDP"; "IP" for a
    /// mark service's template, as ipvsadm prints it).
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Ip => "IP",
        }
    }

    /// The ipvsadm option that selects a service of this protocol (a
    /// service never has [`Protocol::Ip`]: that of a mark's, `-f`).
    pub fn option(self) -> &'static str {
        match self {
            Protocol::Tcp => "-t",
            Protocol::Udp => "-u",
            Protocol::Ip => "-f",
        }
    }
}

/// A virtual service is identified by protocol, virtual IP and port, or
/// (`fwmark` not 0) by a firewall mark alone, as IPVS identifies its
/// services: a mark's key has protocol TCP, address 0.0.0.0 and port 0
/// ([`ServiceKey::mark`]), and which frames it serves is the mark's
/// definition ([`crate::lvs::mark`]). Persistence templates of a mark
/// service key on the mark, as IPVS's do (the mark as the virtual address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServiceKey {
    pub protocol: Protocol,
    pub addr: IpAddr,
    pub port: u16,
    /// ipvsadm `-f MARK`; 0 for a `-t`/`-u` service.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fwmark: u32,
}

fn is_zero(m: &u32) -> bool {
    *m == 0
}

impl ServiceKey {
    /// The service of a protocol, VIP and port (`-t`/`-u`).
    pub fn addr(protocol: Protocol, addr: impl Into<IpAddr>, port: u16) -> ServiceKey {
        ServiceKey {
            protocol,
            addr: addr.into(),
            port,
            fwmark: 0,
        }
    }

    /// The service of firewall mark `mark` (`-f MARK`, not 0).
    pub const fn mark(mark: u32) -> ServiceKey {
        ServiceKey {
            protocol: Protocol::Tcp,
            addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 0,
            fwmark: mark,
        }
    }

    /// The service of firewall mark `mark` for frames of one family:
    /// IPv4's (`-f MARK`) or IPv6's (`-f MARK -6`, address `::`). IPVS
    /// keys a mark service by its family too, so the two are distinct.
    pub fn mark_of(mark: u32, v6: bool) -> ServiceKey {
        let addr = match v6 {
            false => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            true => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        };
        ServiceKey {
            addr,
            ..ServiceKey::mark(mark)
        }
    }

    /// The firewall mark of a mark service.
    pub fn fwmark(&self) -> Option<u32> {
        (self.fwmark != 0).then_some(self.fwmark)
    }

    /// Its VIP, for a `-t`/`-u` service (a mark's VIPs are its definition's).
    pub fn vip(&self) -> Option<IpAddr> {
        (self.fwmark == 0).then_some(self.addr)
    }

    /// Its VIP if that is an IPv4 address: what ARP claims and the IPv4
    /// data plane serve.
    pub fn vip4(&self) -> Option<Ipv4Addr> {
        match self.vip()? {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        }
    }

    /// The VIP and port as ipvsadm writes them: `198.18.0.10:80`,
    /// `[2001:2::10]:80`.
    pub fn socket(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.port)
    }

    /// ipvsadm's service option with its argument: `-t 198.18.0.10:80`,
    /// `-u …`, `-f 100`, `-f 100 -6`.
    pub fn option(&self) -> String {
        match self.fwmark() {
            Some(m) if self.addr.is_ipv6() => format!("-f {m} -6"),
            Some(m) => format!("-f {m}"),
            None => format!("{} {}", self.protocol.option(), self.socket()),
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.fwmark() {
            Some(m) if self.addr.is_ipv6() => write!(f, "FWM {m} IPv6"),
            Some(m) => write!(f, "FWM {m}"),
            None => write!(f, "{} {}", self.protocol.name(), self.socket()),
        }
    }
}

/// How packets reach a real server (ipvsadm -g / -i / -m).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Forward {
    /// Direct routing: only the destination MAC changes.
    Route,
    /// IP-in-IP tunnelling.
    Tunnel,
    /// NAT (masquerading).
    Masq,
}

impl Forward {
    /// The column text of `ipvsadm -L`.
    pub fn name(self) -> &'static str {
        match self {
            Forward::Route => "Route",
            Forward::Tunnel => "Tunnel",
            Forward::Masq => "Masq",
        }
    }

    /// The switch `ipvsadm -S` writes.
    pub fn switch(self) -> &'static str {
        match self {
            Forward::Route => "-g",
            Forward::Tunnel => "-i",
            Forward::Masq => "-m",
        }
    }
}

/// Scheduling algorithms uvs implements, with the kernel's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SchedulerKind {
    Rr,
    Wrr,
    Lc,
    Wlc,
    /// Source hashing (ip_vs_sh.c): the client's address picks the server.
    Sh,
    /// Shortest expected delay (ip_vs_sed.c).
    Sed,
    /// Never queue (ip_vs_nq.c).
    Nq,
    /// Destination hashing (ip_vs_dh.c).
    Dh,
    /// Maglev hashing (ip_vs_mh.c).
    Mh,
    /// Weighted failover (ip_vs_fo.c).
    Fo,
    /// Weighted overflow (ip_vs_ovf.c).
    Ovf,
}

impl SchedulerKind {
    pub const ALL: [SchedulerKind; 11] = [
        SchedulerKind::Rr,
        SchedulerKind::Wrr,
        SchedulerKind::Lc,
        SchedulerKind::Wlc,
        SchedulerKind::Sh,
        SchedulerKind::Sed,
        SchedulerKind::Nq,
        SchedulerKind::Dh,
        SchedulerKind::Mh,
        SchedulerKind::Fo,
        SchedulerKind::Ovf,
    ];

    /// Whether a flow's real server follows from the flow alone (a hash),
    /// so that it can be derived again without a connection entry: after
    /// a crash, an established flow's next packet goes where it went.
    pub fn rederives(self) -> bool {
        matches!(
            self,
            SchedulerKind::Sh | SchedulerKind::Mh | SchedulerKind::Dh
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            SchedulerKind::Rr => "rr",
            SchedulerKind::Wrr => "wrr",
            SchedulerKind::Lc => "lc",
            SchedulerKind::Wlc => "wlc",
            SchedulerKind::Sh => "sh",
            SchedulerKind::Sed => "sed",
            SchedulerKind::Nq => "nq",
            SchedulerKind::Dh => "dh",
            SchedulerKind::Mh => "mh",
            SchedulerKind::Fo => "fo",
            SchedulerKind::Ovf => "ovf",
        }
    }

    pub fn from_name(s: &str) -> Option<SchedulerKind> {
        SchedulerKind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Every scheduler's name, for messages: "rr, wrr, …".
    pub fn known() -> String {
        SchedulerKind::ALL.map(|k| k.name()).join(", ")
    }

    /// Why uvs refuses a scheduler the kernel has (`None` for a name
    /// the kernel does not know either).
    pub fn refusal(s: &str) -> Option<&'static str> {
        match s {
            "lblc" | "lblcr" => Some(
                "locality-based schedulers key on the destination address, which is \
                 the VIP itself for a uvs service (no transparent cache cluster): \
                 use dh, sh or mh",
            ),
            "twos" => Some("twos picks at random, which ipvsadm 1.31 does not list: use wlc"),
            _ => None,
        }
    }

    /// The names of the flags `-b` sets for this scheduler, bit by bit
    /// (ipvsadm's print_sched_flags).
    fn flag_names(self) -> [&'static str; 3] {
        match self {
            SchedulerKind::Sh => ["sh-fallback", "sh-port", "flag-3"],
            SchedulerKind::Mh => ["mh-fallback", "mh-port", "flag-3"],
            _ => ["flag-1", "flag-2", "flag-3"],
        }
    }
}

/// The scheduler flags of `-b` (IP_VS_SVC_F_SCHED1..3): for sh and mh,
/// the first is `*-fallback` and the second `*-port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SchedFlags(pub u8);

/// Why a `-b` list was refused (ipvsadm's parse_sched_flags texts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedFlagError {
    #[error("invalid scheduler flag `{0}'")]
    Invalid(String),
    #[error("incompatible scheduler flag `{0}'")]
    Incompatible(String),
}

impl SchedFlags {
    /// `*-fallback` (flag-1).
    pub const FALLBACK: u8 = 1;
    /// `*-port` (flag-2).
    pub const PORT: u8 = 2;

    pub fn fallback(self) -> bool {
        self.0 & SchedFlags::FALLBACK != 0
    }

    pub fn port(self) -> bool {
        self.0 & SchedFlags::PORT != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Parses a comma-separated list as ipvsadm does: flag-1..3 with any
    /// scheduler, sh-* only with sh and mh-* only with mh.
    pub fn parse(list: &str, sched: &str) -> Result<SchedFlags, SchedFlagError> {
        let mut bits = 0u8;
        for f in list.split(',') {
            let (bit, only) = match f {
                "flag-1" => (1, None),
                "flag-2" => (2, None),
                "flag-3" => (4, None),
                "sh-fallback" => (1, Some("sh")),
                "sh-port" => (2, Some("sh")),
                "mh-fallback" => (1, Some("mh")),
                "mh-port" => (2, Some("mh")),
                _ => return Err(SchedFlagError::Invalid(f.to_string())),
            };
            if only.is_some_and(|o| o != sched) {
                return Err(SchedFlagError::Incompatible(f.to_string()));
            }
            bits |= bit;
        }
        Ok(SchedFlags(bits))
    }

    /// The list as ipvsadm prints it for scheduler `kind` (empty if no
    /// flag is set).
    pub fn names(self, kind: Option<SchedulerKind>) -> String {
        let names = kind.map_or(["flag-1", "flag-2", "flag-3"], |k| k.flag_names());
        let set: Vec<&str> = (0..3)
            .filter(|i| self.0 & (1 << i) != 0)
            .map(|i| names[i])
            .collect();
        set.join(",")
    }
}

/// Connection timeouts settable with `--set tcp tcpfin udp`, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    pub tcp: u32,
    pub tcpfin: u32,
    pub udp: u32,
}

impl Default for Timeouts {
    /// IPVS's defaults (ip_vs_proto_tcp.c, ip_vs_proto_udp.c).
    fn default() -> Self {
        Timeouts {
            tcp: 900,
            tcpfin: 120,
            udp: 300,
        }
    }
}

/// ipvsadm's upper bound for any timeout: 31 days.
pub const MAX_TIMEOUT: u32 = 86400 * 31;

/// A persistent service's options (`-p TIMEOUT`, `-M NETMASK`): a client
/// network keeps its real server for `timeout` seconds after its last
/// new connection, through a persistence template (IPVS's
/// `ip_vs_sched_persist`). The client network is given by the service's
/// family: an IPv4 service's by a netmask, an IPv6 one's by a prefix
/// length (IPVS keeps either in `svc->netmask`, by the service's family).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Persistence {
    /// Seconds, 1..=[`MAX_TIMEOUT`].
    pub timeout: u32,
    /// An IPv4 service's client network (ipvsadm's default /32).
    pub netmask: Ipv4Addr,
    /// An IPv6 service's client prefix length, 1..=128 (ipvsadm's
    /// `-M 64` for an IPv6 service; default 128).
    #[serde(default = "full_prefix6", skip_serializing_if = "is_full_prefix6")]
    pub prefix6: u8,
}

fn full_prefix6() -> u8 {
    Persistence::DEFAULT_PREFIX6
}

fn is_full_prefix6(p: &u8) -> bool {
    *p == Persistence::DEFAULT_PREFIX6
}

impl Persistence {
    /// ipvsadm's `-p` without a value: `IPVS_SVC_PERSISTENT_TIMEOUT` in
    /// libipvs.h, 360 s (its man page says 300).
    pub const DEFAULT_TIMEOUT: u32 = 360;
    pub const DEFAULT_NETMASK: Ipv4Addr = Ipv4Addr::BROADCAST;
    pub const DEFAULT_PREFIX6: u8 = 128;
    pub fn new(timeout: u32) -> Persistence {
        Persistence {
            timeout,
            netmask: Persistence::DEFAULT_NETMASK,
            prefix6: Persistence::DEFAULT_PREFIX6,
        }
    }

    /// The client network a client belongs to.
    #[inline]
    pub fn client_net<A: Addr>(&self, caddr: A) -> A {
        caddr.masked(self.client_mask())
    }

    /// The mask of the client networks of family `A`: the netmask for
    /// IPv4, the prefix for IPv6.
    #[inline]
    pub fn client_mask<A: Addr>(&self) -> A {
        A::from_ip(self.netmask.into()).unwrap_or_else(|| A::prefix_mask(self.prefix6))
    }

    /// The granularity a service of family `v6` shows, if not the
    /// default (ipvsadm's `mask 255.255.255.0`, `mask 64`; `-M …`).
    pub fn shown_mask(&self, v6: bool) -> Option<String> {
        match v6 {
            false => {
                (self.netmask != Persistence::DEFAULT_NETMASK).then(|| self.netmask.to_string())
            }
            true => {
                (self.prefix6 != Persistence::DEFAULT_PREFIX6).then(|| self.prefix6.to_string())
            }
        }
    }
}
