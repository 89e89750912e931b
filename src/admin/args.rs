//! ipvsadm 1.31's command line, re-implemented: popt-style option bundling
//! (`-Ln`, `-At ADDR`), the first option must be a command, the same
//! command/option legality rules and the same error texts and exit codes.

use super::names;
use crate::control::proto::{DestSpec, Op};
use crate::lvs::service::{Forward, MAX_TIMEOUT, Protocol, ServiceKey, Timeouts};
use std::net::Ipv4Addr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmd {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    Timeout,
    StartDaemon,
    StopDaemon,
    Restore,
    Save,
    Zero,
}

impl Cmd {
    pub fn name(self) -> &'static str {
        match self {
            Cmd::Add => "add-service",
            Cmd::Edit => "edit-service",
            Cmd::Del => "delete-service",
            Cmd::Flush => "flush",
            Cmd::List => "list",
            Cmd::AddDest => "add-server",
            Cmd::DelDest => "delete-server",
            Cmd::EditDest => "edit-server",
            Cmd::Timeout => "set",
            Cmd::StartDaemon => "start-daemon",
            Cmd::StopDaemon => "stop-daemon",
            Cmd::Restore => "restore",
            Cmd::Save => "save",
            Cmd::Zero => "zero",
        }
    }
}

/// Options in ipvsadm's column order: the order of its legality checks and
/// so of which error is reported first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opt {
    Numeric,
    Connection,
    Service,
    Scheduler,
    Persistent,
    Netmask,
    Server,
    Forward,
    Weight,
    UThreshold,
    LThreshold,
    Mcast,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    SyncId,
    Exact,
    Ops,
    Pe,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
}

const OPT_NAMES: [&str; 34] = [
    "numeric",
    "connection",
    "service-address",
    "scheduler",
    "persistent",
    "netmask",
    "real-server",
    "forwarding-method",
    "weight",
    "u-threshold",
    "l-threshold",
    "mcast-interface",
    "timeout",
    "daemon",
    "stats",
    "rate",
    "thresholds",
    "persistent-conn",
    "nosort",
    "syncid",
    "exact",
    "ops",
    "pe",
    "sched-flags",
    "mcast-group",
    "mcast-port",
    "mcast-ttl",
    "sync-maxlen",
    "tun-info",
    "tun-type",
    "tun-port",
    "tun-nocsum",
    "tun-csum",
    "tun-remcsum",
];

const ALL_OPTS: [Opt; 34] = {
    use Opt::*;
    [
        Numeric,
        Connection,
        Service,
        Scheduler,
        Persistent,
        Netmask,
        Server,
        Forward,
        Weight,
        UThreshold,
        LThreshold,
        Mcast,
        Timeout,
        Daemon,
        Stats,
        Rate,
        Thresholds,
        PersistentConn,
        NoSort,
        SyncId,
        Exact,
        Ops,
        Pe,
        SchedFlags,
        McastGroup,
        McastPort,
        McastTtl,
        SyncMaxlen,
        TunInfo,
        TunType,
        TunPort,
        TunNocsum,
        TunCsum,
        TunRemcsum,
    ]
};

impl Opt {
    fn name(self) -> &'static str {
        OPT_NAMES[self as usize]
    }
}

/// What a command allows of an option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Required,
    Optional,
    /// At most one of the options marked so.
    OneOf,
    Illegal,
}

fn rule(cmd: Cmd, o: Opt) -> Rule {
    use Opt::*;
    use Rule::*;
    let optional: &[Opt] = match cmd {
        Cmd::Add | Cmd::Edit => &[Scheduler, Persistent, Netmask, Ops, Pe, SchedFlags],
        Cmd::List => &[
            Numeric,
            Stats,
            Rate,
            Thresholds,
            PersistentConn,
            NoSort,
            SyncId,
            Exact,
            TunInfo,
        ],
        Cmd::AddDest | Cmd::EditDest => &[
            Forward, Weight, UThreshold, LThreshold, TunType, TunPort, TunNocsum, TunCsum,
            TunRemcsum,
        ],
        Cmd::StartDaemon => &[Mcast, SyncId, McastGroup, McastPort, McastTtl, SyncMaxlen],
        Cmd::StopDaemon => &[SyncId],
        Cmd::Save => &[Numeric],
        Cmd::Zero => &[Service],
        _ => &[],
    };
    let required: &[Opt] = match cmd {
        Cmd::Add | Cmd::Edit | Cmd::Del => &[Service],
        Cmd::AddDest | Cmd::EditDest | Cmd::DelDest => &[Service, Server],
        _ => &[],
    };
    if required.contains(&o) {
        Required
    } else if optional.contains(&o) {
        Optional
    } else if cmd == Cmd::List && matches!(o, Connection | Service | Timeout | Daemon) {
        OneOf
    } else {
        Illegal
    }
}

