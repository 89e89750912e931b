//! The via-VIP TCP check: a SYN to VIP:port sent through the same
//! forwarding as the data (DR: to the real server's MAC with the VIP as
//! destination; TUN: in IP-in-IP to the server), from the director's own
//! address and a port outside the kernel's ephemeral range. The server
//! answers from the VIP straight to the director (the director is the
//! client here): a SYN-ACK is up, an RST or silence down. After a SYN-ACK
//! an RST goes the same way so no half-open connection is left. See
//! docs/health.md ("Checks through the data path") for why the director's
//! kernel, which sees the SYN-ACK too, does no harm.

use super::{CheckError, CheckSpec, secs};
use crate::host::sys;
use crate::wire::carry::{self, Carry};
use crate::wire::tcp::{TcpPacket, TcpRepr, flags};
use crate::wire::{Ipv4Packet, MacAddr, ip_proto};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Where a via-VIP check goes, as the data plane forwards to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub vip: SocketAddrV4,
    pub rip: Ipv4Addr,
    pub carry: Carry,
    /// The director's link towards the server and the next hop's MAC.
    pub link: String,
    pub hop_mac: MacAddr,
}

/// Why a via-VIP check failed.
#[derive(Debug, thiserror::Error)]
pub enum ViaVipError {
    #[error("no answer from the VIP {vip} at {rip} within {}", secs(*after))]
    Silent {
        vip: SocketAddrV4,
        rip: Ipv4Addr,
        after: Duration,
    },
    #[error("the VIP {vip} at {rip} refused the connection (RST)")]
    Refused { vip: SocketAddrV4, rip: Ipv4Addr },
    /// The check could not be sent (no path, no socket): not the server's fault.
    #[error("via-VIP check of {rip}: {why}")]
    Setup { rip: Ipv4Addr, why: String },
    /// The VIP failed while the server's own address answers: the likely
    /// causes and the audit to run on it.
    #[error(
        "{failed} while its own address answers: {} (run `uvs audit --mode {} --vip {}` on {})",
        cause(*carry), mode(*carry), vip.ip(), rip
    )]
    Broken {
        failed: Box<ViaVipError>,
        carry: Carry,
        vip: SocketAddrV4,
        rip: Ipv4Addr,
    },
}

fn cause(c: Carry) -> &'static str {
    match c {
        Carry::Direct => "the VIP missing from lo, arp_ignore, a firewall on the VIP",
        Carry::Tunnel => {
            "no decapsulator (no tunl0 up, rp_filter on it), the VIP missing from lo, \
             a firewall on the VIP"
        }
    }
}

fn mode(c: Carry) -> &'static str {
    match c {
        Carry::Direct => "dr",
        Carry::Tunnel => "tun",
    }
}

impl ViaVipError {
    /// The same failure, now known to be the VIP's setup on the server
    /// (its own address answers a plain check).
    pub fn broken(self, r: &Route) -> ViaVipError {
        match self {
            ViaVipError::Silent { .. } | ViaVipError::Refused { .. } => ViaVipError::Broken {
                failed: Box::new(self),
                carry: r.carry,
                vip: r.vip,
                rip: r.rip,
            },
            other => other,
        }
    }
}

/// What came back for our SYN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// SYN-ACK: its sequence number.
    Accepted {
        seq: u32,
    },
    Refused,
}

/// The connection a check opens: the director's end and the VIP's, and
/// the SYN's sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub director: SocketAddrV4,
    pub vip: SocketAddrV4,
    pub isn: u32,
}

/// Judges an IPv4 packet the director received (a raw socket's, header
/// included): the VIP's answer to `p`'s SYN, or `None` for anything else
/// (another flow, a wrong ack, a fragment, garbage).
pub fn answer(packet: &[u8], p: &Probe) -> Option<Answer> {
    let ip = Ipv4Packet::new_checked(packet).ok()?;
    if ip.protocol() != ip_proto::TCP || ip.is_fragment() {
        return None;
    }
    if ip.src_addr() != *p.vip.ip() || ip.dst_addr() != *p.director.ip() {
        return None;
    }
    // No checksum test: a segment from a local veth or with offload
    // carries a partial one, and the raw socket sees it before TCP checks
    // it. Our random sequence number acknowledged on our four-tuple is
    // proof enough.
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    let t = TcpRepr::parse(&tcp);
    let ours = t.src_port == p.vip.port()
        && t.dst_port == p.director.port()
        && t.has(flags::ACK)
        && t.ack == p.isn.wrapping_add(1);
    match ours {
        true if t.has(flags::RST) => Some(Answer::Refused),
        true if t.has(flags::SYN) => Some(Answer::Accepted { seq: t.seq }),
        _ => None,
    }
}

