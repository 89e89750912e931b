//! Two (or more) directors, one active: unicast heartbeats between the
//! directors' own addresses, keyed (HMAC-SHA256, `msg`), every 100 ms.
//! The active director answers ARP for the VIPs and forwards; a backup
//! does neither (the table is published as standby). Each heartbeat
//! carries the last sequence number heard from its receiver, so loss in
//! one direction is seen by both sides, and it never leaves both holding
//! the VIPs: the director that is not heard steps down before the one
//! that cannot hear it takes over. docs/ha.md has the rules and the
//! trade-off when heartbeats are lost both ways.

pub mod config;
pub mod election;
pub mod fresh;
pub mod msg;
pub mod peer;
pub mod status;
pub mod sync;
pub mod track;
pub mod witness;

pub use config::HaConfig;
pub use election::{Election, Verdict, WitnessVote};
pub use fresh::Fresh;
pub use peer::{Accepted, Peer};
pub use status::{HaCounters, HaStatus, PeerStatus, SyncStatus, WitnessStatus};

use election::listening;
use msg::{Heartbeat, Refused};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use witness::WitnessView;

/// How long a director that starts waits, after its listening interval,
/// for the connection tables of the live peers it asked before it takes
/// the VIPs without them (a peer that never answers must not leave the
/// VIPs unheld).
pub const JOIN_WAIT: Duration = Duration::from_secs(3);

/// The least time between two announcements made again after contention.
pub const REANNOUNCE_GAP: Duration = Duration::from_secs(5);

/// Everything the heartbeat and sync task keeps.
pub struct Ha {
    pub cfg: HaConfig,
    pub peers: Vec<Peer>,
    /// Random per start: the id of this run's heartbeats and sync stream.
    pub boot: u64,
    pub seq: u64,
    pub active: bool,
    /// What this director tells the witness: among the directors it
    /// should hold the VIPs.
    pub claim: bool,
    pub reason: String,
    pub counters: HaCounters,
    pub started: Instant,
    pub tracks: Vec<track::TrackStatus>,
    /// The priority in effect, and why this director is in fault.
    pub priority: u8,
    pub fault: Option<String>,
    /// What this director's heartbeats say: it may take the VIPs from a
    /// lower-priority holder.
    pub ready: bool,
    preempt_since: Option<Instant>,
    /// Per peer (in `peers` order): the boot of its run whose whole
    /// table this director has.
    pub tables: Vec<Option<u64>>,
    /// Per peer: when this director last asked it for its whole table.
    pub asked: Vec<Option<Instant>>,
    /// Started and not yet had a table or the VIPs: it asks every live
    /// peer for its table and takes the VIPs only with them (or after
    /// [`JOIN_WAIT`]).
    pub joining: bool,
    /// Another director held the VIPs while this one did, or came back
    /// after it could not be heard: once this one is the only holder it
    /// announces the VIPs again, as neighbours may have followed the
    /// other one's announcements.
    pub contention: bool,
    /// The data plane's count of ARP claims for our VIPs by others, as
    /// last seen, and when it last rose.
    conflicts_seen: u64,
    conflict_at: Option<Instant>,
    reannounced_at: Option<Instant>,
    pub witness: Option<WitnessView>,
    /// The witness's state as last logged: heard, and its vote ours.
    witness_logged: Option<(bool, bool)>,
    pub out: sync::Outbox,
    /// One per peer, in `peers` order.
    pub inboxes: Vec<sync::Inbox>,
    pub sync: sync::SyncCounters,
    pub digest: String,
    pub resync: Option<String>,
    rate: Rate,
}

/// Records per second, sent and received, from counter samples.
#[derive(Default)]
struct Rate {
    at: Option<(Instant, u64, u64)>,
    sent: f64,
    received: f64,
}

/// The state name notify commands and logs use: holding the VIPs wins
/// over a fault.
pub fn state_name(active: bool, fault: bool) -> &'static str {
    match (active, fault) {
        (true, _) => "ACTIVE",
        (false, true) => "FAULT",
        (false, false) => "BACKUP",
    }
}

