//! The director side of `uvs probe`: resolves the path to the real server
//! with rtnetlink, sends every case a few times from a packet socket, and
//! asks the responder over TCP (between the director's and the server's
//! own addresses, which every network carries) what it saw.

use super::{Addrs, Case, Error, Method, Outcome, Verdict, build, verdict};
use crate::control::resolve;
use crate::host::netlink::Netlink;
use crate::io::PacketIo;
use crate::io::afpacket::AfPacket;
use crate::lvs::service::Forward;
use crate::wire::MacAddr;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

/// What the operator asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// The real server under test, where `uvs probe --respond` runs.
    pub rip: IpAddr,
    /// The VIP the cases are addressed to, of either family: TUN carries
    /// it to a real server of the other (DR cannot).
    pub vip: IpAddr,
    /// Where the cases leave (default: the route to `rip`).
    pub interface: Option<String>,
    /// The director's own address, of the real server's family
    /// (default: the interface's).
    pub source: Option<IpAddr>,
    /// The client address the cases claim to come from, of the VIP's
    /// family (default: `default_client`).
    pub client: Option<IpAddr>,
    pub port: u16,
}

/// The result of a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Run {
    pub interface: String,
    pub director: IpAddr,
    pub real_server: IpAddr,
    pub vip: IpAddr,
    pub client: IpAddr,
    pub outcomes: Vec<Outcome>,
    pub verdict: Verdict,
}

impl Run {
    /// Whether `method` (or, when `None`, either) will work.
    pub fn works(&self, method: Option<Method>) -> bool {
        match method {
            Some(Method::Dr) => self.verdict.dr_works,
            Some(Method::Tun) => self.verdict.tun_works,
            None => self.verdict.dr_works || self.verdict.tun_works,
        }
    }
}

struct Path {
    ifname: String,
    director: IpAddr,
    hop_mac: MacAddr,
    on_link: bool,
}

async fn resolve(o: &Options) -> Result<Path, Error> {
    let nl = Netlink::new()?;
    let r = nl.route_get(o.rip).await?;
    if r.local {
        return Err(Error::Local(o.rip));
    }
    let oif = r.oif.ok_or(Error::NoRoute(o.rip))?;
    let ifname = match &o.interface {
        Some(n) => n.clone(),
        None => nl.link_name(oif).await,
    };
    let ifindex = crate::host::sys::ifindex(&ifname).map_err(|source| Error::Link {
        link: ifname.clone(),
        source,
    })? as u32;
    let first = match o.rip {
        IpAddr::V4(_) => nl.first_address(ifindex).await.map(IpAddr::from),
        IpAddr::V6(_) => nl.first_address6(ifindex).await.map(IpAddr::from),
    };
    let director = match o.source {
        Some(a) if a.is_ipv4() != o.rip.is_ipv4() => {
            return Err(Error::Family("--source", a, "--to"));
        }
        Some(a) => a,
        None => first.ok_or_else(|| Error::NoAddress(ifname.clone(), family(o.rip)))?,
    };
    // The next hop as TUN forwarding finds it: the server or its router.
    let links = [(ifindex, ifname.clone())];
    let hop_mac = match resolve::next_hop(&nl, o.rip, Forward::Tunnel, &links).await? {
        resolve::Hop::Resolved(h) => h.mac,
        resolve::Hop::Pending { why, .. } => return Err(Error::Unresolved(why)),
    };
    Ok(Path {
        ifname,
        director,
        hop_mac,
        on_link: r.gateway.is_none(),
    })
}

