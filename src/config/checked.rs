//! The file checked into a [`Config`]: every value parsed and checked,
//! every error at its line and column.

use super::settings::{self, Settings};
use super::{
    CheckSection, Config, ConfigError, Ctx, File, RealServer, RealServerSection, Service,
    ServiceSection, line_col,
};
use crate::control::check::{CheckKind, CheckSpec};
use crate::control::model::FailAction;
use crate::control::plan::{Quorum, SorryServer};
use crate::control::proto::{DestSpec, ServiceDef};
use crate::lvs::mark::MarkRule;
use crate::lvs::service::{
    Forward, MAX_TIMEOUT, Persistence, Protocol, SchedFlags, SchedulerKind, ServiceKey, Timeouts,
};
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;

pub(super) fn parse_addr(
    cx: &Ctx,
    s: &Spanned<String>,
    port_needed: bool,
) -> Result<(IpAddr, Option<u16>), ConfigError> {
    let v = s.get_ref().trim();
    // `198.18.0.10:80`, `[2001:2::10]:80`, or an address alone.
    if let Ok(a) = v.parse::<SocketAddr>() {
        return Ok((a.ip(), Some(a.port())));
    }
    match v.parse::<IpAddr>() {
        Ok(a) if !port_needed => Ok((a, None)),
        Ok(_) => Err(cx.err(s.span(), format!("`{v}` needs a port: ADDRESS:PORT"))),
        Err(_) => Err(cx.err(
            s.span(),
            format!(
                "`{v}` is not an IP address{} (IPv6: `[ADDRESS]:PORT`)",
                if port_needed { " and port" } else { "" }
            ),
        )),
    }
}

/// The `[director]` table: each key a setting, each value of the type the
/// setting takes (a list where it takes several), checked as a flag is.
fn director(
    cx: &Ctx,
    table: &std::collections::BTreeMap<Spanned<String>, Spanned<toml::Value>>,
) -> Result<Settings, ConfigError> {
    use settings::Ty;
    let mut out = Settings::default();
    for (k, v) in table {
        let key = k.get_ref().as_str();
        let Some(st) = settings::by_key(key) else {
            let known: Vec<&str> = settings::SETTINGS.iter().filter_map(|s| s.key).collect();
            return Err(cx.err(
                k.span(),
                format!(
                    "unknown setting `{key}` in [director]: one of {}",
                    known.join(", ")
                ),
            ));
        };
        let one = |x: &toml::Value| -> Option<String> {
            match (st.ty, x) {
                (Ty::Switch, toml::Value::Boolean(b)) => Some(b.to_string()),
                (Ty::Text, toml::Value::String(s)) => Some(s.clone()),
                (Ty::Int | Ty::Num, toml::Value::Integer(n)) => Some(n.to_string()),
                (Ty::Num, toml::Value::Float(f)) => Some(f.to_string()),
                _ => None,
            }
        };
        let what = match st.ty {
            Ty::Switch => "true or false",
            Ty::Text => "a string",
            Ty::Int => "a whole number",
            Ty::Num => "a number",
        };
        let values: Vec<String> = match (st.multi, v.get_ref()) {
            (true, toml::Value::Array(a)) => a.iter().map(one).collect::<Option<_>>(),
            (false, x) => one(x).map(|x| vec![x]),
            (true, _) => None,
        }
        .ok_or_else(|| {
            let list = if st.multi {
                "a list of values, each "
            } else {
                ""
            };
            cx.err(v.span(), format!("{key}: {list}{what}"))
        })?;
        for x in &values {
            out.set(st, key, x)
                .map_err(|e| cx.err(v.span(), e.to_string()))?;
        }
    }
    Ok(out)
}

