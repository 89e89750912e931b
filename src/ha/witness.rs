//! A witness: a third voter for two directors, so that heartbeats lost
//! both ways between them no longer leave both holding the VIPs. The
//! witness (`uvs witness`, on a third host) answers each director's keyed
//! message with its own, and gives its vote to one director at a time:
//! the one that holds the VIPs (or claims them) keeps it while it keeps
//! asking. With a witness configured a director holds the VIPs only
//! while it counts a majority of the voters (itself, its peers it hears,
//! the witness if the vote is its own), so of two directors that cannot
//! hear each other only the one with the vote holds. docs/ha.md has the
//! failure cases.

use super::Fresh;
pub use crate::wire::ha::Refused;
pub use crate::wire::ha::witness::{
    LEN, MAGIC, MAX_LEN, WitnessBytes, WitnessKind as Kind, WitnessMsg,
};
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// The witness's port unless given.
pub const DEFAULT_PORT: u16 = 5405;
/// The vote outlives a director's silence by half its dead interval
/// again, so a director stops counting the vote (after one dead interval
/// without an answer) before the witness can give it to another.
const LEASE_NUM: u32 = 3;
const LEASE_DEN: u32 = 2;

/// The boot id of this run: random per start.
pub fn new_boot() -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::RandomState::default().hash_one(std::process::id())
}

// ---------------------------------------------------------------------
// The witness's side (`uvs witness`).

/// One director as the witness knows it.
#[derive(Debug, Clone)]
struct Known {
    addr: IpAddr,
    last: Fresh,
    heard_at: Option<Instant>,
    lease: Duration,
    priority: u8,
    holding: bool,
    claiming: bool,
}

impl Known {
    fn live(&self, now: Instant) -> bool {
        self.heard_at
            .is_some_and(|t| now.duration_since(t) < self.lease)
    }

    /// Of two directors that both want the vote: the holder first, then
    /// the higher priority, then the higher address (as the election).
    fn rank(&self) -> (bool, u8, IpAddr) {
        (self.holding, self.priority, self.addr)
    }
}

/// Counters the witness logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WitnessCounters {
    pub received: u64,
    pub answered: u64,
    pub bad_mac: u64,
    pub malformed: u64,
    pub replayed: u64,
    pub unknown_sender: u64,
}

/// The witness: which director has its vote, given what each says.
pub struct Voter {
    key: Vec<u8>,
    known: Vec<Known>,
    vote: Option<usize>,
    boot: u64,
    seq: u64,
    started: Instant,
    /// How long after its start the witness only listens: a restarted
    /// witness first hears who holds the VIPs before it gives its vote.
    listen: Duration,
    pub counters: WitnessCounters,
}

/// What the witness does with one datagram.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    /// The reply to send back to the sender, if it was a fresh message
    /// of a known director.
    pub reply: Option<WitnessBytes>,
    /// A change of vote, for the log.
    pub change: Option<String>,
}

impl Voter {
    pub fn new(key: Vec<u8>, directors: &[IpAddr], listen: Duration, now: Instant) -> Voter {
        Voter {
            key,
            known: directors
                .iter()
                .map(|a| Known {
                    addr: a.to_canonical(),
                    last: Fresh::default(),
                    heard_at: None,
                    lease: Duration::ZERO,
                    priority: 0,
                    holding: false,
                    claiming: false,
                })
                .collect(),
            vote: None,
            boot: new_boot(),
            seq: 0,
            started: now,
            listen,
            counters: WitnessCounters::default(),
        }
    }

    /// The director with the vote.
    pub fn grantee(&self) -> Option<IpAddr> {
        self.vote.map(|i| self.known[i].addr)
    }

    /// Takes a datagram from `from` (an IPv4 director on an IPv6 socket
    /// is its IPv4 address, mapped); the answer to send and any change.
    pub fn receive(&mut self, from: SocketAddr, b: &[u8], now: Instant, now_ms: u64) -> Answer {
        let none = Answer {
            reply: None,
            change: None,
        };
        let from = from.ip().to_canonical();
        let Some(i) = self.known.iter().position(|k| k.addr == from) else {
            self.counters.unknown_sender += 1;
            return none;
        };
        let m = match WitnessMsg::parse(b, &self.key) {
            Ok(m) => m,
            Err(Refused::BadMac) => {
                self.counters.bad_mac += 1;
                return none;
            }
            Err(Refused::Malformed) => {
                self.counters.malformed += 1;
                return none;
            }
        };
        let Kind::Director {
            priority,
            holding,
            claiming,
            dead_ms,
        } = m.kind
        else {
            self.counters.malformed += 1;
            return none;
        };
        if !self.known[i].last.accept(m.boot, m.seq, m.sent_ms) {
            self.counters.replayed += 1;
            return none;
        }
        self.counters.received += 1;
        let k = &mut self.known[i];
        k.heard_at = Some(now);
        // A dead interval of 30 ms to 10,000 s, as the director's flags
        // allow; the lease is half as long again.
        let dead = Duration::from_millis(u64::from(dead_ms.clamp(30, 10_000_000)));
        k.lease = dead * LEASE_NUM / LEASE_DEN;
        k.priority = priority;
        k.holding = holding;
        k.claiming = claiming;
        let change = self.update(now);
        self.seq += 1;
        self.counters.answered += 1;
        let reply = WitnessMsg {
            boot: self.boot,
            seq: self.seq,
            sent_ms: now_ms,
            kind: Kind::Witness {
                vote_for_you: self.vote == Some(i),
                grantee: self.grantee(),
                answers: m.seq,
            },
        }
        .emit(&self.key);
        Answer {
            reply: Some(reply),
            change,
        }
    }

