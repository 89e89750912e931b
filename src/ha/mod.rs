//! Two (or more) directors, one active: unicast heartbeats between the
//! directors' own addresses, keyed (HMAC-SHA256, `msg`), every 100 ms.
//! The active director answers ARP for the VIPs and forwards; a backup
//! does neither (the table is published as standby). Each heartbeat
//! carries the last sequence number heard from its receiver, so loss in
//! one direction is seen by both sides, and it never leaves both holding
//! the VIPs: the director that is not heard steps down before the one
//! that cannot hear it takes over. docs/ha.md has the rules and the
//! trade-off when heartbeats are lost both ways.

pub mod msg;
pub mod sync;
pub mod track;
pub mod witness;

use msg::{Heartbeat, Refused};
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};
use witness::WitnessView;

/// How a director takes part.
#[derive(Debug, Clone)]
pub struct HaConfig {
    pub me: Ipv4Addr,
    pub peers: Vec<Ipv4Addr>,
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
    pub witness: Option<SocketAddrV4>,
}

/// How long a director that starts waits, after its listening interval,
/// for the connection tables of the live peers it asked before it takes
/// the VIPs without them (a peer that never answers must not leave the
/// VIPs unheld).
pub const JOIN_WAIT: Duration = Duration::from_secs(3);

/// Whether a director that started at `started` still only listens: for
/// a full dead interval, so it cannot take the VIPs from a live peer it
/// has not heard yet, unless it has heard every peer since (then it
/// knows who holds them, and a director restarted within the dead
/// interval takes its peers' tables and the VIPs without waiting).
fn listening(started: Instant, now: Instant, dead: Duration, peers: &[Peer]) -> bool {
    let heard_all = !peers.is_empty() && peers.iter().all(|p| p.heard_at.is_some());
    now.duration_since(started) < dead && !heard_all
}

/// The least time between two announcements made again after contention.
pub const REANNOUNCE_GAP: Duration = Duration::from_secs(5);

/// Replay protection for one sender's messages: its (boot, sequence)
/// only moves forward, and a new boot must carry a later clock than the
/// last message of the old one.
#[derive(Debug, Clone, Default)]
pub struct Fresh {
    last: Option<(u64, u64, u64)>,
}

impl Fresh {
    /// Takes (boot, seq, sent_ms) if it is newer than anything before.
    pub fn accept(&mut self, boot: u64, seq: u64, sent_ms: u64) -> bool {
        let fresh = match self.last {
            None => true,
            Some((b, s, sent)) if b == boot => seq > s && sent_ms >= sent,
            Some((_, _, sent)) => sent_ms > sent,
        };
        if fresh {
            self.last = Some((boot, seq, sent_ms));
        }
        fresh
    }

    /// Notes a message of the current boot that may come out of order.
    pub fn seen(&mut self, seq: u64, sent_ms: u64) {
        if let Some((_, s, sent)) = &mut self.last {
            *s = (*s).max(seq);
            *sent = (*sent).max(sent_ms);
        }
    }

    pub fn boot(&self) -> Option<u64> {
        self.last.map(|l| l.0)
    }

    pub fn seq(&self) -> u64 {
        self.last.map_or(0, |l| l.1)
    }
}

impl HaConfig {
    /// How long a peer may stay silent before it counts as gone.
    pub fn dead(&self) -> Duration {
        self.interval * self.dead_after
    }
}

/// What is known of one peer.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: Ipv4Addr,
    last: Fresh,
    heard_at: Option<Instant>,
    /// Since when it has been heard without a break (or since its
    /// restart): a peer that has just come cannot have heard us yet.
    live_since: Option<Instant>,
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
    our_seq_then: u64,
    /// Its last heartbeat said it hears the witness.
    pub hears_witness: bool,
}