pub(super) fn check(cx: &Ctx, f: File) -> Result<Config, ConfigError> {
    let director = director(cx, &f.director)?;
    let timeouts = f.timeouts.map(|t| Timeouts {
        tcp: t.tcp.unwrap_or(0),
        tcpfin: t.tcpfin.unwrap_or(0),
        udp: t.udp.unwrap_or(0),
    });
    let marks = super::marks::marks(cx, &f.marks)?;
    let mut services = Vec::new();
    let mut seen: HashMap<ServiceKey, usize> = HashMap::new();
    for s in &f.services {
        let (key, at) = service_key(cx, s, &marks)?;
        if let Some(first) = seen.insert(key, at.start) {
            let (line, _) = line_col(cx.text, first);
            return Err(cx.err(
                at,
                format!("service {key} is defined twice (first on line {line})"),
            ));
        }
        let ops = s.ops.as_ref().is_some_and(|o| *o.get_ref());
        if let Err(e) = crate::control::model::check_ops(&key, ops) {
            let o = s.ops.as_ref().map_or(at.clone(), |o| o.span());
            return Err(cx.err(o, e.to_string()));
        }
        let scheduler = match &s.scheduler {
            None => SchedulerKind::Wlc,
            Some(n) => SchedulerKind::from_name(n.get_ref()).ok_or_else(|| {
                let why = SchedulerKind::refusal(n.get_ref())
                    .map(|w| format!(" is not supported by uvs ({w})"))
                    .unwrap_or_default();
                cx.err(
                    n.span(),
                    format!(
                        "scheduler `{}`{why}: one of {}",
                        n.get_ref(),
                        SchedulerKind::known()
                    ),
                )
            })?,
        };
        let flags = match &s.sched_flags {
            None => SchedFlags::default(),
            Some(f) => SchedFlags::parse(&f.get_ref().join(","), scheduler.name())
                .map_err(|e| cx.err(f.span(), format!("sched_flags: {e}")))?,
        };
        let persistence = persistence(cx, s, key)?;
        let on_failure = match &s.on_failure {
            None => FailAction::Quiesce,
            Some(v) => match v.get_ref().as_str() {
                "quiesce" => FailAction::Quiesce,
                "remove" => FailAction::Remove,
                other => {
                    return Err(
                        cx.err(v.span(), format!("on_failure `{other}`: quiesce or remove"))
                    );
                }
            },
        };
        let default_check = match &s.check {
            None => None,
            Some(c) => Some(check_spec(cx, c)?),
        };
        let mut real_servers: Vec<RealServer> = Vec::new();
        for r in &s.real_servers {
            let mut rs = real_server(cx, r, key, default_check.as_ref())?;
            rs.slow_start = slow_start(cx, r.slow_start.as_ref().or(s.slow_start.as_ref()))?;
            if real_servers
                .iter()
                .any(|x| x.addr == rs.addr && x.port == rs.port)
            {
                return Err(cx.err(
                    r.address.span(),
                    format!(
                        "real server {} is listed twice in this service",
                        std::net::SocketAddr::new(rs.addr, rs.port)
                    ),
                ));
            }
            real_servers.push(rs);
        }
        let sorry = match &s.sorry_server {
            None => None,
            Some(r) => {
                if r.check.is_some() || r.weight.is_some() || r.slow_start.is_some() {
                    return Err(cx.err(
                        r.address.span(),
                        "a sorry server has no check, weight or slow_start: it takes every new \
                         connection while the quorum is lost",
                    ));
                }
                let rs = real_server(cx, r, key, None)?;
                Some(SorryServer {
                    addr: rs.addr,
                    port: rs.port,
                    forward: rs.forward,
                })
            }
        };
        let quorum = Quorum {
            min_weight: match &s.quorum {
                None => 1,
                Some(q) if *q.get_ref() >= 1 => *q.get_ref(),
                Some(q) => return Err(cx.err(q.span(), "quorum must be at least 1")),
            },
            sorry,
            up_cmd: s.quorum_up.clone(),
            down_cmd: s.quorum_down.clone(),
        };
        services.push(Service {
            def: ServiceDef::of(key, scheduler, flags, ops, persistence),
            on_failure,
            real_servers,
            quorum,
        });
    }
    Ok(Config {
        director,
        timeouts,
        marks,
        services,
    })
}

