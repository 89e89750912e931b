//! Software segmentation of TCP super-frames (what the kernel's GSO
//! does): a sender with TSO on hands the director frames of up to 64 KiB
//! that no interface could send as they are. IPv4 and IPv6 differ only in
//! the IP header each segment gets (`Ip`); the cutting is one loop.

use crate::wire::checksum;
use crate::wire::ipv6::{self, Ipv6Packet};
use crate::wire::tcp::{self, TcpPacket};
use crate::wire::{Error, EtherType, EthernetFrame, Ipv4Packet, Result, ethernet, ip_proto};

/// A super-frame's IP header, as each segment's is set, and its
/// addresses' share of the TCP checksum (the pseudo-header without the
/// length), the same for every segment.
#[derive(Clone, Copy)]
enum Ip {
    /// The first segment's IP id (the rest count up from it).
    V4 { id: u16, pseudo: u64 },
    /// No extension headers (a TCP super-frame from Linux has none).
    V6 { pseudo: u64 },
}

/// Cuts `frame` (Ethernet + IPv4 or IPv6 + TCP) into segments carrying at
/// most `mss` payload bytes each. Every segment is built in `out` and
/// handed to `emit` with correct lengths, IP ids (IPv4), sequence
/// numbers, flags and checksums. Returns the number of segments.
pub fn segment_tcp(
    frame: &[u8],
    mss: usize,
    out: &mut [u8],
    emit: impl FnMut(&mut [u8]),
) -> Result<usize> {
    let eth = EthernetFrame::new_checked(frame)?;
    match eth.ethertype() {
        EtherType::IPV6 => {
            let ip = Ipv6Packet::new_checked(eth.payload())?;
            if ip.next_header() != ip_proto::TCP {
                return Err(Error::Malformed);
            }
            let end = ethernet::HEADER_LEN + ipv6::HEADER_LEN + ip.payload_len();
            let pseudo = checksum::pseudo_header_v6(ip.src_addr(), ip.dst_addr(), ip_proto::TCP, 0);
            cut(
                frame,
                (ipv6::HEADER_LEN, end),
                Ip::V6 { pseudo },
                mss,
                out,
                emit,
            )
        }
        _ => {
            let ip = Ipv4Packet::new_checked(eth.payload())?;
            if ip.protocol() != ip_proto::TCP {
                return Err(Error::Malformed);
            }
            let end = ethernet::HEADER_LEN + ip.total_len();
            let pseudo = checksum::pseudo_header(ip.src_addr(), ip.dst_addr(), ip_proto::TCP, 0);
            let v4 = Ip::V4 {
                id: ip.ident(),
                pseudo,
            };
            cut(frame, (ip.header_len(), end), v4, mss, out, emit)
        }
    }
}

/// The loop both families share: `ip_hl` and `end` locate the IP header's
/// length and the packet's end in `frame`.
fn cut(
    frame: &[u8],
    (ip_hl, end): (usize, usize),
    ip: Ip,
    mss: usize,
    out: &mut [u8],
    mut emit: impl FnMut(&mut [u8]),
) -> Result<usize> {
    const ETH: usize = ethernet::HEADER_LEN;
    let tcp = TcpPacket::new_checked(frame.get(ETH + ip_hl..end).ok_or(Error::Truncated)?)?;
    if mss == 0 {
        return Err(Error::Malformed);
    }
    let tcp_hl = tcp.header_len();
    let hl = ETH + ip_hl + tcp_hl;
    if out.len() < hl + mss.min(end - hl) {
        return Err(Error::Truncated);
    }
    let payload = &frame[hl..end];
    let (seq0, flags0) = (tcp.seq_number(), tcp.flags());
    let chunks = payload.len().div_ceil(mss).max(1);
    for i in 0..chunks {
        let lo = (i * mss).min(payload.len());
        let hi = ((i + 1) * mss).min(payload.len());
        let chunk = &payload[lo..hi];
        let seg_len = hl + chunk.len();
        out[..hl].copy_from_slice(&frame[..hl]);
        out[hl..seg_len].copy_from_slice(chunk);
        // The copied header still says the super-frame's length: set the
        // segment's (at most 64 KiB, so it fits 16 bits); the header and
        // the new length lie inside `l3`, as checked above.
        let l3 = &mut out[ETH..seg_len];
        let tcp_len = (tcp_hl + chunk.len()) as u32;
        let pseudo = match ip {
            Ip::V4 { id, pseudo } => {
                let mut p = Ipv4Packet::new_unchecked(&mut *l3);
                p.set_total_len((ip_hl + tcp_len as usize) as u16);
                p.set_ident(id.wrapping_add(i as u16));
                p.fill_checksum();
                pseudo
            }
            Ip::V6 { pseudo } => {
                Ipv6Packet::new_unchecked(&mut *l3).set_payload_len(tcp_len as u16);
                pseudo
            }
        } + u64::from(tcp_len);
        let seg = &mut l3[ip_hl..];
        let mut t = TcpPacket::new_unchecked(&mut *seg);
        t.set_seq_number(seq0.wrapping_add((i * mss) as u32));
        let mut f = flags0;
        if i + 1 < chunks {
            f &= !(tcp::flags::FIN | tcp::flags::PSH);
        }
        if i > 0 {
            f &= !tcp::flags::CWR;
        }
        t.set_flags(f);
        t.set_checksum(0);
        let acc = pseudo + checksum::sum(seg);
        TcpPacket::new_unchecked(&mut *seg).set_checksum(checksum::finish(acc));
        emit(&mut out[..seg_len]);
    }
    Ok(chunks)
}
