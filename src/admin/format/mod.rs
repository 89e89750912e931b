//! ipvsadm 1.31's listing and save formats, byte for byte: column widths,
//! the 33/28-character name cuts, trailing blanks, K/M/G/T counters and
//! the sort order (including the wrapping 32-bit address comparison).

mod ha;
mod health;

pub use ha::{ha_status, list_daemon};
pub use health::list_health;

use super::names;
use crate::control::proto::{DestSnap, ServiceSnap, Snapshot};
use crate::lvs::ConnInfo;
use crate::lvs::service::{Forward, Persistence, Protocol, SchedulerKind, Timeouts};
use crate::lvs::stats::StatsSnapshot;
use std::fmt::Write;
use std::net::Ipv4Addr;

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

pub fn addrport(addr: Ipv4Addr, port: u16, proto: Protocol, numeric: bool) -> String {
    if numeric {
        format!("{addr}:{port}")
    } else {
        let host = names::addr_to_host(addr).map_or_else(|| addr.to_string(), str::to_string);
        let svc =
            names::port_to_service(port, proto).map_or_else(|| port.to_string(), str::to_string);
        format!("{host}:{svc}")
    }
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

/// libipvs's comparators: `ntohl(a) - ntohl(b)` narrowed to int, so
/// addresses more than 2^31 apart compare "wrapped", exactly as ipvsadm
/// sorts them.
fn cmp_addr(a: Ipv4Addr, b: Ipv4Addr) -> i64 {
    i64::from(u32::from(a).wrapping_sub(u32::from(b)) as i32)
}

fn cmp_services(a: &ServiceSnap, b: &ServiceSnap) -> i64 {
    // libipvs compares `fwmark` first, as unsigned ints narrowed to int.
    let r = i64::from(a.key.fwmark.wrapping_sub(b.key.fwmark) as i32);
    if r != 0 {
        return r;
    }
    let r = i64::from(a.key.protocol.number()) - i64::from(b.key.protocol.number());
    if r != 0 {
        return r;
    }
    let r = cmp_addr(a.key.addr, b.key.addr);
    if r != 0 {
        return r;
    }
    i64::from(a.key.port) - i64::from(b.key.port)
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

/// The five counters of `--stats`, each through largenum.
fn stats_columns(out: &mut String, st: &StatsSnapshot, exact: bool) {
    for v in [st.conns, st.inpkts, st.outpkts, st.inbytes, st.outbytes] {
        largenum(out, v, exact);
    }
}

/// A service's `-b` flags as ipvsadm's print_sched_flags names them for
/// its scheduler, if any is set.
fn sched_flags(s: &ServiceSnap) -> Option<String> {
    let kind = SchedulerKind::from_name(&s.scheduler);
    Some(s.flags.names(kind)).filter(|n| !n.is_empty())
}

fn service_entry(out: &mut String, s: &ServiceSnap, f: &Format) {
    let proto = s.key.protocol;
    let vname = addrport(s.key.addr, s.key.port, proto, f.numeric);
    let svc_name = match (f.columns, s.key.fwmark()) {
        (Columns::Rule, Some(m)) => format!("-f {m}"),
        (Columns::Rule, None) => format!("{} {vname}", proto.option()),
        (_, Some(m)) => format!("FWM  {m}"),
        (_, None) => cut(format!("{:<4} {vname}", proto.name()), 33),
    };
    match f.columns {
        Columns::Rule => {
            let _ = write!(out, "-A {svc_name} -s {}", s.scheduler);
            persistence(out, s, " -p ", " -M ");
            if s.ops {
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
            let _ = write!(out, "{svc_name} {}", s.scheduler);
            if let Some(flags) = sched_flags(s) {
                let _ = write!(out, " ({flags})");
            }
            persistence(out, s, " persistent ", " mask ");
            if s.ops {
                out.push_str(" ops");
            }
        }
    }
    out.push('\n');
    let dests = if f.nosort {
        s.dests.clone()
    } else {
        sort_by(&s.dests, cmp_dests)
    };
    for d in &dests {
        dest_entry(out, &svc_name, d, proto, f);
    }
}

/// A persistent service's timeout, and its mask when not /32, after
/// `timeout` and `mask` (the listing's words or `-S`'s options).
fn persistence(out: &mut String, s: &ServiceSnap, timeout: &str, mask: &str) {
    let Some(p) = s.persistent else {
        return;
    };
    let _ = write!(out, "{timeout}{}", p.timeout);
    if p.netmask != Persistence::DEFAULT_NETMASK {
        let _ = write!(out, "{mask}{}", p.netmask);
    }
}

/// One real server's line (or its `-a` rule).
fn dest_entry(out: &mut String, svc_name: &str, d: &DestSnap, proto: Protocol, f: &Format) {
    let (spec, act, inact) = (&d.spec, d.active, d.inactive);
    let dname = addrport(spec.addr, spec.port, proto, f.numeric);
    let tunnel = spec.forward == Forward::Tunnel;
    if f.columns == Columns::Rule {
        let (m, w) = (spec.forward.switch(), spec.weight);
        let _ = write!(out, "-a {svc_name} -r {dname} {m} -w {w}");
        // ipvsadm 1.31 names the tunnel type of every tunnel server.
        if tunnel {
            out.push_str(" --tun-type ipip");
        }
        out.push('\n');
        return;
    }
    let dname = cut(dname, 28);
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
    let services = if f.nosort {
        snap.services.clone()
    } else {
        sort_by(&snap.services, cmp_services)
    };
    for s in &services {
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
mod tests {
    use super::*;
    use crate::control::proto::DestSpec;
    use crate::lvs::service::{Forward, ServiceKey};
    use crate::lvs::stats::StatsSnapshot;

    fn dest(a: [u8; 4], port: u16, w: u32, act: u32, inact: u32) -> DestSnap {
        DestSnap {
            spec: DestSpec {
                addr: a.into(),
                port,
                forward: Forward::Route,
                weight: w,
                uthreshold: 0,
                lthreshold: 0,
            },
            active: act,
            inactive: inact,
            persistent: 0,
            stats: StatsSnapshot::default(),
            rates: Default::default(),
        }
    }

    fn snap() -> Snapshot {
        Snapshot {
            timeouts: Timeouts::default(),
            services: vec![
                ServiceSnap {
                    key: ServiceKey::addr(Protocol::Udp, [192, 168, 0, 100].into(), 53),
                    scheduler: "rr".into(),
                    flags: Default::default(),
                    ops: false,
                    persistent: None,
                    stats: StatsSnapshot::default(),
                    rates: Default::default(),
                    dests: vec![dest([10, 0, 0, 21], 53, 1, 0, 0)],
                },
                ServiceSnap {
                    key: ServiceKey::addr(Protocol::Tcp, [192, 168, 0, 100].into(), 80),
                    scheduler: "wrr".into(),
                    flags: Default::default(),
                    ops: false,
                    persistent: None,
                    rates: Default::default(),
                    stats: StatsSnapshot {
                        conns: 14209,
                        inpkts: 111769,
                        outpkts: 0,
                        inbytes: 7207174,
                        outbytes: 0,
                    },
                    // Newest first, as the daemon keeps them.
                    dests: vec![
                        dest([192, 168, 0, 12], 80, 1, 4, 13),
                        dest([192, 168, 0, 11], 80, 3, 12, 40),
                    ],
                },
            ],
        }
    }

    #[test]
    fn list_numeric_matches_ipvsadm() {
        let f = Format {
            numeric: true,
            ..Format::default()
        };
        let expect = concat!(
            "IP Virtual Server version 1.2.1 (size=4096)\n",
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
            "TCP  192.168.0.100:80 wrr\n",
            "  -> 192.168.0.11:80              Route   3      12         40        \n",
            "  -> 192.168.0.12:80              Route   1      4          13        \n",
            "UDP  192.168.0.100:53 rr\n",
            "  -> 10.0.0.21:53                 Route   1      0          0         \n",
        );
        assert_eq!(list_all(&snap(), &f), expect);
    }

    /// ipvs-reference.md §1.6's rendering of ipvsadm 1.31's formats.
    #[test]
    fn persistence_is_listed_and_saved_as_ipvsadm_does() {
        let mut sn = snap();
        sn.services[0].persistent = Some(Persistence::new(360));
        sn.services[1].persistent = Some(Persistence {
            timeout: 600,
            netmask: [255, 255, 255, 0].into(),
        });
        sn.services[1].dests[1].persistent = 7;
        let f = |columns| Format {
            numeric: true,
            columns,
            ..Format::default()
        };
        let l = list_all(&sn, &f(Columns::Plain));
        assert!(l.contains("\nTCP  192.168.0.100:80 wrr persistent 600 mask 255.255.255.0\n"));
        assert!(l.contains("\nUDP  192.168.0.100:53 rr persistent 360\n"));
        let s = list_all(&sn, &f(Columns::Rule));
        assert!(s.contains("-A -t 192.168.0.100:80 -s wrr -p 600 -M 255.255.255.0\n"));
        assert!(s.contains("-A -u 192.168.0.100:53 -s rr -p 360\n"));
        let p = list_all(&sn, &f(Columns::PersistentConn));
        assert!(p.contains(
            "\n  -> 192.168.0.11:80              3         7           12         40        \n"
        ));
    }

    #[test]
    fn stats_columns_and_largenum() {
        let f = Format {
            numeric: true,
            columns: Columns::Stats,
            ..Format::default()
        };
        let s = list_all(&snap(), &f);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(
            lines[1],
            "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes"
        );
        assert_eq!(lines[2], "  -> RemoteAddress:Port");
        assert_eq!(
            lines[3],
            "TCP  192.168.0.100:80                14209   111769        0  7207174        0"
        );
        let mut o = String::new();
        largenum(&mut o, 123_456_789, false);
        largenum(&mut o, 2_000_000_000, false);
        largenum(&mut o, 123_456_789, true);
        assert_eq!(o, "  123456K    2000M 123456789");
    }

    #[test]
    fn rate_columns() {
        let mut sn = snap();
        sn.services[1].rates = crate::lvs::stats::Rates {
            cps: 12,
            inpps: 340,
            outpps: 0,
            inbps: 51234,
            outbps: 0,
        };
        sn.services[1].dests[1].rates = crate::lvs::stats::Rates {
            cps: 8,
            inpps: 230,
            outpps: 0,
            inbps: 40000,
            outbps: 0,
        };
        let f = Format {
            numeric: true,
            columns: Columns::Rate,
            ..Format::default()
        };
        let s = list_all(&sn, &f);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(
            lines[1],
            "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS"
        );
        assert_eq!(
            lines[3],
            "TCP  192.168.0.100:80                   12      340        0    51234        0"
        );
        assert_eq!(
            lines[4],
            "  -> 192.168.0.11:80                     8      230        0    40000        0"
        );
    }

    #[test]
    fn save_format() {
        let f = Format {
            numeric: true,
            columns: Columns::Rule,
            ..Format::default()
        };
        assert_eq!(
            list_all(&snap(), &f),
            "-A -t 192.168.0.100:80 -s wrr\n\
-a -t 192.168.0.100:80 -r 192.168.0.11:80 -g -w 3\n\
-a -t 192.168.0.100:80 -r 192.168.0.12:80 -g -w 1\n\
-A -u 192.168.0.100:53 -s rr\n\
-a -u 192.168.0.100:53 -r 10.0.0.21:53 -g -w 1\n"
        );
    }

    #[test]
    fn wrapping_address_order() {
        // 200.0.0.1 - 10.0.0.1 overflows int: ipvsadm lists 200.x first.
        let mut s = snap();
        s.services.truncate(1);
        s.services[0].dests = vec![
            dest([10, 0, 0, 1], 53, 1, 0, 0),
            dest([200, 0, 0, 1], 53, 1, 0, 0),
        ];
        let out = list_all(
            &s,
            &Format {
                numeric: true,
                ..Format::default()
            },
        );
        let a = out.find("200.0.0.1").unwrap();
        let b = out.find("10.0.0.1").unwrap();
        assert!(a < b);
    }

    #[test]
    fn connection_listing() {
        let c = ConnInfo {
            protocol: Protocol::Tcp,
            caddr: [203, 0, 113, 7].into(),
            cport: 51514,
            vaddr: [192, 168, 0, 100].into(),
            vport: 80,
            daddr: [192, 168, 0, 11].into(),
            dport: 80,
            state: "ESTABLISHED".into(),
            expires_secs: 898,
        };
        assert_eq!(
            list_conns(&[c], true),
            "IPVS connection entries\npro expire state       source             virtual            destination\n\
TCP 14:58  ESTABLISHED 203.0.113.7:51514  192.168.0.100:80   192.168.0.11:80\n"
        );
    }

    /// ipvs-reference.md's rendering: mark services sort first by mark
    /// (after every -t/-u service, whose mark is 0), `ops` and `-o`.
    #[test]
    fn fwmark_and_ops_as_ipvsadm_prints_them() {
        let mut sn = snap();
        sn.services[0].ops = true;
        let mut fwm = sn.services[0].clone();
        fwm.key = ServiceKey::mark(7);
        (fwm.scheduler, fwm.ops) = ("wlc".into(), false);
        fwm.dests = vec![dest([10, 0, 0, 21], 0, 0, 0, 3)];
        fwm.dests[0].spec.forward = Forward::Masq;
        sn.services.insert(0, fwm);
        let f = |columns| Format {
            numeric: true,
            columns,
            ..Format::default()
        };
        let l = list_all(&sn, &f(Columns::Plain));
        assert!(
            l.ends_with(concat!(
                "UDP  192.168.0.100:53 rr ops\n",
                "  -> 10.0.0.21:53                 Route   1      0          0         \n",
                "FWM  7 wlc\n",
                "  -> 10.0.0.21:0                  Masq    0      0          3         \n",
            )),
            "{l}"
        );
        let s = list_all(&sn, &f(Columns::Rule));
        assert!(s.contains("-A -u 192.168.0.100:53 -s rr -o\n"), "{s}");
        assert!(
            s.ends_with("-A -f 7 -s wlc\n-a -f 7 -r 10.0.0.21:0 -m -w 0\n"),
            "{s}"
        );
    }
}