/// A service's key and the span its errors point at. A mark service's
/// mark must be one of the file's.
fn service_key(
    cx: &Ctx,
    s: &ServiceSection,
    marks: &BTreeMap<u32, Vec<MarkRule>>,
) -> Result<(ServiceKey, Range<usize>), ConfigError> {
    match (&s.fwmark, &s.protocol, &s.address) {
        (Some(m), None, None) => {
            let id = *m.get_ref();
            if !marks.contains_key(&id) {
                let e = format!("fwmark {id}: no [[mark]] with id = {id} in this file");
                return Err(cx.err(m.span(), e));
            }
            let v6 = s.ipv6.as_ref().is_some_and(|v| *v.get_ref());
            let family = |r: &MarkRule| r.vip.is_ipv6() == v6;
            if !marks[&id].iter().any(family) {
                let (f, of) = if v6 {
                    ("IPv6", "ipv6 = true")
                } else {
                    ("IPv4", "no ipv6")
                };
                let e = format!("fwmark {id} ({of}): [[mark]] {id} has no {f} vip");
                return Err(cx.err(m.span(), e));
            }
            Ok((ServiceKey::mark_of(id, v6), m.span()))
        }
        (None, _, _) if s.ipv6.is_some() => {
            let at = s.ipv6.as_ref().map_or(0..0, |x| x.span());
            Err(cx.err(
                at,
                "`ipv6` is for a fwmark service (an address says its family)",
            ))
        }
        (Some(m), _, _) => Err(cx.err(
            m.span(),
            "a service is `fwmark` or `protocol` and `address`, not both",
        )),
        (None, Some(p), Some(a)) => {
            let protocol = match p.get_ref().to_ascii_lowercase().as_str() {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                other => {
                    return Err(cx.err(p.span(), format!("protocol `{other}`: tcp or udp")));
                }
            };
            let (addr, port) = parse_addr(cx, a, true)?;
            if let Err(e) = crate::control::model::check_vip(addr) {
                return Err(cx.err(a.span(), e.to_string()));
            }
            Ok((
                ServiceKey::addr(protocol, addr, port.unwrap_or(0)),
                a.span(),
            ))
        }
        (None, p, a) => {
            let at = p.as_ref().or(a.as_ref()).map_or(0..0, |x| x.span());
            Err(cx.err(
                at,
                "a service needs `protocol` and `address`, or `fwmark` (a [[mark]]'s id)",
            ))
        }
    }
}

/// A service's `persistence_timeout` and `persistence_mask` (`-p`, `-M`);
/// port 0 only for a persistent service, as ipvsadm says.
fn persistence(
    cx: &Ctx,
    s: &ServiceSection,
    key: ServiceKey,
) -> Result<Option<Persistence>, ConfigError> {
    let Some(t) = &s.persistence_timeout else {
        if let Some(m) = &s.persistence_mask {
            return Err(cx.err(m.span(), "persistence_mask needs persistence_timeout"));
        }
        if let (0, 0, Some(a)) = (key.port, key.fwmark, &s.address) {
            return Err(cx.err(
                a.span(),
                "Zero port specified for non-persistent service (set persistence_timeout)",
            ));
        }
        return Ok(None);
    };
    let timeout = u32::try_from(*t.get_ref())
        .ok()
        .filter(|v| (1..=MAX_TIMEOUT).contains(v))
        .ok_or_else(|| {
            cx.err(
                t.span(),
                format!("persistence_timeout must be 1..{MAX_TIMEOUT} seconds"),
            )
        })?;
    let mut p = Persistence::new(timeout);
    let Some(m) = &s.persistence_mask else {
        return Ok(Some(p));
    };
    let text = m.get_ref().trim();
    // An IPv6 service's client network is a prefix length, as ipvsadm's
    // `-M 64` for it; an IPv4 one's a dotted mask.
    if key.addr.is_ipv6() {
        let len = text.strip_prefix('/').unwrap_or(text).parse::<u8>();
        p.prefix6 = len.ok().filter(|l| (1..=128).contains(l)).ok_or_else(|| {
            let why = "a prefix length 1..128 for an IPv6 service (\"64\")";
            cx.err(m.span(), format!("persistence_mask `{text}`: {why}"))
        })?;
    } else {
        p.netmask = text.parse::<Ipv4Addr>().map_err(|_| {
            cx.err(
                m.span(),
                format!("persistence_mask `{text}`: a dotted mask"),
            )
        })?;
    }
    Ok(Some(p))
}

