//! The election, the peers' replay windows, a starting director's wait
//! for its peers' tables, and the announcements after contention.

use super::*;
use std::net::{Ipv4Addr, Ipv6Addr};

const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 9));

fn cfg(me: [u8; 4], prio: u8, preempt: bool) -> HaConfig {
    HaConfig {
        me: Ipv4Addr::from(me).into(),
        peers: vec![PEER],
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
        addr: PEER,
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

/// Equal priorities: the higher address holds, and both directors agree
/// on which, IPv6 addresses compared by all their bytes (2001:3::1 is
/// above 2001:2::9, whatever their last words say).
#[test]
fn ties_go_to_the_higher_address_in_either_family() {
    let now = Instant::now();
    let v6 = |s: &str| IpAddr::V6(s.parse::<Ipv6Addr>().unwrap());
    let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
    let pairs = [
        (v4(198, 18, 0, 2), v4(198, 18, 0, 9)),
        (v4(198, 18, 1, 2), v4(198, 18, 0, 9)),
        (v6("2001:2::3"), v6("2001:2::9")),
        (v6("2001:3::1"), v6("2001:2::9")),
    ];
    let holds_as = |me: IpAddr, other: IpAddr| {
        let mut c = cfg([198, 18, 0, 2], 100, true);
        c.me = me;
        c.peers = vec![other];
        let mut p = peer(100, false, Some(Duration::from_millis(50)), 100, now);
        p.addr = other;
        decide(&c, &[p], false, now)
    };
    for (x, y) in pairs {
        let (x_holds, y_holds) = (holds_as(x, y), holds_as(y, x));
        assert_ne!(x_holds, y_holds, "{x} and {y}: exactly one holds");
        assert_eq!(x_holds, x > y, "{x} and {y}");
    }
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
    let mut p = Peer::new(PEER);
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
        grantee: (live && !ours).then_some(Ipv4Addr::new(198, 18, 0, 2).into()),
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
    c.peers = vec![Ipv4Addr::new(198, 18, 0, 3).into()];
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
            Ipv4Addr::new(198, 18, 0, 3).into(),
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
    c.peers = vec![Ipv4Addr::new(198, 18, 0, 3).into()];
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
    let peer = PEER;
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
