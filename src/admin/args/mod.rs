//! ipvsadm 1.31's command line, re-implemented: popt-style option bundling
//! (`-Ln`, `-At ADDR`), the first option must be a command, the same
//! command/option legality rules and the same error texts and exit codes.
//!
//! Everything about an option is in one table, [`OPTIONS`]: its names,
//! argument, what it sets, which commands allow it, and its help line.
//! Parsing, the legality checks and `uvsadm -h` all read it.

mod check;
pub mod manual;
mod table;
#[cfg(test)]
mod tests;

pub use check::to_op;
pub use table::SYNOPSIS;

use super::format::Columns;
use super::format::json::Parts;
use super::names;
use crate::control::proto::DestSpec;
use crate::lvs::service::{Forward, MAX_TIMEOUT, Protocol, SchedFlags, ServiceKey, Timeouts};
use check::check;
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use table::{Arg, COMMANDS, CmdDef, EXTRA_FLAGS, Flag, MAN_ONLY, OPTIONS, OptDef};

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
    /// ipvsadm's name in its messages.
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
/// so of which error is reported first. `OPTIONS` lists them in this order.
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
    /// uvs's own: the listing as JSON (after ipvsadm's columns, so its
    /// checks come after theirs).
    Json,
    /// uvs's own: a real server's slow start (docs/cli.md).
    SlowStart,
}

impl Opt {
    fn def(self) -> &'static OptDef {
        &OPTIONS[self as usize]
    }

    /// ipvsadm's name in its messages.
    fn name(self) -> &'static str {
        self.def().name
    }
}

