//! ipvsadm 1.31's listing and save formats, byte for byte: column widths,
//! the 33/28-character name cuts, trailing blanks, K/M/G/T counters and
//! the sort order (including the wrapping 32-bit address comparison).

mod ha;
mod health;
pub mod json;

pub use ha::{DaemonRow, daemon_rows, ha_status, list_daemon};
pub use health::list_health;

use super::names;
use crate::control::proto::{DestSnap, ServiceSnap, Snapshot};
use crate::lvs::ConnInfo;
use crate::lvs::service::{Forward, Protocol, SchedulerKind, Timeouts};
use crate::lvs::stats::StatsSnapshot;
use std::fmt::Write;
use std::net::IpAddr;

/// Listing switches (ipvsadm's FMT_* flags).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Format {
    pub columns: Columns,
    pub numeric: bool,
    pub nosort: bool,
    pub exact: bool,
}

/// Which columns a listing has: ipvsadm's plain list, one of its `-L`
/// variants, or the rules `-S` writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Columns {
    #[default]
    Plain,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    TunInfo,
    /// `-S`: the commands that restore the table.
    Rule,
}

/// What `-L` prints first: IPVS's version and connection-table size, which
/// uvs reports identically so tools that parse the header keep working.
pub const VERSION_LINE: &str = "IP Virtual Server version 1.2.1 (size=4096)\n";

