//! The election: whether this director should hold the VIPs, as a pure
//! function of what it knows of its peers, itself and the witness.

use super::config::HaConfig;
use super::peer::Peer;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Whether a director that started at `started` still only listens: for
/// a full dead interval, so it cannot take the VIPs from a live peer it
/// has not heard yet, unless it has heard every peer since (then it
/// knows who holds them, and a director restarted within the dead
/// interval takes its peers' tables and the VIPs without waiting).
pub(super) fn listening(started: Instant, now: Instant, dead: Duration, peers: &[Peer]) -> bool {
    let heard_all = !peers.is_empty() && peers.iter().all(|p| p.heard_at.is_some());
    now.duration_since(started) < dead && !heard_all
}

/// The witness as the election sees it.
#[derive(Debug, Clone, Copy)]
pub struct WitnessVote {
    /// Heard within a dead interval.
    pub live: bool,
    /// Its vote is ours, within its lease.
    pub ours: bool,
    /// Who it says has the vote.
    pub grantee: Option<IpAddr>,
}

/// What the election says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Hold the VIPs.
    pub hold: bool,
    /// Among the directors this one should hold them: what it tells the
    /// witness, whose vote decides when the directors cannot hear each
    /// other.
    pub claim: bool,
    pub reason: String,
}

/// The election, as a pure function of what this director knows.
pub struct Election<'a> {
    pub cfg: &'a HaConfig,
    /// The priority in effect (track conditions applied), and why this
    /// director is in fault if it is.
    pub priority: u8,
    pub fault: Option<&'a str>,
    pub peers: &'a [Peer],
    pub active_now: bool,
    pub started: Instant,
    pub now: Instant,
    /// A director that has just started and waits for this live peer's
    /// connection table before it takes the VIPs.
    pub waiting_for: Option<IpAddr>,
    /// With a witness configured: what it says.
    pub witness: Option<WitnessVote>,
}

impl Election<'_> {
    pub(super) fn dead(&self) -> Duration {
        self.cfg.dead()
    }

    pub(super) fn hears_us(&self, p: &Peer) -> bool {
        // A peer heard for less than a dead interval may not have heard
        // us yet (it just started): it gets the benefit of the doubt.
        if p.live_since
            .is_none_or(|t| self.now.duration_since(t) < self.dead())
        {
            return true;
        }
        p.lag() <= u64::from(self.cfg.dead_after / 2).max(1)
    }

    fn live_peers(&self) -> impl Iterator<Item = &Peer> {
        let (now, dead) = (self.now, self.dead());
        self.peers.iter().filter(move |p| p.live(now, dead))
    }

    /// Whether this director should hold the VIPs, and why.
    pub fn decide(&self) -> (bool, String) {
        let v = self.verdict();
        (v.hold, v.reason)
    }

    /// The election among the directors, then the wait of a director
    /// that has just started for its peers' tables, then the witness.
    pub fn verdict(&self) -> Verdict {
        let (want, why) = self.among_directors();
        let not = |reason| Verdict {
            hold: false,
            claim: false,
            reason,
        };
        if !want {
            return not(why);
        }
        // A director that starts with an empty table does not take the
        // VIPs while a live peer may still have the connections (the one
        // that held them restarted, say): it takes that peer's table
        // first, for a bounded time.
        if let Some(a) = self.waiting_for.filter(|_| !self.active_now) {
            return not(format!(
                "starting: waiting for the connection table of peer {a}"
            ));
        }
        let hold = |reason| Verdict {
            hold: true,
            claim: true,
            reason,
        };
        let Some(w) = self.witness else {
            return hold(why);
        };
        let (votes, voters) = self.votes(&w);
        if 2 * votes > voters {
            return hold(why);
        }
        // The witness out of reach here and, by their last word, at every
        // peer: it was down before we lost each other, so run as without
        // one (a director cut from everything still heard it before).
        if !w.live && self.peers.iter().all(|p| !p.hears_witness) {
            return hold(format!(
                "{why} (the witness is out of reach here and at every peer: as without one)"
            ));
        }
        Verdict {
            hold: false,
            claim: true,
            reason: format!(
                "no majority ({votes} of {voters} votes): {}",
                match (w.live, w.grantee) {
                    (false, _) => "the witness is out of reach".to_string(),
                    (true, Some(g)) if g != self.cfg.me =>
                        format!("the witness's vote is with {g}"),
                    (true, _) => "waiting for the witness's vote".to_string(),
                }
            ),
        }
    }

    /// This director's votes (itself, the live peers, the witness's if
    /// it is ours) and the number of voters.
    pub fn votes(&self, w: &WitnessVote) -> (u32, u32) {
        let live = self.live_peers().count() as u32;
        (1 + live + u32::from(w.ours), 2 + self.peers.len() as u32)
    }

    /// The election among the directors it hears.
    fn among_directors(&self) -> (bool, String) {
        if let Some(why) = self.fault {
            return (false, format!("fault: {why}"));
        }
        if listening(self.started, self.now, self.dead(), self.peers) {
            return (false, "starting: listening for peers".into());
        }
        // Ties go to the higher address: IPv4 ones compare as numbers,
        // IPv6 ones by their bytes (one family per group).
        let rank = |prio: u8, addr: IpAddr| (prio, addr);
        let mine = rank(self.priority, self.cfg.me);
        let live: Vec<&Peer> = self.live_peers().collect();
        if let Some(p) = live.iter().find(|p| !self.hears_us(p)) {
            // It cannot hear us, so it will take over: step aside first.
            return (
                false,
                format!("peer {} does not hear this director (one-way loss)", p.addr),
            );
        }
        // Never two holders: a peer that holds the VIPs keeps them until
        // it lets go, except that of two holders (after a partition
        // heals) the lower one lets go.
        if let Some(p) = live.iter().find(|p| p.active) {
            let outranks_us = rank(p.priority, p.addr) > mine;
            if outranks_us || !self.active_now {
                return (
                    false,
                    format!("peer {} holds the VIPs (priority {})", p.addr, p.priority),
                );
            }
        }
        match live.iter().find(|p| rank(p.priority, p.addr) > mine) {
            // Preemption: a holder that hears a higher-priority director
            // lets go, and that one takes over once it sees it has.
            Some(p) if self.active_now && !self.cfg.preempt => (
                true,
                format!(
                    "holding the VIPs: peer {} has a higher priority but preemption is off",
                    p.addr
                ),
            ),
            // It takes over only with our connection table, after its
            // preempt delay: it says when in its heartbeats.
            Some(p) if self.active_now && !p.ready => (
                true,
                format!(
                    "holding the VIPs until peer {} (priority {}) has the connection table \
                     and its preempt delay has passed",
                    p.addr, p.priority
                ),
            ),
            Some(p) => (
                false,
                format!("peer {} has priority {}", p.addr, p.priority),
            ),
            None if live.is_empty() && !self.peers.is_empty() => (true, "no peer heard".into()),
            None => (true, "highest priority of the live directors".into()),
        }
    }
}
