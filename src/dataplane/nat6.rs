//! NAT66 translation (LVS `-m` to IPv6 real servers): one end of a TCP or
//! UDP packet, and of the packet an ICMPv6 error quotes, is rewritten in
//! place, as `nat` does for IPv4. IPv6 has no header checksum: only the
//! transport checksum, whose pseudo-header covers the addresses, is
//! updated incrementally (`checksum::update128`), partial ones included;
//! an ICMPv6 error's checksum, which covers its pseudo-header and the
//! quote, is checked and then recomputed.

use super::nat::{Quoted, fix_l4_checksum, min_header};
use crate::wire::End;
use crate::wire::icmpv6::{self, Icmpv6Packet};
use crate::wire::ipv6::{Ipv6Packet, UpperLayer};
use crate::wire::ports::{self, Ports};
use crate::wire::{Error, Result, checksum, ip_proto};
use std::net::{Ipv6Addr, SocketAddrV6};

/// The ICMPv6 errors IPVS relates to a connection (`ip_vs_in_icmp_v6`,
/// `ip_vs_out_icmp_v6`): destination unreachable, packet too big, time
/// exceeded.
pub fn relates(msg_type: u8) -> bool {
    matches!(
        msg_type,
        icmpv6::TYPE_DEST_UNREACH | icmpv6::TYPE_PACKET_TOO_BIG | icmpv6::TYPE_TIME_EXCEEDED
    )
}

/// Rewrites the source or destination address and port of a TCP or UDP
/// IPv6 packet whose transport header `upper` found, fixing its checksum
/// incrementally. `partial`: the checksum is unfinished
/// (CHECKSUM_PARTIAL).
pub fn rewrite<T>(
    ip: &mut Ipv6Packet<T>,
    upper: &UpperLayer,
    end: End,
    to: SocketAddrV6,
    partial: bool,
) -> Result<()>
where
    T: AsRef<[u8]> + AsMut<[u8]>,
{
    let min = min_header(upper.protocol).ok_or(Error::Malformed)?;
    if upper.is_fragment() {
        return Err(Error::Malformed);
    }
    if ip.upper_payload(upper).len() < min {
        return Err(Error::Truncated);
    }
    let old = ip.replace_addr(end, *to.ip());
    retarget(
        ip.upper_payload_mut(upper),
        upper.protocol,
        end,
        old,
        to,
        partial,
    )
}

/// The port at `end` of a transport header (of a packet, or of a quoted
/// one cut after the ports) becomes `to`'s, and its checksum, where
/// present, follows the port and the address (`old` before, `to`'s now).
fn retarget(
    l4: &mut [u8],
    protocol: u8,
    end: End,
    old: Ipv6Addr,
    to: SocketAddrV6,
    partial: bool,
) -> Result<()> {
    let new = *to.ip();
    let old_port = Ports::new_checked(&mut *l4)?.replace_port(end, to.port());
    let addr = |c| checksum::update128(c, old, new);
    fix_l4_checksum(l4, protocol, partial, addr, (old_port, to.port()));
    Ok(())
}

/// The quoted packet of an ICMPv6 error IPVS relates to a connection and
/// where its transport header is: an IPv6 header whose extension headers
/// the quote holds whole, then at least the ports of a TCP or UDP header
/// (of a whole packet or a first fragment).
fn quoted_packet(icmp: &[u8]) -> Option<(Ipv6Packet<&[u8]>, UpperLayer)> {
    let msg = Icmpv6Packet::new_checked(icmp).ok()?;
    if !relates(msg.msg_type()) {
        return None;
    }
    let q = msg.into_quoted().ok()?;
    let u = q.upper_layer().ok()?;
    if u.is_later_fragment() || q.upper_payload(&u).len() < ports::LEN {
        return None;
    }
    min_header(u.protocol)?;
    Some((q, u))
}

/// What an ICMPv6 error (the message: an IPv6 packet's upper-layer
/// bytes) of a kind IPVS relates to a connection quotes; `None` for
/// any other message, or a quote without TCP or UDP ports.
pub fn quoted(icmp: &[u8]) -> Option<Quoted<Ipv6Addr>> {
    let (q, u) = quoted_packet(icmp)?;
    let ports = Ports::new_checked(q.upper_payload(&u)).ok()?;
    Some(Quoted {
        protocol: u.protocol,
        src: q.src_addr(),
        sport: ports.src_port(),
        dst: q.dst_addr(),
        dport: ports.dst_port(),
    })
}

/// Translates an ICMPv6 error about a NAT66 connection, as
/// `ip_vs_nat_icmp_v6` does: the outer packet's `outer` end and the
/// quoted packet's `inner` end (address and port) become `to`; the
/// quoted transport checksum follows where it is quoted, and the ICMPv6
/// checksum, checked first, is recomputed over the new pseudo-header.
/// `upper` is the outer packet's walk, which ended at the ICMPv6 header.
pub fn translate_icmp<T>(
    ip: &mut Ipv6Packet<T>,
    upper: &UpperLayer,
    outer: End,
    inner: End,
    to: SocketAddrV6,
) -> Result<()>
where
    T: AsRef<[u8]> + AsMut<[u8]>,
{
    if upper.protocol != ip_proto::ICMPV6 || upper.is_fragment() {
        return Err(Error::Malformed);
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let msg = ip.upper_payload(upper);
    let (_, qu) = quoted_packet(msg).ok_or(Error::Malformed)?;
    if !Icmpv6Packet::new_unchecked(msg).verify_checksum(src, dst) {
        return Err(Error::Malformed);
    }
    ip.replace_addr(outer, *to.ip());
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let mut msg = Icmpv6Packet::new_unchecked(ip.upper_payload_mut(upper));
    let mut q = msg.quoted_mut()?;
    let old = q.replace_addr(inner, *to.ip());
    retarget(q.upper_payload_mut(&qu), qu.protocol, inner, old, to, false)?;
    msg.fill_checksum(src, dst);
    Ok(())
}

#[cfg(test)]
mod tests;