/// What one command-line token names.
#[derive(Clone, Copy)]
enum Item {
    Cmd(&'static CmdDef),
    Opt(&'static OptDef, &'static Flag),
    Extra(&'static Flag),
}

impl Item {
    fn arg(self) -> Arg {
        match self {
            Item::Cmd(c) => c.arg,
            Item::Opt(_, f) | Item::Extra(f) => f.arg,
        }
    }

    /// Looks a name up: `long` by long name, else by short letter.
    fn find(long: Option<&str>, short: char) -> Option<Item> {
        let hit = |l: &str, s: char| match long {
            Some(n) => n == l,
            None => s == short && s != '\0',
        };
        if let Some(c) = COMMANDS.iter().find(|c| hit(c.long, c.short)) {
            return Some(Item::Cmd(c));
        }
        for d in OPTIONS {
            if let Some(f) = d.flags.iter().find(|f| hit(f.long, f.short)) {
                return Some(Item::Opt(d, f));
            }
        }
        EXTRA_FLAGS
            .iter()
            .find(|(f, _)| hit(f.long, f.short))
            .map(|(f, _)| Item::Extra(f))
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
    /// `-f N -6`: an IPv6 mark service.
    pub ipv6: bool,
    pub addr: Option<IpAddr>,
    pub port: u16,
    pub scheduler: String,
    /// `-b` as given, and what it sets once the scheduler is known.
    pub sched_flags: String,
    pub flags: SchedFlags,
    pub persistent: Option<u32>,
    /// `-M`: the persistence granularity of an IPv4 service (a netmask)
    /// or, given after an IPv6 service, its prefix length.
    pub netmask: Option<Ipv4Addr>,
    pub prefix6: Option<u8>,
    /// The real server of `-a`, `-e` and `-d` (address 0.0.0.0 until
    /// `-r` gives one).
    pub dest: DestSpec,
    pub timeouts: Timeouts,
    pub tun_type: u8,
}

impl Parsed {
    fn new() -> Parsed {
        Parsed {
            cmd: Cmd::List,
            opts: 0,
            protocol: Protocol::Tcp,
            sctp: false,
            fwmark: None,
            ipv6: false,
            addr: None,
            port: 0,
            scheduler: String::new(),
            sched_flags: String::new(),
            flags: SchedFlags::default(),
            persistent: None,
            netmask: None,
            prefix6: None,
            dest: DestSpec {
                addr: Ipv4Addr::UNSPECIFIED.into(),
                port: 0,
                forward: Forward::Route,
                weight: 1,
                uthreshold: 0,
                lthreshold: 0,
                slow_start: 0,
            },
            timeouts: Timeouts {
                tcp: 0,
                tcpfin: 0,
                udp: 0,
            },
            tun_type: 0,
        }
    }

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
        if let Some(m) = self.fwmark {
            return Some(ServiceKey::mark_of(m, self.ipv6));
        }
        Some(ServiceKey::addr(self.protocol, self.addr?, self.port))
    }

    /// What a `--json` listing carries: every `-L` variant given.
    pub fn json_parts(&self) -> Parts {
        Parts {
            stats: self.has(Opt::Stats),
            rates: self.has(Opt::Rate),
            thresholds: self.has(Opt::Thresholds),
            persistent_conns: self.has(Opt::PersistentConn),
            tunnel: self.has(Opt::TunInfo),
            nosort: self.has(Opt::NoSort),
        }
    }

    /// The listing's columns, in ipvsadm's order of precedence.
    pub fn columns(&self) -> Columns {
        [
            (Opt::Stats, Columns::Stats),
            (Opt::Rate, Columns::Rate),
            (Opt::Thresholds, Columns::Thresholds),
            (Opt::PersistentConn, Columns::PersistentConn),
            (Opt::TunInfo, Columns::TunInfo),
        ]
        .into_iter()
        .find(|(o, _)| self.has(*o))
        .map_or(Columns::Plain, |(_, c)| c)
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    Run(Box<Parsed>),
    Help,
    Version,
}

/// strtol-style parse of a whole decimal string within [min, max].
fn number(s: &str, min: i64, max: i64) -> Option<i64> {
    let t = s.trim_start();
    let n: i64 = t.parse().ok()?;
    (min..=max).contains(&n).then_some(n)
}

fn parse_host(s: &str) -> Option<Ipv4Addr> {
    s.parse().ok().or_else(|| names::host_to_addr(s))
}

/// ipvsadm's parse_service: `host[:port]`, `[v6]:port` or a bare IPv6
/// address; `None` if the address (or a given port) is not understood.
/// ipvsadm takes `[1.2.3.4]:80` as 1.2.3.4 without its port; uvs refuses
/// it.
fn parse_service(s: &str, p: Protocol) -> Option<(IpAddr, Option<u16>)> {
    if s.is_empty() || s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (addr, port) = if let Some(rest) = s.strip_prefix('[') {
        let (v6, port) = rest.split_once("]:")?;
        (IpAddr::V6(v6.parse().ok()?), Some(port))
    } else if let Ok(v6) = s.parse::<Ipv6Addr>() {
        (IpAddr::V6(v6), None)
    } else {
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        (IpAddr::V4(parse_host(host)?), port)
    };
    let port = match port {
        None => None,
        Some(ps) => Some(match number(ps, 0, 65535) {
            Some(n) => n as u16,
            None => names::service_to_port(ps, p)?,
        }),
    };
    Some((addr, port))
}

/// One token's items with their arguments: a long option, or a bundle of
/// short ones (`-Ln`, `-At ADDR`); `args[*i..]` supplies separate
/// arguments.
fn items(
    prog: &str,
    have_cmd: bool,
    a: &str,
    args: &[String],
    i: &mut usize,
) -> Result<Vec<(Item, String)>, Fail> {
    // An argument from the next token; an optional one only if it does
    // not look like an option.
    let mut next = |kind: Arg, shown: &str| -> Result<Option<String>, Fail> {
        match (kind, args.get(*i)) {
            (Arg::Required, Some(v)) => {
                *i += 1;
                Ok(Some(v.clone()))
            }
            (Arg::Required, None) => bad_option(prog, have_cmd, shown, "missing argument"),
            (Arg::Optional, Some(v)) if !v.starts_with('-') => {
                *i += 1;
                Ok(Some(v.clone()))
            }
            _ => Ok(None),
        }
    };
    if let Some(long) = a.strip_prefix("--") {
        let (name, inline) = match long.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (long, None),
        };
        let Some(item) = Item::find(Some(name), '\0') else {
            return bad_option(prog, have_cmd, a, "unknown option");
        };
        let val = match (item.arg(), inline) {
            (Arg::None, Some(_)) => {
                return bad_option(prog, have_cmd, a, "option does not take an argument");
            }
            (Arg::None, None) => None,
            (_, Some(v)) => Some(v),
            (kind, None) => next(kind, a)?,
        };
        return Ok(vec![(item, val.unwrap_or_default())]);
    }
    let chars: Vec<char> = a[1..].chars().collect();
    let mut out = Vec::new();
    let mut j = 0;
    while j < chars.len() {
        let c = chars[j];
        j += 1;
        let shown = format!("-{c}");
        let Some(item) = Item::find(None, c) else {
            return bad_option(prog, have_cmd, &shown, "unknown option");
        };
        let val = match item.arg() {
            Arg::None => None,
            // The rest of the bundle is the argument.
            _ if j < chars.len() => {
                let rest: String = chars[j..].iter().collect();
                j = chars.len();
                Some(rest)
            }
            kind => next(kind, &shown)?,
        };
        out.push((item, val.unwrap_or_default()));
    }
    Ok(out)
}

/// The first item: it must be a command.
fn command(prog: &str, item: Item, val: &str) -> Result<Result<Cmd, Invocation>, Fail> {
    let Item::Cmd(c) = item else {
        return tryhelp(prog);
    };
    let Some(cmd) = c.cmd else {
        return Ok(Err(match c.short {
            'h' => Invocation::Help,
            _ => Invocation::Version,
        }));
    };
    if matches!(cmd, Cmd::StartDaemon | Cmd::StopDaemon) && val != "master" && val != "backup" {
        return fail(if cmd == Cmd::StartDaemon {
            "illegal start-daemon parameter specified"
        } else {
            "illegal start_daemon specified"
        });
    }
    Ok(Ok(cmd))
}

/// Parses `args` (without the program name) as ipvsadm would.
pub fn parse(prog: &str, args: &[String]) -> Result<Invocation, Fail> {
    let mut p = Parsed::new();
    let mut have_cmd = false;
    let mut positional: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        i += 1;
        if a == "--" {
            positional.extend(args[i..].iter().map(String::as_str));
            break;
        }
        if a.len() <= 1 || !a.starts_with('-') {
            positional.push(a);
            continue;
        }
        for (item, val) in items(prog, have_cmd, a, args, &mut i)? {
            if !have_cmd {
                have_cmd = true;
                match command(prog, item, &val)? {
                    Ok(cmd) => p.cmd = cmd,
                    Err(inv) => return Ok(inv),
                }
                continue;
            }
            match item {
                Item::Cmd(_) => return fail("multiple commands specified"),
                Item::Opt(d, f) => {
                    p.set(d.opt)?;
                    (f.apply)(&mut p, &val)?;
                }
                Item::Extra(f) => (f.apply)(&mut p, &val)?,
            }
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

/// The commands and options part of `uvsadm -h`, from the tables.
pub fn help() -> String {
    let spell = |long: &str, short: char| match short {
        '\0' => format!("--{long}"),
        s => format!("--{long:<16} -{s}"),
    };
    let mut out = String::from("Commands:\n");
    let listed = |h: &str| !h.is_empty() && !h.starts_with(MAN_ONLY);
    for c in COMMANDS.iter().filter(|c| listed(c.help)) {
        let _ = writeln!(out, "  {:<22} {}", spell(c.long, c.short), c.help);
    }
    out.push_str("\nOptions:\n");
    for d in OPTIONS.iter().filter(|d| listed(d.help)) {
        let f = &d.flags[0];
        let _ = writeln!(out, "  {:<22} {}", spell(f.long, f.short), d.help);
    }
    out
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