    /// Frees the vote from a director that went silent or gave up the
    /// VIPs, and gives a free vote to the best live claimant.
    fn update(&mut self, now: Instant) -> Option<String> {
        let mut why = None;
        if let Some(v) = self.vote {
            let k = &self.known[v];
            if !k.live(now) {
                why = Some(format!("vote freed: {} went silent", k.addr));
                self.vote = None;
            } else if !k.holding && !k.claiming {
                why = Some(format!("vote freed: {} gave up the VIPs", k.addr));
                self.vote = None;
            }
        }
        // A witness that starts hears every live director before its first
        // vote: its own listening time, or the longest dead interval a
        // director reports if that is longer.
        let listen = self
            .known
            .iter()
            .map(|k| k.lease * LEASE_DEN / LEASE_NUM)
            .max()
            .unwrap_or_default()
            .max(self.listen);
        if self.vote.is_none() && now.duration_since(self.started) >= listen {
            let best = (0..self.known.len())
                .filter(|&j| self.known[j].live(now) && self.known[j].claiming)
                .max_by_key(|&j| self.known[j].rank());
            if let Some(j) = best {
                self.vote = Some(j);
                let k = &self.known[j];
                let what = format!(
                    "vote to {} ({}, priority {})",
                    k.addr,
                    if k.holding {
                        "holds the VIPs"
                    } else {
                        "claims the VIPs"
                    },
                    k.priority
                );
                why = Some(match why {
                    Some(w) => format!("{w}; {what}"),
                    None => what,
                });
            }
        }
        why
    }

    /// Runs the vote's expiry without a message (the witness's timer):
    /// a grantee that went silent loses the vote even if no one asks.
    pub fn tick(&mut self, now: Instant) -> Option<String> {
        self.update(now)
    }
}

