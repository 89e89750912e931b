//! The probe's frames, for either family: a UDP datagram from the case's
//! source to its destination, IPv4 or IPv6 by the addresses, wrapped for
//! TUN with the outer header the director's TUN forwarding uses
//! (`wire::tunnel`: IPv4 to an IPv4 real server, IPv6 to an IPv6 one,
//! whatever the VIP's family). Recognising one unwraps any of the four.

use super::{Addrs, Case, marker, parse_marker};
use crate::wire::carry::{self, Carry};
use crate::wire::udp::{UdpPacket, UdpRepr};
use crate::wire::{self, EtherType, Ipv4Packet, Ipv6Packet, ip_proto};
use std::net::IpAddr;

/// Writes IPv4 or IPv6 + UDP from `src` to `dst` (one family), `port` to
/// `port`, carrying `payload` into `out`; returns the length.
fn emit_udp(
    out: &mut [u8],
    (src, dst): (IpAddr, IpAddr),
    port: u16,
    payload: &[u8],
) -> Option<usize> {
    let udp = UdpRepr {
        src_port: port,
        dst_port: port,
    };
    let hl = carry::ip_header_len(dst);
    let udp_len = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => udp.emit(out.get_mut(hl..)?, s, d, payload),
        (IpAddr::V6(s), IpAddr::V6(d)) => udp.emit(out.get_mut(hl..)?, s, d, payload),
        _ => return None,
    }
    .ok()?;
    carry::ip_header(out, (src, dst), ip_proto::UDP, udp_len)?;
    Some(hl + udp_len)
}

/// Builds the Ethernet frame for one case into `out`; returns its length,
/// or `None` if it does not fit or the case's addresses are of two
/// families (DR to a real server of the VIP's other family). Every case
/// goes to the next hop's MAC: DR cases are only sent to an on-link real
/// server, whose next hop is the server itself.
pub fn build(case: Case, a: &Addrs, nonce: u64, out: &mut [u8]) -> Option<usize> {
    let m = marker(nonce, case);
    let (ends, how) = match case {
        Case::Plain => ((a.director, a.rip), Carry::Direct),
        Case::DrForeign => ((a.client, a.vip), Carry::Direct),
        Case::DrVip => ((a.vip, a.vip), Carry::Direct),
        Case::DrDirector => ((a.director, a.vip), Carry::Direct),
        // The inner packet, wrapped as the director's TUN forwarding does.
        Case::Tun => ((a.client, a.vip), Carry::Tunnel),
    };
    let mut inner = [0u8; 128];
    let n = emit_udp(&mut inner, ends, a.port, m.as_bytes())?;
    let path = carry::Path {
        director_mac: a.director_mac,
        hop_mac: a.hop_mac,
        director: a.director,
        rip: a.rip,
    };
    carry::frame(how, &path, &inner[..n], out)
}

/// The upper-layer protocol and bytes of an IPv4 or IPv6 packet
/// (`ethertype` says which), unless it is a fragment or malformed.
fn upper(ethertype: u16, packet: &[u8]) -> Option<(u8, &[u8])> {
    match ethertype {
        EtherType::IPV4 => {
            let ip = Ipv4Packet::new_checked(packet).ok()?;
            (!ip.is_fragment()).then_some(())?;
            Some((ip.protocol(), ip.into_payload()))
        }
        EtherType::IPV6 => {
            let ip = Ipv6Packet::new_checked(packet).ok()?;
            let up = ip.upper_layer().ok()?;
            (!up.is_fragment()).then_some(())?;
            // `upper_payload`'s bytes, for as long as the frame's.
            let end = wire::ipv6::HEADER_LEN + ip.payload_len();
            Some((up.protocol, packet.get(up.offset..end)?))
        }
        _ => None,
    }
}

