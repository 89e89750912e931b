//! The way out: the router's hop (TTL), the MTU check, the change a
//! forwarding method makes (none for DR, NAT's rewrite, ICMP translation;
//! TUN's outer header is [`tunnel`](super::tunnel)), new MACs, unfinished checksums completed or
//! super-frames segmented, and the send. Also the ICMP errors the director
//! originates (time exceeded, port unreachable, fragmentation needed).

use super::Dataplane;
use super::classify::Layout;
use super::gso;
use super::nat;
use crate::io::{GsoTx, PacketIo, RxMeta};
use crate::lvs::stats::DataplaneCounters;
use crate::lvs::table::NextHop;
use crate::wire::End;
use crate::wire::icmp::{self, IcmpError};
use crate::wire::{EtherType, EthernetFrame, Ipv4Packet, checksum, ethernet, ip_proto};
use std::net::{Ipv4Addr, SocketAddrV4};

const ETH: usize = ethernet::HEADER_LEN;

/// What the director changes in a packet it forwards, besides the TTL.
#[derive(Clone, Copy)]
pub enum Change {
    /// DR: nothing.
    None,
    /// NAT: one end of a TCP or UDP packet becomes `to`.
    Nat { end: End, to: SocketAddrV4 },
    /// NAT: an ICMP error's `outer` end and its quoted packet's `inner`
    /// end become `to`.
    Icmp {
        outer: End,
        inner: End,
        to: SocketAddrV4,
    },
}

/// The length of a TCP super-frame's Ethernet, IP and TCP headers, if it
/// may go out whole on a link of `max` bytes per frame (Ethernet header
/// included): its checksum is partial at the TCP header and each segment
/// it stands for (headers plus the segment size) fits.
fn super_frame_headers(frame: &[u8], meta: RxMeta, max: usize) -> Option<u16> {
    let g = meta.gso?;
    let (start, offset) = meta.csum_partial?;
    let start = usize::from(start);
    if offset != 16 {
        return None;
    }
    let doff = usize::from(*frame.get(start + 12)? >> 4) * 4;
    let hdr = start + doff;
    (doff >= 20 && hdr < frame.len() && hdr + usize::from(g.size) <= max)
        .then(|| u16::try_from(hdr).ok())
        .flatten()
}