/// Why `uvs witness` stopped.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// Its socket on `listen` (binding, or receiving).
    #[error("witness: {listen}: {source}")]
    Socket {
        listen: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// Its receive timeout (the vote's timer) could not be set.
    #[error("witness: {0}")]
    Timer(#[source] std::io::Error),
}

/// `uvs witness`: answers the directors on `listen` until killed, and
/// logs every change of its vote. One thread, a blocking socket: it
/// answers a few datagrams per heartbeat interval.
pub fn run(listen: SocketAddr, directors: &[IpAddr], key: Vec<u8>) -> Result<(), WitnessError> {
    let socket = |source| WitnessError::Socket { listen, source };
    let sock = std::net::UdpSocket::bind(listen).map_err(socket)?;
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(WitnessError::Timer)?;
    let mut v = Voter::new(key, directors, LISTEN, Instant::now());
    let list: Vec<String> = directors.iter().map(|a| a.to_string()).collect();
    tracing::info!(
        "witness: on {listen} for directors {}; listening {} ms before its first vote",
        list.join(", "),
        LISTEN.as_millis()
    );
    let mut buf = [0u8; 2048];
    let mut logged = WitnessCounters::default();
    let mut last_log = Instant::now();
    loop {
        let got = sock.recv_from(&mut buf);
        let now = Instant::now();
        let change = match got {
            Ok((n, from)) => {
                let a = v.receive(from, &buf[..n], now, crate::host::unix_ms());
                if let Some(r) = a.reply {
                    let _ = sock.send_to(&r, from);
                }
                a.change
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                v.tick(now)
            }
            Err(e) => return Err(socket(e)),
        };
        if let Some(c) = change {
            tracing::info!("witness: {c}");
        }
        // Refused messages are logged, at most once a minute.
        let c = &v.counters;
        if now.duration_since(last_log) >= Duration::from_secs(60)
            && (c.bad_mac, c.malformed, c.replayed, c.unknown_sender)
                != (
                    logged.bad_mac,
                    logged.malformed,
                    logged.replayed,
                    logged.unknown_sender,
                )
        {
            tracing::info!(
                "witness: refused: bad MAC {} malformed {} replayed {} unknown sender {}",
                c.bad_mac,
                c.malformed,
                c.replayed,
                c.unknown_sender
            );
            logged = c.clone();
            last_log = now;
        }
    }
}

/// How long a witness that starts only listens (at least: see
/// [`Voter::update`]).
const LISTEN: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------
// The director's side.

/// What a director knows of its witness.
#[derive(Debug, Clone)]
pub struct WitnessView {
    pub addr: SocketAddr,
    last: Fresh,
    heard_at: Option<Instant>,
    /// The vote is ours until then: one dead interval from the moment we
    /// sent the message it answered (the witness keeps it longer).
    vote_until: Option<Instant>,
    /// The director the witness says has its vote.
    pub grantee: Option<IpAddr>,
    seq: u64,
    /// When our recent messages left, to start a vote's lease.
    sent: VecDeque<(u64, Instant)>,
    pub counters: WitnessCounters,
}

impl WitnessView {
    pub fn new(addr: SocketAddr) -> WitnessView {
        WitnessView {
            addr,
            last: Fresh::default(),
            heard_at: None,
            vote_until: None,
            grantee: None,
            seq: 0,
            sent: VecDeque::new(),
            counters: WitnessCounters::default(),
        }
    }

    pub fn live(&self, now: Instant, dead: Duration) -> bool {
        self.heard_at.is_some_and(|t| now.duration_since(t) < dead)
    }

    /// The vote is ours, and its lease has not run out.
    pub fn votes_for_us(&self, now: Instant) -> bool {
        self.vote_until.is_some_and(|t| now < t)
    }

    pub fn heard_ms_ago(&self, now: Instant) -> Option<u64> {
        self.heard_at
            .map(|t| now.duration_since(t).as_millis() as u64)
    }

    /// Our next message to the witness.
    #[allow(clippy::too_many_arguments)]
    pub fn message(
        &mut self,
        boot: u64,
        priority: u8,
        holding: bool,
        claiming: bool,
        dead: Duration,
        now: Instant,
        now_ms: u64,
        key: &[u8],
    ) -> WitnessBytes {
        self.seq += 1;
        self.sent.push_back((self.seq, now));
        while self.sent.len() > 64 {
            self.sent.pop_front();
        }
        WitnessMsg {
            boot,
            seq: self.seq,
            sent_ms: now_ms,
            kind: Kind::Director {
                priority,
                holding,
                claiming,
                dead_ms: u32::try_from(dead.as_millis()).unwrap_or(u32::MAX),
            },
        }
        .emit(key)
    }

    /// The witness's answer. A vote for us counts for one dead interval
    /// from when the message it answers left here.
    pub fn receive(&mut self, b: &[u8], key: &[u8], now: Instant, dead: Duration) {
        let m = match WitnessMsg::parse(b, key) {
            Ok(m) => m,
            Err(Refused::BadMac) => {
                self.counters.bad_mac += 1;
                return;
            }
            Err(Refused::Malformed) => {
                self.counters.malformed += 1;
                return;
            }
        };
        let Kind::Witness {
            vote_for_you,
            grantee,
            answers,
        } = m.kind
        else {
            self.counters.malformed += 1;
            return;
        };
        if !self.last.accept(m.boot, m.seq, m.sent_ms) {
            self.counters.replayed += 1;
            return;
        }
        self.counters.received += 1;
        self.heard_at = Some(now);
        self.grantee = grantee;
        let sent = self
            .sent
            .iter()
            .find(|(s, _)| *s == answers)
            .map(|(_, t)| *t);
        match (vote_for_you, sent) {
            (true, Some(t)) => {
                let until = t + dead;
                self.vote_until = Some(self.vote_until.map_or(until, |u| u.max(until)));
            }
            // An answer to a message we did not send (or no longer
            // remember) proves nothing about the vote's age.
            (true, None) => {}
            (false, _) => self.vote_until = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"a shared secret of enough length";
    use std::net::{Ipv4Addr, Ipv6Addr};

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 3));
    const W: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 4)), 5405);
    const A6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2));
    const B6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 3));
    const W6: SocketAddr =
        SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 4)), 5405);
    const DEAD: Duration = Duration::from_secs(1);

    /// A director's message to the witness.
    fn ask(
        v: &mut WitnessView,
        holding: bool,
        claiming: bool,
        prio: u8,
        now: Instant,
    ) -> WitnessBytes {
        v.message(1, prio, holding, claiming, DEAD, now, 1000 + v.seq, KEY)
    }

    fn from(a: IpAddr) -> SocketAddr {
        SocketAddr::new(a, 5405)
    }

    #[test]
    fn the_vote_stays_with_the_holder_while_it_asks_and_moves_when_it_goes_silent() {
        the_vote_moves([A, B], W);
    }

    /// The same between IPv6 directors: the answers name them in the
    /// longer form, and an IPv4 director's mapped address on an IPv6
    /// socket is that director.
    #[test]
    fn the_vote_moves_the_same_between_ipv6_directors() {
        the_vote_moves([A6, B6], W6);
        let mut w = Voter::new(KEY.to_vec(), &[A], Duration::ZERO, Instant::now());
        let mut va = WitnessView::new(W6);
        let t = Instant::now() + DEAD * 2;
        let m = ask(&mut va, true, true, 200, t);
        let mapped = match A {
            IpAddr::V4(a) => IpAddr::V6(a.to_ipv6_mapped()),
            v6 => v6,
        };
        let reply = w.receive(from(mapped), &m, t, 1).reply.unwrap();
        assert_eq!(reply.len(), LEN);
        va.receive(&reply, KEY, t, DEAD);
        assert_eq!(va.grantee, Some(A));
    }

    fn the_vote_moves([a, b]: [IpAddr; 2], wit: SocketAddr) {
        let t0 = Instant::now();
        let mut w = Voter::new(KEY.to_vec(), &[a, b], DEAD, t0);
        let (mut va, mut vb) = (WitnessView::new(wit), WitnessView::new(wit));
        let mut t = t0;
        let step = Duration::from_millis(100);
        // While the witness listens after its start, no vote is given.
        let m = ask(&mut va, true, true, 200, t);
        let ans = w.receive(from(a), &m, t, 1);
        va.receive(&ans.reply.unwrap(), KEY, t, DEAD);
        assert!(!va.votes_for_us(t));
        // Then the holder gets it, and a claimant of a split does not.
        for _ in 0..20 {
            t += step;
            for (v, who, holding, prio) in [(&mut va, a, true, 200), (&mut vb, b, false, 100)] {
                let m = ask(v, holding, true, prio, t);
                let ans = w.receive(from(who), &m, t, 1);
                v.receive(&ans.reply.unwrap(), KEY, t, DEAD);
            }
        }
        assert_eq!(w.grantee(), Some(a));
        assert!(va.votes_for_us(t) && !vb.votes_for_us(t));
        assert_eq!(vb.grantee, Some(a));
        let m = ask(&mut vb, false, true, 100, t);
        let len = match a {
            IpAddr::V4(_) => LEN,
            IpAddr::V6(_) => MAX_LEN,
        };
        assert_eq!(w.receive(from(b), &m, t, 1).reply.unwrap().len(), len);
        // A goes silent: its own lease ends one dead interval after its
        // last message, before the witness frees the vote for B.
        let a_last = t;
        let mut b_got = None;
        while b_got.is_none() {
            t += step;
            let m = ask(&mut vb, false, true, 100, t);
            let ans = w.receive(from(b), &m, t, 1);
            vb.receive(&ans.reply.unwrap(), KEY, t, DEAD);
            if vb.votes_for_us(t) {
                b_got = Some(t);
            }
            assert!(t < a_last + DEAD * 3, "b never got the vote");
        }
        let b_got = b_got.unwrap();
        assert!(!va.votes_for_us(a_last + DEAD));
        assert!(b_got >= a_last + DEAD + DEAD / 4, "{:?}", b_got - a_last);
    }

    #[test]
    fn a_holder_that_lets_go_frees_the_vote_and_replays_are_refused() {
        let start = Instant::now();
        let mut w = Voter::new(KEY.to_vec(), &[A, B], Duration::ZERO, start);
        // Past its listening time (the directors' dead interval).
        let t0 = start + DEAD * 2;
        let mut va = WitnessView::new(W);
        let m = ask(&mut va, true, true, 200, t0);
        assert!(w.receive(from(A), &m, t0, 1).change.is_some());
        assert_eq!(w.grantee(), Some(A));
        // The same message again is a replay; from elsewhere, unknown.
        assert_eq!(w.receive(from(A), &m, t0, 1).reply, None);
        assert_eq!(w.counters.replayed, 1);
        let c = SocketAddr::new(Ipv4Addr::new(198, 18, 0, 10).into(), 9);
        assert_eq!(w.receive(c, &m, t0, 1).reply, None);
        assert_eq!(w.counters.unknown_sender, 1);
        let m = ask(&mut va, false, false, 50, t0);
        let ans = w.receive(from(A), &m, t0, 1);
        assert!(ans.change.unwrap().contains("gave up"));
        assert_eq!(w.grantee(), None);
        // A witness's answer replayed to the director is refused too.
        let m = ask(&mut va, true, true, 200, t0);
        let reply = w.receive(from(A), &m, t0, 1).reply.unwrap();
        va.receive(&reply, KEY, t0, DEAD);
        va.receive(&reply, KEY, t0, DEAD);
        assert_eq!(va.counters.replayed, 1);
    }
}
