//! The option table: every option's names, argument, what it sets,
//! which commands allow it (ipvsadm's legality matrix, one row per
//! option) and its help line; and the commands.

use super::{Cmd, Fail, Opt, Parsed, fail, number, parse_host, parse_service, timeout};
use crate::lvs::service::{Forward, Protocol};

/// What a command allows of an option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rule {
    Required,
    Optional,
    /// At most one of the options marked so.
    OneOf,
    Illegal,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Arg {
    None,
    Required,
    Optional,
}

/// What a flag does to the parse, given its argument ("" for none).
pub(super) type Apply = fn(&mut Parsed, &str) -> Result<(), Fail>;

/// One spelling of an option: long name, short letter (`'\0'`: none),
/// argument, and what it sets.
pub(super) struct Flag {
    pub long: &'static str,
    pub short: char,
    pub arg: Arg,
    pub apply: Apply,
}

/// One option (one column of ipvsadm's legality matrix).
pub(super) struct OptDef {
    pub opt: Opt,
    /// The name ipvsadm's messages use.
    pub name: &'static str,
    pub flags: &'static [Flag],
    /// Per command, in `Cmd` order: `+` required, `o` optional, `1` at
    /// most one of the options marked so, `x` illegal.
    pub rules: &'static str,
    /// `uvsadm -h`'s line (argument, two blanks, text); one that starts
    /// with [`MAN_ONLY`] is on the man page only (ipvsadm's options that
    /// `-h` leaves out, most of them refused by uvs).
    pub help: &'static str,
}

impl OptDef {
    pub fn rule(&self, cmd: Cmd) -> Rule {
        match self.rules.as_bytes().get(cmd as usize) {
            Some(b'+') => Rule::Required,
            Some(b'o') => Rule::Optional,
            Some(b'1') => Rule::OneOf,
            _ => Rule::Illegal,
        }
    }
}

/// A command: how it is spelt and, for the daemon commands, its argument.
pub(super) struct CmdDef {
    pub long: &'static str,
    pub short: char,
    pub arg: Arg,
    /// `None`: help or version.
    pub cmd: Option<Cmd>,
    pub help: &'static str,
}

const fn flag(long: &'static str, short: char, arg: Arg, apply: Apply) -> Flag {
    Flag {
        long,
        short,
        arg,
        apply,
    }
}

/// A flag that only marks its option as given.
fn mark(_: &mut Parsed, _: &str) -> Result<(), Fail> {
    Ok(())
}

const NO: Arg = Arg::None;
const REQ: Arg = Arg::Required;
const OPT: Arg = Arg::Optional;

/// The forms of the command line after the program's name: `uvsadm -h`'s
/// usage and the man page's synopsis.
pub const SYNOPSIS: &[&str] = &[
    "-A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [-b sched-flags] [-o]",
    "-D virtual-service",
    "-C",
    "-R",
    "-S [-n]",
    "-a|e virtual-service -r server-address [-g|-i|-m] [-w weight] [--slow-start seconds]",
    "-d virtual-service -r server-address",
    "-L|l [virtual-service] [-n] [-c] [--stats] [--rate] [--timeout] [--exact] [--nosort] [--json]",
    "-Z [virtual-service]",
    "--set tcp tcpfin udp",
    "-h",
];

