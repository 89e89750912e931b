//! What an IPv6 frame is to the director: neighbour discovery for a VIP
//! (`ndp.rs`), or the kernel's. The extension-header chain is walked once
//! here, bounded (`wire::ipv6`); a frame to a VIP whose chain is refused
//! is dropped and counted, never followed past its end.

use super::Dataplane;
use crate::io::{PacketIo, RxMeta};
use crate::lvs::stats::DataplaneCounters;
use crate::wire::{EthernetFrame, Ipv6Packet, icmpv6, ip_proto};

impl Dataplane {
    /// Checks an IPv6 frame's header and extension headers and hands it
    /// to its handler. The Ethernet header was checked on the way in.
    pub(super) fn handle_ipv6<I: PacketIo>(&mut self, io: &mut I, frame: &mut [u8], meta: RxMeta) {
        let eth = EthernetFrame::new_unchecked(&*frame);
        let src_mac = eth.src_addr();
        let Ok(ip) = Ipv6Packet::new_checked(eth.payload()) else {
            DataplaneCounters::bump(&self.counters.malformed);
            return;
        };
        let upper = match ip.upper_layer() {
            Ok(u) => u,
            Err(_) => {
                if self.table.is_vip6(ip.dst_addr()) {
                    DataplaneCounters::bump(&self.counters.ext_headers_dropped);
                }
                return;
            }
        };
        if upper.protocol == ip_proto::ICMPV6 && upper.frag.is_none() {
            let kind = ip.upper_payload(&upper).first().copied();
            if matches!(
                kind,
                Some(icmpv6::TYPE_NEIGHBOR_SOLICIT | icmpv6::TYPE_NEIGHBOR_ADVERT)
            ) {
                self.handle_ndp(io, &ip, src_mac, meta.link);
            }
        }
    }
}
