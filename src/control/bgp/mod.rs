//! Routes to the VIPs through the operator's BIRD 2 (docs/scale-out.md):
//! which VIPs this director should announce now (`decide`, pure), the
//! file of static routes BIRD includes (`conf`), and BIRD's control
//! socket (`bird`). uvs speaks no BGP itself: BIRD holds the sessions,
//! the timers and the routers' policy; uvs only says what to announce.

pub mod bird;
pub mod conf;
pub mod decide;

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// How this director drives BIRD (`--bgp-socket`, `--bgp-vips-file`,
/// `--bgp-drain-delay`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpConfig {
    /// BIRD's control socket (`bird -s`).
    pub socket: PathBuf,
    /// The file of static routes that bird.conf includes.
    pub vips_file: PathBuf,
    /// On SIGTERM: how long the data plane keeps forwarding after the
    /// routes are withdrawn, while the routers move the flows.
    pub drain_delay: Duration,
}

/// What `uvs status` shows of the speaker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpStatus {
    /// BIRD's control socket answered the last look (once a second).
    pub speaker_up: bool,
    /// BIRD's BGP protocols, and how many are Established.
    pub sessions: u64,
    pub established: u64,
    /// VIPs in the file BIRD last accepted (`configure` succeeded).
    pub announced: u64,
    /// VIPs configured but withheld now, and why (the first reason).
    pub withheld: u64,
    pub reason: Option<String>,
}