/// The commands, in the order of `-h`. `-l` is `-L`'s old spelling.
#[rustfmt::skip]
pub(super) const COMMANDS: &[CmdDef] = &[
    CmdDef {
        long: "add-service",
        short: 'A',
        arg: NO,
        cmd: Some(Cmd::Add),
        help: "add virtual service with options",
    },
    CmdDef {
        long: "edit-service",
        short: 'E',
        arg: NO,
        cmd: Some(Cmd::Edit),
        help: "edit virtual service with options",
    },
    CmdDef {
        long: "delete-service",
        short: 'D',
        arg: NO,
        cmd: Some(Cmd::Del),
        help: "delete virtual service",
    },
    CmdDef {
        long: "clear",
        short: 'C',
        arg: NO,
        cmd: Some(Cmd::Flush),
        help: "clear the whole table",
    },
    CmdDef {
        long: "restore",
        short: 'R',
        arg: NO,
        cmd: Some(Cmd::Restore),
        help: "restore rules from stdin (all or nothing)",
    },
    CmdDef {
        long: "save",
        short: 'S',
        arg: NO,
        cmd: Some(Cmd::Save),
        help: "save rules to stdout",
    },
    CmdDef {
        long: "add-server",
        short: 'a',
        arg: NO,
        cmd: Some(Cmd::AddDest),
        help: "add real server with options",
    },
    CmdDef {
        long: "edit-server",
        short: 'e',
        arg: NO,
        cmd: Some(Cmd::EditDest),
        help: "edit real server with options",
    },
    CmdDef {
        long: "delete-server",
        short: 'd',
        arg: NO,
        cmd: Some(Cmd::DelDest),
        help: "delete real server",
    },
    CmdDef {
        long: "list",
        short: 'L',
        arg: NO,
        cmd: Some(Cmd::List),
        help: "list the table",
    },
    CmdDef {
        long: "list",
        short: 'l',
        arg: NO,
        cmd: Some(Cmd::List),
        help: "~the same as -L (ipvsadm's old spelling)",
    },
    CmdDef {
        long: "zero",
        short: 'Z',
        arg: NO,
        cmd: Some(Cmd::Zero),
        help: "zero counters in a service or all services",
    },
    CmdDef {
        long: "set",
        short: '\0',
        arg: NO,
        cmd: Some(Cmd::Timeout),
        help: "set connection timeouts: tcp tcpfin udp (seconds)",
    },
    CmdDef {
        long: "start-daemon",
        short: '\0',
        arg: REQ,
        cmd: Some(Cmd::StartDaemon),
        help: "~STATE  refused: uvs's directors sync connections themselves (uvs director --peer, docs/ha.md)",
    },
    CmdDef {
        long: "stop-daemon",
        short: '\0',
        arg: REQ,
        cmd: Some(Cmd::StopDaemon),
        help: "~STATE  refused, as --start-daemon",
    },
    CmdDef {
        long: "help",
        short: 'h',
        arg: NO,
        cmd: None,
        help: "display this help message",
    },
    CmdDef {
        long: "version",
        short: 'v',
        arg: NO,
        cmd: None,
        help: "show the version",
    },
];

/// An option set by one flag of its own name (most of them).
macro_rules! one {
    ($opt:expr, $rules:literal, $name:literal, $short:literal, $arg:expr, $apply:expr, $help:literal) => {
        OptDef {
            opt: $opt,
            name: $name,
            rules: $rules,
            flags: &[flag($name, $short, $arg, $apply)],
            help: $help,
        }
    };
}

