//! `uvs director --config FILE`: the director's start state in TOML
//! (docs/config.md has the complete example). A file is checked whole
//! before anything is applied; every error names the file, line and
//! column. Loading gives the director's options and the table as control
//! ops; a reload applies only the difference between the file as last
//! loaded and as it is now, so what `uvsadm` changed on top stays, and
//! unchanged services and real servers keep their connections and
//! counters.

use crate::control::check::{CheckKind, CheckSpec};
use crate::control::model::FailAction;
use crate::control::proto::{DestSpec, Op};
use crate::lvs::service::{Forward, Protocol, SchedulerKind, ServiceKey, Timeouts};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

mod changes;
pub use changes::{Changes, Kind as ChangeKind, ServiceChange, counted};

/// The file as written: read by [`parse`], and written by the keepalived
/// importer (`crate::import::keepalived`), so what one writes the other
/// reads. `None` and empty lists are left out of what is written; spans
/// are only read (a written value has none).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct File {
    #[serde(default)]
    pub(crate) director: DirectorSection,
    pub(crate) timeouts: Option<TimeoutsSection>,
    #[serde(default, rename = "service", skip_serializing_if = "Vec::is_empty")]
    pub(crate) services: Vec<ServiceSection>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DirectorSection {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) interfaces: Vec<String>,
    pub(crate) socket: Option<PathBuf>,
    pub(crate) tun_source: Option<Spanned<String>>,
    pub(crate) max_conns: Option<Spanned<u64>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TimeoutsSection {
    pub(crate) tcp: Option<u32>,
    pub(crate) tcpfin: Option<u32>,
    pub(crate) udp: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServiceSection {
    pub(crate) protocol: Spanned<String>,
    pub(crate) address: Spanned<String>,
    pub(crate) scheduler: Option<Spanned<String>>,
    /// quiesce (default) or remove.
    pub(crate) on_failure: Option<Spanned<String>>,
    /// The check of every real server of the service (each may override).
    pub(crate) check: Option<CheckSection>,
    /// Takes new connections while the live weight is below `quorum`.
    pub(crate) sorry_server: Option<RealServerSection>,
    /// The least total weight of live real servers (default 1).
    pub(crate) quorum: Option<Spanned<u32>>,
    /// Commands run when the quorum is regained and lost.
    pub(crate) quorum_up: Option<String>,
    pub(crate) quorum_down: Option<String>,
    #[serde(default, rename = "real_server", skip_serializing_if = "Vec::is_empty")]
    pub(crate) real_servers: Vec<RealServerSection>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RealServerSection {
    pub(crate) address: Spanned<String>,
    pub(crate) forward: Option<Spanned<String>>,
    pub(crate) weight: Option<Spanned<i64>>,
    pub(crate) check: Option<CheckSection>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckSection {
    #[serde(rename = "type")]
    pub(crate) kind: Spanned<String>,
    pub(crate) interval: Option<Spanned<toml::Value>>,
    pub(crate) timeout: Option<Spanned<toml::Value>>,
    pub(crate) warmup: Option<Spanned<toml::Value>>,
    pub(crate) rise: Option<Spanned<u32>>,
    pub(crate) fall: Option<Spanned<u32>>,
    pub(crate) port: Option<u16>,
    pub(crate) path: Option<String>,
    pub(crate) status: Option<Vec<Spanned<toml::Value>>>,
    pub(crate) body_contains: Option<String>,
    /// http: the body's MD5 in hex (keepalived's `digest`).
    pub(crate) digest: Option<String>,
    pub(crate) host: Option<String>,
    /// udp: what to send, and what the reply must contain.
    pub(crate) payload: Option<String>,
    pub(crate) expect: Option<String>,
    /// dns: the name to query (type A).
    pub(crate) name: Option<String>,
    /// exec: the command (`sh -c`).
    pub(crate) command: Option<String>,
}

/// A configuration error: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub msg: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.msg
        )
    }
}

/// A real server as the file says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServer {
    pub addr: Ipv4Addr,
    pub port: u16,
    pub forward: Forward,
    pub weight: u32,
    pub check: Option<CheckSpec>,
}

