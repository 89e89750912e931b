//! ARP for the VIPs: the director answers requests for a VIP on the link
//! they were asked on (the VIP is not configured on the director, so the
//! kernel would not), and announces a VIP that appears with a gratuitous
//! ARP on every link. With `--announce routed` it does neither: the VIPs
//! come by routes, but another host's claim on a VIP is still noticed.

use super::Dataplane;
use crate::io::PacketIo;
use crate::lvs::stats::DataplaneCounters;
use crate::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetFrame, MacAddr, arp, ethernet,
};
use std::net::{IpAddr, Ipv4Addr};

const ETH: usize = ethernet::HEADER_LEN;
/// A VIP conflict is logged at most this often (every frame is counted).
const CONFLICT_LOG_EVERY_MS: u64 = 10_000;

impl Dataplane {
    /// Answers ARP requests for VIPs, on the link they were asked on, by
    /// turning the request into the reply in place.
    pub(super) fn handle_arp<I: PacketIo>(&mut self, io: &mut I, frame: &mut [u8], link: u8) {
        let Ok(p) = ArpPacket::new_checked(&frame[ETH..]) else {
            return;
        };
        let Ok(req) = ArpRepr::parse(&p) else {
            return;
        };
        // A backup director stays silent: the active peer owns the VIPs
        // (its announcements are not conflicts).
        if self.table.standby {
            return;
        }
        if self.table.is_vip(req.sender_ip) && !self.links.iter().any(|l| l.mac == req.sender_hw) {
            self.vip_claimed(req.sender_ip.into(), req.sender_hw, link);
            return;
        }
        // Routed VIPs are not on the link: the routers never ask, and an
        // answer would pull another host's traffic here.
        if self.routed
            || req.operation != ArpOperation::Request
            || !self.table.is_vip(req.target_ip)
        {
            return;
        }
        // A gratuitous announcement by someone else is not a question.
        if req.sender_ip == req.target_ip {
            return;
        }
        let mac = self.link(link).mac;
        let reply = ArpRepr {
            operation: ArpOperation::Reply,
            sender_hw: mac,
            sender_ip: req.target_ip,
            target_hw: req.sender_hw,
            target_ip: req.sender_ip,
        };
        let mut eth = EthernetFrame::new_unchecked(&mut *frame);
        eth.set_dst_addr(req.sender_hw);
        eth.set_src_addr(mac);
        if reply.emit(eth.payload_mut()).is_ok() {
            match io.send(link, frame) {
                Ok(()) => DataplaneCounters::bump(&self.counters.arp_replies),
                Err(_) => DataplaneCounters::bump(&self.counters.tx_errors),
            }
        }
    }

    /// Another host says it has one of our VIPs (its ARP carries the VIP
    /// as sender). Counted, and logged loudly at most every 10 s; never
    /// answered with ARP of our own, since two hosts re-announcing an
    /// address at each other is a storm that breaks it for everyone.
    pub(super) fn vip_claimed(&mut self, vip: IpAddr, mac: MacAddr, link: u8) {
        DataplaneCounters::bump(&self.counters.vip_conflicts);
        let now = self.now_ms();
        if self
            .conflict_logged_ms
            .is_some_and(|t| now < t + CONFLICT_LOG_EVERY_MS)
        {
            return;
        }
        self.conflict_logged_ms = Some(now);
        tracing::warn!(
            "VIP {vip} is claimed by {mac} on link {link}: another host uses this \
             address, or a real server announces the VIP (check arp_ignore=1 and arp_announce=2 \
             there, or its IPv6 side: `uvs audit`). uvs does not fight over it; clients may \
             reach that host instead. {} such ARP or neighbour advertisement frames so far \
             (vip_conflicts in `uvs status`)",
            self.counters
                .vip_conflicts
                .load(std::sync::atomic::Ordering::Relaxed)
        );
    }

    /// Announces a VIP on every link.
    pub(super) fn send_garp<I: PacketIo>(&mut self, io: &mut I, vip: Ipv4Addr) {
        for (i, link) in self.links.iter().enumerate() {
            let f = &mut self.scratch[..ETH + arp::PACKET_LEN];
            ethernet::emit_header(f, MacAddr::BROADCAST, link.mac, EtherType::ARP);
            let r = ArpRepr {
                operation: ArpOperation::Request,
                sender_hw: link.mac,
                sender_ip: vip,
                target_hw: MacAddr::ZERO,
                target_ip: vip,
            };
            if r.emit(&mut f[ETH..]).is_ok() && io.send(i as u8, f).is_err() {
                DataplaneCounters::bump(&self.counters.tx_errors);
            }
        }
    }
}