// Commands, in `Cmd` order, for the rules columns:
//                     A E D C L a d e s s s R S Z
//                             i   e     t t t e a e
//                                 t     a o   s v r
#[rustfmt::skip]
pub(super) const OPTIONS: &[OptDef] = &[
    one!(Opt::Numeric, "xxxxoxxxxxxxox", "numeric", 'n', NO, mark, "numeric output of addresses and ports"),
    one!(Opt::Connection, "xxxx1xxxxxxxxx", "connection", 'c', NO, mark, "list the connection table (-L)"),
    OptDef { opt: Opt::Service, name: "service-address", rules: "+++x1+++xxxxxo",
        flags: &[flag("tcp-service", 't', REQ, tcp_service), flag("udp-service", 'u', REQ, udp_service),
                 flag("sctp-service", '\0', REQ, sctp_service), flag("fwmark-service", 'f', REQ, fwmark)],
        help: "host[:port]  the service, -t TCP or -u UDP (IPv4, [IPv6]:port; names from /etc/hosts, /etc/services); -f MARK a firewall mark" },
    one!(Opt::Scheduler, "ooxxxxxxxxxxxx", "scheduler", 's', REQ, scheduler, "NAME  rr, wrr, lc, wlc (the default, as in ipvsadm), sed, nq, sh, dh, mh, fo or ovf"),
    one!(Opt::Persistent, "ooxxxxxxxxxxxx", "persistent", 'p', OPT, persistent, "[TIMEOUT]  persistent service, TIMEOUT seconds (default 360, as ipvsadm)"),
    one!(Opt::Netmask, "ooxxxxxxxxxxxx", "netmask", 'M', REQ, netmask, "NETMASK  persistence granularity (default 255.255.255.255)"),
    one!(Opt::Server, "xxxxx+++xxxxxx", "real-server", 'r', REQ, real_server, "host[:port]  the real server (the port only with -m)"),
    OptDef { opt: Opt::Forward, name: "forwarding-method", rules: "xxxxxoxoxxxxxx",
        flags: &[flag("gatewaying", 'g', NO, gatewaying), flag("ipip", 'i', NO, ipip), flag("masquerading", 'm', NO, masquerading)],
        help: "direct routing (default); -i IP-in-IP tunnelling, -m NAT" },
    one!(Opt::Weight, "xxxxxoxoxxxxxx", "weight", 'w', REQ, weight, "N  real server weight, 0 to 65535 (0 quiesces)"),
    one!(Opt::UThreshold, "xxxxxoxoxxxxxx", "u-threshold", 'x', REQ, u_threshold, "~N  upper connection threshold: refused, uvs has no thresholds"),
    one!(Opt::LThreshold, "xxxxxoxoxxxxxx", "l-threshold", 'y', REQ, l_threshold, "~N  lower connection threshold: refused, as -x"),
    one!(Opt::Mcast, "xxxxxxxxxoxxxx", "mcast-interface", '\0', REQ, mark, "~IF  the sync daemon's (--start-daemon, refused)"),
    one!(Opt::Timeout, "xxxx1xxxxxxxxx", "timeout", '\0', NO, mark, "list the timeouts (-L)"),
    one!(Opt::Daemon, "xxxx1xxxxxxxxx", "daemon", '\0', NO, mark, "~list the HA sync state, one line per peer (-L; docs/ha.md)"),
    one!(Opt::Stats, "xxxxoxxxxxxxxx", "stats", '\0', NO, mark, "list with counters (-L)"),
    one!(Opt::Rate, "xxxxoxxxxxxxxx", "rate", '\0', NO, mark, "list with rates (-L)"),
    one!(Opt::Thresholds, "xxxxoxxxxxxxxx", "thresholds", '\0', NO, mark, "list with thresholds (-L)"),
    one!(Opt::PersistentConn, "xxxxoxxxxxxxxx", "persistent-conn", '\0', NO, mark, "list with persistent connections (-L)"),
    one!(Opt::NoSort, "xxxxoxxxxxxxxx", "nosort", '\0', NO, mark, "list in the daemon's order (-L)"),
    one!(Opt::SyncId, "xxxxoxxxxooxxx", "syncid", '\0', REQ, syncid, "~ID  the sync daemon's id, 0 to 255: checked, not used"),
    one!(Opt::Exact, "xxxxoxxxxxxxxx", "exact", 'X', NO, mark, "exact numbers, no K/M/G (-L)"),
    one!(Opt::Ops, "ooxxxxxxxxxxxx", "ops", 'o', NO, mark, "~one-packet scheduling: each datagram scheduled on its own (UDP and fwmark services)"),
    one!(Opt::Pe, "ooxxxxxxxxxxxx", "pe", '\0', REQ, mark, "~NAME  persistence engine: refused, uvs has none (sip)"),
    one!(Opt::SchedFlags, "ooxxxxxxxxxxxx", "sched-flags", 'b', REQ, sched_flags, "LIST  sh-fallback,sh-port (sh), mh-fallback,mh-port (mh), flag-1..3"),
    one!(Opt::McastGroup, "xxxxxxxxxoxxxx", "mcast-group", '\0', REQ, mark, "~ADDR  the sync daemon's (--start-daemon, refused)"),
    one!(Opt::McastPort, "xxxxxxxxxoxxxx", "mcast-port", '\0', REQ, mcast_port, "~PORT  the sync daemon's (--start-daemon, refused)"),
    one!(Opt::McastTtl, "xxxxxxxxxoxxxx", "mcast-ttl", '\0', REQ, mcast_ttl, "~TTL  the sync daemon's (--start-daemon, refused)"),
    one!(Opt::SyncMaxlen, "xxxxxxxxxoxxxx", "sync-maxlen", '\0', REQ, sync_maxlen, "~LEN  the sync daemon's (--start-daemon, refused)"),
    one!(Opt::TunInfo, "xxxxoxxxxxxxxx", "tun-info", '\0', NO, mark, "list with tunnel information (-L)"),
    one!(Opt::TunType, "xxxxxoxoxxxxxx", "tun-type", '\0', REQ, tun_type, "~TYPE  with -i: ipip (the default); gue and gre are refused"),
    one!(Opt::TunPort, "xxxxxoxoxxxxxx", "tun-port", '\0', REQ, tun_port, "~PORT  GUE's port (GUE is refused)"),
    one!(Opt::TunNocsum, "xxxxxoxoxxxxxx", "tun-nocsum", '\0', NO, mark, "~GUE and GRE without checksums (both refused)"),
    one!(Opt::TunCsum, "xxxxxoxoxxxxxx", "tun-csum", '\0', NO, mark, "~GUE and GRE with checksums (both refused)"),
    one!(Opt::TunRemcsum, "xxxxxoxoxxxxxx", "tun-remcsum", '\0', NO, mark, "~GUE with remote checksum offload (refused)"),
    one!(Opt::Json, "xxxxoxxxxxxxxx", "json", '\0', NO, mark, "the listing as JSON, numbers exact (-L; uvs's own, docs/cli.md)"),
    one!(Opt::SlowStart, "xxxxxoxoxxxxxx", "slow-start", '\0', REQ, slow_start, "SECONDS  the real server's weight ramps up over SECONDS when it joins (uvs's own, docs/cli.md)"),
];