impl Ha {
    pub fn new(cfg: HaConfig) -> Ha {
        let boot = witness::new_boot();
        let peers = cfg.peers.iter().map(|a| Peer::new(*a)).collect();
        let inboxes = cfg.peers.iter().map(|_| sync::Inbox::default()).collect();
        let tracks = cfg
            .tracks
            .iter()
            .map(|t| track::TrackStatus {
                track: t.clone(),
                failing: false,
            })
            .collect();
        let n = cfg.peers.len();
        Ha {
            priority: cfg.priority,
            witness: cfg.witness.map(WitnessView::new),
            joining: n > 0,
            cfg,
            peers,
            boot,
            seq: 0,
            active: false,
            claim: false,
            reason: "starting".into(),
            counters: HaCounters::default(),
            started: Instant::now(),
            tracks,
            fault: None,
            ready: false,
            preempt_since: None,
            tables: vec![None; n],
            asked: vec![None; n],
            contention: false,
            conflicts_seen: 0,
            conflict_at: None,
            reannounced_at: None,
            witness_logged: None,
            out: sync::Outbox::new(boot),
            inboxes,
            sync: sync::SyncCounters::default(),
            digest: "none yet".into(),
            resync: None,
            rate: Rate::default(),
        }
    }

    fn dead(&self) -> Duration {
        self.cfg.dead()
    }

    /// The live peer that holds the VIPs, if one does.
    pub fn holder(&self, now: Instant) -> Option<&Peer> {
        let dead = self.dead();
        self.peers.iter().find(|p| p.active && p.live(now, dead))
    }

    /// Whether this director has the whole table of `peer` as it runs now.
    pub fn synced_with(&self, peer: &Peer) -> bool {
        self.peer_index(peer.addr)
            .is_some_and(|i| self.tables[i].is_some() && self.tables[i] == peer.boot())
    }

    /// Peer `i`'s whole table is in (a resync from it ended): the
    /// request is answered, so a later stream of that peer's table (sent
    /// for another director) replaces nothing here unless it holds the
    /// VIPs.
    pub fn table_from(&mut self, i: usize, boot: u64) {
        self.tables[i] = Some(boot);
        self.asked[i] = None;
    }

    /// This director's copy of peer `i`'s table may have lost entries (a
    /// skipped gap, a digest that differs): it needs the whole again.
    pub fn table_lost(&mut self, i: usize) {
        self.tables[i] = None;
        self.asked[i] = None;
    }

    /// Applies the track conditions' states: the priority in effect and
    /// the fault, if any.
    pub fn set_tracks(&mut self, failing: &[bool]) {
        for (t, f) in self.tracks.iter_mut().zip(failing) {
            t.failing = *f;
        }
        (self.priority, self.fault) = track::effective(self.cfg.priority, &self.tracks);
    }

    /// Updates what the heartbeats say about preemption: this director
    /// may take the VIPs from the live holder once it has that holder's
    /// table and has waited the preempt delay since.
    pub fn update_ready(&mut self, now: Instant) {
        let holder = self.holder(now).cloned();
        // A director still listening after its start has not heard a
        // holder yet, so cannot know it has nothing to wait for.
        let listening = listening(self.started, now, self.dead(), &self.peers);
        self.ready = match holder {
            _ if self.fault.is_some() || listening => false,
            None => {
                self.preempt_since = None;
                true
            }
            Some(h) if !self.synced_with(&h) => {
                self.preempt_since = None;
                false
            }
            Some(_) => {
                let since = *self.preempt_since.get_or_insert(now);
                now.duration_since(since) >= self.cfg.preempt_delay
            }
        };
    }

