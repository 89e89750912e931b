//! Virtual services and real servers: the LVS vocabulary shared by the
//! control plane, the data plane and `uvsadm`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::Ipv4Addr;

/// Transport protocol of a virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// IP protocol number, which is also ipvsadm's sort key.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }

    pub fn from_number(n: u8) -> Option<Protocol> {
        match n {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            _ => None,
        }
    }

    /// The upper-case name used in listings ("TCP", "UDP").
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }

    /// The ipvsadm option that selects a service of this protocol.
    pub fn option(self) -> &'static str {
        match self {
            Protocol::Tcp => "-t",
            Protocol::Udp => "-u",
        }
    }
}

/// A virtual service is identified by protocol, virtual IP and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServiceKey {
    pub protocol: Protocol,
    pub addr: Ipv4Addr,
    pub port: u16,
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}:{}", self.protocol.name(), self.addr, self.port)
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
}

impl SchedulerKind {
    pub const ALL: [SchedulerKind; 5] = [
        SchedulerKind::Rr,
        SchedulerKind::Wrr,
        SchedulerKind::Lc,
        SchedulerKind::Wlc,
        SchedulerKind::Sh,
    ];

    /// Whether a flow's real server follows from the flow alone (a hash),
    /// so that it can be derived again without a connection entry: after
    /// a crash, an established flow's next packet goes where it went.
    pub fn rederives(self) -> bool {
        self == SchedulerKind::Sh
    }

    pub fn name(self) -> &'static str {
        match self {
            SchedulerKind::Rr => "rr",
            SchedulerKind::Wrr => "wrr",
            SchedulerKind::Lc => "lc",
            SchedulerKind::Wlc => "wlc",
            SchedulerKind::Sh => "sh",
        }
    }

    pub fn from_name(s: &str) -> Option<SchedulerKind> {
        SchedulerKind::ALL.into_iter().find(|k| k.name() == s)
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
/// `ip_vs_sched_persist`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Persistence {
    /// Seconds, 1..=[`MAX_TIMEOUT`].
    pub timeout: u32,
    /// The client network's granularity (ipvsadm's default /32).
    pub netmask: Ipv4Addr,
}

impl Persistence {
    /// ipvsadm's `-p` without a value: `IPVS_SVC_PERSISTENT_TIMEOUT` in
    /// libipvs.h, 360 s (its man page says 300).
    pub const DEFAULT_TIMEOUT: u32 = 360;
    pub const DEFAULT_NETMASK: Ipv4Addr = Ipv4Addr::BROADCAST;
    pub fn new(timeout: u32) -> Persistence {
        Persistence {
            timeout,
            netmask: Persistence::DEFAULT_NETMASK,
        }
    }

    /// The client network a client belongs to.
    #[inline]
    pub fn client_net(&self, caddr: Ipv4Addr) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(caddr) & u32::from(self.netmask))
    }
}
