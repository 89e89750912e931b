//! `uvs drain VIP:PORT RS`: quiesces one real server (weight 0, as
//! ipvsadm users do by hand: its connections go on, no new one comes),
//! then watches the connection table until the server carries none,
//! printing what is left each second; `--remove` deletes it then. A UDP
//! flow counts while it sees traffic (its entry lives: the UDP timeout),
//! which IPVS's always-zero UDP active count cannot tell.

use super::{args, client};
use crate::control::proto::{DestSpec, Op, Request, Response};
use crate::lvs::ConnInfo;
use crate::lvs::service::ServiceKey;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub struct Options {
    pub socket: PathBuf,
    /// `-t`, `-u` or `-f`, as uvsadm spells the service.
    pub kind: &'static str,
    pub service: String,
    pub server: String,
    /// Give up (exit 1, the server stays quiesced) after this long.
    pub timeout: Duration,
    /// Delete the server once it is empty.
    pub remove: bool,
}

/// States of an entry that still carries a connection: established or
/// being opened (TCP), a UDP flow that saw a datagram within the UDP
/// timeout. The others are closing (a FIN or RST was seen; under DR the
/// director sees the client's half only, so a closed connection sits in
/// CLOSE_WAIT until it expires, as in IPVS) and do not hold a drain.
const OPEN: &[&str] = &[
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "SYNACK",
    "NONE",
    "UDP",
];

/// The service and real server named, through uvsadm's own parser (the
/// same addresses, names and default port as `uvsadm -d`).
fn target(o: &Options) -> Result<(ServiceKey, IpAddr, u16), String> {
    let argv: Vec<String> = ["-d", o.kind, &o.service, "-r", &o.server]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let parsed = match args::parse("uvs drain", &argv).map_err(|f| f.msg)? {
        args::Invocation::Run(p) => p,
        _ => return Err("uvs drain: no service given".into()),
    };
    match args::to_op(&parsed).map_err(|f| f.msg)? {
        Some(Op::DelDest { key, addr, port }) => Ok((key, addr, port)),
        _ => Err("uvs drain: not a real server of a service".into()),
    }
}

fn ask(socket: &std::path::Path, req: &Request) -> Result<Response, String> {
    match client::call(socket, req).map_err(|e| e.to_string())? {
        Response::Error { message, .. } => Err(message),
        r => Ok(r),
    }
}

/// The real server's spec as the daemon holds it.
fn spec(socket: &std::path::Path, key: &ServiceKey, a: IpAddr, p: u16) -> Result<DestSpec, String> {
    let Response::Snapshot(snap) = ask(socket, &Request::Snapshot)? else {
        return Err("unexpected answer from the daemon".into());
    };
    let svc = snap
        .services
        .iter()
        .find(|s| s.def.key == *key)
        .ok_or_else(|| format!("no service {key}"))?;
    svc.dests
        .iter()
        .find(|d| d.spec.addr == a && d.spec.port == p)
        .map(|d| d.spec.clone())
        .ok_or_else(|| {
            format!(
                "{} is not a real server of {key}",
                std::net::SocketAddr::new(a, p)
            )
        })
}

/// Whether a listed connection is one of this real server's (a mark
/// service's connections are matched by their real server alone; a
/// persistence template is not a connection).
fn ours(c: &ConnInfo, key: &ServiceKey, a: IpAddr, p: u16) -> bool {
    let template = c.cport == 0 && matches!(c.state.as_str(), "NONE" | "ASSURED");
    let service = key.fwmark().is_some()
        || (c.protocol == key.protocol && c.vaddr == key.addr && c.vport == key.port);
    !template && service && c.daddr == a && c.dport == p
}

/// The server's connections now, counted by state.
fn left(
    socket: &std::path::Path,
    key: &ServiceKey,
    a: IpAddr,
    p: u16,
) -> Result<BTreeMap<String, u64>, String> {
    let mut by_state: BTreeMap<String, u64> = BTreeMap::new();
    let mut failed = None;
    type BoxError = Box<dyn std::error::Error>;
    client::call_chunked(socket, &Request::Conns, |resp| -> Result<(), BoxError> {
        match resp {
            Response::ConnChunk(c) | Response::Conns(c) => {
                for conn in c.iter().filter(|c| ours(c, key, a, p)) {
                    *by_state.entry(conn.state.clone()).or_default() += 1;
                }
                Ok(())
            }
            Response::Error { message, .. } => {
                failed = Some(message);
                Ok(())
            }
            _ => Err("unexpected answer from the daemon".into()),
        }
    })
    .map_err(|e| e.to_string())?;
    match failed {
        Some(m) => Err(m),
        None => Ok(by_state),
    }
}

