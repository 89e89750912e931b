//! Address conflict detection for a new VIP, in the spirit of RFC 5227:
//! before uvs first answers ARP for an address (and sends the gratuitous
//! ARP that moves every neighbour's cache to the director), it asks the
//! link whether anyone already has it. The probe carries sender address
//! 0.0.0.0, so it changes no neighbour's cache itself; a host that owns
//! the address answers it (Linux does, for addresses it has).

use crate::host::sys;
use crate::wire::{ArpOperation, ArpPacket, ArpRepr, EtherType, MacAddr, arp, ethernet};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

const ETH: usize = ethernet::HEADER_LEN;

/// How long a probe waits for an answer, and how many probes go out in
/// that time (evenly spaced). Hosts on a LAN answer in well under a
/// millisecond; this keeps `-A` quick while allowing for a busy one.
pub const PROBE_WAIT: Duration = Duration::from_millis(250);
const PROBES: u32 = 3;

/// Probes `vip` on link `ifname` (whose own MAC is `mac`) and returns the
/// MAC of a host that claims it, if one answers within `wait`.
pub fn probe(
    ifname: &str,
    mac: MacAddr,
    vip: Ipv4Addr,
    wait: Duration,
) -> io::Result<Option<MacAddr>> {
    let ifindex = sys::ifindex(ifname)?;
    let proto = (libc::ETH_P_ARP as u16).to_be();
    let fd = sys::socket(
        libc::AF_PACKET,
        libc::SOCK_RAW | libc::SOCK_NONBLOCK,
        i32::from(proto),
    )?;
    sys::bind_packet(&fd, proto, ifindex)?;
    let mut frame = [0u8; ETH + arp::PACKET_LEN];
    ethernet::emit_header(&mut frame, MacAddr::BROADCAST, mac, EtherType::ARP);
    let req = ArpRepr {
        operation: ArpOperation::Request,
        sender_hw: mac,
        sender_ip: Ipv4Addr::UNSPECIFIED,
        target_hw: MacAddr::ZERO,
        target_ip: vip,
    };
    req.emit(&mut frame[ETH..])
        .map_err(|_| io::Error::other("ARP probe does not fit"))?;
    let start = Instant::now();
    let gap = wait / PROBES;
    let mut sent = 0;
    let mut buf = [0u8; 256];
    while start.elapsed() < wait {
        if sent < PROBES && start.elapsed() >= gap * sent {
            sys::write(&fd, &frame)?;
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

/// The sender of an ARP frame that says it has `vip` (a reply, or a
/// request or announcement from that address), unless it is us.
pub fn claims(frame: &[u8], ours: MacAddr, vip: Ipv4Addr) -> Option<MacAddr> {
    let p = ArpPacket::new_checked(frame.get(ETH..)?).ok()?;
    let r = ArpRepr::parse(&p).ok()?;
    (r.sender_ip == vip && r.sender_hw != ours).then_some(r.sender_hw)
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
        assert_eq!(claims(&reply, us, vip), Some(them));
        let announce = arp_frame(ArpOperation::Request, them, vip);
        assert_eq!(claims(&announce, us, vip), Some(them));
        // Our own frames, other addresses and probes (sender 0.0.0.0) are not.
        assert_eq!(
            claims(&arp_frame(ArpOperation::Reply, us, vip), us, vip),
            None
        );
        let other = arp_frame(ArpOperation::Reply, them, Ipv4Addr::new(198, 18, 0, 11));
        assert_eq!(claims(&other, us, vip), None);
        let probe = arp_frame(ArpOperation::Request, them, Ipv4Addr::UNSPECIFIED);
        assert_eq!(claims(&probe, us, vip), None);
        // Truncated input is no claim and no panic.
        for n in 0..reply.len() {
            assert_eq!(claims(&reply[..n], us, vip), None);
        }
    }
}