/// Spellings that set no option of their own, with their man-page line.
#[rustfmt::skip]
pub(super) const EXTRA_FLAGS: &[(Flag, &str)] = &[
    (flag("sort", '\0', NO, mark), "~list sorted (-L): accepted, listings are always sorted unless --nosort"),
    (flag("ipv6", '6', NO, ipv6), "~with -f: an IPv6 firewall-mark service"),
];

/// The mark of a help line that `-h` leaves out.
pub(super) const MAN_ONLY: char = '~';

fn service(p: &mut Parsed, v: &str, protocol: Protocol, sctp: bool) -> Result<(), Fail> {
    p.protocol = protocol;
    p.sctp = sctp;
    let Some((addr, port)) = parse_service(v, protocol) else {
        return fail("illegal virtual server address[:port] specified");
    };
    // An IPv6 service's granularity is /128 again, whatever `-M` said
    // before it (ipvsadm's parse_service sets `netmask = 128`).
    if addr.is_ipv6() {
        (p.netmask, p.prefix6) = (None, None);
    }
    p.addr = Some(addr);
    p.port = port.unwrap_or(0);
    Ok(())
}

fn tcp_service(p: &mut Parsed, v: &str) -> Result<(), Fail> {
    service(p, v, Protocol::Tcp, false)
}

fn udp_service(p: &mut Parsed, v: &str) -> Result<(), Fail> {
    service(p, v, Protocol::Udp, false)
}

fn sctp_service(p: &mut Parsed, v: &str) -> Result<(), Fail> {
    service(p, v, Protocol::Tcp, true)
}

fn fwmark(p: &mut Parsed, v: &str) -> Result<(), Fail> {
    p.fwmark = Some(bounded(v, 1, i64::from(u32::MAX), || {
        format!("invalid fwmark value `{v}' specified")
    })? as u32);
    Ok(())
}

/// Checked once the scheduler is known (in `check`), as ipvsadm does.
fn sched_flags(p: &mut Parsed, v: &str) -> Result<(), Fail> {
    p.sched_flags = v.to_string();
    Ok(())
}

fn scheduler(p: &mut Parsed, v: &str) -> Result<(), Fail> {
    p.scheduler = v.chars().take(15).collect();
    Ok(())
}

fn persistent(p: &mut Parsed, v: &str) -> Result<(), Fail> {
    p.persistent = Some(if v.is_empty() { 360 } else { timeout(v, 1)? });
    Ok(())
}

/// `-M` as ipvsadm reads it, by the family of the service given so far:
/// an IPv6 service's is a prefix length read by C's `atoi` (1..128);
/// anyone else's a dotted netmask or a host name.
fn netmask(p: &mut Parsed, v: &str) -> Result<(), Fail> {
    if p.ipv6 || p.addr.is_some_and(|a| a.is_ipv6()) {
        return match atoi(v) as u32 {
            n @ 1..=128 => {
                (p.netmask, p.prefix6) = (None, Some(n as u8));
                Ok(())
            }
            _ => fail("illegal ipv6 netmask specified"),
        };
    }
    match parse_host(v) {
        Some(m) => {
            p.netmask = Some(m);
            Ok(())
        }
        None => fail("illegal virtual server persistent mask specified"),
    }
}

