//! Address conflict detection for a new VIP: before uvs first answers for
//! an address (and sends the announcement that moves every neighbour's
//! cache to the director), it asks the link whether anyone already has
//! it. IPv4 asks with ARP probes in the spirit of RFC 5227, IPv6 with
//! duplicate address detection (RFC 4862 §5.4): a neighbour solicitation
//! from `::` to the VIP's solicited-node group. Neither changes a
//! neighbour's cache itself (no sender address); a host that owns the
//! address answers it (Linux does, for addresses it has), and a host that
//! is probing for it at the same time (another DAD) counts as a claim.
//! Only the frames differ between the families; sending, waiting and
//! listening are one loop.

use crate::host::sys;
use crate::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetFrame, Ipv6Packet, MacAddr, NdpRepr, arp,
    ethernet, ndp,
};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

const ETH: usize = ethernet::HEADER_LEN;

/// How long a probe waits for an answer, and how many probes go out in
/// that time (evenly spaced). Hosts on a LAN answer in well under a
/// millisecond; this keeps `-A` quick while allowing for a busy one.
pub const PROBE_WAIT: Duration = Duration::from_millis(250);
const PROBES: u32 = 3;

/// The protocol that answers for a VIP of this family, as messages name
/// it ("answered ARP for it", "answered neighbour discovery for it").
pub fn protocol(vip: IpAddr) -> &'static str {
    match vip {
        IpAddr::V4(_) => "ARP",
        IpAddr::V6(_) => "neighbour discovery",
    }
}

