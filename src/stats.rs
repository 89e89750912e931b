//! Counters the data plane bumps and the control plane reads. They live
//! behind `Arc`s that survive table republication, so `-L --stats` keeps
//! counting across configuration changes, as in IPVS.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

/// Per-service or per-real-server traffic counters (ipvsadm --stats).
#[derive(Debug, Default)]
pub struct Stats {
    pub conns: AtomicU64,
    pub inpkts: AtomicU64,
    pub outpkts: AtomicU64,
    pub inbytes: AtomicU64,
    pub outbytes: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
}

impl Stats {
    pub fn count_in(&self, bytes: usize) {
        self.inpkts.fetch_add(1, Relaxed);
        self.inbytes.fetch_add(bytes as u64, Relaxed);
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
    }
}

/// A real server's counters: traffic plus the active/inactive connection
/// counts that `-L` shows and the lc/wlc schedulers read.
#[derive(Debug, Default)]
pub struct DestState {
    pub stats: Stats,
    pub active: AtomicU32,
    pub inactive: AtomicU32,
}

impl DestState {
    pub fn active(&self) -> u32 {
        self.active.load(Relaxed)
    }

    pub fn inactive(&self) -> u32 {
        self.inactive.load(Relaxed)
    }
}

/// Director-wide data-plane counters, mostly for diagnosis: why frames were
/// dropped or passed to the kernel.
#[derive(Debug, Default)]
pub struct DataplaneCounters {
    pub rx_frames: AtomicU64,
    pub forwarded: AtomicU64,
    pub arp_replies: AtomicU64,
    pub malformed: AtomicU64,
    pub fragments_dropped: AtomicU64,
    pub no_conn_dropped: AtomicU64,
    pub no_dest: AtomicU64,
    pub ttl_expired: AtomicU64,
    pub gso_segmented: AtomicU64,
    pub csum_completed: AtomicU64,
    pub tx_errors: AtomicU64,
    pub conn_table_full: AtomicU64,
}

impl DataplaneCounters {
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }

    /// Name/value pairs for `uvs` diagnostics.
    pub fn pairs(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("rx_frames", self.rx_frames.load(Relaxed)),
            ("forwarded", self.forwarded.load(Relaxed)),
            ("arp_replies", self.arp_replies.load(Relaxed)),
            ("malformed", self.malformed.load(Relaxed)),
            ("fragments_dropped", self.fragments_dropped.load(Relaxed)),
            ("no_conn_dropped", self.no_conn_dropped.load(Relaxed)),
            ("no_dest", self.no_dest.load(Relaxed)),
            ("ttl_expired", self.ttl_expired.load(Relaxed)),
            ("gso_segmented", self.gso_segmented.load(Relaxed)),
            ("csum_completed", self.csum_completed.load(Relaxed)),
            ("tx_errors", self.tx_errors.load(Relaxed)),
            ("conn_table_full", self.conn_table_full.load(Relaxed)),
        ]
    }
}
