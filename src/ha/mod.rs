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
}

/// What is known of one peer.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: Ipv4Addr,
    last: Option<(u64, u64, u64)>,
    heard_at: Option<Instant>,
    pub priority: u8,
    pub active: bool,
    /// The last of our sequence numbers it says it heard.
    pub heard_our_seq: u64,
}

impl Peer {
    pub fn new(addr: Ipv4Addr) -> Peer {
        Peer {
            addr,
            last: None,
            heard_at: None,
            priority: 0,
            active: false,
            heard_our_seq: 0,
        }
    }

    /// Takes a heartbeat if it moves this peer's (boot, sequence) forward:
    /// a replay (an old or repeated message) is refused. A new boot is
    /// taken when its clock is later than the last message's.
    pub fn accept(&mut self, h: &Heartbeat, now: Instant) -> bool {
        let fresh = match self.last {
            None => true,
            Some((boot, seq, sent)) if boot == h.boot => h.seq > seq && h.sent_ms >= sent,
            Some((_, _, sent)) => h.sent_ms > sent,
        };
        if fresh {
            self.last = Some((h.boot, h.seq, h.sent_ms));
            self.heard_at = Some(now);
            self.priority = h.priority;
            self.active = h.active;
            self.heard_our_seq = h.heard_seq;
        }
        fresh
    }

    pub fn seq(&self) -> u64 {
        self.last.map_or(0, |l| l.1)
    }

    fn live(&self, now: Instant, dead: Duration) -> bool {
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
}

/// `uvs ha`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaStatus {
    pub role: String,
    pub priority: u8,
    pub reason: String,
    pub peers: Vec<PeerStatus>,
    pub counters: HaCounters,
}

/// The election, as a pure function of what this director knows.
pub struct Election<'a> {
    pub cfg: &'a HaConfig,
    pub peers: &'a [Peer],
    pub our_seq: u64,
    pub active_now: bool,
    pub started: Instant,
    pub now: Instant,
}

impl Election<'_> {
    fn dead(&self) -> Duration {
        self.cfg.interval * self.cfg.dead_after
    }

    fn hears_us(&self, p: &Peer) -> bool {
        self.our_seq.saturating_sub(p.heard_our_seq) <= u64::from(self.cfg.dead_after / 2).max(1)
    }

    /// Whether this director should hold the VIPs, and why.
    pub fn decide(&self) -> (bool, String) {
        let dead = self.dead();
        // A director that starts listens for a full dead interval first,
        // so it cannot take the VIPs from a live peer it has not heard yet.
        if self.now.duration_since(self.started) < dead {
            return (false, "starting: listening for peers".into());
        }
        let rank = |prio: u8, addr: Ipv4Addr| (prio, u32::from(addr));
        let mine = rank(self.cfg.priority, self.cfg.me);
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
            Some(p) => (
                false,
                format!("peer {} has priority {}", p.addr, p.priority),
            ),
            None if live.is_empty() && !self.peers.is_empty() => (true, "no peer heard".into()),
            None => (true, "highest priority of the live directors".into()),
        }
    }
}

/// Everything the heartbeat task keeps.
pub struct Ha {
    pub cfg: HaConfig,
    pub peers: Vec<Peer>,
    pub boot: u64,
    pub seq: u64,
    pub active: bool,
    pub reason: String,
    pub counters: HaCounters,
    pub started: Instant,
}

impl Ha {
    pub fn new(cfg: HaConfig) -> Ha {
        use std::hash::BuildHasher;
        let boot = foldhash::fast::RandomState::default().hash_one(std::process::id());
        let peers = cfg.peers.iter().map(|a| Peer::new(*a)).collect();
        Ha {
            cfg,
            peers,
            boot,
            seq: 0,
            active: false,
            reason: "starting".into(),
            counters: HaCounters::default(),
            started: Instant::now(),
        }
    }

    /// The next heartbeat for `peer`.
    pub fn heartbeat(&mut self, peer: usize, now_ms: u64) -> [u8; msg::LEN] {
        let heard = self.peers.get(peer).map_or(0, Peer::seq);
        Heartbeat {
            boot: self.boot,
            seq: self.seq,
            sent_ms: now_ms,
            priority: self.cfg.priority,
            active: self.active,
            heard_seq: heard,
        }
        .emit(&self.cfg.key)
    }

    /// A datagram from `from`: counted, and taken if it is a fresh
    /// heartbeat of a known peer under our key.
    pub fn receive(&mut self, from: SocketAddrV4, b: &[u8], now: Instant) {
        let Some(p) = self.peers.iter_mut().find(|p| p.addr == *from.ip()) else {
            self.counters.unknown_sender += 1;
            return;
        };
        match Heartbeat::parse(b, &self.cfg.key) {
            Err(Refused::Malformed) => self.counters.malformed += 1,
            Err(Refused::BadMac) => self.counters.bad_mac += 1,
            Ok(h) => match p.accept(&h, now) {
                true => self.counters.received += 1,
                false => self.counters.replayed += 1,
            },
        }
    }

    /// The election as it stands at `now`.
    fn election(&self, now: Instant) -> Election<'_> {
        Election {
            cfg: &self.cfg,
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
            active
        })
    }

    pub fn status(&self, now: Instant) -> HaStatus {
        let e = self.election(now);
        let dead = e.dead();
        HaStatus {
            role: if self.active { "active" } else { "backup" }.into(),
            priority: self.cfg.priority,
            reason: self.reason.clone(),
            peers: self
                .peers
                .iter()
                .map(|p| PeerStatus {
                    addr: p.addr,
                    live: p.live(now, dead),
                    priority: p.priority,
                    active: p.active,
                    heard_ms_ago: p.heard_at.map(|t| now.duration_since(t).as_millis() as u64),
                    hears_us: p.heard_at.is_some() && e.hears_us(p),
                })
                .collect(),
            counters: self.counters.clone(),
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
            last: Some((1, 1, 1)),
            heard_at: heard_ago.map(|d| now - d),
            priority: prio,
            active,
            heard_our_seq,
        }
    }

    fn decide(c: &HaConfig, peers: &[Peer], our_seq: u64, active_now: bool, now: Instant) -> bool {
        Election {
            cfg: c,
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

    #[test]
    fn a_director_its_peer_cannot_hear_steps_down() {
        let now = Instant::now();
        let hi = cfg([198, 18, 0, 2], 200, true);
        // The peer is heard, but its last-heard of our sequence lags 50.
        let deaf = peer(100, false, Some(Duration::from_millis(50)), 50, now);
        assert!(!decide(&hi, &[deaf], 100, true, now));
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
            heard_seq: 0,
        };
        assert!(p.accept(&h(1, 5, 1000), now));
        assert!(!p.accept(&h(1, 5, 1000), now), "the same message again");
        assert!(!p.accept(&h(1, 4, 1100), now), "an older one");
        assert!(p.accept(&h(1, 6, 1100), now));
        // A restart (new boot) with a later clock is taken; an old boot's
        // message replayed is not.
        assert!(p.accept(&h(2, 1, 2000), now));
        assert!(!p.accept(&h(1, 7, 1200), now));
    }
}
