//! `uvs decap`: the real-server end of TUN for hosts without the kernel's
//! tunnel devices (containers, minimal kernels: this lab's kernel has no
//! ipip, sit or ip6tnl). It takes the four encapsulations IPVS sends:
//! IPv4-in-IPv4, IPv6-in-IPv4 (protocol 41), IPv4-in-IPv6 (next header 4)
//! and IPv6-in-IPv6 (next header 41). A raw socket for each receives every
//! packet of its kind (its presence also stops the kernel's "protocol
//! unreachable" and "parameter problem" answers); the outer header is
//! stripped, the inner packet checked, and written to a TUN device, which
//! hands it to the local stack as if it had arrived there (with no packet
//! information the kernel takes the family from the version nibble). The
//! VIPs stay on lo (or go on the TUN device); for IPv4 rp_filter must be
//! 0, or 2 with the VIP on the TUN device; IPv6 has no rp_filter, but the
//! TUN device needs IPv6 on (docs/audit.md).

use crate::host::sys;
use crate::wire::{Ipv4Packet, Ipv6Packet, ip_proto, ipv6};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

/// The protocol number (IPv4) or next header (IPv6) of an IPv6 packet
/// inside: RFC 4213 for an IPv4 outer header, RFC 2473 for an IPv6 one.
pub const IPV6_INSIDE: u8 = crate::wire::ip_proto::IPV6;

/// The outer header's family, and so what its raw socket hands over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outer {
    /// AF_INET: the whole packet, outer header first.
    V4,
    /// AF_INET6: what follows the outer header; the kernel has consumed
    /// it and any extension headers (and reassembled fragments).
    V6,
}

/// The encapsulations taken, as (outer family, inner protocol number).
pub const ENCAPSULATIONS: [(Outer, u8); 4] = [
    (Outer::V4, ip_proto::IPIP),
    (Outer::V4, IPV6_INSIDE),
    (Outer::V6, ip_proto::IPIP),
    (Outer::V6, IPV6_INSIDE),
];

/// "IPv6-in-IPv4" and the like, for logs and errors.
pub fn encapsulation(outer: Outer, proto: u8) -> &'static str {
    match (outer, proto) {
        (Outer::V4, ip_proto::IPIP) => "IPv4-in-IPv4",
        (Outer::V4, _) => "IPv6-in-IPv4",
        (Outer::V6, ip_proto::IPIP) => "IPv4-in-IPv6",
        (Outer::V6, _) => "IPv6-in-IPv6",
    }
}

/// Why the decapsulator stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The TUN device could not be created.
    #[error(transparent)]
    Tun(io::Error),
    #[error("raw socket for {0} packets: {1} (run as root)")]
    Socket(&'static str, #[source] io::Error),
    #[error("receiving: {0}")]
    Receive(#[source] io::Error),
}

/// Why a received packet was not written to the TUN device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// The outer IPv4 header is cut short, for another protocol, or a
    /// fragment.
    #[error("bad outer header")]
    Outer,
    /// The inner packet is not of the version the protocol number says.
    #[error("inner packet of the wrong IP version")]
    Version,
    /// The inner header is cut short, claims more than was received, or
    /// (IPv4) fails its checksum.
    #[error("bad inner header")]
    Inner,
}

/// The inner packet of what a raw socket of `outer`'s family, opened for
/// protocol `proto`, received: checked with the `wire` views, without
/// any bytes past its own length.
pub fn inner(outer: Outer, proto: u8, received: &[u8]) -> Result<&[u8], Malformed> {
    let payload = match outer {
        Outer::V4 => {
            let p = Ipv4Packet::new_checked(received).map_err(|_| Malformed::Outer)?;
            if p.protocol() != proto || p.is_fragment() {
                return Err(Malformed::Outer);
            }
            p.into_payload()
        }
        Outer::V6 => received,
    };
    let len = match (proto, payload.first().map(|b| b >> 4)) {
        (_, None) => return Err(Malformed::Inner),
        (ip_proto::IPIP, Some(4)) => {
            let p = Ipv4Packet::new_checked(payload).map_err(|_| Malformed::Inner)?;
            if !p.verify_checksum() {
                return Err(Malformed::Inner);
            }
            p.total_len()
        }
        (IPV6_INSIDE, Some(6)) => {
            let p = Ipv6Packet::new_checked(payload).map_err(|_| Malformed::Inner)?;
            ipv6::HEADER_LEN + p.payload_len()
        }
        _ => return Err(Malformed::Version),
    };
    Ok(&payload[..len])
}