    /// The live peer whose table a director that has just started still
    /// waits for; `None` once it has them all, holds the VIPs, or has
    /// waited [`JOIN_WAIT`] past its listening interval (logged by the
    /// caller through the returned flag).
    pub fn waiting_for(&mut self, now: Instant) -> (Option<IpAddr>, Option<String>) {
        if !self.joining {
            return (None, None);
        }
        if self.active {
            self.joining = false;
            return (None, None);
        }
        let dead = self.dead();
        let listened = self.started + dead;
        let missing = (0..self.peers.len()).find(|&i| {
            let p = &self.peers[i];
            p.live(now, dead) && !(self.tables[i].is_some() && self.tables[i] == p.boot())
        });
        match missing {
            // While listening more peers may still be heard: not done.
            None if listening(self.started, now, dead, &self.peers) => (None, None),
            None => {
                self.joining = false;
                (None, None)
            }
            Some(i) if now >= listened + JOIN_WAIT => {
                self.joining = false;
                let msg = format!(
                    "peer {} did not send its connection table within {} s; going on without it",
                    self.peers[i].addr,
                    JOIN_WAIT.as_secs()
                );
                (None, Some(msg))
            }
            Some(i) => (Some(self.peers[i].addr), None),
        }
    }

    /// The peers to ask for a full resync now: a backup without the
    /// holder's whole table asks the holder; a director that has just
    /// started, with no holder in sight, asks every live peer (one that
    /// held the VIPs and restarted may find the connections there). Each
    /// peer at most once a second.
    pub fn resync_due(&mut self, now: Instant) -> Vec<usize> {
        if self.active {
            return Vec::new();
        }
        let dead = self.dead();
        let holder = self
            .peers
            .iter()
            .position(|p| p.active && p.live(now, dead));
        let candidates: Vec<usize> = match holder {
            Some(i) => vec![i],
            None if self.joining => (0..self.peers.len())
                .filter(|&i| self.peers[i].live(now, dead))
                .collect(),
            None => Vec::new(),
        };
        let mut due = Vec::new();
        for i in candidates {
            if self.synced_with(&self.peers[i]) {
                continue;
            }
            if self.asked[i].is_some_and(|t| now.duration_since(t) < Duration::from_secs(1)) {
                continue;
            }
            self.asked[i] = Some(now);
            self.sync.resyncs_asked += 1;
            due.push(i);
        }
        due
    }

    /// Whether a resync stream from peer `i` is one to apply whole (its
    /// end drops what it did not send): this director is a backup, and
    /// the peer holds the VIPs or was asked for its table.
    pub fn takes_resync_from(&self, i: usize, now: Instant) -> bool {
        let p = &self.peers[i];
        !self.active && ((p.active && p.live(now, self.dead())) || self.asked[i].is_some())
    }

    /// The next heartbeat for `peer`.
    pub fn heartbeat(&mut self, peer: usize, now_ms: u64, now: Instant) -> [u8; msg::LEN] {
        let heard = self.peers.get(peer).map_or(0, Peer::seq);
        let dead = self.dead();
        Heartbeat {
            boot: self.boot,
            seq: self.seq,
            sent_ms: now_ms,
            priority: self.priority,
            active: self.active,
            ready: self.ready,
            hears_witness: self.witness.as_ref().is_some_and(|w| w.live(now, dead)),
            heard_seq: heard,
        }
        .emit(&self.cfg.key)
    }

    /// The next message to the witness, if there is one.
    pub fn witness_message(
        &mut self,
        now: Instant,
        now_ms: u64,
    ) -> Option<(SocketAddr, witness::WitnessBytes)> {
        let dead = self.dead();
        let (boot, prio, holding, claim) = (self.boot, self.priority, self.active, self.claim);
        let w = self.witness.as_mut()?;
        let m = w.message(boot, prio, holding, claim, dead, now, now_ms, &self.cfg.key);
        Some((w.addr, m))
    }

    /// The witness's answer.
    pub fn witness_answer(&mut self, b: &[u8], now: Instant) {
        let dead = self.dead();
        if let Some(w) = self.witness.as_mut() {
            w.receive(b, &self.cfg.key, now, dead);
        }
    }

