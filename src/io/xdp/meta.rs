//! What the kernel would say about a frame that XDP hands over as bytes
//! only: its packet type (from the destination MAC, as sll_pkttype) and
//! whether its checksum was left unfinished (as a vnet header's
//! NEEDS_CSUM), so the data plane treats it as it does an AF_PACKET one.

use crate::io::PacketType;

/// Where an unfinished TCP or UDP checksum is (start and offset, as a
/// vnet header gives them), in a frame that arrived with one.
///
/// XDP hands over bytes only, and a frame from a local sender on a virtual
/// link (veth, a VM's tap) still carries CHECKSUM_PARTIAL: its checksum
/// field holds just the folded pseudo-header sum, for hardware that never
/// comes. A real NIC always delivers finished checksums. So a field equal
/// to that sum in a segment whose checksum does not verify is taken as
/// unfinished, and the data plane finishes it as it does for AF_PACKET.
/// (A damaged segment matches by chance once in 65,536; Ethernet's CRC
/// has already dropped nearly all of those.)
///
/// IPv4 and IPv6 alike: over IPv6 the pseudo-header holds both addresses
/// and the upper layer's length and protocol, after any extension
/// headers (a fragment is never unfinished).
pub(super) fn unfinished_checksum(frame: &[u8]) -> Option<(u16, u16)> {
    use crate::wire::ipv6::Ipv6Packet;
    use crate::wire::{checksum, ethernet, ip_proto, ipv4::Ipv4Packet, tcp, udp};
    let eth = ethernet::EthernetFrame::new_checked(frame).ok()?;
    // The segment's length, its pseudo-header's sum, its protocol and
    // where it starts in the IP packet.
    let (len, pseudo, proto, at) = match eth.ethertype() {
        ethernet::EtherType::IPV4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            if ip.is_fragment() {
                return None;
            }
            let len = ip.payload().len();
            let (src, dst, proto) = (ip.src_addr(), ip.dst_addr(), ip.protocol());
            let pseudo = checksum::pseudo_header(src, dst, proto, len as u32);
            (len, pseudo, proto, ip.header_len())
        }
        ethernet::EtherType::IPV6 => {
            let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
            let upper = ip.upper_layer().ok()?;
            if upper.is_fragment() {
                return None;
            }
            let len = ip.upper_payload(&upper).len();
            let (src, dst, proto) = (ip.src_addr(), ip.dst_addr(), upper.protocol);
            let pseudo = checksum::pseudo_header_v6(src, dst, proto, len as u32);
            (len, pseudo, proto, upper.offset)
        }
        _ => return None,
    };
    let off = match proto {
        ip_proto::TCP => tcp::CHECKSUM_OFFSET,
        ip_proto::UDP => udp::CHECKSUM_OFFSET,
        _ => return None,
    };
    let seg = eth.payload().get(at..at + len)?;
    let field = u16::from_be_bytes([*seg.get(off)?, *seg.get(off + 1)?]);
    if field != checksum::fold(pseudo) || checksum::fold(pseudo + checksum::sum(seg)) == 0xffff {
        return None;
    }
    let start = ethernet::HEADER_LEN + at;
    Some((start as u16, off as u16))
}