/// One raw socket and the encapsulation it receives.
struct Tunnel {
    outer: Outer,
    proto: u8,
    sock: OwnedFd,
}

/// Packets read from one socket before the others get their turn.
const BATCH: usize = 64;

/// The raw sockets, one an encapsulation. A kernel without IPv6 has no
/// AF_INET6 sockets: the IPv4 outer headers are still taken.
fn open_tunnels() -> Result<Vec<Tunnel>, Error> {
    let mut tunnels = Vec::new();
    for (outer, proto) in ENCAPSULATIONS {
        let family = match outer {
            Outer::V4 => libc::AF_INET,
            Outer::V6 => libc::AF_INET6,
        };
        let name = encapsulation(outer, proto);
        let ty = libc::SOCK_RAW | libc::SOCK_NONBLOCK;
        let sock = match sys::socket(family, ty, proto.into()) {
            Ok(s) => s,
            Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
                tracing::warn!("decap: no {name}: {e}");
                continue;
            }
            Err(e) => return Err(Error::Socket(name, e)),
        };
        // A raw socket with a full receive queue no longer counts as a
        // taker for the protocol (Linux 6.x raw_v4_input), and the kernel
        // then answers "protocol unreachable": give bursts room. Best
        // effort: a smaller buffer still works for lighter loads.
        let _ = sys::raise_rcvbuf(&sock, 32 << 20);
        tunnels.push(Tunnel { outer, proto, sock });
    }
    Ok(tunnels)
}

/// Packets dropped, by reason; a count is logged each time it reaches a
/// power of two, so that a stream of junk writes a few lines only.
#[derive(Default)]
struct Drops {
    malformed: [u64; 3],
    unwritten: u64,
}

/// Counts one and says whether to log it.
fn bump(n: &mut u64) -> bool {
    *n += 1;
    n.is_power_of_two()
}

impl Drops {
    fn malformed(&mut self, t: &Tunnel, why: Malformed) {
        let n = &mut self.malformed[why as usize];
        if bump(n) {
            let name = encapsulation(t.outer, t.proto);
            tracing::warn!("decap: dropped a {name} packet: {why} ({n} so far)");
        }
    }

    fn unwritten(&mut self, device: &str, e: io::Error) {
        if bump(&mut self.unwritten) {
            let n = self.unwritten;
            tracing::warn!("decap: writing to {device}: {e} ({n} so far)");
        }
    }
}

