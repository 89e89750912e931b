//! What `uvs ha` shows (text or JSON): the role, the peers as heard, the
//! witness, the sync and every counter. The text is formatted with the
//! other listings (`admin::format`).

use super::{sync, track};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};

/// Counters shown by `uvs ha`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaCounters {
    pub sent: u64,
    pub received: u64,
    pub bad_mac: u64,
    pub malformed: u64,
    pub replayed: u64,
    pub unknown_sender: u64,
    /// Times this director announced its VIPs again because another
    /// director had held them or had been out of reach.
    pub reannounced: u64,
}

/// The witness as `uvs ha` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessStatus {
    pub addr: SocketAddr,
    pub live: bool,
    pub heard_ms_ago: Option<u64>,
    /// Its vote is this director's (and its lease has not run out).
    pub votes_for_us: bool,
    /// The director it says has its vote.
    pub grantee: Option<IpAddr>,
    /// This director, its peers and the witness that count now, of all.
    pub votes: u32,
    pub voters: u32,
    pub received: u64,
    pub bad_mac: u64,
    pub malformed: u64,
    pub replayed: u64,
}

/// One peer as `uvs ha` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub addr: IpAddr,
    pub live: bool,
    pub priority: u8,
    pub active: bool,
    /// Milliseconds since its last heartbeat (none yet: `None`).
    pub heard_ms_ago: Option<u64>,
    /// It does not hear us (its last heard sequence number lags).
    pub hears_us: bool,
    /// Heartbeats each way: the last sequence number heard from it, and
    /// the last of ours it says it heard (ours: `HaStatus::seq`).
    pub heard_seq: u64,
    pub heard_our_seq: u64,
    pub ready: bool,
    /// Its sync stream as applied here: the last sequence number applied,
    /// the highest seen, and how far behind that is.
    pub sync_applied: u64,
    pub sync_highest: u64,
    pub sync_lag: u64,
    /// This director has its full table (a resync completed, none lost
    /// since).
    pub synced: bool,
    /// Its last heartbeat said it hears the witness (with one only).
    #[serde(default)]
    pub hears_witness: bool,
}

/// `uvs ha`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HaStatus {
    pub role: String,
    /// The configured priority, and the one in effect after the track
    /// conditions.
    pub priority: u8,
    pub effective_priority: u8,
    pub fault: Option<String>,
    pub preempt: bool,
    pub preempt_delay_ms: u64,
    /// This director could take the VIPs from a lower-priority holder.
    pub ready: bool,
    pub reason: String,
    /// The sequence number of this director's last heartbeat.
    pub seq: u64,
    pub peers: Vec<PeerStatus>,
    pub tracks: Vec<track::TrackStatus>,
    pub counters: HaCounters,
    pub sync: SyncStatus,
    #[serde(default)]
    pub witness: Option<WitnessStatus>,
}

impl HaStatus {
    /// `active`, `backup` or `fault`: the state of notify commands and
    /// logs ([`super::state_name`]), in lower case.
    pub fn state(&self) -> String {
        super::state_name(self.role == "active", self.fault.is_some()).to_ascii_lowercase()
    }
}

/// The sync side of `uvs ha`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncStatus {
    /// The last sequence number this director sent in its stream.
    pub sent_seq: u64,
    /// Records per second sent and received, over the last few seconds.
    pub sent_per_s: f64,
    pub received_per_s: f64,
    /// The last digest comparison (`ok`, `mismatch`, or `none yet`), and
    /// at which stream sequence number.
    pub digest: String,
    /// A full resync this director is sending, if one is under way.
    pub resync: Option<String>,
    pub counters: sync::SyncCounters,
}