fn real_server(p: &mut Parsed, v: &str) -> Result<(), Fail> {
    let Some((addr, port)) = parse_service(v, p.protocol) else {
        return fail("illegal real server address[:port] specified");
    };
    p.dest.addr = addr;
    // Without a port the service port (as parsed so far) is used.
    p.dest.port = port.unwrap_or(p.port);
    Ok(())
}

fn gatewaying(p: &mut Parsed, _: &str) -> Result<(), Fail> {
    p.dest.forward = Forward::Route;
    Ok(())
}

fn ipip(p: &mut Parsed, _: &str) -> Result<(), Fail> {
    p.dest.forward = Forward::Tunnel;
    Ok(())
}

fn masquerading(p: &mut Parsed, _: &str) -> Result<(), Fail> {
    p.dest.forward = Forward::Masq;
    Ok(())
}

fn weight(p: &mut Parsed, v: &str) -> Result<(), Fail> {
    p.dest.weight = bounded(v, 0, 65535, || "illegal weight specified".into())? as u32;
    Ok(())
}

fn slow_start(p: &mut Parsed, v: &str) -> Result<(), Fail> {
    let max = i64::from(crate::control::proto::MAX_SLOW_START);
    p.dest.slow_start = bounded(v, 0, max, || "illegal slow start specified".into())? as u32;
    Ok(())
}

fn u_threshold(p: &mut Parsed, v: &str) -> Result<(), Fail> {
    let max = i64::from(i32::MAX);
    p.dest.uthreshold = bounded(v, 0, max, || "illegal u_threshold specified".into())? as u32;
    Ok(())
}

fn l_threshold(p: &mut Parsed, v: &str) -> Result<(), Fail> {
    let max = i64::from(i32::MAX);
    p.dest.lthreshold = bounded(v, 0, max, || "illegal l_threshold specified".into())? as u32;
    Ok(())
}

fn syncid(_: &mut Parsed, v: &str) -> Result<(), Fail> {
    bounded(v, 0, 255, || "illegal syncid specified".into()).map(|_| ())
}

fn mcast_port(_: &mut Parsed, v: &str) -> Result<(), Fail> {
    bounded(v, 1, 65535, || "illegal mcast-port specified".into()).map(|_| ())
}

fn mcast_ttl(_: &mut Parsed, v: &str) -> Result<(), Fail> {
    bounded(v, 1, 255, || "illegal mcast-ttl specified".into()).map(|_| ())
}

fn sync_maxlen(_: &mut Parsed, v: &str) -> Result<(), Fail> {
    bounded(v, 1, 65535 - 20 - 8, || {
        "illegal sync-maxlen specified".into()
    })
    .map(|_| ())
}

fn tun_type(p: &mut Parsed, v: &str) -> Result<(), Fail> {
    p.tun_type = match v {
        "ipip" => 0,
        "gue" => 1,
        "gre" => 2,
        _ => return fail("illegal tunnel type specified"),
    };
    Ok(())
}

fn tun_port(_: &mut Parsed, v: &str) -> Result<(), Fail> {
    bounded(v, 1, 65535, || "illegal tunnel port specified".into()).map(|_| ())
}

fn ipv6(p: &mut Parsed, _: &str) -> Result<(), Fail> {
    match p.fwmark {
        Some(_) => {
            p.ipv6 = true;
            (p.netmask, p.prefix6) = (None, None);
            Ok(())
        }
        None => fail("-6 used before -f\n"),
    }
}

/// C's `atoi` as glibc has it, `(int) strtol(s, NULL, 10)`: blanks,
/// a sign, the digits up to the first other character (none: 0), clamped
/// to a 64-bit long, then cut to 32 bits.
fn atoi(s: &str) -> i32 {
    let t = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let limit = i128::from(i64::MAX) + 1;
    let n = digits
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0i128, |n, d| (n * 10 + i128::from(d - b'0')).min(limit));
    let n = if neg { -n } else { n };
    n.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64 as i32
}

/// `number` or the failure `msg` names.
fn bounded(v: &str, min: i64, max: i64, msg: impl FnOnce() -> String) -> Result<i64, Fail> {
    number(v, min, max).ok_or_else(|| Fail {
        msg: msg(),
        code: 2,
    })
}