/// One real server of service `key` (its check: its own, else `default`).
fn real_server(
    cx: &Ctx,
    r: &RealServerSection,
    key: ServiceKey,
    default: Option<&CheckSpec>,
) -> Result<RealServer, ConfigError> {
    let (ra, rport) = parse_addr(cx, &r.address, false)?;
    let forward = match &r.forward {
        None => Forward::Route,
        Some(v) => match v.get_ref().to_ascii_lowercase().as_str() {
            "dr" | "route" | "gatewaying" => Forward::Route,
            "tun" | "tunnel" | "ipip" => Forward::Tunnel,
            "nat" | "masq" | "masquerading" => Forward::Masq,
            other => {
                return Err(cx.err(v.span(), format!("forward `{other}`: dr, tun or nat")));
            }
        },
    };
    // As ipvsadm: DR and TUN keep the service's port, NAT may map.
    let port = match forward {
        Forward::Masq => rport.unwrap_or(key.port),
        _ => key.port,
    };
    let weight = match &r.weight {
        None => 1,
        Some(w) => u32::try_from(*w.get_ref())
            .ok()
            .filter(|w| *w <= i32::MAX as u32)
            .ok_or_else(|| cx.err(w.span(), "weight must be between 0 and 2147483647"))?,
    };
    let check = match &r.check {
        Some(c) => Some(check_spec(cx, c)?),
        None => default.cloned(),
    };
    if check.as_ref().is_some_and(|c| c.via_vip) {
        let why = match (forward, key.addr, ra) {
            (_, _, _) if key.fwmark != 0 => Some("a fwmark service has no VIP"),
            (Forward::Masq, _, _) => {
                Some("NAT sends to the server's own address: check it plainly")
            }
            (_, IpAddr::V4(_), IpAddr::V4(_)) => None,
            _ => Some("IPv4 VIPs and real servers only, for now"),
        };
        if let Some(why) = why {
            return Err(cx.err(r.address.span(), format!("`via_vip` check of {ra}: {why}")));
        }
    }
    Ok(RealServer {
        addr: ra,
        port,
        forward,
        weight,
        check,
        slow_start: 0,
    })
}

/// A `slow_start` in seconds: at most an hour (a longer ramp is a
/// mistake, not a plan).
fn slow_start(cx: &Ctx, v: Option<&Spanned<u32>>) -> Result<u32, ConfigError> {
    match v {
        None => Ok(0),
        Some(v) if *v.get_ref() <= crate::control::proto::MAX_SLOW_START => Ok(*v.get_ref()),
        Some(v) => Err(cx.err(
            v.span(),
            format!(
                "slow_start must be 0 to {} seconds",
                crate::control::proto::MAX_SLOW_START
            ),
        )),
    }
}

/// Seconds as an integer or a float (`interval = 1` or `0.2`).
fn seconds(cx: &Ctx, v: &Spanned<toml::Value>, what: &str) -> Result<Duration, ConfigError> {
    let s = match v.get_ref() {
        toml::Value::Integer(i) => *i as f64,
        toml::Value::Float(f) => *f,
        _ => return Err(cx.err(v.span(), format!("{what} is a number of seconds"))),
    };
    if !(0.01..=86_400.0).contains(&s) {
        return Err(cx.err(
            v.span(),
            format!("{what} must be between 0.01 and 86400 seconds"),
        ));
    }
    Ok(Duration::from_secs_f64(s))
}

/// `status = [200, "300-399"]`: codes and inclusive ranges.
fn status_ranges(cx: &Ctx, list: &[Spanned<toml::Value>]) -> Result<Vec<(u16, u16)>, ConfigError> {
    let mut out = Vec::new();
    for v in list {
        let bad = || {
            cx.err(
                v.span(),
                "a status is a code (200) or a range (\"200-299\")",
            )
        };
        let code = |n: i64| u16::try_from(n).ok().filter(|c| (100..=599).contains(c));
        let r = match v.get_ref() {
            toml::Value::Integer(n) => code(*n).map(|c| (c, c)),
            toml::Value::String(t) => match t.split_once('-') {
                Some((a, b)) => match (
                    a.trim().parse().ok().and_then(code),
                    b.trim().parse().ok().and_then(code),
                ) {
                    (Some(a), Some(b)) if a <= b => Some((a, b)),
                    _ => None,
                },
                None => t.trim().parse().ok().and_then(code).map(|c| (c, c)),
            },
            _ => None,
        };
        out.push(r.ok_or_else(bad)?);
    }
    Ok(out)
}