/// Probes `vip` on link `ifname` (whose own MAC is `mac`) and returns the
/// MAC of a host that claims it, if one answers within `wait`.
pub fn probe(
    ifname: &str,
    mac: MacAddr,
    vip: IpAddr,
    wait: Duration,
) -> io::Result<Option<MacAddr>> {
    let ifindex = sys::ifindex(ifname)?;
    let ethertype = match vip {
        IpAddr::V4(_) => EtherType::ARP,
        IpAddr::V6(_) => EtherType::IPV6,
    };
    let proto = ethertype.to_be();
    let fd = sys::socket(
        libc::AF_PACKET,
        libc::SOCK_RAW | libc::SOCK_NONBLOCK,
        i32::from(proto),
    )?;
    sys::bind_packet(&fd, proto, ifindex)?;
    if vip.is_ipv6() {
        // Another host's DAD goes to the VIP's solicited-node group, which
        // nobody here has joined.
        sys::allmulti(&fd, ifindex)?;
    }
    let mut frame = [0u8; ndp::FRAME_LEN];
    let len = probe_frame(&mut frame, mac, vip)
        .ok_or_else(|| io::Error::other("address probe does not fit"))?;
    let frame = &frame[..len];
    let start = Instant::now();
    let gap = wait / PROBES;
    let mut sent = 0;
    let mut buf = [0u8; 256];
    while start.elapsed() < wait {
        if sent < PROBES && start.elapsed() >= gap * sent {
            sys::write(&fd, frame)?;
            sent += 1;
        }
        let next = (gap * sent).min(wait).saturating_sub(start.elapsed());
        let mut fds = [libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if sys::poll(&mut fds, next.max(Duration::from_millis(1)))? == 0 {
            continue;
        }
        while let Ok(n) = sys::recv(&fd, &mut buf) {
            if let Some(owner) = claims(&buf[..n], mac, vip) {
                return Ok(Some(owner));
            }
        }
    }
    Ok(None)
}

/// The probe for `vip` from `mac`: an ARP request from 0.0.0.0, or a DAD
/// neighbour solicitation from `::`. Its length, or `None` if `out` is
/// too short.
pub fn probe_frame(out: &mut [u8], mac: MacAddr, vip: IpAddr) -> Option<usize> {
    match vip {
        IpAddr::V4(vip) => {
            let frame = out.get_mut(..ETH + arp::PACKET_LEN)?;
            ethernet::emit_header(frame, MacAddr::BROADCAST, mac, EtherType::ARP);
            let req = ArpRepr {
                operation: ArpOperation::Request,
                sender_hw: mac,
                sender_ip: Ipv4Addr::UNSPECIFIED,
                target_hw: MacAddr::ZERO,
                target_ip: vip,
            };
            req.emit(&mut frame[ETH..]).ok()?;
            Some(frame.len())
        }
        IpAddr::V6(vip) => ndp::dad_solicit(out, mac, vip).ok(),
    }
}

/// The host (its MAC) that a frame seen on the link says has `vip`,
/// unless it is us: an ARP reply, request or announcement from the
/// address; a neighbour advertisement for it, or another host's DAD
/// solicitation for it. Never panics on garbage.
pub fn claims(frame: &[u8], ours: MacAddr, vip: IpAddr) -> Option<MacAddr> {
    match vip {
        IpAddr::V4(vip) => claims4(frame, ours, vip),
        IpAddr::V6(vip) => claims6(frame, ours, vip),
    }
}

fn claims4(frame: &[u8], ours: MacAddr, vip: Ipv4Addr) -> Option<MacAddr> {
    let p = ArpPacket::new_checked(frame.get(ETH..)?).ok()?;
    let r = ArpRepr::parse(&p).ok()?;
    (r.sender_ip == vip && r.sender_hw != ours).then_some(r.sender_hw)
}

/// `NdpRepr::parse` applies RFC 4861's checks (hop limit 255, checksum),
/// so a frame forged off-link or mangled is no claim.
fn claims6(frame: &[u8], ours: MacAddr, vip: Ipv6Addr) -> Option<MacAddr> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let from = eth.src_addr();
    if eth.ethertype() != EtherType::IPV6 || from == ours {
        return None;
    }
    let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
    match NdpRepr::parse(&ip).ok()? {
        NdpRepr::Advert {
            target,
            target_lladdr,
            ..
        } if target == vip => Some(target_lladdr.unwrap_or(from)),
        NdpRepr::Solicit { target, .. } if target == vip && ip.src_addr().is_unspecified() => {
            Some(from)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arp_frame(op: ArpOperation, sender_hw: MacAddr, sender_ip: Ipv4Addr) -> Vec<u8> {
        let mut f = vec![0u8; ETH + arp::PACKET_LEN];
        ethernet::emit_header(&mut f, MacAddr::BROADCAST, sender_hw, EtherType::ARP);
        ArpRepr {
            operation: op,
            sender_hw,
            sender_ip,
            target_hw: MacAddr::ZERO,
            target_ip: Ipv4Addr::new(198, 18, 0, 2),
        }
        .emit(&mut f[ETH..])
        .unwrap();
        f
    }

    #[test]
    fn a_reply_or_announcement_from_the_address_is_a_claim() {
        let vip = Ipv4Addr::new(198, 18, 0, 10);
        let (us, them) = (MacAddr([2, 0, 0, 0, 0, 2]), MacAddr([2, 0, 0, 0, 0, 10]));
        let reply = arp_frame(ArpOperation::Reply, them, vip);
        assert_eq!(claims(&reply, us, vip.into()), Some(them));
        let announce = arp_frame(ArpOperation::Request, them, vip);
        assert_eq!(claims(&announce, us, vip.into()), Some(them));
        // Our own frames, other addresses and probes (sender 0.0.0.0) are not.
        assert_eq!(
            claims(&arp_frame(ArpOperation::Reply, us, vip), us, vip.into()),
            None
        );
        let other = arp_frame(ArpOperation::Reply, them, Ipv4Addr::new(198, 18, 0, 11));
        assert_eq!(claims(&other, us, vip.into()), None);
        let probe = arp_frame(ArpOperation::Request, them, Ipv4Addr::UNSPECIFIED);
        assert_eq!(claims(&probe, us, vip.into()), None);
        // Truncated input is no claim and no panic.
        for n in 0..reply.len() {
            assert_eq!(claims(&reply[..n], us, vip.into()), None);
        }
    }

    #[test]
    fn the_ipv4_probe_is_an_arp_request_from_the_unspecified_address() {
        let (us, vip) = (MacAddr([2, 0, 0, 0, 0, 2]), Ipv4Addr::new(198, 18, 0, 10));
        let mut f = [0u8; ndp::FRAME_LEN];
        let n = probe_frame(&mut f, us, vip.into()).unwrap();
        let eth = EthernetFrame::new_checked(&f[..n]).unwrap();
        assert_eq!(
            (eth.dst_addr(), eth.ethertype()),
            (MacAddr::BROADCAST, EtherType::ARP)
        );
        let r = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
        assert_eq!(r.operation, ArpOperation::Request);
        assert_eq!(
            (r.sender_ip, r.target_ip, r.sender_hw),
            (Ipv4Addr::UNSPECIFIED, vip, us)
        );
        assert!(probe_frame(&mut f[..n - 1], us, vip.into()).is_none());
    }

    const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0xab, 0xcd10);
    const US: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
    const THEM: MacAddr = MacAddr([2, 0, 0, 0, 0, 10]);

    #[test]
    fn the_ipv6_probe_is_a_dad_solicitation_to_the_solicited_node_group() {
        let mut f = [0u8; ndp::FRAME_LEN];
        let n = probe_frame(&mut f, US, VIP6.into()).unwrap();
        let group = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xffab, 0xcd10);
        let eth = EthernetFrame::new_checked(&f[..n]).unwrap();
        assert_eq!(
            eth.dst_addr(),
            MacAddr([0x33, 0x33, 0xff, 0xab, 0xcd, 0x10])
        );
        assert_eq!((eth.src_addr(), eth.ethertype()), (US, EtherType::IPV6));
        let ip = Ipv6Packet::new_checked(eth.payload()).unwrap();
        assert_eq!(
            (ip.src_addr(), ip.dst_addr()),
            (Ipv6Addr::UNSPECIFIED, group)
        );
        let want = NdpRepr::Solicit {
            target: VIP6,
            source_lladdr: None,
        };
        assert_eq!(NdpRepr::parse(&ip), Ok(want));
        // Independent oracle: etherparse reads the same solicitation and
        // agrees on the ICMPv6 checksum.
        let p = etherparse::SlicedPacket::from_ethernet(&f[..n]).unwrap();
        let Some(etherparse::TransportSlice::Icmpv6(icmp)) = p.transport else {
            panic!("not ICMPv6")
        };
        let ip6 = etherparse::Ipv6HeaderSlice::from_slice(&f[ETH..n]).unwrap();
        let sum = icmp
            .icmp_type()
            .calc_checksum(ip6.source(), ip6.destination(), icmp.payload())
            .unwrap();
        assert_eq!(icmp.checksum(), sum);
        // Our own probe, seen by our socket, is no claim.
        assert_eq!(claims(&f[..n], US, VIP6.into()), None);
        assert!(probe_frame(&mut [0u8; 77], US, VIP6.into()).is_none());
    }

    #[test]
    fn an_advertisement_or_another_dad_for_the_ipv6_vip_is_a_claim() {
        let vip = IpAddr::V6(VIP6);
        let mut f = [0u8; ndp::FRAME_LEN];
        // The owner's answer to a DAD probe: to all nodes.
        let n = ndp::solicited_advert(&mut f, THEM, VIP6, Ipv6Addr::UNSPECIFIED, US).unwrap();
        assert_eq!(claims(&f[..n], US, vip), Some(THEM));
        for cut in 0..n {
            assert_eq!(claims(&f[..cut], US, vip), None);
        }
        // A mangled one (hop limit not 255, bad checksum) is not.
        let mut g = f;
        g[ETH + 7] = 254;
        assert_eq!(claims(&g[..n], US, vip), None);
        let mut g = f;
        g[n - 1] ^= 1;
        assert_eq!(claims(&g[..n], US, vip), None);
        // For another address, or our own advertisement: no claim.
        let other = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x11);
        let n = ndp::unsolicited_advert(&mut f, THEM, other).unwrap();
        assert_eq!(claims(&f[..n], US, vip), None);
        let n = ndp::unsolicited_advert(&mut f, US, VIP6).unwrap();
        assert_eq!(claims(&f[..n], US, vip), None);
        // Another host probing for it at the same time.
        let n = ndp::dad_solicit(&mut f, THEM, VIP6).unwrap();
        assert_eq!(claims(&f[..n], US, vip), Some(THEM));
        // A plain solicitation (someone resolving it) says nothing.
        let n = ndp::solicit(&mut f, THEM, other, VIP6).unwrap();
        assert_eq!(claims(&f[..n], US, vip), None);
        // Frames of the other family are no claim for either.
        let n = probe_frame(&mut f, THEM, IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10))).unwrap();
        assert_eq!(claims(&f[..n], US, vip), None);
        let n = ndp::dad_solicit(&mut f, THEM, VIP6).unwrap();
        assert_eq!(
            claims(&f[..n], US, Ipv4Addr::new(198, 18, 0, 10).into()),
            None
        );
    }
}