/// The frame of a SYN (`rst`: false) or of the RST that ends the
/// half-open connection, carried along `path` as the data is.
pub fn segment(
    p: &Probe,
    rst: bool,
    how: Carry,
    path: &carry::Path,
    out: &mut [u8],
) -> Option<usize> {
    let t = TcpRepr {
        src_port: p.director.port(),
        dst_port: p.vip.port(),
        seq: if rst { p.isn.wrapping_add(1) } else { p.isn },
        ack: 0,
        flags: if rst { flags::RST } else { flags::SYN },
        window: if rst { 0 } else { 1024 },
    };
    let mut pkt = [0u8; 64];
    let hl = crate::wire::ipv4::HEADER_LEN;
    let n = t
        .emit(pkt.get_mut(hl..)?, *p.director.ip(), *p.vip.ip())
        .ok()?;
    let ends = (IpAddr::V4(*p.director.ip()), IpAddr::V4(*p.vip.ip()));
    carry::ip_header(&mut pkt, ends, ip_proto::TCP, n)?;
    carry::frame(how, path, &pkt[..hl + n], out)
}

/// The director's address towards `rip`, as the kernel picks it for any
/// check (a connected UDP socket sends nothing).
fn source_towards(rip: Ipv4Addr) -> std::io::Result<Ipv4Addr> {
    let s = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    s.connect((rip, 9))?;
    match s.local_addr()? {
        SocketAddr::V4(a) => Ok(*a.ip()),
        SocketAddr::V6(_) => Err(std::io::Error::other("not IPv4")),
    }
}

/// A port outside Linux's default ephemeral range (32768-60999), so no
/// connection of the director's own kernel shares the four-tuple, and a
/// sequence number, both random.
fn port_and_isn() -> (u16, u32) {
    use std::hash::BuildHasher;
    let r = foldhash::fast::RandomState::default().hash_one(Instant::now());
    (61001 + (r % 4535) as u16, (r >> 32) as u32)
}

/// The error of a step that could not be done.
fn failed(rip: Ipv4Addr, what: &str) -> impl FnOnce(std::io::Error) -> ViaVipError + '_ {
    move |e| ViaVipError::Setup {
        rip,
        why: format!("{what}: {e}"),
    }
}

/// One via-VIP check of `r`, blocking up to `timeout`.
pub fn run_blocking(r: &Route, timeout: Duration) -> Result<(), ViaVipError> {
    let setup = |why: String| ViaVipError::Setup { rip: r.rip, why };
    let io = |what| failed(r.rip, what);
    let director = source_towards(r.rip).map_err(io("no source address"))?;
    let (port, isn) = port_and_isn();
    let p = Probe {
        director: SocketAddrV4::new(director, port),
        vip: r.vip,
        isn,
    };
    let (mac, _) = sys::link_info(&r.link).map_err(io(&r.link))?;
    let path = carry::Path {
        director_mac: MacAddr(mac),
        hop_mac: r.hop_mac,
        director: director.into(),
        rip: r.rip.into(),
    };
    let ifindex = sys::ifindex(&r.link).map_err(io(&r.link))?;
    // Receives copies of the TCP segments delivered to this host.
    let rx = sys::socket(
        libc::AF_INET,
        libc::SOCK_RAW | libc::SOCK_NONBLOCK,
        libc::IPPROTO_TCP,
    )
    .map_err(io("raw socket"))?;
    // Sends on the link only (protocol 0: receives nothing).
    let tx = sys::socket(libc::AF_PACKET, libc::SOCK_RAW, 0).map_err(io("packet socket"))?;
    sys::bind_packet(&tx, 0, ifindex).map_err(io(&r.link))?;
    let mut frame = [0u8; 128];
    let mut send = |rst: bool| -> Result<(), ViaVipError> {
        let n = segment(&p, rst, r.carry, &path, &mut frame)
            .ok_or_else(|| setup("the segment does not fit".into()))?;
        sys::write(&tx, &frame[..n]).map_err(io("send"))
    };
    send(false)?;
    let start = Instant::now();
    let mut resent = false;
    let mut buf = [0u8; 2048];
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Err(ViaVipError::Silent {
                vip: r.vip,
                rip: r.rip,
                after: timeout,
            });
        }
        // One more SYN halfway, in case the first was lost.
        if !resent && start.elapsed() >= timeout / 2 {
            resent = true;
            send(false)?;
        }
        let wait = match resent {
            true => left,
            false => (timeout / 2).saturating_sub(start.elapsed()),
        };
        let mut fds = [libc::pollfd {
            fd: rx.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if sys::poll(&mut fds, wait.max(Duration::from_millis(1))).map_err(io("poll"))? == 0 {
            continue;
        }
        while let Ok(n) = sys::recv(&rx, &mut buf) {
            match answer(&buf[..n], &p) {
                Some(Answer::Accepted { .. }) => return send(true),
                Some(Answer::Refused) => {
                    return Err(ViaVipError::Refused {
                        vip: r.vip,
                        rip: r.rip,
                    });
                }
                None => {}
            }
        }
    }
}

