//! How a director takes part in HA: its address, its peers, the key,
//! the timing, the track conditions and the witness, as the daemon's
//! options give them.

use super::track;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// How a director takes part.
#[derive(Debug, Clone)]
pub struct HaConfig {
    /// This director's own address, whence its heartbeats and sync go:
    /// of the peers' family (one family per group).
    pub me: IpAddr,
    pub peers: Vec<IpAddr>,
    pub port: u16,
    pub priority: u8,
    pub key: Vec<u8>,
    pub interval: Duration,
    /// Heartbeats missed before a peer counts as gone.
    pub dead_after: u32,
    /// A higher-priority director takes the VIPs from a lower one that
    /// holds them (off: it waits until that one fails).
    pub preempt: bool,
    /// How long a higher-priority director waits, once it has the
    /// holder's connection table, before it takes the VIPs.
    pub preempt_delay: Duration,
    pub tracks: Vec<track::Track>,
    /// Run by `sh -c` on every change of state, with the new state
    /// (ACTIVE, BACKUP or FAULT) and the priority as `$1` and `$2`.
    pub notify: Option<String>,
    /// A third voter (`uvs witness`): with it a director holds the VIPs
    /// only while it counts a majority ([`witness`]).
    pub witness: Option<SocketAddr>,
}

impl HaConfig {
    /// How long a peer may stay silent before it counts as gone.
    pub fn dead(&self) -> Duration {
        self.interval * self.dead_after
    }
}