    /// A line for the log when the witness is heard or lost, or its vote
    /// comes or goes.
    pub fn witness_news(&mut self, now: Instant) -> Option<String> {
        let v = self.witness_vote(now)?;
        let state = (v.live, v.ours);
        if self.witness_logged == Some(state) {
            return None;
        }
        let first = self.witness_logged.is_none();
        self.witness_logged = Some(state);
        let addr = self.witness.as_ref()?.addr;
        Some(match state {
            (false, _) if first => return None,
            (false, _) => format!("the witness {addr} is out of reach"),
            (true, true) => format!("the witness {addr} gives this director its vote"),
            (true, false) => match v.grantee {
                Some(g) => format!("the witness {addr} is heard; its vote is with {g}"),
                None => format!("the witness {addr} is heard; its vote is free"),
            },
        })
    }

    /// A heartbeat from `from`: counted, and taken if it is a fresh
    /// heartbeat of a known peer under our key. A holder that hears
    /// another holder, or a peer again, notes the contention.
    pub fn receive(&mut self, from: IpAddr, b: &[u8], now: Instant) {
        let (dead, seq) = (self.dead(), self.seq);
        let Some(p) = self.peers.iter_mut().find(|p| p.addr == from) else {
            self.counters.unknown_sender += 1;
            return;
        };
        match Heartbeat::parse(b, &self.cfg.key) {
            Err(Refused::Malformed) => self.counters.malformed += 1,
            Err(Refused::BadMac) => self.counters.bad_mac += 1,
            Ok(h) => match p.accept(&h, now, dead, seq) {
                Accepted::Replayed => self.counters.replayed += 1,
                got => {
                    self.counters.received += 1;
                    if self.active && (got == Accepted::Again || h.active) {
                        self.contention = true;
                    }
                }
            },
        }
    }

    /// The data plane's count of others' ARP claims for our VIPs. A rise
    /// while every peer is heard (so not the other side of a split, whose
    /// claims end when the split does) is a contention too: once the
    /// claims have stopped for a second, the VIPs are announced again.
    pub fn note_conflicts(&mut self, total: u64, now: Instant) {
        let rose = total > self.conflicts_seen;
        self.conflicts_seen = total;
        let dead = self.dead();
        let all_heard = self.peers.iter().all(|p| p.live(now, dead));
        if rose && self.active && all_heard {
            self.contention = true;
            self.conflict_at = Some(now);
        }
    }

    /// Whether this director, the only holder now after a contention,
    /// should announce its VIPs again (once: the flag is cleared). Not
    /// while another still claims them, nor twice within [`REANNOUNCE_GAP`]
    /// (the flag waits), so two hosts never announce at each other.
    pub fn reannounce_due(&mut self, now: Instant) -> bool {
        if !self.active {
            self.contention = false;
            return false;
        }
        let quiet = |t: Option<Instant>, d| t.is_none_or(|t| now.duration_since(t) >= d);
        if !self.contention
            || self.holder(now).is_some()
            || !quiet(self.conflict_at, Duration::from_secs(1))
            || !quiet(self.reannounced_at, REANNOUNCE_GAP)
        {
            return false;
        }
        self.contention = false;
        self.reannounced_at = Some(now);
        self.counters.reannounced += 1;
        true
    }

    /// The index of the peer at `addr`.
    pub fn peer_index(&self, addr: IpAddr) -> Option<usize> {
        self.peers.iter().position(|p| p.addr == addr)
    }

    /// What the election sees of the witness.
    fn witness_vote(&self, now: Instant) -> Option<WitnessVote> {
        let dead = self.dead();
        self.witness.as_ref().map(|w| WitnessVote {
            live: w.live(now, dead),
            ours: w.votes_for_us(now),
            grantee: w.grantee,
        })
    }

