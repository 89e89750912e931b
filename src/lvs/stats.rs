//! Counters the data plane bumps and the control plane reads. They live
//! behind `Arc`s that survive table republication, so `-L --stats` keeps
//! counting across configuration changes, as in IPVS.

use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

/// Per-service or per-real-server traffic counters (ipvsadm --stats), and
/// the rate estimator behind --rate.
#[derive(Debug, Default)]
pub struct Stats {
    pub conns: AtomicU64,
    pub inpkts: AtomicU64,
    pub outpkts: AtomicU64,
    pub inbytes: AtomicU64,
    pub outbytes: AtomicU64,
    est: Mutex<Estimator>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
}

/// Rates as `ipvsadm --rate` shows them: per second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rates {
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}

/// IPVS's estimator (ip_vs_est.c): sampled every 2 s, each rate an
/// exponentially weighted average with weight 1/4, kept in fixed point
/// (packets and connections scaled by 2^10, bytes by 2^5), so uvs shows
/// the same numbers the kernel would.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimator {
    last: StatsSnapshot,
    cps: i64,
    inpps: i64,
    outpps: i64,
    inbps: i64,
    outbps: i64,
}

/// The estimator's sampling period in seconds.
pub const ESTIMATOR_PERIOD_SECS: u64 = 2;

impl Estimator {
    /// One 2-second tick with the current totals.
    pub fn tick(&mut self, now: StatsSnapshot) {
        fn ewma(avg: &mut i64, new: u64, old: u64, shift: u32) {
            let rate = (new.wrapping_sub(old) << shift) as i64;
            *avg += (rate - *avg) >> 2;
        }
        let l = self.last;
        ewma(&mut self.cps, now.conns, l.conns, 9);
        ewma(&mut self.inpps, now.inpkts, l.inpkts, 9);
        ewma(&mut self.outpps, now.outpkts, l.outpkts, 9);
        ewma(&mut self.inbps, now.inbytes, l.inbytes, 4);
        ewma(&mut self.outbps, now.outbytes, l.outbytes, 4);
        self.last = now;
    }

    pub fn rates(&self) -> Rates {
        let pkt = |v: i64| (v.max(0) as u64 + 0x1ff) >> 10;
        let byte = |v: i64| (v.max(0) as u64 + 0xf) >> 5;
        Rates {
            cps: pkt(self.cps),
            inpps: pkt(self.inpps),
            outpps: pkt(self.outpps),
            inbps: byte(self.inbps),
            outbps: byte(self.outbps),
        }
    }
}

impl Stats {
    pub fn count_in(&self, bytes: usize) {
        self.inpkts.fetch_add(1, Relaxed);
        self.inbytes.fetch_add(bytes as u64, Relaxed);
    }

    /// Packets another path forwarded for a connection (the XDP
    /// program's share of an offloaded flow), counted when uvs takes the
    /// flow back.
    pub fn count_in_many(&self, packets: u64, bytes: u64) {
        self.inpkts.fetch_add(packets, Relaxed);
        self.inbytes.fetch_add(bytes, Relaxed);
    }

    /// A reply the director translated (NAT only: in DR and TUN replies
    /// bypass it, so OutPkts stay 0 as in IPVS).
    pub fn count_out(&self, bytes: usize) {
        self.outpkts.fetch_add(1, Relaxed);
        self.outbytes.fetch_add(bytes as u64, Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            conns: self.conns.load(Relaxed),
            inpkts: self.inpkts.load(Relaxed),
            outpkts: self.outpkts.load(Relaxed),
            inbytes: self.inbytes.load(Relaxed),
            outbytes: self.outbytes.load(Relaxed),
        }
    }

    /// Advances the rate estimator by one period.
    pub fn estimate(&self) {
        let now = self.snapshot();
        if let Ok(mut e) = self.est.lock() {
            e.tick(now);
        }
    }

    pub fn rates(&self) -> Rates {
        self.est.lock().map(|e| e.rates()).unwrap_or_default()
    }

    pub fn zero(&self) {
        for c in [
            &self.conns,
            &self.inpkts,
            &self.outpkts,
            &self.inbytes,
            &self.outbytes,
        ] {
            c.store(0, Relaxed);
        }
        // As ip_vs_zero_stats: the estimator restarts from the new zero.
        if let Ok(mut e) = self.est.lock() {
            *e = Estimator::default();
        }
    }
}

