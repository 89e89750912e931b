//! `uvs audit`: the real-server (and director) settings that silently break
//! LVS, checked the way the kernel reads them, each finding with the one
//! command that fixes it.
//!
//! Effective values follow the kernel: arp_ignore, arp_announce and
//! rp_filter are max(conf/all, conf/IFACE); accept_local is on if either
//! is; forwarding is the interface's own value. IPv6 VIPs have checks of
//! their own (`checks6`, docs/audit.md "IPv6 on a real server").

mod checks;
mod checks6;
mod error;
mod family;
pub mod fix;
pub mod run;
pub mod source;

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::host::{IfAddr, Link, Route};
pub use error::Error;
use family::{Family, Place};

impl Route {
    /// `ip route change` for this route with a new advmss, keeping what
    /// identifies it (a kernel route keeps its proto, scope and source).
    fn change_command(&self, advmss: u32) -> String {
        let mut c = format!("ip route change {}", self.dst);
        if let Some(g) = self.gateway {
            c += &format!(" via {g}");
        }
        c += &format!(" dev {}", self.dev);
        if self.kernel {
            c += " proto kernel scope link";
        }
        if let Some(s) = self.prefsrc {
            c += &format!(" src {s}");
        }
        if let Some(m) = self.mtu {
            c += &format!(" mtu {m}");
        }
        c + &format!(" advmss {advmss}")
    }
}

/// Everything the checks look at, whatever the source.
#[derive(Debug, Clone, Default)]
pub struct HostState {
    pub sysctl: BTreeMap<String, String>,
    pub links: Vec<Link>,
    pub addrs: Vec<IfAddr>,
    /// Main-table unicast routes (empty when the source has none).
    pub routes: Vec<Route>,
    pub decap_running: bool,
    /// `ethtool -k` output per interface, where it could be read.
    pub offloads: BTreeMap<String, String>,
    pub source: String,
    /// IPv6 addresses with their DAD state.
    pub addrs6: Vec<Addr6>,
    /// Links whose kernel tunnel delivers IPv6 (ip6tnl, sit).
    pub tunnels6: Vec<String>,
    /// IPv6 proxy neighbour entries (link, address); `None` when the
    /// source could not tell (a dump without neigh-proxy.json).
    pub proxies6: Option<Vec<(String, Ipv6Addr)>>,
}

/// An IPv6 address on a link, with the state duplicate address detection
/// left it in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr6 {
    pub dev: String,
    pub addr: Ipv6Addr,
    pub prefix: u8,
    /// DAD is running: the kernel neither uses nor accepts it yet.
    pub tentative: bool,
    /// DAD found a duplicate: it stays unusable.
    pub dadfailed: bool,
    /// Added with `nodad`.
    pub nodad: bool,
}

impl Addr6 {
    /// `addr/prefix`, with the DAD state when it is not a usable one.
    fn shown(&self) -> String {
        let state = if self.dadfailed {
            " (dadfailed)"
        } else if self.tentative {
            " (tentative)"
        } else {
            ""
        };
        format!("{}/{}{state}", self.addr, self.prefix)
    }

    fn place(&self) -> Place<'_> {
        Place {
            dev: &self.dev,
            prefix: self.prefix,
            shown: self.shown(),
        }
    }
}