/// One via-VIP check of the server at `own` (its own address and check
/// port): a failure is then tried on `own` with a plain check, and if
/// that passes the reason names the VIP's setup on the server.
pub(super) async fn run(spec: &CheckSpec, own: SocketAddr, r: &Route) -> Result<(), CheckError> {
    let (route, timeout) = (r.clone(), spec.timeout);
    let via = tokio::task::spawn_blocking(move || run_blocking(&route, timeout))
        .await
        .unwrap_or_else(|e| {
            Err(ViaVipError::Setup {
                rip: r.rip,
                why: e.to_string(),
            })
        });
    let Err(e) = via else { return Ok(()) };
    if matches!(e, ViaVipError::Setup { .. }) {
        return Err(e.into());
    }
    match tokio::time::timeout(spec.timeout, super::attempt(spec, own)).await {
        Ok(Ok(())) => Err(e.broken(r).into()),
        Ok(Err(plain)) => Err(plain),
        Err(_) => Err(CheckError::TimedOut {
            kind: spec.kind_name(),
            after: spec.timeout,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4::HEADER_LEN as IP;

    fn probe() -> Probe {
        Probe {
            director: "198.18.0.2:61234".parse().unwrap(),
            vip: "198.18.0.100:80".parse().unwrap(),
            isn: 0xffff_ffff,
        }
    }

    /// The VIP's answer to `probe()`'s SYN, with `flags` and `ack`.
    fn reply(flags: u8, ack: u32) -> Vec<u8> {
        let p = probe();
        let t = TcpRepr {
            src_port: 80,
            dst_port: 61234,
            seq: 7,
            ack,
            flags,
            window: 64240,
        };
        let mut b = vec![0u8; IP + 20];
        let n = t.emit(&mut b[IP..], *p.vip.ip(), *p.director.ip()).unwrap();
        let ends = (IpAddr::V4(*p.vip.ip()), IpAddr::V4(*p.director.ip()));
        carry::ip_header(&mut b, ends, ip_proto::TCP, n).unwrap();
        b
    }

    #[test]
    fn a_syn_ack_is_up_an_rst_down_anything_else_ignored() {
        let p = probe();
        // The ISN wraps: the ack is 0.
        let ok = reply(flags::SYN | flags::ACK, 0);
        assert_eq!(answer(&ok, &p), Some(Answer::Accepted { seq: 7 }));
        assert_eq!(
            answer(&reply(flags::RST | flags::ACK, 0), &p),
            Some(Answer::Refused)
        );
        // A wrong ack, no ACK flag, a bare ACK: not ours.
        assert_eq!(answer(&reply(flags::SYN | flags::ACK, 1), &p), None);
        assert_eq!(answer(&reply(flags::RST, 0), &p), None);
        assert_eq!(answer(&reply(flags::ACK, 0), &p), None);
        // Another port of ours, or from the server's own address.
        let mut other = p;
        other.director = "198.18.0.2:61235".parse().unwrap();
        assert_eq!(answer(&ok, &other), None);
        other = p;
        other.vip = "198.18.0.12:80".parse().unwrap();
        assert_eq!(answer(&ok, &other), None);
        // Every cut and garbage are refused, never a panic.
        for cut in 0..ok.len() {
            assert_eq!(answer(&ok[..cut], &p), None, "cut at {cut}");
        }
        assert_eq!(answer(&[0x45; 60], &p), None);
    }

    /// The SYN goes to the server's MAC with the VIP as destination (DR),
    /// or inside IP-in-IP to the server (TUN); the RST follows it with the
    /// next sequence number.
    #[test]
    fn the_syn_and_rst_travel_as_the_data_does() {
        let p = probe();
        let path = carry::Path {
            director_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            hop_mac: MacAddr([2, 0, 0, 0, 0, 12]),
            director: "198.18.0.2".parse().unwrap(),
            rip: "198.18.0.12".parse().unwrap(),
        };
        let mut f = [0u8; 128];
        let n = segment(&p, false, Carry::Direct, &path, &mut f).unwrap();
        let e = etherparse::SlicedPacket::from_ethernet(&f[..n]).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = &e.net else {
            panic!("not IPv4")
        };
        assert_eq!(ip.header().destination_addr(), *p.vip.ip());
        assert_eq!(ip.header().source_addr(), *p.director.ip());
        assert_eq!(&f[..6], &[2, 0, 0, 0, 0, 12]);
        let Some(etherparse::TransportSlice::Tcp(t)) = &e.transport else {
            panic!("not TCP")
        };
        assert!(t.syn() && !t.ack() && t.sequence_number() == p.isn);
        let mut f = [0u8; 128];
        let n = segment(&p, true, Carry::Tunnel, &path, &mut f).unwrap();
        let e = etherparse::SlicedPacket::from_ethernet(&f[..n]).unwrap();
        let Some(etherparse::NetSlice::Ipv4(outer)) = &e.net else {
            panic!("not IPv4")
        };
        assert_eq!(
            outer.header().destination_addr(),
            "198.18.0.12".parse::<Ipv4Addr>().unwrap()
        );
        let inner = etherparse::SlicedPacket::from_ip(outer.payload().payload).unwrap();
        let Some(etherparse::TransportSlice::Tcp(t)) = &inner.transport else {
            panic!("not TCP inside")
        };
        assert!(t.rst() && t.sequence_number() == p.isn.wrapping_add(1));
    }
}