/// A real server's counters: traffic plus the active/inactive connection
/// counts that `-L` shows and the lc/wlc schedulers read.
#[derive(Debug, Default)]
pub struct DestState {
    pub stats: Stats,
    pub active: AtomicU32,
    pub inactive: AtomicU32,
    /// Persistence templates pointing at it (IPVS's `persistconns`).
    pub persistent: AtomicU32,
}

impl DestState {
    pub fn active(&self) -> u32 {
        self.active.load(Relaxed)
    }

    pub fn inactive(&self) -> u32 {
        self.inactive.load(Relaxed)
    }

    pub fn persistent(&self) -> u32 {
        self.persistent.load(Relaxed)
    }
}

/// Director-wide data-plane counters, mostly for diagnosis: why frames were
/// dropped or passed to the kernel.
#[derive(Debug, Default)]
pub struct DataplaneCounters {
    pub rx_frames: AtomicU64,
    pub forwarded: AtomicU64,
    pub arp_replies: AtomicU64,
    /// Neighbour advertisements answering solicitations for IPv6 VIPs.
    pub nd_replies: AtomicU64,
    pub malformed: AtomicU64,
    /// IPv6 frames to a VIP whose extension headers are too many, cut
    /// short or out of order (`wire::ipv6::ExtHeaderError`).
    pub ext_headers_dropped: AtomicU64,
    pub fragments_dropped: AtomicU64,
    pub no_conn_dropped: AtomicU64,
    pub no_dest: AtomicU64,
    pub ttl_expired: AtomicU64,
    pub gso_segmented: AtomicU64,
    /// Super-frames sent whole, for the kernel to segment after uvs.
    pub gso_passed: AtomicU64,
    pub csum_completed: AtomicU64,
    pub tx_errors: AtomicU64,
    pub conn_table_full: AtomicU64,
    /// "Fragmentation needed" (IPv4) and "packet too big" (IPv6) sent.
    pub frag_needed: AtomicU64,
    pub fragmented: AtomicU64,
    /// NAT replies translated back to the VIP.
    pub nat_replies: AtomicU64,
    /// ICMP errors about a connection passed on (and translated for NAT).
    pub icmp_related: AtomicU64,
    /// New NAT connections refused because another one has the same reply
    /// 5-tuple.
    pub nat_reply_clash: AtomicU64,
    /// Connections in the table now, and its limit (`--max-conns`).
    pub conns: AtomicU64,
    pub conns_limit: AtomicU64,
    /// Cheap entries (one packet, or an unfinished handshake) evicted,
    /// oldest first, to make room in a full table.
    pub conn_evictions: AtomicU64,
    /// Frames the packet sockets dropped before uvs read them
    /// (PACKET_STATISTICS): the director is not keeping up.
    pub rx_socket_drops: AtomicU64,
    /// Frames the XDP program steered to uvs's AF_XDP sockets (the rest of
    /// `rx_frames` came through the packet sockets).
    pub xdp_rx: AtomicU64,
    /// Frames of offloaded flows the XDP or tc program forwarded itself, and
    /// flows handed to it (Katran's split: docs/io.md).
    pub offload_forwarded: AtomicU64,
    pub offloads: AtomicU64,
    /// Flows the kernel program scheduled itself and uvs entered in its
    /// table, and those it could not enter (their real server left the
    /// table meanwhile, or the table refused them): taken back from the
    /// program, their next frame comes up to uvs.
    pub kernel_scheduled: AtomicU64,
    pub kernel_refused: AtomicU64,
    /// New flows (and establishments) the kernel program could not report
    /// because its ring was full: they came up to uvs instead.
    pub kernel_ring_full: AtomicU64,
    /// ICMP errors the director did not send because of the rate limits.
    pub icmp_rate_limited: AtomicU64,
    /// ARP from another host claiming one of the VIPs.
    pub vip_conflicts: AtomicU64,
    /// Connection changes queued for the peers (HA sync), and those lost
    /// because the queue was full (which starts a full resync).
    pub sync_events: AtomicU64,
    pub sync_overflows: AtomicU64,
    /// Turns of the data plane's loop (a frame, a wake-up or a timeout:
    /// at least one each `LOOP_IDLE_MAX_MS`), one store per turn: the
    /// systemd watchdog is fed only while every worker's advances
    /// (docs/systemd.md). Not listed: a liveness mark, not a figure.
    pub loops: AtomicU64,
}

