use super::*;
use crate::control::proto::{DestSnap, DestSpec, ServiceDef, ServiceSnap};
use crate::ha::{HaCounters, PeerStatus, SyncStatus};
use crate::lvs::service::{Forward, Protocol, ServiceKey};
use crate::lvs::stats::Rates;

fn dest(addr: &str, cps: u64) -> DestSnap {
    DestSnap {
        spec: DestSpec {
            addr: addr.parse().unwrap(),
            port: 80,
            forward: Forward::Route,
            weight: 1,
            uthreshold: 0,
            lthreshold: 0,
            slow_start: 0,
        },
        active: 2,
        inactive: 5,
        persistent: 0,
        ramp_to: None,
        stats: Default::default(),
        rates: Rates {
            cps,
            inpps: cps * 3,
            outpps: 0,
            inbps: cps * 200,
            outbps: 0,
        },
    }
}

fn health(server: &str, state: &str) -> HealthRow {
    HealthRow {
        service: "TCP 198.18.0.100:80".into(),
        server: server.into(),
        forward: "Route".into(),
        weight: 1,
        weight_now: 1,
        ramp_left_ms: None,
        state: state.into(),
        reason: String::new(),
        resolution: String::new(),
        check: "none".into(),
        since_secs: 0,
        since_unix_ms: 0,
    }
}

fn frame() -> Frame {
    let key = ServiceKey::addr(
        Protocol::Tcp,
        "198.18.0.100".parse::<std::net::IpAddr>().unwrap(),
        80,
    );
    Frame {
        snapshot: Snapshot {
            services: vec![ServiceSnap {
                def: ServiceDef {
                    key,
                    scheduler: "wrr".into(),
                    flags: Default::default(),
                    ops: false,
                    persistent: None,
                },
                stats: Default::default(),
                rates: Rates {
                    cps: 25,
                    ..Rates::default()
                },
                // The daemon's order, newest first: the view sorts.
                dests: vec![dest("198.18.0.12", 0), dest("198.18.0.11", 25)],
            }],
            timeouts: Default::default(),
        },
        health: vec![
            health("198.18.0.11:80", "up"),
            health("198.18.0.12:80", "down"),
        ],
        ha: None,
    }
}

/// The words of the line that starts (after blanks) with `start`.
fn row<'a>(text: &'a str, start: &str) -> Vec<&'a str> {
    text.lines()
        .find(|l| l.trim_start().starts_with(start))
        .unwrap_or_else(|| panic!("no {start} in\n{text}"))
        .split_whitespace()
        .collect()
}

#[test]
fn a_frame_has_each_servers_rates_and_health() {
    let f = frame();
    let text = f.render(Some(Duration::from_millis(500)));
    assert!(
        text.starts_with("uvs top - role standalone (no peers) - every 0.5 s, q quits\n"),
        "{text}"
    );
    assert_eq!(
        row(&text, "TCP"),
        [
            "TCP",
            "198.18.0.100:80",
            "wrr",
            "4",
            "10",
            "25",
            "0",
            "0",
            "0",
            "0",
            "1/2",
            "up"
        ]
    );
    assert_eq!(
        row(&text, "-> 198.18.0.11"),
        [
            "->",
            "198.18.0.11:80",
            "Route",
            "1",
            "2",
            "5",
            "25",
            "75",
            "0",
            "5000",
            "0",
            "up"
        ]
    );
    assert_eq!(row(&text, "-> 198.18.0.12").last(), Some(&"down"));
    let rs1 = text.find("198.18.0.11:80").unwrap();
    assert!(rs1 < text.find("198.18.0.12:80").unwrap(), "sorted: {text}");
    // A single frame (not a terminal) names no interval.
    assert!(!f.render(None).contains("q quits"));
}

#[test]
fn the_header_has_the_ha_role_and_peers() {
    let mut f = frame();
    f.ha = Some(HaStatus {
        role: "active".into(),
        priority: 200,
        effective_priority: 190,
        fault: None,
        preempt: true,
        preempt_delay_ms: 0,
        ready: true,
        reason: String::new(),
        seq: 1,
        peers: vec![PeerStatus {
            addr: "198.18.0.3".parse().unwrap(),
            live: false,
            priority: 100,
            active: false,
            heard_ms_ago: None,
            hears_us: false,
            heard_seq: 0,
            heard_our_seq: 0,
            ready: false,
            sync_applied: 0,
            sync_highest: 0,
            sync_lag: 0,
            synced: false,
            hears_witness: false,
        }],
        tracks: Vec::new(),
        counters: HaCounters::default(),
        sync: SyncStatus {
            sent_seq: 0,
            sent_per_s: 0.0,
            received_per_s: 0.0,
            digest: "none yet".into(),
            resync: None,
            counters: Default::default(),
        },
        witness: None,
    });
    let text = f.render(None);
    let first = text.lines().next().unwrap();
    assert_eq!(
        first,
        "uvs top - role active (priority 190), peer 198.18.0.3 gone"
    );
}

#[test]
fn a_server_without_a_health_row_shows_a_dash() {
    let mut f = frame();
    f.health.clear();
    let text = f.render(None);
    assert_eq!(row(&text, "-> 198.18.0.11").last(), Some(&"-"));
    assert_eq!(row(&text, "TCP").last(), Some(&"up"));
    assert!(row(&text, "TCP").contains(&"0/2"), "{text}");
}