fn check_spec(cx: &Ctx, c: &CheckSection) -> Result<CheckSpec, ConfigError> {
    let kind_name = c.kind.get_ref().to_ascii_lowercase();
    if !["tcp", "http", "udp", "dns", "exec"].contains(&kind_name.as_str()) {
        return Err(cx.err(
            c.kind.span(),
            format!("check type `{kind_name}`: tcp, http, udp, dns or exec"),
        ));
    }
    let need = |v: &Option<String>, what: &str| {
        v.clone()
            .ok_or_else(|| cx.err(c.kind.span(), format!("a {kind_name} check needs `{what}`")))
    };
    let interval = match &c.interval {
        Some(v) => seconds(cx, v, "interval")?,
        None => Duration::from_secs(2),
    };
    let timeout = match &c.timeout {
        Some(v) => seconds(cx, v, "timeout")?,
        None => Duration::from_secs(1).min(interval),
    };
    let warmup = match &c.warmup {
        Some(v) => seconds(cx, v, "warmup")?,
        None => interval,
    };
    let count = |v: &Option<Spanned<u32>>, default: u32, what: &str| match v {
        None => Ok(default),
        Some(n) if *n.get_ref() >= 1 => Ok(*n.get_ref()),
        Some(n) => Err(cx.err(n.span(), format!("{what} must be at least 1"))),
    };
    let (rise, fall) = (count(&c.rise, 1, "rise")?, count(&c.fall, 3, "fall")?);
    let kind = match kind_name.as_str() {
        "tcp" => CheckKind::Tcp,
        "udp" => CheckKind::Udp {
            payload: c.payload.clone().unwrap_or_default().into_bytes(),
            expect: c.expect.clone().map(String::into_bytes),
        },
        "dns" => CheckKind::Dns {
            name: need(&c.name, "name")?,
        },
        "exec" => CheckKind::Exec {
            command: need(&c.command, "command")?,
            dynamic: c.dynamic.unwrap_or(false),
        },
        _ => CheckKind::Http {
            path: c.path.clone().unwrap_or_else(|| "/".into()),
            status: match &c.status {
                Some(l) => status_ranges(cx, l)?,
                None => vec![(200, 299)],
            },
            body_contains: c.body_contains.clone(),
            digest: c.digest.clone(),
            host: c.host.clone(),
        },
    };
    if let Some(v) = &c.via_vip
        && *v.get_ref()
        && kind_name != "tcp"
    {
        return Err(cx.err(
            v.span(),
            format!("`via_vip` is for tcp checks (a SYN to the VIP through the data path), not {kind_name}"),
        ));
    }
    if c.dynamic.is_some() && kind_name != "exec" {
        return Err(cx.err(c.kind.span(), "`dynamic` is for exec checks"));
    }
    let retry_delay = match &c.retry_delay {
        Some(v) => seconds(cx, v, "retry_delay")?,
        None => Duration::from_secs(1),
    };
    Ok(CheckSpec {
        kind,
        port: c.port,
        interval,
        timeout,
        rise,
        fall,
        warmup,
        retry: c.retry.as_ref().map_or(0, |r| *r.get_ref()),
        retry_delay,
        via_vip: c.via_vip.as_ref().is_some_and(|v| *v.get_ref()),
    })
}

pub(super) fn dest_spec(r: &RealServer) -> DestSpec {
    DestSpec {
        addr: r.addr,
        port: r.port,
        forward: r.forward,
        weight: r.weight,
        uthreshold: 0,
        lthreshold: 0,
        slow_start: r.slow_start,
    }
}