/// `addr:port`, or `[addr]:port` for IPv6, as ipvsadm's
/// addrport_to_anyname writes them (names only for IPv4: ipvsadm asks
/// for an IPv6 address's name with an IPv4 length and gets none).
pub fn addrport(addr: IpAddr, port: u16, proto: Protocol, numeric: bool) -> String {
    let host = match addr {
        IpAddr::V4(a) if !numeric => {
            names::addr_to_host(a).map_or_else(|| a.to_string(), str::to_string)
        }
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    let svc = match numeric {
        true => None,
        false => names::port_to_service(port, proto),
    };
    let svc = svc.map_or_else(|| port.to_string(), str::to_string);
    format!("{host}:{svc}")
}

fn largenum(out: &mut String, i: u64, exact: bool) {
    if exact {
        let len = i.to_string().len();
        let w = if len <= 8 { 9 } else { len + 1 };
        let _ = write!(out, "{i:>w$}");
        return;
    }
    let _ = if i < 100_000_000 {
        write!(out, "{i:>9}")
    } else if i < 1_000_000_000 {
        write!(out, "{:>8}K", i / 1000)
    } else if i < 100_000_000_000 {
        write!(out, "{:>8}M", i / 1_000_000)
    } else if i < 100_000_000_000_000 {
        write!(out, "{:>8}G", i / 1_000_000_000)
    } else {
        write!(out, "{:>8}T", i / 1_000_000_000_000)
    };
}

fn title(out: &mut String, f: &Format) {
    let p = "Prot LocalAddress:Port";
    let r = "\n  -> RemoteAddress:Port";
    let _ = match f.columns {
        Columns::Stats => writeln!(
            out,
            "{p:<33} {:>8} {:>8} {:>8} {:>8} {:>8}{r}",
            "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        ),
        Columns::Rate => writeln!(
            out,
            "{p:<33} {:>8} {:>8} {:>8} {:>8} {:>8}{r}",
            "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        ),
        Columns::Thresholds => writeln!(
            out,
            "{p:<33} {:<10} {:<10} {:<10} {:<10}{r}",
            "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        ),
        Columns::PersistentConn => writeln!(
            out,
            "{p:<33} {:<9} {:<11} {:<10} {:<10}{r}",
            "Weight", "PersistConn", "ActiveConn", "InActConn"
        ),
        Columns::TunInfo => writeln!(
            out,
            "{p} Scheduler Flags{r}           Forward TunnelInfo    Weight ActiveConn InActConn"
        ),
        Columns::Plain => writeln!(
            out,
            "{p} Scheduler Flags{r}           Forward Weight ActiveConn InActConn"
        ),
        Columns::Rule => Ok(()),
    };
}

fn cut(mut s: String, n: usize) -> String {
    if let Some((i, _)) = s.char_indices().nth(n) {
        s.truncate(i);
    }
    s
}

/// libipvs's comparators: `ntohl(a) - ntohl(b)` narrowed to int (word by
/// word for IPv6), so addresses more than 2^31 apart compare "wrapped",
/// exactly as ipvsadm sorts them. IPv4 before IPv6 (AF_INET < AF_INET6).
fn cmp_addr(a: IpAddr, b: IpAddr) -> i64 {
    fn words(a: IpAddr) -> Vec<u32> {
        match a {
            IpAddr::V4(a) => vec![u32::from(a)],
            IpAddr::V6(a) => a
                .octets()
                .chunks(4)
                .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
                .collect(),
        }
    }
    if a.is_ipv4() != b.is_ipv4() {
        return family(a) - family(b);
    }
    let r = words(a)
        .into_iter()
        .zip(words(b))
        .map(|(a, b)| a.wrapping_sub(b) as i32)
        .find(|r| *r != 0);
    i64::from(r.unwrap_or(0))
}

/// libipvs compares services' address families as numbers.
fn family(a: IpAddr) -> i64 {
    match a {
        IpAddr::V4(_) => 2,
        IpAddr::V6(_) => 10,
    }
}

fn cmp_services(a: &ServiceSnap, b: &ServiceSnap) -> i64 {
    // libipvs compares `fwmark` first, as unsigned ints narrowed to int.
    let r = i64::from(a.def.key.fwmark.wrapping_sub(b.def.key.fwmark) as i32);
    if r != 0 {
        return r;
    }
    let r = family(a.def.key.addr) - family(b.def.key.addr);
    if r != 0 {
        return r;
    }
    let r = i64::from(a.def.key.protocol.number()) - i64::from(b.def.key.protocol.number());
    if r != 0 {
        return r;
    }
    let r = cmp_addr(a.def.key.addr, b.def.key.addr);
    if r != 0 {
        return r;
    }
    i64::from(a.def.key.port) - i64::from(b.def.key.port)
}

fn cmp_dests(a: &DestSnap, b: &DestSnap) -> i64 {
    let (a, b) = (&a.spec, &b.spec);
    let r = cmp_addr(a.addr, b.addr);
    if r != 0 {
        return r;
    }
    i64::from(a.port) - i64::from(b.port)
}

/// Insertion sort: stable and, unlike slice::sort_by, never upset by a
/// comparator that is not a total order (the wrapping one above).
fn sort_by<T: Clone>(v: &[T], cmp: impl Fn(&T, &T) -> i64) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(v.len());
    for x in v {
        let pos = out.iter().position(|y| cmp(x, y) < 0).unwrap_or(out.len());
        out.insert(pos, x.clone());
    }
    out
}

/// The services in the listing's order: ipvsadm's sort, or the daemon's
/// order with `--nosort`.
pub(crate) fn sorted_services(snap: &Snapshot, nosort: bool) -> Vec<ServiceSnap> {
    match nosort {
        true => snap.services.clone(),
        false => sort_by(&snap.services, cmp_services),
    }
}

/// A service's real servers in the listing's order.
pub(crate) fn sorted_dests(s: &ServiceSnap, nosort: bool) -> Vec<DestSnap> {
    match nosort {
        true => s.dests.clone(),
        false => sort_by(&s.dests, cmp_dests),
    }
}

/// The five counters of `--stats`, each through largenum.
fn stats_columns(out: &mut String, st: &StatsSnapshot, exact: bool) {
    for v in [st.conns, st.inpkts, st.outpkts, st.inbytes, st.outbytes] {
        largenum(out, v, exact);
    }
}

/// A service's `-b` flags as ipvsadm's print_sched_flags names them for
/// its scheduler, if any is set.
fn sched_flags(s: &ServiceSnap) -> Option<String> {
    let kind = SchedulerKind::from_name(&s.def.scheduler);
    Some(s.def.flags.names(kind)).filter(|n| !n.is_empty())
}

fn service_entry(out: &mut String, s: &ServiceSnap, f: &Format) {
    let proto = s.def.key.protocol;
    let vname = addrport(s.def.key.addr, s.def.key.port, proto, f.numeric);
    let v6 = if s.def.key.addr.is_ipv6() {
        " IPv6"
    } else {
        ""
    };
    let svc_name = match (f.columns, s.def.key.fwmark()) {
        (Columns::Rule, Some(_)) => s.def.key.option(),
        (Columns::Rule, None) => format!("{} {vname}", proto.option()),
        (_, Some(m)) => format!("FWM  {m}{v6}"),
        // ipvsadm cuts IPv4 names only: a long IPv6 one pushes the
        // columns right.
        (_, None) if s.def.key.addr.is_ipv6() => format!("{:<4} {vname}", proto.name()),
        (_, None) => cut(format!("{:<4} {vname}", proto.name()), 33),
    };
    match f.columns {
        Columns::Rule => {
            let _ = write!(out, "-A {svc_name} -s {}", s.def.scheduler);
            persistence(out, s, " -p ", " -M ");
            if s.def.ops {
                out.push_str(" -o");
            }
            // ipvsadm writes -b after -p, -M, --pe and -o.
            if let Some(flags) = sched_flags(s) {
                let _ = write!(out, " -b {flags}");
            }
        }
        Columns::Stats => {
            let _ = write!(out, "{svc_name:<33}");
            stats_columns(out, &s.stats, f.exact);
        }
        Columns::Rate => {
            let _ = write!(out, "{svc_name:<33}");
            let r = s.rates;
            for v in [r.cps, r.inpps, r.outpps, r.inbps, r.outbps] {
                largenum(out, v, f.exact);
            }
        }
        _ => {
            let _ = write!(out, "{svc_name} {}", s.def.scheduler);
            if let Some(flags) = sched_flags(s) {
                let _ = write!(out, " ({flags})");
            }
            persistence(out, s, " persistent ", " mask ");
            if s.def.ops {
                out.push_str(" ops");
            }
        }
    }
    out.push('\n');
    let dests = sorted_dests(s, f.nosort);
    // ipvsadm cuts a real server's name by its service's family (se->af):
    // an IPv6 service's are whole, an IPv4 one's are cut even when a
    // tunnel's real server is IPv6.
    let cut_at = (!s.def.key.addr.is_ipv6()).then_some(28);
    for d in &dests {
        dest_entry(out, &svc_name, d, (proto, cut_at), f);
    }
}

/// A persistent service's timeout, and its mask when not /32, after
/// `timeout` and `mask` (the listing's words or `-S`'s options).
fn persistence(out: &mut String, s: &ServiceSnap, timeout: &str, mask: &str) {
    let Some(p) = s.def.persistent else {
        return;
    };
    let _ = write!(out, "{timeout}{}", p.timeout);
    if let Some(m) = p.shown_mask(s.def.key.addr.is_ipv6()) {
        let _ = write!(out, "{mask}{m}");
    }
}

/// One real server's line (or its `-a` rule).
fn dest_entry(
    out: &mut String,
    svc_name: &str,
    d: &DestSnap,
    (proto, cut_at): (Protocol, Option<usize>),
    f: &Format,
) {
    let (spec, act, inact) = (&d.spec, d.active, d.inactive);
    let dname = addrport(spec.addr, spec.port, proto, f.numeric);
    let tunnel = spec.forward == Forward::Tunnel;
    if f.columns == Columns::Rule {
        // A server on its slow start's ramp is saved with its target.
        let (m, w) = (spec.forward.switch(), d.ramp_to.unwrap_or(spec.weight));
        let _ = write!(out, "-a {svc_name} -r {dname} {m} -w {w}");
        // ipvsadm 1.31 names the tunnel type of every tunnel server.
        if tunnel {
            out.push_str(" --tun-type ipip");
        }
        // uvs's own, after ipvsadm's options.
        if spec.slow_start > 0 {
            let _ = write!(out, " --slow-start {}", spec.slow_start);
        }
        out.push('\n');
        return;
    }
    let dname = match cut_at {
        Some(n) => cut(dname, n),
        None => dname,
    };
    let _ = write!(out, "  -> {dname:<28}");
    let (fwd, w) = (spec.forward.name(), spec.weight);
    let _ = match f.columns {
        Columns::Stats => {
            stats_columns(out, &d.stats, f.exact);
            Ok(())
        }
        Columns::Rate => {
            // ipvsadm prints a real server's CPS and PPS exact, only the
            // byte rates through largenum.
            let r = d.rates;
            let _ = write!(out, " {:>8} {:>8} {:>8}", r.cps, r.inpps, r.outpps);
            largenum(out, r.inbps, f.exact);
            largenum(out, r.outbps, f.exact);
            Ok(())
        }
        Columns::Thresholds => {
            let (u, l) = (spec.uthreshold, spec.lthreshold);
            write!(out, " {u:<10} {l:<10} {act:<10} {inact:<10}")
        }
        Columns::PersistentConn => {
            let pc = d.persistent;
            write!(out, " {w:<9} {pc:<11} {act:<10} {inact:<10}")
        }
        Columns::TunInfo => {
            let info = if tunnel { "ipip" } else { "n/a" };
            write!(out, " {fwd:<7} {info:<13} {w:<6} {act:<10} {inact:<10}")
        }
        Columns::Plain | Columns::Rule => write!(out, " {fwd:<7} {w:<6} {act:<10} {inact:<10}"),
    };
    out.push('\n');
}

/// `-L` / `-S`: the whole table.
pub fn list_all(snap: &Snapshot, f: &Format) -> String {
    let mut out = String::new();
    if f.columns != Columns::Rule {
        out.push_str(VERSION_LINE);
    }
    title(&mut out, f);
    for s in &sorted_services(snap, f.nosort) {
        service_entry(&mut out, s, f);
    }
    out
}

/// `-L -t VIP:PORT`: one service, title but no version line.
pub fn list_service(s: &ServiceSnap, f: &Format) -> String {
    let mut out = String::new();
    title(&mut out, f);
    service_entry(&mut out, s, f);
    out
}

/// `-Lc`: the connection table.
pub fn list_conns(conns: &[ConnInfo], numeric: bool) -> String {
    let mut out = conns_header();
    for c in conns {
        conn_line(&mut out, c, numeric);
    }
    out
}

/// The two heading lines of `-Lnc`.
pub fn conns_header() -> String {
    let mut out = String::from("IPVS connection entries\n");
    let _ = writeln!(
        out,
        "pro expire {:<11} {:<18} {:<18} destination",
        "state", "source", "virtual"
    );
    out
}

/// One connection's line of `-Lnc`, appended to `out`.
pub fn conn_line(out: &mut String, c: &ConnInfo, numeric: bool) {
    let exp = format!("{:02}:{:02}", c.expires_secs / 60, c.expires_secs % 60);
    let _ = writeln!(
        out,
        "{:<3} {exp:<6} {:<11} {:<18} {:<18} {}",
        c.protocol.name(),
        c.state,
        addrport(c.caddr, c.cport, c.protocol, numeric),
        addrport(c.vaddr, c.vport, c.protocol, numeric),
        addrport(c.daddr, c.dport, c.protocol, numeric)
    );
}

pub fn list_timeout(t: &Timeouts) -> String {
    format!(
        "Timeout (tcp tcpfin udp): {} {} {}\n",
        t.tcp, t.tcpfin, t.udp
    )
}

#[cfg(test)]
mod tests;