/// The packet type from the destination MAC, as the kernel sets
/// sll_pkttype (XDP gives only the bytes).
pub(super) fn classify(frame: &[u8], mac: &[u8; 6]) -> PacketType {
    match frame.get(..6) {
        Some(d) if d == mac => PacketType::Host,
        Some(d) if d == [0xff; 6] => PacketType::Broadcast,
        Some(d) if d[0] & 1 == 1 => PacketType::Multicast,
        _ => PacketType::OtherHost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum;

    /// A UDP frame 10.0.0.1:1000 -> 10.0.0.2:53 with 4 bytes of payload,
    /// its checksum finished.
    fn udp_frame() -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 12];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = &mut f[14..34];
        ip.copy_from_slice(&[
            0x45, 0, 0, 32, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        let c = checksum::finish(checksum::sum(ip));
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f[34..46].copy_from_slice(&[0x03, 0xe8, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4]);
        let pseudo = checksum::pseudo_header([10, 0, 0, 1].into(), [10, 0, 0, 2].into(), 17, 12);
        let c = checksum::finish(pseudo + checksum::sum(&f[34..]));
        f[40..42].copy_from_slice(&c.to_be_bytes());
        f
    }

    #[test]
    fn a_finished_checksum_is_left_alone() {
        assert_eq!(unfinished_checksum(&udp_frame()), None);
    }

    #[test]
    fn a_partial_checksum_is_found_and_a_damaged_one_is_not() {
        let mut f = udp_frame();
        let pseudo = checksum::pseudo_header([10, 0, 0, 1].into(), [10, 0, 0, 2].into(), 17, 12);
        f[40..42].copy_from_slice(&checksum::fold(pseudo).to_be_bytes());
        assert_eq!(unfinished_checksum(&f), Some((34, 6)));
        // Any other wrong value is damage, for the receiver to drop.
        f[41] ^= 0x40;
        assert_eq!(unfinished_checksum(&f), None);
    }

    #[test]
    fn short_and_odd_frames_are_not_read_past_their_end() {
        let f = udp_frame();
        for n in 0..f.len() {
            assert_eq!(unfinished_checksum(&f[..n]), None, "{n} bytes");
        }
        let mut frag = udp_frame();
        frag[20] = 0x20; // more fragments
        assert_eq!(unfinished_checksum(&frag), None);
    }

    /// A TCP/IPv6 frame 2001:2::10:40000 -> 2001:2::100:80 with 4 bytes
    /// of payload, after `ext` (extension headers, already chained: the
    /// fixed header's next header is `first`), its checksum finished.
    fn tcp6_frame(first: u8, ext: &[u8]) -> Vec<u8> {
        let (src, dst): (std::net::Ipv6Addr, std::net::Ipv6Addr) = (
            "2001:2::10".parse().unwrap(),
            "2001:2::100".parse().unwrap(),
        );
        let seg_len = 20 + 4;
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&((ext.len() + seg_len) as u16).to_be_bytes());
        f.extend_from_slice(&[first, 64]);
        f.extend_from_slice(&src.octets());
        f.extend_from_slice(&dst.octets());
        f.extend_from_slice(ext);
        let at = f.len();
        f.extend_from_slice(&[
            0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff,
        ]);
        f.extend_from_slice(&[0, 0, 0, 0, 1, 2, 3, 4]);
        let pseudo = checksum::pseudo_header_v6(src, dst, 6, seg_len as u32);
        let c = checksum::finish(pseudo + checksum::sum(&f[at..]));
        f[at + 16..at + 18].copy_from_slice(&c.to_be_bytes());
        f
    }

    /// Replaces frame `f`'s TCP checksum (at `at`) with the folded
    /// pseudo-header sum, as CHECKSUM_PARTIAL leaves it.
    fn partial6(f: &mut [u8], at: usize) {
        let pseudo = checksum::pseudo_header_v6(
            "2001:2::10".parse().unwrap(),
            "2001:2::100".parse().unwrap(),
            6,
            24,
        );
        f[at + 16..at + 18].copy_from_slice(&checksum::fold(pseudo).to_be_bytes());
    }

    #[test]
    fn an_ipv6_partial_checksum_is_found_after_any_extension_headers() {
        let f = tcp6_frame(6, &[]);
        assert_eq!(unfinished_checksum(&f), None, "finished");
        let mut p = f.clone();
        partial6(&mut p, 54);
        assert_eq!(unfinished_checksum(&p), Some((54, 16)));
        p[70] ^= 0x40;
        assert_eq!(unfinished_checksum(&p), None, "damaged");
        // A Destination Options header (8 bytes) before TCP.
        let dest_opts = [6, 0, 1, 4, 0, 0, 0, 0];
        let mut p = tcp6_frame(60, &dest_opts);
        assert_eq!(unfinished_checksum(&p), None);
        partial6(&mut p, 62);
        assert_eq!(unfinished_checksum(&p), Some((62, 16)));
        for n in 0..p.len() {
            assert_eq!(unfinished_checksum(&p[..n]), None, "{n} bytes");
        }
        // A first fragment is not a whole segment.
        let frag = [6, 0, 0, 1, 0, 0, 0, 7];
        let mut p = tcp6_frame(44, &frag);
        partial6(&mut p, 62);
        assert_eq!(unfinished_checksum(&p), None, "fragment");
    }

    #[test]
    fn frames_are_classified_by_their_destination_mac() {
        let me = [2, 0, 0, 0, 0, 1];
        let mut f = udp_frame();
        f[..6].copy_from_slice(&me);
        assert_eq!(classify(&f, &me), PacketType::Host);
        f[..6].copy_from_slice(&[0xff; 6]);
        assert_eq!(classify(&f, &me), PacketType::Broadcast);
        f[..6].copy_from_slice(&[0x01, 0, 0x5e, 0, 0, 1]);
        assert_eq!(classify(&f, &me), PacketType::Multicast);
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        assert_eq!(classify(&f, &me), PacketType::OtherHost);
    }
}