/// The GRO/TSO/checksum lines of `ethtool -k` output, condensed.
pub fn summarize_offloads(ethtool_k: &str) -> String {
    let want = [
        ("generic-receive-offload", "gro"),
        ("tcp-segmentation-offload", "tso"),
        ("generic-segmentation-offload", "gso"),
        ("rx-checksumming", "rx-csum"),
        ("tx-checksumming", "tx-csum"),
    ];
    let mut parts = Vec::new();
    for l in ethtool_k.lines() {
        if let Some((k, v)) = l.trim().split_once(':')
            && let Some((_, short)) = want.iter().find(|(n, _)| *n == k.trim())
        {
            let v = v.split_whitespace().next().unwrap_or("?");
            parts.push(format!("{short} {v}"));
        }
    }
    if parts.is_empty() {
        "unknown".into()
    } else {
        parts.join(", ")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Info,
    Warn,
    Fail,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK  ",
            Status::Info => "INFO",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// How a finding is fixed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Fix {
    Sysctl {
        key: String,
        value: String,
    },
    /// An address change (`ip addr ...`): printed, applied only with
    /// --fix-addresses.
    Address {
        command: String,
    },
    /// Anything else: advice to follow by hand.
    Manual {
        command: String,
    },
}

impl Fix {
    pub fn command(&self) -> String {
        match self {
            Fix::Sysctl { key, value } => format!("sysctl -w {key}={value}"),
            Fix::Address { command } | Fix::Manual { command } => command.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub status: Status,
    pub check: String,
    /// The effective value and where it comes from.
    pub value: String,
    pub why: String,
    pub fixes: Vec<Fix>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Dr,
    Tun,
    Nat,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub mode: Mode,
    /// IPv4 and IPv6 VIPs, in any mix.
    pub vips: Vec<IpAddr>,
    /// Audit a director rather than a real server.
    pub director: bool,
    /// The director's capture interface (with `director`).
    pub interface: Option<String>,
    /// The director's address (NAT: real servers must route through it).
    pub director_addr: Option<Ipv4Addr>,
}

impl Options {
    fn vips4(&self) -> Vec<Ipv4Addr> {
        let v4 = |v: &IpAddr| match v {
            IpAddr::V4(a) => Some(*a),
            IpAddr::V6(_) => None,
        };
        self.vips.iter().filter_map(v4).collect()
    }

    fn vips6(&self) -> Vec<Ipv6Addr> {
        let v6 = |v: &IpAddr| match v {
            IpAddr::V6(a) => Some(*a),
            IpAddr::V4(_) => None,
        };
        self.vips.iter().filter_map(v6).collect()
    }
}

impl HostState {
    fn get(&self, key: &str) -> Option<i64> {
        self.sysctl.get(key).and_then(|v| v.trim().parse().ok())
    }

    fn conf(&self, dev: &str, k: &str) -> Option<i64> {
        self.get(&format!("net.ipv4.conf.{dev}.{k}"))
    }

    /// max(all, dev), with the text saying where it came from.
    fn effective_max(&self, dev: &str, k: &str) -> (i64, String) {
        let a = self.conf("all", k).unwrap_or(0);
        let d = self.conf(dev, k).unwrap_or(0);
        (a.max(d), format!("{} = max(all={a}, {dev}={d})", a.max(d)))
    }

    /// The gateway of the main table's default route, if any.
    pub fn default_gw(&self) -> Option<Ipv4Addr> {
        self.routes
            .iter()
            .find(|r| r.dst.is_default())
            .and_then(|r| r.gateway)
    }

    /// Interfaces that face the director or clients: up, not loopback, not
    /// a tunnel, with an IPv4 address.
    fn traffic_links(&self) -> Vec<&Link> {
        self.links
            .iter()
            .filter(|l| {
                l.up && !l.loopback && !l.tunnel && self.addrs.iter().any(|a| a.0 == l.name)
            })
            .collect()
    }

    fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    fn vip_places(&self, vip: Ipv4Addr) -> Vec<Place<'_>> {
        self.addrs
            .iter()
            .filter(|a| a.1 == vip)
            .map(|a| Place {
                dev: &a.0,
                prefix: a.2,
                shown: format!("{vip}/{}", a.2),
            })
            .collect()
    }
}

struct Out(Vec<Finding>);

impl Out {
    fn add(
        &mut self,
        status: Status,
        check: impl Into<String>,
        value: impl Into<String>,
        why: &str,
        fixes: Vec<Fix>,
    ) {
        self.0.push(Finding {
            status,
            check: check.into(),
            value: value.into(),
            why: why.into(),
            fixes,
        });
    }
}

fn sysctl_fix(key: String, value: i64) -> Fix {
    Fix::Sysctl {
        key,
        value: value.to_string(),
    }
}

/// For a max(all, dev) sysctl that must be at most `limit`: lower every
/// side above it.
fn lower_fixes(h: &HostState, dev: &str, k: &str, to: i64, limit: i64) -> Vec<Fix> {
    ["all", dev]
        .iter()
        .filter(|d| h.conf(d, k).unwrap_or(0) > limit)
        .map(|d| sysctl_fix(format!("net.ipv4.conf.{d}.{k}"), to))
        .collect()
}

/// Runs every check that applies to `o` against `h`: the IPv4 checks when
/// a VIP is IPv4 (or none is given), the IPv6 ones when a VIP is IPv6.
pub fn audit(h: &HostState, o: &Options) -> Vec<Finding> {
    let mut out = Out(Vec::new());
    let v4 = o.vips.is_empty() || !o.vips4().is_empty();
    let v6 = !o.vips6().is_empty();
    if o.director {
        checks::director_checks(h, o, &mut out);
        checks6::director_checks(h, o, &mut out);
    } else {
        let dr_tun = matches!(o.mode, Mode::Dr | Mode::Tun);
        if v4 && dr_tun {
            checks::vip_checks(h, o, &mut out);
            checks::arp_checks(h, &mut out);
        }
        if v4 && o.mode == Mode::Tun {
            checks::tun_checks(h, o, &mut out);
        }
        if v4 {
            checks::accept_local_check(h, &mut out);
        }
        if v6 && dr_tun {
            checks6::real_server(h, o, &mut out);
        }
        if o.mode == Mode::Nat {
            checks::nat_checks(h, o, &mut out);
        }
        checks::timestamp_checks(h, o, &mut out);
    }
    out.0
}

/// 0 all good, 1 warnings, 2 errors.
pub fn exit_code(f: &[Finding]) -> u8 {
    match f.iter().map(|x| x.status).max() {
        Some(Status::Fail) => 2,
        Some(Status::Warn) => 1,
        _ => 0,
    }
}

/// One line per check: status, check, effective value, why, fix.
pub fn render(h: &HostState, f: &[Finding]) -> String {
    let mut s = format!("uvs audit of {}\n", h.source);
    for x in f {
        let _ = write!(
            s,
            "{} {:<28} {:<34} {}",
            x.status.label(),
            x.check,
            x.value,
            x.why
        );
        if !x.fixes.is_empty() {
            let cmds: Vec<String> = x.fixes.iter().map(Fix::command).collect();
            let _ = write!(s, " -- fix: {}", cmds.join("; "));
        }
        s.push('\n');
    }
    let n = |st| f.iter().filter(|x| x.status == st).count();
    let _ = writeln!(
        s,
        "{} failed, {} warnings, {} ok",
        n(Status::Fail),
        n(Status::Warn),
        n(Status::Ok)
    );
    s
}