/// A parse failure: the message ipvsadm prints and its exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fail {
    pub msg: String,
    pub code: i32,
}

fn fail<T>(msg: impl Into<String>) -> Result<T, Fail> {
    Err(Fail {
        msg: msg.into(),
        code: 2,
    })
}

fn tryhelp<T>(prog: &str) -> Result<T, Fail> {
    Err(Fail {
        msg: format!("Try `{prog} -h' or '{prog} --help' for more information."),
        code: 255,
    })
}

/// Everything one command line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub cmd: Cmd,
    opts: u64,
    pub protocol: Protocol,
    pub sctp: bool,
    pub fwmark: Option<u32>,
    pub addr: Option<Ipv4Addr>,
    pub port: u16,
    pub scheduler: String,
    pub persistent: Option<u32>,
    pub dest_addr: Option<Ipv4Addr>,
    pub dest_port: u16,
    pub forward: Forward,
    pub weight: u32,
    pub uthreshold: u32,
    pub lthreshold: u32,
    pub timeouts: Timeouts,
    pub tun_type: u8,
}

impl Parsed {
    pub fn has(&self, o: Opt) -> bool {
        self.opts & (1 << o as u64) != 0
    }

    fn set(&mut self, o: Opt) -> Result<(), Fail> {
        if self.has(o) {
            return fail(format!("multiple '{}' options specified", o.name()));
        }
        self.opts |= 1 << o as u64;
        Ok(())
    }