/// The longest the data plane's loop waits for a frame or a wake-up
/// before it turns anyway, so that an idle loop still shows it is alive.
pub const LOOP_IDLE_MAX_MS: u64 = 1000;

impl DataplaneCounters {
    /// Counts one transmission: forwarded, or a transmit error.
    pub fn count_send(&self, r: std::io::Result<()>) {
        match r {
            Ok(()) => Self::bump(&self.forwarded),
            Err(_) => Self::bump(&self.tx_errors),
        }
    }

    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }

    /// Name/value pairs for `uvs` diagnostics.
    pub fn pairs(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("rx_frames", self.rx_frames.load(Relaxed)),
            ("forwarded", self.forwarded.load(Relaxed)),
            ("arp_replies", self.arp_replies.load(Relaxed)),
            ("nd_replies", self.nd_replies.load(Relaxed)),
            ("malformed", self.malformed.load(Relaxed)),
            (
                "ext_headers_dropped",
                self.ext_headers_dropped.load(Relaxed),
            ),
            ("fragments_dropped", self.fragments_dropped.load(Relaxed)),
            ("no_conn_dropped", self.no_conn_dropped.load(Relaxed)),
            ("no_dest", self.no_dest.load(Relaxed)),
            ("ttl_expired", self.ttl_expired.load(Relaxed)),
            ("gso_segmented", self.gso_segmented.load(Relaxed)),
            ("gso_passed", self.gso_passed.load(Relaxed)),
            ("csum_completed", self.csum_completed.load(Relaxed)),
            ("tx_errors", self.tx_errors.load(Relaxed)),
            ("conn_table_full", self.conn_table_full.load(Relaxed)),
            ("frag_needed", self.frag_needed.load(Relaxed)),
            ("fragmented", self.fragmented.load(Relaxed)),
            ("nat_replies", self.nat_replies.load(Relaxed)),
            ("icmp_related", self.icmp_related.load(Relaxed)),
            ("nat_reply_clash", self.nat_reply_clash.load(Relaxed)),
            ("conns", self.conns.load(Relaxed)),
            ("conns_limit", self.conns_limit.load(Relaxed)),
            ("conn_evictions", self.conn_evictions.load(Relaxed)),
            ("rx_socket_drops", self.rx_socket_drops.load(Relaxed)),
            ("xdp_rx", self.xdp_rx.load(Relaxed)),
            ("offload_forwarded", self.offload_forwarded.load(Relaxed)),
            ("offloads", self.offloads.load(Relaxed)),
            ("kernel_scheduled", self.kernel_scheduled.load(Relaxed)),
            ("kernel_refused", self.kernel_refused.load(Relaxed)),
            ("kernel_ring_full", self.kernel_ring_full.load(Relaxed)),
            ("icmp_rate_limited", self.icmp_rate_limited.load(Relaxed)),
            ("vip_conflicts", self.vip_conflicts.load(Relaxed)),
            ("sync_events", self.sync_events.load(Relaxed)),
            ("sync_overflows", self.sync_overflows.load(Relaxed)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimator_converges_like_the_kernel() {
        // A steady 100 conns/s and 1 MB/s: the average approaches the rate
        // geometrically (weight 1/4 per 2 s tick).
        let mut e = Estimator::default();
        let mut now = StatsSnapshot::default();
        let mut seen = Vec::new();
        for _ in 0..40 {
            now.conns += 200;
            now.inpkts += 2000;
            now.inbytes += 2_000_000;
            e.tick(now);
            seen.push(e.rates().cps);
        }
        assert_eq!(seen[0], 25, "first tick: a quarter of the rate");
        assert!(seen.windows(2).all(|w| w[0] <= w[1]));
        let r = e.rates();
        assert_eq!((r.cps, r.inpps), (100, 1000));
        assert!((999_000..=1_000_000).contains(&r.inbps), "{r:?}");
        // Traffic stops: the rates decay towards zero.
        for _ in 0..60 {
            e.tick(now);
        }
        assert_eq!(e.rates(), Rates::default());
    }
}
