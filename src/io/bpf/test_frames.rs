//! The frames the kernel programs' fixtures (test_run, test_sched) run
//! through them, built byte by byte with their checksums right, and what
//! the programs' DR forwarding must make of them.

use crate::io::{AnyFlow, FlowTuple};
use crate::wire::checksum;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The director's MAC, and the client's (every frame's source).
pub(super) const DIR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
pub(super) const CL_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];

/// A frame from the client's MAC to `dst`.
pub(super) fn eth(dst: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&CL_MAC);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A TCP segment (20-byte header, `flags`, 4 bytes of data) with its
/// checksum finished over `pseudo`.
pub(super) fn tcp(sport: u16, dport: u16, flags: u8, pseudo: impl Fn(u32) -> u64) -> Vec<u8> {
    let mut t = vec![0u8; 24];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[12] = 0x50;
    t[13] = flags;
    t[14..16].copy_from_slice(&[0xff, 0xff]);
    t[20..].copy_from_slice(b"uvs!");
    let c = checksum::finish(pseudo(24) + checksum::sum(&t));
    t[16..18].copy_from_slice(&c.to_be_bytes());
    t
}

/// A UDP datagram (4 bytes of data) with its checksum finished over
/// `pseudo`.
fn udp(sport: u16, dport: u16, pseudo: impl Fn(u32) -> u64) -> Vec<u8> {
    let mut u = vec![0u8; 12];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&12u16.to_be_bytes());
    u[8..].copy_from_slice(b"uvs!");
    let c = checksum::finish(pseudo(12) + checksum::sum(&u));
    u[6..8].copy_from_slice(&c.to_be_bytes());
    u
}

/// An IPv4 frame to the director's MAC carrying `segment` of
/// `proto`, TTL 64, DF, header checksum right.
pub(super) fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, segment: &[u8]) -> Vec<u8> {
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, proto, 0, 0];
    ip[2..4].copy_from_slice(&(20 + segment.len() as u16).to_be_bytes());
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = checksum::finish(checksum::sum(&ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(segment);
    eth(DIR_MAC, 0x0800, &ip)
}

/// An IPv4/TCP frame to the director's MAC, TTL 64, checksums right.
pub(super) fn tcp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let (s, d) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
    let seg = tcp(sport, dport, flags, |n| checksum::pseudo_header(s, d, 6, n));
    ipv4(src, dst, 6, &seg)
}

/// The same for UDP (4 bytes of data).
pub(super) fn udp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let (s, d) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
    let seg = udp(sport, dport, |n| checksum::pseudo_header(s, d, 17, n));
    ipv4(src, dst, 17, &seg)
}

/// The same with TCP `flags`, hop limit 64.
pub(super) fn tcp6_flags(
    (src, dst): (Ipv6Addr, Ipv6Addr),
    sport: u16,
    dport: u16,
    flags: u8,
) -> Vec<u8> {
    let seg = tcp(sport, dport, flags, |n| {
        checksum::pseudo_header_v6(src, dst, 6, n)
    });
    let ip = crate::wire::ipv6::test_packet((src, dst), 6, &seg, seg.len());
    eth(DIR_MAC, 0x86dd, &ip)
}

/// An IPv6/UDP frame to the director's MAC (4 bytes of data),
/// checksum right.
pub(super) fn udp6((src, dst): (Ipv6Addr, Ipv6Addr), sport: u16, dport: u16) -> Vec<u8> {
    let u = udp(sport, dport, |n| {
        checksum::pseudo_header_v6(src, dst, 17, n)
    });
    let ip = crate::wire::ipv6::test_packet((src, dst), 17, &u, u.len());
    eth(DIR_MAC, 0x86dd, &ip)
}

/// `f` as the offload rewrites it: the real server's MAC `rs`, ours,
/// TTL one less with the header checksum computed anew.
pub(super) fn forwarded(f: &[u8], rs: [u8; 6]) -> Vec<u8> {
    let mut o = f.to_vec();
    o[..6].copy_from_slice(&rs);
    o[6..12].copy_from_slice(&DIR_MAC);
    o[22] -= 1;
    rechecked(o)
}

/// `f` with its IPv4 header's checksum computed anew.
pub(super) fn rechecked(mut f: Vec<u8>) -> Vec<u8> {
    f[24..26].copy_from_slice(&[0, 0]);
    let c = checksum::finish(checksum::sum(&f[14..34]));
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

/// An IPv6 `f` as the offload rewrites it: the real server's MAC
/// `rs`, ours, hop limit one less (no header checksum).
pub(super) fn forwarded6(f: &[u8], rs: [u8; 6]) -> Vec<u8> {
    let mut o = f.to_vec();
    o[..6].copy_from_slice(&rs);
    o[6..12].copy_from_slice(&DIR_MAC);
    o[14 + 7] -= 1;
    o
}

/// The 5-tuple of a frame built here (IPv4 without options, or IPv6's
/// fixed header, then the ports).
pub(super) fn tuple(f: &[u8]) -> AnyFlow {
    let port = |at: usize| u16::from_be_bytes([f[at], f[at + 1]]);
    if f[12..14] == [0x08, 0x00] {
        let a = |at: usize| Ipv4Addr::new(f[at], f[at + 1], f[at + 2], f[at + 3]);
        AnyFlow::V4(FlowTuple {
            saddr: a(26),
            daddr: a(30),
            sport: port(34),
            dport: port(36),
            proto: f[23],
        })
    } else {
        let a = |at: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&f[at..at + 16]).unwrap());
        AnyFlow::V6(FlowTuple {
            saddr: a(22),
            daddr: a(38),
            sport: port(54),
            dport: port(56),
            proto: f[20],
        })
    }
}
