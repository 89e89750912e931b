//! What one director knows of one peer: its last heartbeat, since when it
//! is heard without a break, and what that heartbeat said.

use super::fresh::Fresh;
use super::msg::Heartbeat;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// What is known of one peer.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: IpAddr,
    pub(super) last: Fresh,
    pub(super) heard_at: Option<Instant>,
    /// Since when it has been heard without a break (or since its
    /// restart): a peer that has just come cannot have heard us yet.
    pub(super) live_since: Option<Instant>,
    pub priority: u8,
    pub active: bool,
    /// It may take the VIPs from us (preemption).
    pub ready: bool,
    /// The last of our sequence numbers it says it heard, and ours when
    /// that heartbeat arrived: their distance is how far behind it hears
    /// us. (Against our sequence now, a peer whose heartbeats stopped
    /// coming would look deaf before it looks gone, and a director cut
    /// both ways would step aside for a peer it cannot hear either.)
    pub heard_our_seq: u64,
    pub(super) our_seq_then: u64,
    /// Its last heartbeat said it hears the witness.
    pub hears_witness: bool,
}

impl Peer {
    pub fn new(addr: IpAddr) -> Peer {
        Peer {
            addr,
            last: Fresh::default(),
            heard_at: None,
            live_since: None,
            priority: 0,
            active: false,
            ready: false,
            heard_our_seq: 0,
            our_seq_then: 0,
            hears_witness: false,
        }
    }

    /// Takes a heartbeat if it moves this peer's (boot, sequence) forward:
    /// a replay (an old or repeated message) is refused. A new boot is
    /// taken when its clock is later than the last message's. Whether it
    /// is heard again (first, after a loss, or after a restart).
    pub fn accept(
        &mut self,
        h: &Heartbeat,
        now: Instant,
        dead: Duration,
        our_seq: u64,
    ) -> Accepted {
        let boot = self.last.boot();
        if !self.last.accept(h.boot, h.seq, h.sent_ms) {
            return Accepted::Replayed;
        }
        let again = boot != Some(h.boot) || !self.live(now, dead);
        if again {
            self.live_since = Some(now);
        }
        self.heard_at = Some(now);
        self.priority = h.priority;
        self.active = h.active;
        self.ready = h.ready;
        self.heard_our_seq = h.heard_seq;
        self.our_seq_then = our_seq;
        self.hears_witness = h.hears_witness;
        match again {
            true => Accepted::Again,
            false => Accepted::Fresh,
        }
    }

    pub fn seq(&self) -> u64 {
        self.last.seq()
    }

    /// The boot id of its current run.
    pub fn boot(&self) -> Option<u64> {
        self.last.boot()
    }

    pub fn live(&self, now: Instant, dead: Duration) -> bool {
        self.heard_at.is_some_and(|t| now.duration_since(t) < dead)
    }

    /// How many of our heartbeats it had missed by its last one.
    pub(super) fn lag(&self) -> u64 {
        self.our_seq_then.saturating_sub(self.heard_our_seq)
    }
}

/// What became of a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// The next one of a peer heard without a break.
    Fresh,
    /// A peer heard again: for the first time, after a silence of a
    /// dead interval, or in a new run.
    Again,
    /// Old or repeated.
    Replayed,
}