    pub fn service_key(&self) -> Option<ServiceKey> {
        Some(ServiceKey {
            protocol: self.protocol,
            addr: self.addr?,
            port: self.port,
        })
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    Run(Box<Parsed>),
    Help,
    Version,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Arg {
    None,
    Required,
    Optional,
}

/// (long name, short letter, key, argument kind). The key is the short
/// letter, or a distinct tag for long-only options.
const OPTIONS: &[(&str, char, &str, Arg)] = &[
    ("add-service", 'A', "A", Arg::None),
    ("edit-service", 'E', "E", Arg::None),
    ("delete-service", 'D', "D", Arg::None),
    ("clear", 'C', "C", Arg::None),
    ("list", 'L', "L", Arg::None),
    ("list", 'l', "L", Arg::None),
    ("zero", 'Z', "Z", Arg::None),
    ("add-server", 'a', "a", Arg::None),
    ("edit-server", 'e', "e", Arg::None),
    ("delete-server", 'd', "d", Arg::None),
    ("set", '\0', "set", Arg::None),
    ("help", 'h', "h", Arg::None),
    ("version", 'v', "v", Arg::None),
    ("restore", 'R', "R", Arg::None),
    ("save", 'S', "S", Arg::None),
    ("start-daemon", '\0', "start-daemon", Arg::Required),
    ("stop-daemon", '\0', "stop-daemon", Arg::Required),
    ("tcp-service", 't', "t", Arg::Required),
    ("udp-service", 'u', "u", Arg::Required),
    ("sctp-service", '\0', "sctp", Arg::Required),
    ("fwmark-service", 'f', "f", Arg::Required),
    ("scheduler", 's', "s", Arg::Required),
    ("persistent", 'p', "p", Arg::Optional),
    ("netmask", 'M', "M", Arg::Required),
    ("real-server", 'r', "r", Arg::Required),
    ("masquerading", 'm', "m", Arg::None),
    ("ipip", 'i', "i", Arg::None),
    ("gatewaying", 'g', "g", Arg::None),
    ("weight", 'w', "w", Arg::Required),
    ("u-threshold", 'x', "x", Arg::Required),
    ("l-threshold", 'y', "y", Arg::Required),
    ("numeric", 'n', "n", Arg::None),
    ("connection", 'c', "c", Arg::None),
    ("mcast-interface", '\0', "mcast-interface", Arg::Required),
    ("syncid", '\0', "syncid", Arg::Required),
    ("timeout", '\0', "timeout", Arg::None),
    ("daemon", '\0', "daemon", Arg::None),
    ("stats", '\0', "stats", Arg::None),
    ("rate", '\0', "rate", Arg::None),
    ("thresholds", '\0', "thresholds", Arg::None),
    ("persistent-conn", '\0', "persistent-conn", Arg::None),
    ("nosort", '\0', "nosort", Arg::None),
    ("sort", '\0', "sort", Arg::None),
    ("exact", 'X', "X", Arg::None),
    ("ipv6", '6', "6", Arg::None),
    ("ops", 'o', "o", Arg::None),
    ("pe", '\0', "pe", Arg::Required),
    ("sched-flags", 'b', "b", Arg::Required),
    ("mcast-group", '\0', "mcast-group", Arg::Required),
    ("mcast-port", '\0', "mcast-port", Arg::Required),
    ("mcast-ttl", '\0', "mcast-ttl", Arg::Required),
    ("sync-maxlen", '\0', "sync-maxlen", Arg::Required),
    ("tun-info", '\0', "tun-info", Arg::None),
    ("tun-type", '\0', "tun-type", Arg::Required),
    ("tun-port", '\0', "tun-port", Arg::Required),
    ("tun-nocsum", '\0', "tun-nocsum", Arg::None),
    ("tun-csum", '\0', "tun-csum", Arg::None),
    ("tun-remcsum", '\0', "tun-remcsum", Arg::None),
];

/// strtol-style parse of a whole decimal string within [min, max].
fn number(s: &str, min: i64, max: i64) -> Option<i64> {
    let t = s.trim_start();
    let n: i64 = t.parse().ok()?;
    (min..=max).contains(&n).then_some(n)
}

fn parse_host(s: &str) -> Option<Ipv4Addr> {
    s.parse().ok().or_else(|| names::host_to_addr(s))
}

/// ipvsadm's parse_service: `host[:port]`; `None` if the address (or a
/// given port) is not understood.
fn parse_service(s: &str, p: Protocol) -> Option<(Ipv4Addr, Option<u16>)> {
    if s.is_empty() || s.bytes().all(|b| b.is_ascii_digit()) || s.starts_with('[') {
        return None;
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    let addr = parse_host(host)?;
    let port = match port {
        None => None,
        Some(ps) => Some(match number(ps, 0, 65535) {
            Some(n) => n as u16,
            None => names::service_to_port(ps, p)?,
        }),
    };
    Some((addr, port))
}

/// Parses `args` (without the program name) as ipvsadm would.
pub fn parse(prog: &str, args: &[String]) -> Result<Invocation, Fail> {
    let mut p = Parsed {
        cmd: Cmd::List,
        opts: 0,
        protocol: Protocol::Tcp,
        sctp: false,
        fwmark: None,
        addr: None,
        port: 0,
        scheduler: String::new(),
        persistent: None,
        dest_addr: None,
        dest_port: 0,
        forward: Forward::Route,
        weight: 1,
        uthreshold: 0,
        lthreshold: 0,
        timeouts: Timeouts {
            tcp: 0,
            tcpfin: 0,
            udp: 0,
        },
        tun_type: 0,
    };
    let mut have_cmd = false;
    let mut positional: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        i += 1;
        let mut items: Vec<(&str, Option<String>, String)> = Vec::new();
        if a == "--" {
            positional.extend(args[i..].iter().map(String::as_str));
            break;
        } else if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let Some(&(_, _, key, kind)) = OPTIONS.iter().find(|o| o.0 == name) else {
                return bad_option(prog, have_cmd, a, "unknown option");
            };
            let val = match (kind, inline) {
                (Arg::None, Some(_)) => {
                    return bad_option(prog, have_cmd, a, "option does not take an argument");
                }
                (Arg::None, None) => None,
                (_, Some(v)) => Some(v),
                (Arg::Required, None) => match args.get(i) {
                    Some(v) => {
                        i += 1;
                        Some(v.clone())
                    }
                    None => return bad_option(prog, have_cmd, a, "missing argument"),
                },
                (Arg::Optional, None) => match args.get(i) {
                    Some(v) if !v.starts_with('-') => {
                        i += 1;
                        Some(v.clone())
                    }
                    _ => None,
                },
            };
            items.push((key, val, a.to_string()));
        } else if a.len() > 1 && a.starts_with('-') {
            let chars: Vec<char> = a[1..].chars().collect();
            let mut j = 0;
            while j < chars.len() {
                let c = chars[j];
                j += 1;
                let Some(&(_, _, key, kind)) = OPTIONS.iter().find(|o| o.1 == c && c != '\0')
                else {
                    return bad_option(prog, have_cmd, &format!("-{c}"), "unknown option");
                };
                let val = if kind == Arg::None {
                    None
                } else if j < chars.len() {
                    let rest: String = chars[j..].iter().collect();
                    j = chars.len();
                    Some(rest)
                } else if kind == Arg::Required {
                    match args.get(i) {
                        Some(v) => {
                            i += 1;
                            Some(v.clone())
                        }
                        None => {
                            return bad_option(
                                prog,
                                have_cmd,
                                &format!("-{c}"),
                                "missing argument",
                            );
                        }
                    }
                } else {
                    match args.get(i) {
                        Some(v) if !v.starts_with('-') => {
                            i += 1;
                            Some(v.clone())
                        }
                        _ => None,
                    }
                };
                items.push((key, val, format!("-{c}")));
            }
        } else {
            positional.push(a);
            continue;
        }
        for (key, val, _shown) in items {
            if !have_cmd {
                have_cmd = true;
                match key {
                    "h" => return Ok(Invocation::Help),
                    "v" => return Ok(Invocation::Version),
                    _ => {}
                }
                p.cmd = match key {
                    "A" => Cmd::Add,
                    "E" => Cmd::Edit,
                    "D" => Cmd::Del,
                    "a" => Cmd::AddDest,
                    "e" => Cmd::EditDest,
                    "d" => Cmd::DelDest,
                    "C" => Cmd::Flush,
                    "L" => Cmd::List,
                    "Z" => Cmd::Zero,
                    "set" => Cmd::Timeout,
                    "R" => Cmd::Restore,
                    "S" => Cmd::Save,
                    "start-daemon" | "stop-daemon" => {
                        let v = val.unwrap_or_default();
                        if v != "master" && v != "backup" {
                            return fail(if key == "start-daemon" {
                                "illegal start-daemon parameter specified"
                            } else {
                                "illegal start_daemon specified"
                            });
                        }
                        if key == "start-daemon" {
                            Cmd::StartDaemon
                        } else {
                            Cmd::StopDaemon
                        }
                    }
                    _ => return tryhelp(prog),
                };
                continue;
            }
            option(&mut p, key, val)?;
        }
    }
    if !have_cmd {
        return tryhelp(prog);
    }
    let mut rest = positional.into_iter();
    if p.cmd == Cmd::Timeout {
        let (Some(a), Some(b), Some(c)) = (rest.next(), rest.next(), rest.next()) else {
            return fail("--set option requires 3 timeout values");
        };
        p.timeouts = Timeouts {
            tcp: timeout(a, 0)?,
            tcpfin: timeout(b, 0)?,
            udp: timeout(c, 0)?,
        };
    }
    if let Some(x) = rest.next() {
        return fail(format!("unexpected argument {x}"));
    }
    check(&mut p)?;
    Ok(Invocation::Run(Box::new(p)))
}

fn bad_option<T>(prog: &str, have_cmd: bool, shown: &str, why: &str) -> Result<T, Fail> {
    if !have_cmd {
        return tryhelp(prog);
    }
    Err(Fail {
        msg: format!("{shown}: {why}"),
        code: 255,
    })
}

fn timeout(s: &str, min: i64) -> Result<u32, Fail> {
    match number(s, min, i64::from(MAX_TIMEOUT)) {
        Some(n) => Ok(n as u32),
        None => fail(format!("invalid timeout value `{s}' specified")),
    }
}

fn option(p: &mut Parsed, key: &str, val: Option<String>) -> Result<(), Fail> {
    let v = val.unwrap_or_default();
    match key {
        "A" | "E" | "D" | "a" | "e" | "d" | "C" | "L" | "Z" | "set" | "R" | "S" | "h" | "v"
        | "start-daemon" | "stop-daemon" => return fail("multiple commands specified"),
        "t" | "u" | "sctp" => {
            p.set(Opt::Service)?;
            p.protocol = if key == "u" {
                Protocol::Udp
            } else {
                Protocol::Tcp
            };
            p.sctp = key == "sctp";
            let Some((addr, port)) = parse_service(&v, p.protocol) else {
                return fail("illegal virtual server address[:port] specified");
            };
            p.addr = Some(addr);
            p.port = port.unwrap_or(0);
        }
        "f" => {
            p.set(Opt::Service)?;
            match number(&v, 1, i64::from(u32::MAX)) {
                Some(n) => p.fwmark = Some(n as u32),
                None => return fail(format!("invalid fwmark value `{v}' specified")),
            }
        }
        "s" => {
            p.set(Opt::Scheduler)?;
            p.scheduler = v.chars().take(15).collect();
        }
        "p" => {
            p.set(Opt::Persistent)?;
            p.persistent = Some(if v.is_empty() { 360 } else { timeout(&v, 1)? });
        }
        "M" => {
            p.set(Opt::Netmask)?;
            if parse_host(&v).is_none() {
                return fail("illegal virtual server persistent mask specified");
            }
        }
        "r" => {
            p.set(Opt::Server)?;
            let Some((addr, port)) = parse_service(&v, p.protocol) else {
                return fail("illegal real server address[:port] specified");
            };
            p.dest_addr = Some(addr);
            // Without a port the service port (as parsed so far) is used.
            p.dest_port = port.unwrap_or(p.port);
        }
        "g" | "i" | "m" => {
            p.set(Opt::Forward)?;
            p.forward = match key {
                "g" => Forward::Route,
                "i" => Forward::Tunnel,
                _ => Forward::Masq,
            };
        }
        "w" => {
            p.set(Opt::Weight)?;
            p.weight = number(&v, 0, 65535).ok_or_else(|| Fail {
                msg: "illegal weight specified".into(),
                code: 2,
            })? as u32;
        }
        "x" | "y" => {
            let (o, name) = if key == "x" {
                (Opt::UThreshold, "u_threshold")
            } else {
                (Opt::LThreshold, "l_threshold")
            };
            p.set(o)?;
            let n = number(&v, 0, i64::from(i32::MAX)).ok_or_else(|| Fail {
                msg: format!("illegal {name} specified"),
                code: 2,
            })? as u32;
            if key == "x" {
                p.uthreshold = n
            } else {
                p.lthreshold = n
            }
        }
        "n" => p.set(Opt::Numeric)?,
        "c" => p.set(Opt::Connection)?,
        "mcast-interface" => p.set(Opt::Mcast)?,
        "syncid" => {
            p.set(Opt::SyncId)?;
            if number(&v, 0, 255).is_none() {
                return fail("illegal syncid specified");
            }
        }
        "timeout" => p.set(Opt::Timeout)?,
        "daemon" => p.set(Opt::Daemon)?,
        "stats" => p.set(Opt::Stats)?,
        "rate" => p.set(Opt::Rate)?,
        "thresholds" => p.set(Opt::Thresholds)?,
        "persistent-conn" => p.set(Opt::PersistentConn)?,
        "nosort" => p.set(Opt::NoSort)?,
        "sort" => {}
        "X" => p.set(Opt::Exact)?,
        "6" => {
            if p.fwmark.is_none() {
                return fail("-6 used before -f\n");
            }
        }
        "o" => p.set(Opt::Ops)?,
        "pe" => p.set(Opt::Pe)?,
        "b" => p.set(Opt::SchedFlags)?,
        "mcast-group" => p.set(Opt::McastGroup)?,
        "mcast-port" => {
            p.set(Opt::McastPort)?;
            if number(&v, 1, 65535).is_none() {
                return fail("illegal mcast-port specified");
            }
        }
        "mcast-ttl" => {
            p.set(Opt::McastTtl)?;
            if number(&v, 1, 255).is_none() {
                return fail("illegal mcast-ttl specified");
            }
        }
        "sync-maxlen" => {
            p.set(Opt::SyncMaxlen)?;
            if number(&v, 1, 65535 - 20 - 8).is_none() {
                return fail("illegal sync-maxlen specified");
            }
        }
        "tun-info" => p.set(Opt::TunInfo)?,
        "tun-type" => {
            p.set(Opt::TunType)?;
            p.tun_type = match v.as_str() {
                "ipip" => 0,
                "gue" => 1,
                "gre" => 2,
                _ => return fail("illegal tunnel type specified"),
            };
        }
        "tun-port" => {
            p.set(Opt::TunPort)?;
            if number(&v, 1, 65535).is_none() {
                return fail("illegal tunnel port specified");
            }
        }
        "tun-nocsum" => p.set(Opt::TunNocsum)?,
        "tun-csum" => p.set(Opt::TunCsum)?,
        "tun-remcsum" => p.set(Opt::TunRemcsum)?,
        _ => return fail(format!("invalid option `{key}'")),
    }
    Ok(())
}

/// process_options' checks after parsing.
fn check(p: &mut Parsed) -> Result<(), Fail> {
    let mut first_one: Option<Opt> = None;
    for o in ALL_OPTS {
        let set = p.has(o);
        match (rule(p.cmd, o), set) {
            (Rule::Required, false) => {
                return fail(format!(
                    "You need to supply the '{}' option for the '{}' command",
                    o.name(),
                    p.cmd.name()
                ));
            }
            (Rule::Illegal, true) => {
                return fail(format!(
                    "Illegal '{}' option with the '{}' command",
                    o.name(),
                    p.cmd.name()
                ));
            }
            (Rule::OneOf, true) => match first_one {
                None => first_one = Some(o),
                Some(f) => {
                    return fail(format!(
                        "The option '{}' conflicts with the '{}' option in the '{}' command",
                        o.name(),
                        f.name(),
                        p.cmd.name()
                    ));
                }
            },
            _ => {}
        }
    }
    match p.cmd {
        Cmd::Add | Cmd::Edit => {
            if p.fwmark.is_none() && p.port == 0 && p.persistent.is_none() {
                return fail("Zero port specified for non-persistent service");
            }
            if p.has(Opt::Ops) && p.fwmark.is_none() && p.protocol != Protocol::Udp {
                return fail("One-Packet Scheduling is only for UDP virtual services");
            }
            if p.scheduler.is_empty() {
                p.scheduler = "wlc".into();
            }
        }
        Cmd::AddDest | Cmd::EditDest => {
            if p.fwmark.is_none() && matches!(p.forward, Forward::Route | Forward::Tunnel) {
                p.dest_port = p.port;
            }
            let tun = [
                Opt::TunType,
                Opt::TunPort,
                Opt::TunNocsum,
                Opt::TunCsum,
                Opt::TunRemcsum,
            ];
            if tun.iter().any(|o| p.has(*o)) && p.forward != Forward::Tunnel {
                return fail("Tunnel options conflict with forward method");
            }
            let tun_names = ["ipip", "gue", "gre"];
            let tname = tun_names[usize::from(p.tun_type)];
            // Which of tun-port/nocsum/csum/remcsum each tunnel type allows.
            let allowed: [Rule; 4] = match p.tun_type {
                0 => [Rule::Illegal; 4],
                1 => [Rule::Required, Rule::OneOf, Rule::OneOf, Rule::OneOf],
                _ => [Rule::Illegal, Rule::OneOf, Rule::OneOf, Rule::Illegal],
            };
            let mut first: Option<Opt> = None;
            for (o, r) in tun[1..].iter().zip(allowed) {
                match (r, p.has(*o)) {
                    (Rule::Required, false) => {
                        return fail(format!(
                            "You need to supply the '{}' option for the '{tname}' tunnel type",
                            o.name()
                        ));
                    }
                    (Rule::Illegal, true) => {
                        return fail(format!(
                            "Illegal '{}' option with the '{tname}' tunnel type",
                            o.name()
                        ));
                    }
                    (Rule::OneOf, true) => match first {
                        None => first = Some(*o),
                        Some(f) => {
                            return fail(format!(
                                "The option '{}' conflicts with the '{}' option in the '{tname}' tunnel type",
                                o.name(),
                                f.name()
                            ));
                        }
                    },
                    _ => {}
                }
            }
        }
        Cmd::List => {
            let one = p.has(Opt::Connection) || p.has(Opt::Timeout) || p.has(Opt::Daemon);
            let fmt = p.has(Opt::Stats) || p.has(Opt::Rate) || p.has(Opt::Thresholds);
            if (one && fmt)
                || ((p.has(Opt::Timeout) || p.has(Opt::Daemon)) && p.has(Opt::PersistentConn))
            {
                return fail("options conflicts in the list command");
            }
        }
        _ => {}
    }
    Ok(())
}

/// A refusal for something ipvsadm accepts but uvs does not do (yet).
fn unsupported<T>(what: &str) -> Result<T, Fail> {
    fail(format!("{what} not supported by uvs"))
}

/// Turns a modifying command into a table op; `Ok(None)` for commands that
/// only read (list, save) or restore.
pub fn to_op(p: &Parsed) -> Result<Option<Op>, Fail> {
    if p.fwmark.is_some() {
        return unsupported("Firewall-mark services (-f) are");
    }
    if p.sctp {
        return unsupported("SCTP services are");
    }
    if p.has(Opt::Ops) {
        return unsupported("One-packet scheduling (-o) is");
    }
    if p.has(Opt::Pe) {
        return unsupported("Persistence engines (--pe) are");
    }
    if p.has(Opt::SchedFlags) {
        return unsupported("Scheduler flags (-b) are");
    }
    if p.has(Opt::UThreshold) || p.has(Opt::LThreshold) {
        return unsupported("Connection thresholds (-x/-y) are");
    }
    if p.tun_type != 0 {
        return unsupported("GUE and GRE tunnels (--tun-type) are");
    }
    let key = p.service_key();
    let dest = || DestSpec {
        addr: p.dest_addr.unwrap_or(Ipv4Addr::UNSPECIFIED),
        port: p.dest_port,
        forward: p.forward,
        weight: p.weight,
        uthreshold: p.uthreshold,
        lthreshold: p.lthreshold,
    };
    let need_key = || {
        key.ok_or_else(|| Fail {
            msg: "illegal virtual server address[:port] specified".into(),
            code: 2,
        })
    };
    Ok(Some(match p.cmd {
        Cmd::Add => Op::AddService {
            key: need_key()?,
            scheduler: p.scheduler.clone(),
            persistent: p.persistent,
        },
        Cmd::Edit => Op::EditService {
            key: need_key()?,
            scheduler: p.scheduler.clone(),
            persistent: p.persistent,
        },
        Cmd::Del => Op::DelService { key: need_key()? },
        Cmd::Flush => Op::Clear,
        Cmd::AddDest => Op::AddDest {
            key: need_key()?,
            dest: dest(),
        },
        Cmd::EditDest => Op::EditDest {
            key: need_key()?,
            dest: dest(),
        },
        Cmd::DelDest => Op::DelDest {
            key: need_key()?,
            addr: p.dest_addr.unwrap_or(Ipv4Addr::UNSPECIFIED),
            port: p.dest_port,
        },
        Cmd::Zero => Op::Zero { key },
        Cmd::Timeout => Op::SetTimeouts(p.timeouts),
        Cmd::StartDaemon | Cmd::StopDaemon => {
            return unsupported("The connection synchronization daemon is");
        }
        Cmd::List | Cmd::Save | Cmd::Restore => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(s: &str) -> Result<Parsed, Fail> {
        let v: Vec<String> = s.split_whitespace().map(String::from).collect();
        match parse("ipvsadm", &v)? {
            Invocation::Run(p) => Ok(*p),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn err(s: &str) -> String {
        run(s).unwrap_err().msg
    }

    #[test]
    fn bundled_short_options() {
        let p = run("-Ln").unwrap();
        assert_eq!(p.cmd, Cmd::List);
        assert!(p.has(Opt::Numeric));
        let p = run("-At 198.18.0.100:80 -s wrr").unwrap();
        assert_eq!(p.cmd, Cmd::Add);
        assert_eq!(p.port, 80);
        assert_eq!(p.scheduler, "wrr");
        let p = run("-Lnc").unwrap();
        assert!(p.has(Opt::Connection));
        let p = run("-a -u 198.18.0.100:53 -r 198.18.0.11:5353 -g -w 3").unwrap();
        // DR forces the real-server port to the service port.
        assert_eq!(p.dest_port, 53);
        assert_eq!(p.weight, 3);
        let p = run("-a -t 198.18.0.100:80 -r 198.18.0.11").unwrap();
        assert_eq!((p.dest_port, p.forward), (80, Forward::Route));
        // NAT keeps the mapped port, and defaults to the service's.
        let p = run("-a -t 198.18.0.100:80 -r 198.18.2.11:8080 -m").unwrap();
        assert_eq!((p.dest_port, p.forward), (8080, Forward::Masq));
        let p = run("-a -t 198.18.0.100:80 -r 198.18.2.11 -m").unwrap();
        assert_eq!((p.dest_port, p.forward), (80, Forward::Masq));
    }

    #[test]
    fn defaults_like_ipvsadm() {
        assert_eq!(run("-A -t 198.18.0.100:80").unwrap().scheduler, "wlc");
        assert_eq!(
            run("-A -t 198.18.0.100:80 -p").unwrap().persistent,
            Some(360)
        );
        assert_eq!(
            run("-A -t 198.18.0.100:80 -p 60 -s rr").unwrap().persistent,
            Some(60)
        );
        let p = run("--set 10 0 20").unwrap();
        assert_eq!(
            p.timeouts,
            Timeouts {
                tcp: 10,
                tcpfin: 0,
                udp: 20
            }
        );
    }

    #[test]
    fn ipvsadm_error_texts() {
        assert_eq!(
            err("-A"),
            "You need to supply the 'service-address' option for the 'add-service' command"
        );
        assert_eq!(
            err("-a -t 198.18.0.100:80"),
            "You need to supply the 'real-server' option for the 'add-server' command"
        );
        assert_eq!(
            err("-A -t 198.18.0.100:80 -w 3"),
            "Illegal 'weight' option with the 'add-service' command"
        );
        assert_eq!(
            err("-L -c -t 198.18.0.100:80"),
            "The option 'service-address' conflicts with the 'connection' option in the 'list' command"
        );
        assert_eq!(
            err("-A -t 198.18.0.300:80"),
            "illegal virtual server address[:port] specified"
        );
        assert_eq!(
            err("-A -t 80"),
            "illegal virtual server address[:port] specified"
        );
        assert_eq!(
            err("-a -t 198.18.0.100:80 -r nohost.invalid"),
            "illegal real server address[:port] specified"
        );
        assert_eq!(
            err("-a -t 198.18.0.100:80 -r 198.18.0.11 -w 70000"),
            "illegal weight specified"
        );
        assert_eq!(
            err("-a -t 198.18.0.100:80 -r 198.18.0.11 -w x"),
            "illegal weight specified"
        );
        assert_eq!(
            err("-A -t 198.18.0.100"),
            "Zero port specified for non-persistent service"
        );
        assert_eq!(
            err("-A -t 198.18.0.100:80 -E"),
            "multiple commands specified"
        );
        assert_eq!(
            err("-A -t 198.18.0.100:80 -t 198.18.0.100:81"),
            "multiple 'service-address' options specified"
        );
        assert_eq!(err("--set 1 2"), "--set option requires 3 timeout values");
        assert_eq!(err("--set 1 2 x"), "invalid timeout value `x' specified");
        assert_eq!(err("-C extra"), "unexpected argument extra");
        assert_eq!(
            err("-L --timeout --stats"),
            "options conflicts in the list command"
        );
        assert_eq!(
            err("-a -t 198.18.0.100:80 -r 198.18.0.11 --tun-type gue"),
            "Tunnel options conflict with forward method"
        );
        assert_eq!(
            err("-a -t 198.18.0.100:80 -r 198.18.0.11 -i --tun-type gue"),
            "You need to supply the 'tun-port' option for the 'gue' tunnel type"
        );
        let f = run("-n -L").unwrap_err();
        assert_eq!(
            (f.msg.as_str(), f.code),
            (
                "Try `ipvsadm -h' or 'ipvsadm --help' for more information.",
                255
            )
        );
        let f = run("-L --bogus").unwrap_err();
        assert_eq!((f.msg.as_str(), f.code), ("--bogus: unknown option", 255));
        let f = run("-a -t 198.18.0.100:80 -r").unwrap_err();
        assert_eq!(f.msg, "-r: missing argument");
    }

    #[test]
    fn unsupported_features_are_named() {
        let p = run("-A -f 7 -s rr").unwrap();
        assert!(to_op(&p).unwrap_err().msg.contains("Firewall-mark"));
        let p = run("-a -t 198.18.0.100:80 -r 198.18.0.11 -x 10").unwrap();
        assert!(to_op(&p).unwrap_err().msg.contains("thresholds"));
    }

    #[test]
    fn garbage_never_panics() {
        for s in [
            "-",
            "--",
            "-\u{e9}",
            "--=",
            "-t",
            "-A -t :",
            "-A -t [::1]:80",
            "-a -t 1.2.3.4:80 -r 1.2.3.4:99999",
            "-L -n -n",
            "--start-daemon",
            "--start-daemon bogus",
            "-p -p",
            "-A -t 1.2.3.4:http -s",
        ] {
            let v: Vec<String> = s.split_whitespace().map(String::from).collect();
            let _ = parse("uvsadm", &v);
        }
    }
}
