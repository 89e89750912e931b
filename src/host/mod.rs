//! The host the director (or a real server) runs on: its links, addresses,
//! routes and neighbours as typed facts ([`Link`], [`Route`], [`Prefix`]),
//! read over rtnetlink ([`netlink`]), and the raw system calls uvs makes
//! ([`sys`]: packet sockets, interface ioctls, the TUN device), and what
//! it tells the service manager ([`notify`]: readiness, the watchdog). `audit`,
//! `probe`, the control plane and the daemon all read the host through
//! here.

pub mod netlink;
pub mod notify;
pub mod sys;

use serde::{Serialize, Serializer};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// What failed asking the host: a program it runs, or rtnetlink.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The program could not be started at all.
    #[error("cannot run {prog}: {source}")]
    Spawn {
        prog: String,
        #[source]
        source: std::io::Error,
    },
    /// The program ran and failed: `what` it was, with its own message.
    #[error("{what}: {message}")]
    Failed { what: String, message: String },
    /// The netlink socket could not be opened.
    #[error("netlink: {0}")]
    Open(#[source] std::io::Error),
    /// A netlink request (a dump, a neighbour update) failed.
    #[error("netlink: {0}")]
    Netlink(#[from] rtnetlink::Error),
    /// The kernel has no route to the address.
    #[error("no route to {dst}: {source}")]
    NoRoute {
        dst: std::net::IpAddr,
        #[source]
        source: rtnetlink::Error,
    },
    /// A neighbour never answered; `what` names it, `reply` the answer
    /// that never came (an ARP reply, a neighbour advertisement).
    #[error(
        "cannot resolve the MAC address of {what} on {ifname}: no {reply}. \
         Is it up and on this segment?"
    )]
    NoNeighbourReply {
        what: String,
        ifname: String,
        reply: &'static str,
    },
}

/// A route destination that does not parse (`Prefix`'s `FromStr`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad route destination '{0}'")]
pub struct BadPrefix(pub String);

/// A network interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    pub name: String,
    pub up: bool,
    pub mtu: u32,
    pub loopback: bool,
    /// An IPIP (tunl0) or TUN device: where decapsulated packets arrive.
    pub tunnel: bool,
}

/// The host's clock in milliseconds since the Unix epoch (0 if it is set
/// before 1970): what directors and tests compare across processes.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// An IPv4 address on a link: (link name, address, prefix length).
pub type IfAddr = (String, Ipv4Addr, u8);

/// A route's destination: a network and its prefix length; `default` is
/// 0.0.0.0/0. Shown (and serialised) as `ip route` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl Prefix {
    pub const DEFAULT: Prefix = Prefix {
        addr: Ipv4Addr::UNSPECIFIED,
        len: 0,
    };

    pub fn is_default(&self) -> bool {
        self.len == 0
    }

    /// Whether `a` is inside the prefix.
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
        u32::from(a) & mask == u32::from(self.addr) & mask
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.is_default() {
            true => f.write_str("default"),
            false => write!(f, "{}/{}", self.addr, self.len),
        }
    }
}

impl FromStr for Prefix {
    type Err = BadPrefix;

    /// "default", "a.b.c.d/len", or a bare address (a /32).
    fn from_str(s: &str) -> Result<Prefix, BadPrefix> {
        if s == "default" {
            return Ok(Prefix::DEFAULT);
        }
        let bad = || BadPrefix(s.to_string());
        let (a, l) = s.split_once('/').unwrap_or((s, "32"));
        let len: u8 = l.parse().ok().filter(|p| *p <= 32).ok_or_else(bad)?;
        Ok(Prefix {
            addr: a.parse().map_err(|_| bad())?,
            len,
        })
    }
}

impl Serialize for Prefix {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A unicast IPv4 route of the main table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    pub dst: Prefix,
    pub gateway: Option<Ipv4Addr>,
    pub dev: String,
    pub advmss: Option<u32>,
    pub mtu: Option<u32>,
    /// Installed by the kernel for a configured address (proto kernel).
    pub kernel: bool,
    pub prefsrc: Option<Ipv4Addr>,
}

/// Runs `prog args` (never through a shell) and returns its standard
/// output; an error names `what` with the program's own message.
pub fn run(prog: &str, args: &[&str], what: &str) -> Result<String, Error> {
    let o = std::process::Command::new(prog)
        .args(args)
        .output()
        .map_err(|source| Error::Spawn {
            prog: prog.to_string(),
            source,
        })?;
    if !o.status.success() {
        return Err(Error::Failed {
            what: what.to_string(),
            message: String::from_utf8_lossy(&o.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_prefix(s: &str) -> Option<(Ipv4Addr, u8)> {
        s.parse::<Prefix>().ok().map(|p| (p.addr, p.len))
    }

    #[test]
    fn route_destinations_parse_or_are_skipped() {
        assert_eq!(parse_prefix("default"), Some((Ipv4Addr::UNSPECIFIED, 0)));
        assert_eq!(
            parse_prefix("198.18.0.0/24"),
            Some((Ipv4Addr::new(198, 18, 0, 0), 24))
        );
        assert_eq!(
            parse_prefix("198.18.0.9"),
            Some((Ipv4Addr::new(198, 18, 0, 9), 32))
        );
        for bad in ["198.18.0.0/33", "198.18.0.0/x", "fe80::/64", "", "/8"] {
            assert_eq!(parse_prefix(bad), None, "{bad}");
        }
    }

    #[test]
    fn prefixes_print_as_ip_route_does_and_contain_their_addresses() {
        let p: Prefix = "198.18.0.0/24".parse().unwrap();
        assert_eq!(p.to_string(), "198.18.0.0/24");
        assert_eq!(Prefix::DEFAULT.to_string(), "default");
        assert!(p.contains(Ipv4Addr::new(198, 18, 0, 200)));
        assert!(!p.contains(Ipv4Addr::new(198, 18, 1, 1)));
        assert!(Prefix::DEFAULT.contains(Ipv4Addr::new(203, 0, 113, 1)));
    }
}