impl Peer {
    pub fn new(addr: Ipv4Addr) -> Peer {
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
    fn lag(&self) -> u64 {
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
    pub addr: SocketAddrV4,
    pub live: bool,
    pub heard_ms_ago: Option<u64>,
    /// Its vote is this director's (and its lease has not run out).
    pub votes_for_us: bool,
    /// The director it says has its vote.
    pub grantee: Option<Ipv4Addr>,
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
    pub addr: Ipv4Addr,
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

impl HaStatus {
    /// `uvs ha` without `--json`.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let prio = match self.effective_priority == self.priority {
            true => self.priority.to_string(),
            false => format!("{}, configured {}", self.effective_priority, self.priority),
        };
        let _ = writeln!(o, "role {} (priority {prio}): {}", self.role, self.reason);
        if let Some(f) = &self.fault {
            let _ = writeln!(o, "fault: {f}");
        }
        let _ = writeln!(
            o,
            "preempt {}{}, ready to take over: {}",
            if self.preempt { "on" } else { "off" },
            match self.preempt_delay_ms {
                0 => String::new(),
                ms => format!(" after {ms} ms"),
            },
            if self.ready { "yes" } else { "no" }
        );
        for p in &self.peers {
            let _ = writeln!(
                o,
                "peer {:<15} {:<4} priority {:<3} {} heard {} ago (#{}), it heard our #{} of #{}{}",
                p.addr,
                if p.live { "live" } else { "gone" },
                p.priority,
                if p.active { "active" } else { "backup" },
                p.heard_ms_ago.map_or("never".into(), |m| format!("{m} ms")),
                p.heard_seq,
                p.heard_our_seq,
                self.seq,
                if p.hears_us { "" } else { ", does not hear us" }
            );
            let _ = writeln!(
                o,
                "     sync in: applied seq {} of {} (lag {}), {}",
                p.sync_applied,
                p.sync_highest,
                p.sync_lag,
                if p.synced {
                    "whole table"
                } else {
                    "not synced"
                }
            );
        }
        if let Some(w) = &self.witness {
            let _ = writeln!(
                o,
                "witness {} {} heard {} ago, vote {}; votes here {} of {}",
                w.addr,
                if w.live { "live" } else { "gone" },
                w.heard_ms_ago.map_or("never".into(), |m| format!("{m} ms")),
                match (w.votes_for_us, w.grantee) {
                    (true, _) => "ours".to_string(),
                    (false, Some(g)) => format!("with {g}"),
                    (false, None) => "free".to_string(),
                },
                w.votes,
                w.voters
            );
        }
        for t in &self.tracks {
            let _ = writeln!(
                o,
                "track {:?}{}: {}",
                t.track.watch,
                t.track
                    .weight
                    .map_or(" (fault)".into(), |w| format!(" (weight {w})")),
                if t.failing { "failing" } else { "ok" }
            );
        }
        let s = &self.sync;
        let c = &s.counters;
        let _ = writeln!(
            o,
            "sync out: seq {}, {:.0} records/s; in: {:.0} records/s; digest {}{}",
            s.sent_seq,
            s.sent_per_s,
            s.received_per_s,
            s.digest,
            s.resync
                .as_ref()
                .map_or(String::new(), |r| format!("; resync: {r}"))
        );
        let _ = writeln!(
            o,
            "sync messages sent {} received {}, records sent {} received {}, gaps {} \
             (skipped {}), resends asked {} sent {}, resyncs asked {} sent {} received {}, \
             digests ok {} mismatched {}, refused: bad MAC {} malformed {} replayed {}, \
             queue overflows {}",
            c.msgs_sent,
            c.msgs_received,
            c.records_sent,
            c.records_received,
            c.gaps,
            c.gaps_skipped,
            c.resends_asked,
            c.resends_sent,
            c.resyncs_asked,
            c.resyncs_sent,
            c.resyncs_received,
            c.digests_ok,
            c.digest_mismatches,
            c.bad_mac,
            c.malformed,
            c.replayed,
            c.overflows
        );
        let c = &self.counters;
        let _ = writeln!(
            o,
            "heartbeats sent {} received {} refused: bad MAC {} malformed {} replayed {} unknown sender {}; \
             VIPs announced again {}",
            c.sent, c.received, c.bad_mac, c.malformed, c.replayed, c.unknown_sender, c.reannounced
        );
        o
    }
}

/// The witness as the election sees it.
#[derive(Debug, Clone, Copy)]
pub struct WitnessVote {
    /// Heard within a dead interval.
    pub live: bool,
    /// Its vote is ours, within its lease.
    pub ours: bool,
    /// Who it says has the vote.
    pub grantee: Option<Ipv4Addr>,
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
    pub waiting_for: Option<Ipv4Addr>,
    /// With a witness configured: what it says.
    pub witness: Option<WitnessVote>,
}

impl Election<'_> {
    fn dead(&self) -> Duration {
        self.cfg.dead()
    }

