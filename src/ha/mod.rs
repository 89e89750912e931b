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

use msg::{Heartbeat, Refused};
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

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
}

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
    /// The last of our sequence numbers it says it heard.
    pub heard_our_seq: u64,
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
        }
    }

    /// Takes a heartbeat if it moves this peer's (boot, sequence) forward:
    /// a replay (an old or repeated message) is refused. A new boot is
    /// taken when its clock is later than the last message's.
    pub fn accept(&mut self, h: &Heartbeat, now: Instant, dead: Duration) -> bool {
        let boot = self.last.boot();
        let fresh = self.last.accept(h.boot, h.seq, h.sent_ms);
        if fresh {
            if boot != Some(h.boot) || !self.live(now, dead) {
                self.live_since = Some(now);
            }
            self.heard_at = Some(now);
            self.priority = h.priority;
            self.active = h.active;
            self.ready = h.ready;
            self.heard_our_seq = h.heard_seq;
        }
        fresh
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
            "heartbeats sent {} received {} refused: bad MAC {} malformed {} replayed {} unknown sender {}",
            c.sent, c.received, c.bad_mac, c.malformed, c.replayed, c.unknown_sender
        );
        o
    }
}

/// The election, as a pure function of what this director knows.
pub struct Election<'a> {
    pub cfg: &'a HaConfig,
    /// The priority in effect (track conditions applied), and why this
    /// director is in fault if it is.
    pub priority: u8,
    pub fault: Option<&'a str>,
    pub peers: &'a [Peer],
    pub our_seq: u64,
    pub active_now: bool,
    pub started: Instant,
    pub now: Instant,
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
        self.our_seq.saturating_sub(p.heard_our_seq) <= u64::from(self.cfg.dead_after / 2).max(1)
    }

    /// Whether this director should hold the VIPs, and why.
    pub fn decide(&self) -> (bool, String) {
        let dead = self.dead();
        if let Some(why) = self.fault {
            return (false, format!("fault: {why}"));
        }
        // A director that starts listens for a full dead interval first,
        // so it cannot take the VIPs from a live peer it has not heard yet.
        if self.now.duration_since(self.started) < dead {
            return (false, "starting: listening for peers".into());
        }
        let rank = |prio: u8, addr: Ipv4Addr| (prio, u32::from(addr));
        let mine = rank(self.priority, self.cfg.me);
        let live: Vec<&Peer> = self
            .peers
            .iter()
            .filter(|p| p.live(self.now, dead))
            .collect();
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
    /// The peer (and its boot) whose whole table this director has.
    pub synced_from: Option<(Ipv4Addr, u64)>,
    /// When this director last asked for a full resync.
    pub resync_asked: Option<Instant>,
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
        use std::hash::BuildHasher;
        let boot = foldhash::fast::RandomState::default().hash_one(std::process::id());
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
        Ha {
            priority: cfg.priority,
            cfg,
            peers,
            boot,
            seq: 0,
            active: false,
            reason: "starting".into(),
            counters: HaCounters::default(),
            started: Instant::now(),
            tracks,
            fault: None,
            ready: false,
            preempt_since: None,
            synced_from: None,
            resync_asked: None,
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
        self.synced_from
            .is_some_and(|(a, b)| a == peer.addr && Some(b) == peer.boot())
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
        let listening = now.duration_since(self.started) < self.dead();
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

    /// The peer to ask for a full resync now, if one is due: a backup
    /// without the holder's whole table asks it, once a second.
    pub fn resync_due(&mut self, now: Instant) -> Option<usize> {
        if self.active {
            return None;
        }
        let dead = self.dead();
        let i = self
            .peers
            .iter()
            .position(|p| p.active && p.live(now, dead))?;
        if self.synced_with(&self.peers[i]) {
            return None;
        }
        if self
            .resync_asked
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return None;
        }
        self.resync_asked = Some(now);
        self.sync.resyncs_asked += 1;
        Some(i)
    }

    /// The next heartbeat for `peer`.
    pub fn heartbeat(&mut self, peer: usize, now_ms: u64) -> [u8; msg::LEN] {
        let heard = self.peers.get(peer).map_or(0, Peer::seq);
        Heartbeat {
            boot: self.boot,
            seq: self.seq,
            sent_ms: now_ms,
            priority: self.priority,
            active: self.active,
            ready: self.ready,
            heard_seq: heard,
        }
        .emit(&self.cfg.key)
    }

    /// A heartbeat from `from`: counted, and taken if it is a fresh
    /// heartbeat of a known peer under our key.
    pub fn receive(&mut self, from: SocketAddrV4, b: &[u8], now: Instant) {
        let Some(p) = self.peers.iter_mut().find(|p| p.addr == *from.ip()) else {
            self.counters.unknown_sender += 1;
            return;
        };
        match Heartbeat::parse(b, &self.cfg.key) {
            Err(Refused::Malformed) => self.counters.malformed += 1,
            Err(Refused::BadMac) => self.counters.bad_mac += 1,
            Ok(h) => match p.accept(&h, now, self.cfg.dead()) {
                true => self.counters.received += 1,
                false => self.counters.replayed += 1,
            },
        }
    }

    /// The index of the peer at `addr`.
    pub fn peer_index(&self, addr: Ipv4Addr) -> Option<usize> {
        self.peers.iter().position(|p| p.addr == addr)
    }

    /// The election as it stands at `now`.
    fn election(&self, now: Instant) -> Election<'_> {
        Election {
            cfg: &self.cfg,
            priority: self.priority,
            fault: self.fault.as_deref(),
            peers: &self.peers,
            our_seq: self.seq,
            active_now: self.active,
            started: self.started,
            now,
        }
    }

    /// Runs the election; `Some(active)` when the role changes.
    pub fn elect(&mut self, now: Instant) -> Option<bool> {
        let (active, why) = self.election(now).decide();
        self.reason = why;
        (active != self.active).then(|| {
            self.active = active;
            // Whoever holds the VIPs is the source of the table; a
            // director that lets go needs the new holder's whole table.
            self.synced_from = None;
            self.resync_asked = None;
            active
        })
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
        let e = self.election(now);
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
        }
    }

    fn decide(c: &HaConfig, peers: &[Peer], our_seq: u64, active_now: bool, now: Instant) -> bool {
        Election {
            cfg: c,
            priority: c.priority,
            fault: None,
            peers,
            our_seq,
            active_now,
            started: now - Duration::from_secs(10),
            now,
        }
        .decide()
        .0
    }

    /// The decision with one peer of `prio`, heard 50 ms ago and hearing
    /// us, that holds the VIPs or not, when we hold them or not.
    fn holds(c: &HaConfig, prio: u8, peer_holds: bool, we_hold: bool) -> bool {
        let now = Instant::now();
        let p = peer(prio, peer_holds, Some(Duration::from_millis(50)), 100, now);
        decide(c, &[p], 100, we_hold, now)
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
            100,
            false,
            now
        ));
        // Starting: listen first.
        let e = Election {
            cfg: &hi,
            priority: hi.priority,
            fault: None,
            peers: &[],
            our_seq: 0,
            active_now: false,
            started: now,
            now,
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
        assert!(!decide(&hi, std::slice::from_ref(&deaf), 100, true, now));
        // Unless it has only just come (restarted): it may not have heard
        // us yet.
        deaf.live_since = Some(now - Duration::from_millis(300));
        assert!(decide(&hi, &[deaf], 100, true, now));
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
            heard_seq: 0,
        };
        assert!(p.accept(&h(1, 5, 1000), now, DEAD));
        assert!(
            !p.accept(&h(1, 5, 1000), now, DEAD),
            "the same message again"
        );
        assert!(!p.accept(&h(1, 4, 1100), now, DEAD), "an older one");
        assert!(p.accept(&h(1, 6, 1100), now, DEAD));
        // A restart (new boot) with a later clock is taken; an old boot's
        // message replayed is not.
        assert!(p.accept(&h(2, 1, 2000), now, DEAD));
        assert!(!p.accept(&h(1, 7, 1200), now, DEAD));
    }
}