fn nonce() -> u64 {
    let mut b = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_ok()
    {
        return u64::from_ne_bytes(b);
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ (u64::from(std::process::id()) << 32)
}

/// Parses the responder's answer to `REPORT`.
fn parse_report(line: &str) -> Result<(Vec<Case>, Vec<Case>), Error> {
    if let Some(e) = line.strip_prefix("ERR ") {
        return Err(Error::Refused(e.to_string()));
    }
    let v: serde_json::Value =
        serde_json::from_str(line.trim()).map_err(|source| Error::Unreadable {
            line: line.to_string(),
            source,
        })?;
    let list = |k: &str| -> Vec<Case> {
        v[k].as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().and_then(Case::from_name))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok((list("arrived"), list("delivered")))
}

fn family(a: IpAddr) -> &'static str {
    match a {
        IpAddr::V4(_) => "IPv4",
        IpAddr::V6(_) => "IPv6",
    }
}

/// Runs the five cases against a responder. Errors mean the probe itself
/// could not run (no route, no responder), not that a method fails.
pub fn run(o: &Options) -> Result<Run, Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = o.client.unwrap_or(super::default_client(o.vip));
    if client.is_ipv4() != o.vip.is_ipv4() {
        return Err(Error::Family("--client", client, "--vip"));
    }
    let path = rt.block_on(resolve(o))?;
    // DR sends the VIP's packet itself to the server's MAC: on-link, and
    // of one family (IPVS tunnels only across families).
    let dr = path.on_link && o.rip.is_ipv4() == o.vip.is_ipv4();
    let probe_port = o.port.checked_add(1).ok_or(Error::NoProbePort(o.port))?;
    let addr = SocketAddr::from((o.rip, o.port));
    let mut ctl = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map_err(|source| Error::Unreachable { addr, source })?;
    ctl.set_read_timeout(Some(Duration::from_secs(5)))?;
    let (mac, _) = crate::host::sys::link_info(&path.ifname)?;
    let link = || path.ifname.clone();
    let mut io = AfPacket::open(&path.ifname).map_err(|source| Error::Open {
        link: link(),
        source,
    })?;
    let a = Addrs {
        director_mac: MacAddr(mac),
        hop_mac: path.hop_mac,
        director: path.director,
        rip: o.rip,
        vip: o.vip,
        client,
        port: probe_port,
    };
    let n = nonce();
    let mut buf = [0u8; 256];
    for _ in 0..3 {
        for c in Case::ALL {
            if c.is_dr() && !dr {
                continue;
            }
            let len = build(c, &a, n, &mut buf).ok_or(Error::TooBig)?;
            io.send(0, &buf[..len]).map_err(|source| Error::Send {
                link: link(),
                source,
            })?;
        }
        io.flush();
        std::thread::sleep(Duration::from_millis(30));
    }
    std::thread::sleep(Duration::from_millis(300));
    writeln!(ctl, "REPORT {n:016x}").map_err(Error::Ask)?;
    let mut line = String::new();
    BufReader::new(&ctl)
        .take(65536)
        .read_line(&mut line)
        .map_err(Error::NoAnswer)?;
    let (arrived, delivered) = parse_report(&line)?;
    let outcomes: Vec<Outcome> = Case::ALL
        .iter()
        .map(|&c| Outcome {
            case: c,
            sent: !c.is_dr() || dr,
            arrived: arrived.contains(&c),
            delivered: delivered.contains(&c),
        })
        .collect();
    let v = verdict(&outcomes, o.rip, o.vip);
    Ok(Run {
        interface: path.ifname,
        director: path.director,
        real_server: o.rip,
        vip: o.vip,
        client,
        outcomes,
        verdict: v,
    })
}

use std::io::Read as _;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_parsing() {
        let (a, d) = parse_report(
            r#"{"nonce":"0000000000000001","arrived":["plain","tun","x"],"delivered":["plain"]}"#,
        )
        .unwrap();
        assert_eq!(a, vec![Case::Plain, Case::Tun]);
        assert_eq!(d, vec![Case::Plain]);
        let error = |line| parse_report(line).unwrap_err().to_string();
        assert!(error("ERR unknown request 'x'").contains("refused"));
        assert!(error("\u{feff}{").contains("unreadable"));
        assert!(parse_report("").is_err());
    }
}