    /// The election as it stands at `now`.
    fn election(&self, now: Instant, waiting_for: Option<IpAddr>) -> Election<'_> {
        Election {
            cfg: &self.cfg,
            priority: self.priority,
            fault: self.fault.as_deref(),
            peers: &self.peers,
            active_now: self.active,
            started: self.started,
            now,
            waiting_for,
            witness: self.witness_vote(now),
        }
    }

    /// Runs the election; `Some(active)` when the role changes, and a
    /// note for the log when a starting director stops waiting for a
    /// peer's table.
    pub fn elect(&mut self, now: Instant) -> (Option<bool>, Option<String>) {
        let (waiting_for, note) = self.waiting_for(now);
        let v = self.election(now, waiting_for).verdict();
        self.reason = v.reason;
        self.claim = v.claim;
        let change = (v.hold != self.active).then(|| {
            self.active = v.hold;
            // Whoever holds the VIPs is the source of the table; a
            // director that lets go needs the new holder's whole table.
            self.tables.iter_mut().for_each(|t| *t = None);
            self.asked.iter_mut().for_each(|t| *t = None);
            if v.hold {
                self.joining = false;
            }
            v.hold
        });
        (change, note)
    }

    /// The state name notify commands and logs use.
    pub fn state_name(&self) -> &'static str {
        state_name(self.active, self.fault.is_some())
    }

    /// Samples the sync counters for the rates (call about once a second).
    pub fn sample_rates(&mut self, now: Instant) {
        let (s, r) = (self.sync.records_sent, self.sync.records_received);
        if let Some((t, s0, r0)) = self.rate.at {
            let dt = now.duration_since(t).as_secs_f64();
            if dt > 0.0 {
                self.rate.sent = (s - s0) as f64 / dt;
                self.rate.received = (r - r0) as f64 / dt;
            }
        }
        self.rate.at = Some((now, s, r));
    }

    pub fn status(&self, now: Instant) -> HaStatus {
        let e = self.election(now, None);
        let dead = e.dead();
        HaStatus {
            role: if self.active { "active" } else { "backup" }.into(),
            priority: self.cfg.priority,
            effective_priority: self.priority,
            fault: self.fault.clone(),
            preempt: self.cfg.preempt,
            preempt_delay_ms: self.cfg.preempt_delay.as_millis() as u64,
            ready: self.ready,
            reason: self.reason.clone(),
            seq: self.seq,
            peers: self
                .peers
                .iter()
                .zip(&self.inboxes)
                .map(|(p, i)| PeerStatus {
                    addr: p.addr,
                    live: p.live(now, dead),
                    priority: p.priority,
                    active: p.active,
                    heard_ms_ago: p.heard_at.map(|t| now.duration_since(t).as_millis() as u64),
                    hears_us: p.heard_at.is_some() && e.hears_us(p),
                    heard_seq: p.seq(),
                    heard_our_seq: p.heard_our_seq,
                    ready: p.ready,
                    sync_applied: i.applied(),
                    sync_highest: i.highest,
                    sync_lag: i.highest.saturating_sub(i.applied()),
                    synced: self.synced_with(p),
                    hears_witness: p.hears_witness,
                })
                .collect(),
            tracks: self.tracks.clone(),
            counters: self.counters.clone(),
            sync: SyncStatus {
                sent_seq: self.out.seq(),
                sent_per_s: self.rate.sent,
                received_per_s: self.rate.received,
                digest: self.digest.clone(),
                resync: self.resync.clone(),
                counters: self.sync.clone(),
            },
            witness: self.witness.as_ref().map(|w| {
                let v = e.witness.expect("a witness view");
                let (votes, voters) = e.votes(&v);
                WitnessStatus {
                    addr: w.addr,
                    live: v.live,
                    heard_ms_ago: w.heard_ms_ago(now),
                    votes_for_us: v.ours,
                    grantee: w.grantee,
                    votes,
                    voters,
                    received: w.counters.received,
                    bad_mac: w.counters.bad_mac,
                    malformed: w.counters.malformed,
                    replayed: w.counters.replayed,
                }
            }),
        }
    }
}

#[cfg(test)]
mod tests;