impl Dataplane {
    /// DR and NAT: the router's hop (TTL minus one; ICMP errors from
    /// `from`, or else the VIP the packet was sent to), the MTU checked
    /// before anything is rewritten (an error quotes what the sender sent,
    /// as IPVS checks before its DNAT), the `change`, then new MACs and the
    /// checksum finished or the super-frame segmented.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn forward_ip<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &mut [u8],
        meta: RxMeta,
        l: Layout,
        from: Option<Ipv4Addr>,
        change: Change,
        to: NextHop,
    ) {
        if !self.hop(io, frame, &l, meta.link, from) {
            return;
        }
        if self.too_big(io, frame, meta, &l, to.link, from) {
            return;
        }
        let mut ip = l.ip(frame);
        let changed = match change {
            Change::None => Ok(()),
            Change::Nat { end, to } => nat::rewrite(&mut ip, end, to, meta.csum_partial.is_some()),
            Change::Icmp { outer, inner, to } => nat::translate_icmp(&mut ip, outer, inner, to),
        };
        if changed.is_err() {
            DataplaneCounters::bump(&self.counters.malformed);
            return;
        }
        self.transmit(io, &mut frame[..l.ip_end()], meta, to);
    }

    /// A packet too big for the outgoing link that segmentation cannot fix
    /// (not a GSO super-frame) is dropped, as the kernel does; with DF set
    /// the sender learns the MTU ("fragmentation needed", from `from` or
    /// the VIP it was sent to).
    fn too_big<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &[u8],
        meta: RxMeta,
        l: &Layout,
        out: u8,
        from: Option<Ipv4Addr>,
    ) -> bool {
        let mtu = self.link(out).mtu;
        if l.ip_end() <= mtu as usize + ETH || meta.gso.is_some() {
            return false;
        }
        if l.df {
            let err = IcmpError::frag_needed(mtu);
            self.send_icmp_error(io, frame, l, meta.link, from, err);
            DataplaneCounters::bump(&self.counters.frag_needed);
        } else {
            DataplaneCounters::bump(&self.counters.malformed);
        }
        true
    }

    /// Sends a packet whose IP part is final to `to`: new MACs, and either
    /// the super-frame cut into segments that fit the link or the checksum
    /// finished.
    pub(super) fn transmit<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &mut [u8],
        meta: RxMeta,
        to: NextHop,
    ) {
        let link = self.link(to.link);
        {
            let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
            eth.set_dst_addr(to.mac);
            eth.set_src_addr(link.mac);
        }
        let max = link.mtu as usize + ETH;
        if let Some(g) = meta.gso.filter(|_| frame.len() > max) {
            if !g.tcpv4 && !g.tcpv6 {
                DataplaneCounters::bump(&self.counters.malformed);
                return;
            }
            // Whole, where the backend takes super-frames and the
            // segments they stand for fit this link: the kernel cuts them
            // after us, as its own forwarding would.
            if let Some(hdr) = super_frame_headers(frame, meta, max)
                && let Some(r) = io.send_gso(
                    to.link,
                    frame,
                    GsoTx {
                        gso: g,
                        csum: meta.csum_partial.unwrap_or_default(),
                        hdr_len: hdr,
                    },
                )
            {
                DataplaneCounters::bump(&self.counters.gso_passed);
                self.counters.count_send(r);
                return;
            }
            DataplaneCounters::bump(&self.counters.gso_segmented);
            // The least IP and TCP headers: 20 + 20, or 40 + 20.
            let least = if g.tcpv6 { 60 } else { 40 };
            let mss = usize::from(g.size)
                .min(max.saturating_sub(ETH + least))
                .max(1);
            let counters = &self.counters;
            let r = gso::segment_tcp(frame, mss, &mut self.scratch, |seg| {
                counters.count_send(io.send(to.link, seg))
            });
            if r.is_err() {
                DataplaneCounters::bump(&self.counters.malformed);
            }
            return;
        }
        if !self.finish_checksum(frame, meta) {
            return;
        }
        self.counters.count_send(io.send(to.link, frame));
    }

    /// The router's part of every forwarded packet: TTL ≤ 1 gets ICMP time
    /// exceeded (from `from`, or the VIP the packet was sent to) and false;
    /// otherwise the TTL drops by one, as IPVS does for every method.
    pub(super) fn hop<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &mut [u8],
        l: &Layout,
        link: u8,
        from: Option<Ipv4Addr>,
    ) -> bool {
        if l.ttl <= 1 {
            DataplaneCounters::bump(&self.counters.ttl_expired);
            self.send_icmp_error(io, frame, l, link, from, IcmpError::TTL_EXCEEDED);
            return false;
        }
        l.ip(frame).decrement_ttl();
        true
    }

    /// Completes an unfinished (CHECKSUM_PARTIAL) L4 checksum; false, and
    /// counted as malformed, when its offsets do not fit the packet.
    #[inline]
    pub(super) fn finish_checksum(&self, frame: &mut [u8], meta: RxMeta) -> bool {
        let Some((start, off)) = meta.csum_partial else {
            return true;
        };
        if !complete_checksum(frame, usize::from(start), usize::from(off)) {
            DataplaneCounters::bump(&self.counters.malformed);
            return false;
        }
        DataplaneCounters::bump(&self.counters.csum_completed);
        true
    }

    /// Finishes an unfinished checksum before a rewrite that recomputes the
    /// ICMP checksum; the returned metadata says it is finished.
    pub(super) fn complete_first(&self, frame: &mut [u8], meta: RxMeta) -> Option<RxMeta> {
        if meta.gso.is_some() {
            DataplaneCounters::bump(&self.counters.malformed);
            return None;
        }
        self.finish_checksum(frame, meta).then_some(RxMeta {
            csum_partial: None,
            ..meta
        })
    }

    /// Sends an ICMP error about `frame` back to its sender on the link it
    /// came from, from `from` or else the VIP it was addressed to (as the
    /// kernel does for a local VIP in IPVS). An unspecified `from` (a link
    /// without an address) sends nothing.
    pub(super) fn send_icmp_error<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &[u8],
        l: &Layout,
        link: u8,
        from: Option<Ipv4Addr>,
        err: IcmpError,
    ) {
        let quoted = &frame[ETH..l.ip_end()];
        let ip = Ipv4Packet::new_unchecked(quoted);
        // Never answer an ICMP error with one (RFC 1122 3.2.2).
        if ip.protocol() == ip_proto::ICMP {
            return;
        }
        let src = from.unwrap_or(ip.dst_addr());
        if src.is_unspecified() {
            return;
        }
        let per_dest = !err.is_frag_needed();
        if !self
            .icmp_limit
            .allow(ip.src_addr(), self.now_ms(), per_dest)
        {
            DataplaneCounters::bump(&self.counters.icmp_rate_limited);
            return;
        }
        let mac = self.link(link).mac;
        let out = &mut self.scratch;
        ethernet::emit_header(out, l.src_mac, mac, EtherType::IPV4);
        let dst = ip.src_addr();
        if let Ok(n) = icmp::emit_error(&mut out[ETH..], src, dst, err, quoted, l.ip_hl())
            && io.send(link, &out[..ETH + n]).is_err()
        {
            DataplaneCounters::bump(&self.counters.tx_errors);
        }
    }
}

/// Finishes a CHECKSUM_PARTIAL L4 checksum as skb_checksum_help does: the
/// field already holds the pseudo-header sum, so summing from `start` to
/// the end of the packet and complementing gives the final value.
pub fn complete_checksum(frame: &mut [u8], start: usize, offset: usize) -> bool {
    let end = frame.len();
    let at = start + offset;
    if start >= end || at + 2 > end {
        return false;
    }
    let c = checksum::finish(checksum::sum(&frame[start..end]));
    let c = if c == 0 { 0xffff } else { c };
    frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
    true
}