/// Finds a probe in an Ethernet frame seen on the wire: plain UDP to the
/// probe port, or the same inside any tunnel TUN sends (IPv4 or IPv6 in
/// IPv4 or IPv6; then the case must be `Tun`). Never panics on garbage.
pub fn recognise(frame: &[u8], port: u16) -> Option<(u64, Case)> {
    let eth = wire::EthernetFrame::new_checked(frame).ok()?;
    let (proto, payload) = upper(eth.ethertype(), eth.payload())?;
    // The same unwrapping `uvs decap` does, one level deep.
    let inside = match proto {
        ip_proto::IPIP => Some(EtherType::IPV4),
        ip_proto::IPV6 => Some(EtherType::IPV6),
        _ => None,
    };
    let (proto, payload) = match inside {
        Some(t) => upper(t, payload)?,
        None => (proto, payload),
    };
    if proto != ip_proto::UDP {
        return None;
    }
    let udp = UdpPacket::new_checked(payload).ok()?;
    if udp.dst_port() != port {
        return None;
    }
    let (nonce, case) = parse_marker(udp.payload())?;
    ((case == Case::Tun) == inside.is_some()).then_some((nonce, case))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::DEFAULT_CLIENT;
    use crate::wire::MacAddr;
    use std::net::Ipv6Addr;

    fn v6(s: &str) -> IpAddr {
        s.parse::<Ipv6Addr>().unwrap().into()
    }

    /// The lab's addresses: `rip` and `vip` pick the families (the director
    /// and client follow them).
    fn addrs(v6_rip: bool, v6_vip: bool) -> Addrs {
        let (director, rip) = match v6_rip {
            false => ([198, 18, 0, 2].into(), [198, 18, 0, 11].into()),
            true => (v6("2001:2::2"), v6("2001:2::11")),
        };
        let (vip, client) = match v6_vip {
            false => ([198, 18, 0, 100].into(), DEFAULT_CLIENT.into()),
            true => (v6("2001:2::100"), v6("2001:2:0:ff::1")),
        };
        Addrs {
            director_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            hop_mac: MacAddr([2, 0, 0, 0, 0, 11]),
            director,
            rip,
            vip,
            client,
            port: 7411,
        }
    }

    /// The source, destination and UDP checksum check of the IP packet at
    /// `ip` in `b`, read by etherparse (an independent oracle).
    fn oracle(b: &[u8]) -> (IpAddr, IpAddr, Option<(IpAddr, IpAddr, bool)>) {
        use etherparse::{NetSlice, SlicedPacket};
        let ends = |n: &NetSlice| -> (IpAddr, IpAddr) {
            match n {
                NetSlice::Ipv4(i) => (
                    i.header().source_addr().into(),
                    i.header().destination_addr().into(),
                ),
                NetSlice::Ipv6(i) => (
                    i.header().source_addr().into(),
                    i.header().destination_addr().into(),
                ),
                _ => panic!("not IP"),
            }
        };
        let p = SlicedPacket::from_ethernet(b).unwrap();
        let (s, d) = ends(p.net.as_ref().unwrap());
        // The packet etherparse's transport is in: inner for a tunnel.
        let inner = p.net.as_ref().and_then(|n| {
            let payload = match n {
                NetSlice::Ipv4(i) => i.payload(),
                NetSlice::Ipv6(i) => i.payload(),
                _ => return None,
            };
            matches!(payload.ip_number.0, 4 | 41)
                .then(|| SlicedPacket::from_ip(payload.payload).unwrap())
        });
        let check = |p: &SlicedPacket| -> bool {
            let Some(etherparse::TransportSlice::Udp(u)) = &p.transport else {
                panic!("not UDP")
            };
            let h = u.to_header();
            let want = match p.net.as_ref().unwrap() {
                NetSlice::Ipv4(i) => h.calc_checksum_ipv4(&i.header().to_header(), u.payload()),
                NetSlice::Ipv6(i) => h.calc_checksum_ipv6(&i.header().to_header(), u.payload()),
                _ => panic!("not IP"),
            };
            want.unwrap() == u.checksum()
        };
        match inner {
            Some(i) => {
                let (is, id) = ends(i.net.as_ref().unwrap());
                (s, d, Some((is, id, check(&i))))
            }
            None => {
                assert!(check(&p));
                (s, d, None)
            }
        }
    }

    #[test]
    fn every_case_of_every_family_mix_is_recognised_and_checksummed() {
        for (r6, v6) in [(false, false), (true, true), (true, false), (false, true)] {
            let a = addrs(r6, v6);
            for c in Case::ALL {
                let mut b = [0u8; 256];
                let Some(n) = build(c, &a, 0xdead_beef, &mut b) else {
                    // DR only within one family.
                    assert!(c.is_dr() && r6 != v6, "{c:?} {r6} {v6}");
                    continue;
                };
                assert_eq!(recognise(&b[..n], 7411), Some((0xdead_beef, c)), "{c:?}");
                assert_eq!(recognise(&b[..n], 7412), None);
                let (s, d, inner) = oracle(&b[..n]);
                match c {
                    Case::Plain => assert_eq!((s, d), (a.director, a.rip)),
                    Case::DrForeign => assert_eq!((s, d), (a.client, a.vip)),
                    Case::DrVip => assert_eq!((s, d), (a.vip, a.vip)),
                    Case::DrDirector => assert_eq!((s, d), (a.director, a.vip)),
                    Case::Tun => {
                        assert_eq!((s, d), (a.director, a.rip));
                        assert_eq!(inner, Some((a.client, a.vip, true)), "{r6} {v6}");
                    }
                }
                // Every cut is refused, never a panic.
                for cut in 0..n {
                    assert_eq!(recognise(&b[..cut], 7411), None, "{c:?} cut at {cut}");
                }
            }
        }
    }

    #[test]
    fn markers_outside_their_place_and_garbage_are_refused() {
        for r6 in [false, true] {
            let a = addrs(r6, r6);
            let mut b = [0u8; 256];
            // A "tun" marker outside a tunnel is not a probe.
            let n = build(Case::Plain, &a, 1, &mut b).unwrap();
            let s = marker(1, Case::Tun);
            b[n - s.len()..n].copy_from_slice(s.as_bytes());
            assert_eq!(recognise(&b[..n], 7411), None);
        }
        assert_eq!(recognise(&[0xff; 80], 7411), None);
    }
}