/// A virtual service as the file says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub key: ServiceKey,
    pub scheduler: SchedulerKind,
    pub on_failure: FailAction,
    pub real_servers: Vec<RealServer>,
    pub quorum: Quorum,
}

/// When a service has too few live real servers, and what then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quorum {
    /// The least total weight of live (checked up, resolved) servers.
    pub min_weight: u32,
    /// Added to the table while the quorum is lost, removed after.
    pub sorry: Option<RealServer>,
    pub up_cmd: Option<String>,
    pub down_cmd: Option<String>,
}

/// What a config file holds, checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    pub interfaces: Vec<String>,
    pub socket: Option<PathBuf>,
    pub tun_source: Option<Ipv4Addr>,
    pub max_conns: Option<usize>,
    pub timeouts: Option<Timeouts>,
    pub services: Vec<Service>,
}

/// Line and column (from 1) of byte `at` in `text`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The file being checked: spans are byte ranges into `text` (after a
/// BOM, if there was one).
struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, span: Range<usize>, msg: impl Into<String>) -> ConfigError {
        let (line, column) = line_col(self.text, span.start);
        ConfigError {
            file: self.file.to_path_buf(),
            line,
            column,
            msg: msg.into(),
        }
    }
}

/// Reads and checks a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        msg: format!("cannot read: {e}"),
    })?;
    parse(path, &bytes)
}

/// Checks config text (`path` only names it in errors). A UTF-8 BOM and
/// CRLF line ends are accepted.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Config, ConfigError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let ok = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or("");
        let (line, column) = line_col(ok, ok.len());
        ConfigError {
            file: path.to_path_buf(),
            line,
            column,
            msg: "not valid UTF-8".into(),
        }
    })?;
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    let cx = Ctx {
        file: path,
        text: body,
    };
    let file: File = toml::from_str(body).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        cx.err(span, e.message().trim_end().to_string())
    })?;
    check(&cx, file)
}

fn parse_addr(
    cx: &Ctx,
    s: &Spanned<String>,
    port_needed: bool,
) -> Result<(Ipv4Addr, Option<u16>), ConfigError> {
    let v = s.get_ref().trim();
    if let Ok(a) = v.parse::<SocketAddrV4>() {
        return Ok((*a.ip(), Some(a.port())));
    }
    match v.parse::<Ipv4Addr>() {
        Ok(a) if !port_needed => Ok((a, None)),
        Ok(_) => Err(cx.err(s.span(), format!("`{v}` needs a port: ADDRESS:PORT"))),
        Err(_) => Err(cx.err(
            s.span(),
            format!(
                "`{v}` is not an IPv4 address{}",
                if port_needed { " and port" } else { "" }
            ),
        )),
    }
}