/// Runs the decapsulator until killed.
pub fn run(device: &str) -> Result<(), Error> {
    let tun = sys::open_tun(device).map_err(Error::Tun)?;
    let tunnels = open_tunnels()?;
    let names: Vec<_> = tunnels
        .iter()
        .map(|t| encapsulation(t.outer, t.proto))
        .collect();
    tracing::info!(
        "decap: {} packets are delivered through {device}",
        names.join(", ")
    );
    let mut fds = sys::pollin(tunnels.iter().map(|t| t.sock.as_raw_fd()));
    let mut buf = vec![0u8; 65536];
    let mut drops = Drops::default();
    loop {
        sys::poll(&mut fds, Duration::MAX).map_err(Error::Receive)?;
        for (t, _) in tunnels.iter().zip(&fds).filter(|(_, p)| p.revents != 0) {
            for _ in 0..BATCH {
                let n = match sys::recv(&t.sock, &mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Error::Receive(e)),
                };
                match inner(t.outer, t.proto, &buf[..n]) {
                    Ok(p) => {
                        if let Err(e) = sys::write(&tun, p) {
                            drops.unwritten(device, e);
                        }
                    }
                    Err(why) => drops.malformed(t, why),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4::Ipv4Repr;
    use crate::wire::{Ipv6Repr, udp};

    /// An IPv4 packet around `payload`, header checksum filled.
    fn v4(protocol: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 20];
        Ipv4Repr {
            src: [198, 18, 0, 10].into(),
            dst: [198, 18, 0, 100].into(),
            protocol,
            payload_len: payload.len(),
            ttl: 63,
            tos: 0,
            ident: 1,
            dont_frag: true,
        }
        .emit(&mut p)
        .unwrap();
        p.extend_from_slice(payload);
        p
    }

    fn v6(next_header: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        Ipv6Repr {
            src: "2001:2::10".parse().unwrap(),
            dst: "2001:2::100".parse().unwrap(),
            next_header,
            payload_len: payload.len(),
            hop_limit: 63,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(&mut p)
        .unwrap();
        p.extend_from_slice(payload);
        p
    }

    /// The inner packet for `proto`, and what a raw socket of `outer`'s
    /// family receives for it (after the outer IPv6 header, or with the
    /// outer IPv4 header).
    fn case(outer: Outer, proto: u8) -> (Vec<u8>, Vec<u8>) {
        let datagram = [0u8; udp::HEADER_LEN + 4];
        let inner = match proto {
            ip_proto::IPIP => v4(ip_proto::UDP, &datagram),
            _ => v6(ip_proto::UDP, &datagram),
        };
        let received = match outer {
            Outer::V4 => v4(proto, &inner),
            Outer::V6 => inner.clone(),
        };
        (inner, received)
    }

    #[test]
    fn each_encapsulation_gives_its_inner_packet_without_padding() {
        for (outer, proto) in ENCAPSULATIONS {
            let (want, mut got) = case(outer, proto);
            assert_eq!(
                inner(outer, proto, &got),
                Ok(&want[..]),
                "{outer:?} {proto}"
            );
            // Bytes past the inner packet's own length are not written.
            got.extend_from_slice(&[0xee; 7]);
            if outer == Outer::V4 {
                got = v4(proto, &got[20..]);
            }
            assert_eq!(
                inner(outer, proto, &got),
                Ok(&want[..]),
                "{outer:?} {proto}"
            );
        }
    }

    #[test]
    fn the_protocol_number_must_match_the_inner_version() {
        for (outer, proto) in ENCAPSULATIONS {
            let other = if proto == IPV6_INSIDE {
                ip_proto::IPIP
            } else {
                IPV6_INSIDE
            };
            let (_, received) = case(outer, other);
            let want = match outer {
                // The outer header says `other`, not what the socket takes.
                Outer::V4 => Malformed::Outer,
                Outer::V6 => Malformed::Version,
            };
            assert_eq!(
                inner(outer, proto, &received),
                Err(want),
                "{outer:?} {proto}"
            );
        }
        // An IPv4 outer header whose payload is another version.
        let (inner6, _) = case(Outer::V6, IPV6_INSIDE);
        let p = v4(ip_proto::IPIP, &inner6);
        assert_eq!(
            inner(Outer::V4, ip_proto::IPIP, &p),
            Err(Malformed::Version)
        );
    }

    #[test]
    fn outer_fragments_bad_checksums_and_short_packets_are_dropped() {
        let (_, mut p) = case(Outer::V4, IPV6_INSIDE);
        p[6] = 0x20; // MF
        assert_eq!(inner(Outer::V4, IPV6_INSIDE, &p), Err(Malformed::Outer));
        let (_, mut p) = case(Outer::V6, ip_proto::IPIP);
        p[8] ^= 1; // the inner TTL, under its checksum
        assert_eq!(inner(Outer::V6, ip_proto::IPIP, &p), Err(Malformed::Inner));
        assert_eq!(inner(Outer::V6, IPV6_INSIDE, &[]), Err(Malformed::Inner));
        // Every shorter cut of every encapsulation is refused, whichever
        // header it cuts into (the IPv6 payload length claims more).
        for (outer, proto) in ENCAPSULATIONS {
            let (_, p) = case(outer, proto);
            for n in 0..p.len() {
                assert!(
                    inner(outer, proto, &p[..n]).is_err(),
                    "{outer:?} {proto} {n}"
                );
            }
        }
    }

    #[test]
    fn any_bytes_are_taken_or_refused_without_a_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for (outer, proto) in ENCAPSULATIONS {
            let (_, good) = case(outer, proto);
            for _ in 0..2000 {
                let mut p = good.clone();
                for _ in 0..1 + next() % 4 {
                    let i = (next() as usize) % p.len();
                    p[i] = next() as u8;
                }
                p.truncate(1 + (next() as usize) % p.len());
                if let Ok(i) = inner(outer, proto, &p) {
                    assert!(i.len() <= p.len());
                }
            }
        }
    }
}
