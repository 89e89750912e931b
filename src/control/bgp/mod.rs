//! Routes to the VIPs through the operator's BIRD 2 (docs/scale-out.md):
//! which VIPs this director should announce now (`decide`, pure), the
//! file of static routes BIRD includes (`conf`), and BIRD's control
//! socket (`bird`). uvs speaks no BGP itself: BIRD holds the sessions,
//! the timers and the routers' policy; uvs only says what to announce.

pub mod bird;
pub mod conf;
pub mod decide;

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::io;
use std::os::fd::OwnedFd;
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

/// Ties BIRD's routes to this process: opens the TUN device every route
/// goes through (`conf::TETHER`), which the kernel deletes when the
/// process ends however it ends, so BIRD withdraws a dead director's
/// VIPs at once. A director starting afresh (`fresh`: no handoff) first
/// empties the file and has BIRD read it, so a file left by an earlier
/// uvs is not announced the moment the device is up, before this one
/// forwards; one taking over leaves the routes to the old one's device,
/// which it now shares.
pub async fn tether(cfg: &BgpConfig, fresh: bool) -> io::Result<OwnedFd> {
    if fresh {
        conf::write_vips_file(&cfg.vips_file, &BTreeSet::new())
            .map_err(|e| io::Error::other(format!("{}: {e}", cfg.vips_file.display())))?;
        // BIRD down: it reads the emptied file when it starts.
        if let Err(e) = bird::command(&cfg.socket, "configure").await {
            tracing::warn!("BGP: {e}; BIRD reads the emptied file when it starts");
        }
    }
    crate::host::sys::open_shared_tun(conf::TETHER)
}