fn check(cx: &Ctx, f: File) -> Result<Config, ConfigError> {
    let tun_source = match &f.director.tun_source {
        None => None,
        Some(s) => Some(parse_addr(cx, s, false)?.0),
    };
    let max_conns = match &f.director.max_conns {
        None => None,
        Some(m) => {
            let v = *m.get_ref();
            let limit = crate::lvs::conn::MAX_LIMIT as u64;
            if v == 0 || v > limit {
                return Err(cx.err(m.span(), format!("max_conns must be between 1 and {limit}")));
            }
            Some(v as usize)
        }
    };
    let timeouts = f.timeouts.map(|t| Timeouts {
        tcp: t.tcp.unwrap_or(0),
        tcpfin: t.tcpfin.unwrap_or(0),
        udp: t.udp.unwrap_or(0),
    });
    let mut services = Vec::new();
    let mut seen: HashMap<ServiceKey, usize> = HashMap::new();
    for s in &f.services {
        let protocol = match s.protocol.get_ref().to_ascii_lowercase().as_str() {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            other => {
                return Err(cx.err(s.protocol.span(), format!("protocol `{other}`: tcp or udp")));
            }
        };
        let (addr, port) = parse_addr(cx, &s.address, true)?;
        let key = ServiceKey {
            protocol,
            addr,
            port: port.unwrap_or(0),
        };
        if let Some(first) = seen.insert(key, s.address.span().start) {
            let (line, _) = line_col(cx.text, first);
            return Err(cx.err(
                s.address.span(),
                format!(
                    "service {} {addr}:{} is defined twice (first on line {line})",
                    protocol.name(),
                    key.port
                ),
            ));
        }
        if let Err(e) = crate::control::model::check_vip(addr) {
            return Err(cx.err(s.address.span(), e.to_string()));
        }
        let scheduler = match &s.scheduler {
            None => SchedulerKind::Wlc,
            Some(n) => SchedulerKind::from_name(n.get_ref()).ok_or_else(|| {
                let known: Vec<&str> = SchedulerKind::ALL.iter().map(|k| k.name()).collect();
                cx.err(
                    n.span(),
                    format!("scheduler `{}`: one of {}", n.get_ref(), known.join(", ")),
                )
            })?,
        };
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
            let rs = real_server(cx, r, key, default_check.as_ref())?;
            if real_servers
                .iter()
                .any(|x| x.addr == rs.addr && x.port == rs.port)
            {
                return Err(cx.err(
                    r.address.span(),
                    format!(
                        "real server {}:{} is listed twice in this service",
                        rs.addr, rs.port
                    ),
                ));
            }
            real_servers.push(rs);
        }
        let sorry = match &s.sorry_server {
            None => None,
            Some(r) => {
                if r.check.is_some() || r.weight.is_some() {
                    return Err(cx.err(
                        r.address.span(),
                        "a sorry server has no check or weight: it takes every new connection \
                         while the quorum is lost",
                    ));
                }
                Some(real_server(cx, r, key, None)?)
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
            key,
            scheduler,
            on_failure,
            real_servers,
            quorum,
        });
    }
    Ok(Config {
        interfaces: f.director.interfaces,
        socket: f.director.socket,
        tun_source,
        max_conns,
        timeouts,
        services,
    })
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
    Ok(RealServer {
        addr: ra,
        port,
        forward,
        weight,
        check,
    })
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
    Ok(CheckSpec {
        kind,
        port: c.port,
        interval,
        timeout,
        rise,
        fall,
        warmup,
    })
}

fn dest_spec(r: &RealServer) -> DestSpec {
    DestSpec {
        addr: r.addr,
        port: r.port,
        forward: r.forward,
        weight: r.weight,
        uthreshold: 0,
        lthreshold: 0,
    }
}

impl Config {
    /// The ops that turn the running table from `old` (the file as last
    /// loaded; empty at start) into this config: services and real
    /// servers that did not change get no op at all, so they keep their
    /// connections, scheduler state and counters.
    pub fn ops_from(&self, old: &Config) -> Vec<Op> {
        let mut ops = Vec::new();
        for o in &old.services {
            if !self.services.iter().any(|s| s.key == o.key) {
                ops.push(Op::DelService { key: o.key });
            }
        }
        for s in &self.services {
            let before = old.services.iter().find(|o| o.key == s.key);
            match before {
                None => ops.push(Op::AddService {
                    key: s.key,
                    scheduler: s.scheduler.name().into(),
                    persistent: None,
                }),
                Some(o) if o.scheduler != s.scheduler => ops.push(Op::EditService {
                    key: s.key,
                    scheduler: s.scheduler.name().into(),
                    persistent: None,
                }),
                Some(_) => {}
            }
            let old_rs: &[RealServer] = before.map_or(&[], |o| &o.real_servers);
            for r in old_rs {
                if !s
                    .real_servers
                    .iter()
                    .any(|x| x.addr == r.addr && x.port == r.port)
                {
                    ops.push(Op::DelDest {
                        key: s.key,
                        addr: r.addr,
                        port: r.port,
                    });
                }
            }
            for r in &s.real_servers {
                match old_rs.iter().find(|x| x.addr == r.addr && x.port == r.port) {
                    None => ops.push(Op::AddDest {
                        key: s.key,
                        dest: dest_spec(r),
                    }),
                    // A changed check alone is not a table change.
                    Some(x) if dest_spec(x) != dest_spec(r) => ops.push(Op::EditDest {
                        key: s.key,
                        dest: dest_spec(r),
                    }),
                    Some(_) => {}
                }
            }
        }
        if self.timeouts != old.timeouts
            && let Some(t) = self.timeouts
        {
            ops.push(Op::SetTimeouts(t));
        }
        ops
    }
}

#[cfg(test)]
mod tests;
