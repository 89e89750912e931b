//! Software segmentation of TCP/IPv4 super-frames (what the kernel's GSO
//! does): a sender with TSO on hands the director frames of up to 64 KiB
//! that no interface could send as they are.

use crate::wire::checksum;
use crate::wire::tcp::{self, TcpPacket};
use crate::wire::{Error, EthernetFrame, Ipv4Packet, Result, ethernet, ip_proto};

/// Cuts `frame` (Ethernet + IPv4 + TCP) into segments carrying at most
/// `mss` payload bytes each. Every segment is built in `out` and handed to
/// `emit` with correct lengths, IP ids, sequence numbers, flags and
/// checksums. Returns the number of segments.
pub fn segment_tcpv4(
    frame: &[u8],
    mss: usize,
    out: &mut [u8],
    mut emit: impl FnMut(&mut [u8]),
) -> Result<usize> {
    let eth = EthernetFrame::new_checked(frame)?;
    let ip = Ipv4Packet::new_checked(eth.payload())?;
    if ip.protocol() != ip_proto::TCP || mss == 0 {
        return Err(Error::Malformed);
    }
    let tcp = TcpPacket::new_checked(ip.payload())?;
    let ip_hl = ip.header_len();
    let tcp_hl = tcp.header_len();
    let hl = ethernet::HEADER_LEN + ip_hl + tcp_hl;
    let end = ethernet::HEADER_LEN + ip.total_len();
    if out.len() < hl + mss.min(end - hl) {
        return Err(Error::Truncated);
    }
    let payload = &frame[hl..end];
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let (id0, seq0, flags0) = (ip.ident(), tcp.seq_number(), tcp.flags());
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
        let mut ip = Ipv4Packet::new_unchecked(&mut out[ethernet::HEADER_LEN..seg_len]);
        ip.set_total_len((ip_hl + tcp_hl + chunk.len()) as u16);
        ip.set_ident(id0.wrapping_add(i as u16));
        ip.fill_checksum();
        let seg = ip.payload_mut();
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
        let acc =
            checksum::pseudo_header(src, dst, ip_proto::TCP, seg.len() as u32) + checksum::sum(seg);
        TcpPacket::new_unchecked(&mut *seg).set_checksum(checksum::finish(acc));
        emit(&mut out[..seg_len]);
    }
    Ok(chunks)
}
