//! Neighbour discovery for the IPv6 VIPs, as `arp.rs` is ARP for the IPv4
//! ones. The director answers solicitations for a VIP on the link they
//! came in on; the VIP is not configured on the director, so the kernel
//! would not answer. It announces a new VIP with an unsolicited
//! advertisement (override set) on every link, where it sends
//! gratuitous ARP for IPv4. It never answers for an address that is not
//! a VIP: those solicitations are the kernel's. With `--announce routed`
//! it neither answers nor announces (the VIPs come by routes).

use super::Dataplane;
use crate::io::PacketIo;
use crate::lvs::stats::DataplaneCounters;
use crate::wire::{Ipv6Packet, MacAddr, NdpRepr, ndp};
use std::net::Ipv6Addr;

impl Dataplane {
    /// A neighbour solicitation or advertisement (already known to be
    /// ICMPv6 type 135 or 136). `ndp::NdpRepr::parse` applies RFC 4861's
    /// checks: hop limit 255, checksum, no fragment.
    pub(super) fn handle_ndp<I: PacketIo>(
        &mut self,
        io: &mut I,
        ip: &Ipv6Packet<&[u8]>,
        src_mac: MacAddr,
        link: u8,
    ) {
        // A backup director stays silent: the active peer owns the VIPs.
        if self.table.standby {
            return;
        }
        let Ok(msg) = NdpRepr::parse(ip) else {
            return;
        };
        match msg {
            // Someone else says it has a VIP (our own frames are not
            // received: `Outgoing` is skipped).
            NdpRepr::Advert { target, .. }
                if self.table.is_vip6(target) && !self.links.iter().any(|l| l.mac == src_mac) =>
            {
                self.vip_claimed(target.into(), src_mac, link);
            }
            NdpRepr::Solicit {
                target,
                source_lladdr,
            } if self.table.is_vip6(target) && !self.routed => {
                let mac = self.link(link).mac;
                // A solicitation from a neighbour names its MAC; a DAD
                // probe (from ::) is answered to all nodes by the builder.
                let to = source_lladdr.unwrap_or(src_mac);
                let out = &mut self.scratch[..];
                match ndp::solicited_advert(out, mac, target, ip.src_addr(), to) {
                    Ok(n) => match io.send(link, &self.scratch[..n]) {
                        Ok(()) => DataplaneCounters::bump(&self.counters.nd_replies),
                        Err(_) => DataplaneCounters::bump(&self.counters.tx_errors),
                    },
                    Err(_) => DataplaneCounters::bump(&self.counters.malformed),
                }
            }
            _ => {}
        }
    }

    /// Announces an IPv6 VIP on every link: an unsolicited advertisement
    /// with the override flag, so neighbours that cached another MAC for
    /// it (the previous holder's) take this one.
    pub(super) fn send_unsolicited_na<I: PacketIo>(&mut self, io: &mut I, vip: Ipv6Addr) {
        for (i, link) in self.links.iter().enumerate() {
            let sent = ndp::unsolicited_advert(&mut self.scratch[..], link.mac, vip)
                .map(|n| io.send(i as u8, &self.scratch[..n]));
            if !matches!(sent, Ok(Ok(()))) {
                DataplaneCounters::bump(&self.counters.tx_errors);
            }
        }
    }
}