/// How many connections it still carries, and what is left by state
/// (`ESTABLISHED 6, UDP 1 (3 closing, left to expire)`).
fn describe(by_state: &BTreeMap<String, u64>) -> (u64, String) {
    let open: Vec<String> = by_state
        .iter()
        .filter(|(s, _)| OPEN.contains(&s.as_str()))
        .map(|(s, n)| format!("{s} {n}"))
        .collect();
    let closed: u64 = by_state
        .iter()
        .filter(|(s, _)| !OPEN.contains(&s.as_str()))
        .map(|(_, n)| n)
        .sum();
    let n: u64 = by_state.values().sum::<u64>() - closed;
    let mut text = match open.is_empty() {
        true => "none".to_string(),
        false => open.join(", "),
    };
    if closed > 0 {
        text.push_str(&format!(" ({closed} closing, left to expire)"));
    }
    (n, text)
}

/// Runs `uvs drain VIP:PORT RS`: progress on stdout once a second;
/// `Err` at the timeout.
pub fn run(o: &Options) -> Result<(), String> {
    let (key, a, p) = target(o)?;
    let rs = std::net::SocketAddr::new(a, p);
    let mut dest = spec(&o.socket, &key, a, p)?;
    dest.weight = 0;
    let op = Op::EditDest { key, dest };
    ask(&o.socket, &Request::Apply(vec![op]))?;
    println!("{key} real server {rs} quiesced (weight 0): no new connection goes to it");
    let start = Instant::now();
    loop {
        let (n, text) = describe(&left(&o.socket, &key, a, p)?);
        if n == 0 {
            println!(
                "drained: {rs} carries no connection after {:.1} s",
                start.elapsed().as_secs_f64()
            );
            break;
        }
        if start.elapsed() >= o.timeout {
            return Err(format!(
                "{rs} still carries {n} connection(s) after {:.0} s (--timeout): {text}; it \
                 stays quiesced",
                o.timeout.as_secs_f64()
            ));
        }
        println!("draining {rs}: {n} connection(s) left: {text}");
        std::thread::sleep(Duration::from_secs(1).min(o.timeout.saturating_sub(start.elapsed())));
    }
    if o.remove {
        let op = Op::DelDest {
            key,
            addr: a,
            port: p,
        };
        ask(&o.socket, &Request::Apply(vec![op]))?;
        println!("removed {rs} from {key}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lvs::service::Protocol;

    #[test]
    fn closed_entries_do_not_hold_a_drain() {
        let m: BTreeMap<String, u64> = [("ESTABLISHED", 6), ("CLOSE_WAIT", 3), ("UDP", 1)]
            .iter()
            .map(|(s, n)| (s.to_string(), *n))
            .collect();
        assert_eq!(
            describe(&m),
            (7, "ESTABLISHED 6, UDP 1 (3 closing, left to expire)".into())
        );
        let m: BTreeMap<String, u64> = [("TIME_WAIT".to_string(), 2)].into();
        assert_eq!(describe(&m), (0, "none (2 closing, left to expire)".into()));
    }

    #[test]
    fn the_server_is_named_as_uvsadm_names_it() {
        let o = |kind, service: &str, server: &str| Options {
            socket: PathBuf::new(),
            kind,
            service: service.into(),
            server: server.into(),
            timeout: Duration::ZERO,
            remove: false,
        };
        let (key, a, p) = target(&o("-t", "198.18.0.100:80", "198.18.1.11")).unwrap();
        assert_eq!(key.to_string(), "TCP 198.18.0.100:80");
        assert_eq!((a, p), ("198.18.1.11".parse().unwrap(), 80));
        let (key, _, p) = target(&o("-u", "198.18.0.100:53", "198.18.1.11:5353")).unwrap();
        assert_eq!((key.protocol, p), (Protocol::Udp, 5353));
        assert!(target(&o("-t", "nonsense::", "198.18.1.11")).is_err());
    }
}