    fn hears_us(&self, p: &Peer) -> bool {
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
        let rank = |prio: u8, addr: Ipv4Addr| (prio, u32::from(addr));
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
    pub fn waiting_for(&mut self, now: Instant) -> (Option<Ipv4Addr>, Option<String>) {
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
    ) -> Option<(SocketAddrV4, [u8; witness::LEN])> {
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
    pub fn receive(&mut self, from: SocketAddrV4, b: &[u8], now: Instant) {
        let (dead, seq) = (self.dead(), self.seq);
        let Some(p) = self.peers.iter_mut().find(|p| p.addr == *from.ip()) else {
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
    pub fn peer_index(&self, addr: Ipv4Addr) -> Option<usize> {
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
    fn election(&self, now: Instant, waiting_for: Option<Ipv4Addr>) -> Election<'_> {
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
        match (self.active, self.fault.is_some()) {
            (true, _) => "ACTIVE",
            (false, true) => "FAULT",
            (false, false) => "BACKUP",
        }
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
mod tests {
    use super::*;

    fn cfg(me: [u8; 4], prio: u8, preempt: bool) -> HaConfig {
        HaConfig {
            me: Ipv4Addr::from(me),
            peers: vec![Ipv4Addr::new(198, 18, 0, 9)],
            port: 5405,
            priority: prio,
            key: b"k".to_vec(),
            interval: Duration::from_millis(100),
            dead_after: 10,
            preempt,
            preempt_delay: Duration::ZERO,
            tracks: Vec::new(),
            notify: None,
            witness: None,
        }
    }

    fn peer(
        prio: u8,
        active: bool,
        heard_ago: Option<Duration>,
        heard_our_seq: u64,
        now: Instant,
    ) -> Peer {
        Peer {
            addr: Ipv4Addr::new(198, 18, 0, 9),
            last: Fresh {
                last: Some((1, 1, 1)),
            },
            heard_at: heard_ago.map(|d| now - d),
            live_since: heard_ago.map(|_| now - Duration::from_secs(10)),
            priority: prio,
            active,
            ready: true,
            heard_our_seq,
            our_seq_then: 100,
            hears_witness: false,
        }
    }

    /// The election of a director started 10 s ago, not in fault.
    fn election<'a>(
        c: &'a HaConfig,
        peers: &'a [Peer],
        active_now: bool,
        now: Instant,
        witness: Option<WitnessVote>,
    ) -> Election<'a> {
        Election {
            cfg: c,
            priority: c.priority,
            fault: None,
            peers,
            active_now,
            started: now - Duration::from_secs(10),
            now,
            waiting_for: None,
            witness,
        }
    }

    fn decide(c: &HaConfig, peers: &[Peer], active_now: bool, now: Instant) -> bool {
        election(c, peers, active_now, now, None).decide().0
    }

    /// The decision with one peer of `prio`, heard 50 ms ago and hearing
    /// us, that holds the VIPs or not, when we hold them or not.
    fn holds(c: &HaConfig, prio: u8, peer_holds: bool, we_hold: bool) -> bool {
        let now = Instant::now();
        let p = peer(prio, peer_holds, Some(Duration::from_millis(50)), 100, now);
        decide(c, &[p], we_hold, now)
    }

    #[test]
    fn the_highest_priority_holds_the_vips_and_no_one_while_starting() {
        let now = Instant::now();
        let hi = cfg([198, 18, 0, 2], 200, true);
        let lo = cfg([198, 18, 0, 3], 100, true);
        assert!(holds(&hi, 100, false, false));
        assert!(!holds(&lo, 200, true, false));
        // Nobody heard: take over.
        assert!(decide(
            &lo,
            &[peer(200, true, Some(Duration::from_secs(5)), 0, now)],
            false,
            now
        ));
        // Starting: listen first.
        let e = Election {
            cfg: &hi,
            priority: hi.priority,
            fault: None,
            peers: &[],
            active_now: false,
            started: now,
            now,
            waiting_for: None,
            witness: None,
        };
        assert!(!e.decide().0);
    }

    #[test]
    fn a_holder_lets_go_before_another_takes_over() {
        // The returning higher director waits while the lower one holds.
        let hi = cfg([198, 18, 0, 2], 200, true);
        assert!(!holds(&hi, 100, true, false));
        // The lower holder lets go when it hears the higher one, with
        // preemption on; with it off it keeps the VIPs.
        let lo = cfg([198, 18, 0, 3], 100, true);
        assert!(!holds(&lo, 200, false, true));
        let lo_nopre = cfg([198, 18, 0, 3], 100, false);
        assert!(holds(&lo_nopre, 200, false, true));
        // Once it has let go, the higher one takes over.
        assert!(holds(&hi, 100, false, false));
        // Two holders (a healed partition): the lower lets go.
        assert!(holds(&hi, 100, true, true));
        assert!(!holds(&lo, 200, true, true));
    }

    const DEAD: Duration = Duration::from_secs(1);

    #[test]
    fn a_director_its_peer_cannot_hear_steps_down() {
        let now = Instant::now();
        let hi = cfg([198, 18, 0, 2], 200, true);
        // The peer is heard, but its last-heard of our sequence lags 50.
        let mut deaf = peer(100, false, Some(Duration::from_millis(50)), 50, now);
        assert!(!decide(&hi, std::slice::from_ref(&deaf), true, now));
        // Unless it has only just come (restarted): it may not have heard
        // us yet.
        deaf.live_since = Some(now - Duration::from_millis(300));
        assert!(decide(&hi, &[deaf], true, now));
        // A peer whose heartbeats stopped coming 0.6 s ago (lost both
        // ways) heard us when it last spoke: we keep the VIPs until it
        // is gone, rather than step aside for a peer that cannot take
        // them from us either.
        let silent = peer(100, false, Some(Duration::from_millis(600)), 99, now);
        assert!(decide(&hi, &[silent], true, now));
    }

    #[test]
    fn replays_and_old_boots_are_refused() {
        let now = Instant::now();
        let mut p = Peer::new(Ipv4Addr::new(198, 18, 0, 9));
        let h = |boot, seq, sent_ms| Heartbeat {
            boot,
            seq,
            sent_ms,
            priority: 1,
            active: false,
            ready: false,
            hears_witness: false,
            heard_seq: 0,
        };
        assert_eq!(p.accept(&h(1, 5, 1000), now, DEAD, 0), Accepted::Again);
        assert!(
            p.accept(&h(1, 5, 1000), now, DEAD, 0) == Accepted::Replayed,
            "the same message again"
        );
        assert!(
            p.accept(&h(1, 4, 1100), now, DEAD, 0) == Accepted::Replayed,
            "an older one"
        );
        assert_eq!(p.accept(&h(1, 6, 1100), now, DEAD, 0), Accepted::Fresh);
        // A restart (new boot) with a later clock is taken; an old boot's
        // message replayed is not.
        assert_eq!(p.accept(&h(2, 1, 2000), now, DEAD, 0), Accepted::Again);
        assert_eq!(p.accept(&h(1, 7, 1200), now, DEAD, 0), Accepted::Replayed);
    }

    /// The election with a witness: `ours` says whether its vote is ours.
    fn with_witness(peers: &[Peer], live: bool, ours: bool, active_now: bool) -> Verdict {
        let c = cfg([198, 18, 0, 3], 100, true);
        let w = WitnessVote {
            live,
            ours,
            grantee: (live && !ours).then_some(Ipv4Addr::new(198, 18, 0, 2)),
        };
        election(&c, peers, active_now, Instant::now(), Some(w)).verdict()
    }

    #[test]
    fn with_a_witness_only_the_director_with_a_majority_holds() {
        let now = Instant::now();
        // The peer silent (a split, or dead), the witness heard by both
        // and its vote with the peer: we claim but do not hold.
        let mut gone = peer(200, true, Some(Duration::from_secs(5)), 0, now);
        gone.hears_witness = true;
        let v = with_witness(std::slice::from_ref(&gone), true, false, false);
        assert!(!v.hold && v.claim, "{v:?}");
        assert!(v.reason.contains("vote is with 198.18.0.2"), "{v:?}");
        // Its vote is ours: 2 of 3.
        let v = with_witness(std::slice::from_ref(&gone), true, true, false);
        assert!(v.hold, "{v:?}");
        // Cut from both, the peer heard the witness last: let go.
        let v = with_witness(std::slice::from_ref(&gone), false, false, true);
        assert!(!v.hold, "{v:?}");
        // The witness was already gone at the peer too: as without one.
        gone.hears_witness = false;
        let v = with_witness(std::slice::from_ref(&gone), false, false, true);
        assert!(v.hold && v.reason.contains("as without one"), "{v:?}");
        // The peer heard and not holding: the two of us are a majority
        // whatever the witness says, and the election among us decides.
        let here = peer(50, false, Some(Duration::from_millis(50)), 100, now);
        let v = with_witness(std::slice::from_ref(&here), false, false, true);
        assert!(v.hold, "{v:?}");
    }

    #[test]
    fn a_starting_director_waits_for_a_live_peer_s_table_for_a_bounded_time() {
        let mut c = cfg([198, 18, 0, 2], 200, true);
        c.peers = vec![Ipv4Addr::new(198, 18, 0, 3)];
        let mut ha = Ha::new(c);
        let t0 = Instant::now();
        ha.started = t0;
        let beat = |ha: &mut Ha, seq: u64, at: Instant| {
            let h = Heartbeat {
                boot: 7,
                seq,
                sent_ms: 1000 + seq,
                priority: 100,
                active: false,
                ready: false,
                hears_witness: false,
                heard_seq: ha.seq,
            };
            ha.receive(
                SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 3), 5405),
                &h.emit(&ha.cfg.key),
                at,
            );
        };
        // The peer (a backup that may hold our old connections) is heard:
        // it is asked for its table at once, and once a second after.
        beat(&mut ha, 1, t0 + Duration::from_millis(100));
        assert_eq!(ha.resync_due(t0 + Duration::from_millis(100)), vec![0]);
        assert!(ha.resync_due(t0 + Duration::from_millis(200)).is_empty());
        // Past the listening interval, still without it: no VIPs.
        let t = t0 + DEAD + Duration::from_millis(100);
        beat(&mut ha, 2, t);
        ha.seq = 20;
        assert_eq!(ha.elect(t).0, None);
        assert!(
            ha.reason.contains("waiting for the connection table"),
            "{}",
            ha.reason
        );
        // Its table is in: the VIPs are taken.
        ha.table_from(0, 7);
        assert_eq!(ha.elect(t).0, Some(true));
        // Without it, after JOIN_WAIT the VIPs are taken anyway, and said.
        let mut c = cfg([198, 18, 0, 2], 200, true);
        c.peers = vec![Ipv4Addr::new(198, 18, 0, 3)];
        let mut ha = Ha::new(c);
        ha.started = t0;
        let t = t0 + DEAD + JOIN_WAIT + Duration::from_millis(10);
        beat(&mut ha, 1, t - Duration::from_millis(50));
        ha.seq = 20;
        let (change, note) = ha.elect(t);
        assert_eq!(change, Some(true));
        assert!(note.unwrap().contains("did not send its connection table"));
    }

    #[test]
    fn a_holder_announces_again_once_another_holder_lets_go_and_not_during_claims() {
        let mut ha = Ha::new(cfg([198, 18, 0, 2], 200, true));
        let peer = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 9), 5405);
        let t0 = Instant::now();
        ha.active = true;
        let beat = |ha: &mut Ha, seq: u64, active: bool, at: Instant| {
            let h = Heartbeat {
                boot: 7,
                seq,
                sent_ms: 1000 + seq,
                priority: 100,
                active,
                ready: false,
                hears_witness: false,
                heard_seq: 0,
            };
            let b = h.emit(&ha.cfg.key);
            ha.receive(peer, &b, at);
        };
        // A healed split: the peer is heard again, still holding.
        beat(&mut ha, 1, true, t0);
        assert!(!ha.reannounce_due(t0), "not while it holds them");
        // It lets go: announce, once.
        let t1 = t0 + Duration::from_millis(100);
        beat(&mut ha, 2, false, t1);
        assert!(ha.reannounce_due(t1));
        assert!(!ha.reannounce_due(t1));
        assert_eq!(ha.counters.reannounced, 1);
        // Claims by another host while the peer is heard: once they have
        // stopped for a second, and not within the gap after the last.
        let t2 = t1 + Duration::from_millis(100);
        beat(&mut ha, 3, false, t2);
        ha.note_conflicts(5, t2);
        assert!(!ha.reannounce_due(t2 + Duration::from_millis(500)));
        assert!(!ha.reannounce_due(t1 + REANNOUNCE_GAP - Duration::from_millis(1)));
        let t3 = t1 + REANNOUNCE_GAP;
        beat(&mut ha, 4, false, t3 - Duration::from_millis(50));
        assert!(ha.reannounce_due(t3));
        // Claims while the peer is out of reach (the other side of a
        // split announcing) are not answered.
        let t4 = t3 + Duration::from_secs(20);
        ha.note_conflicts(9, t4);
        assert!(!ha.reannounce_due(t4 + Duration::from_secs(2)));
    }
}
