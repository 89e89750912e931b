use super::*;
use crate::control::proto::{DestSnap, ServiceDef};
use crate::lvs::service::{Protocol, SchedFlags, ServiceKey};

use crate::control::model::tests::dest;
use crate::lvs::trace::test_query as query;

fn service(sched: SchedulerKind, weights: &[u32]) -> ServiceSnap {
    let key = ServiceKey::addr(Protocol::Tcp, "198.18.0.100".parse::<IpAddr>().unwrap(), 80);
    let dests = weights
        .iter()
        .enumerate()
        .map(|(i, &weight)| DestSnap {
            spec: dest(11 + i as u8, weight),
            ramp_to: None,
            active: 0,
            inactive: 0,
            persistent: 0,
            stats: Default::default(),
            rates: Default::default(),
        })
        .collect();
    ServiceSnap {
        def: ServiceDef::of(key, sched, SchedFlags::default(), false, None),
        stats: Default::default(),
        rates: Default::default(),
        dests,
    }
}

fn row(server: &str, state: &str, reason: &str) -> HealthRow {
    HealthRow {
        service: "TCP 198.18.0.100:80".into(),
        server: server.into(),
        forward: "Route".into(),
        weight: 1,
        state: state.into(),
        reason: reason.into(),
        resolution: String::new(),
        check: String::new(),
        since_secs: 0,
        since_unix_ms: 0,
        weight_now: 1,
        ramp_left_ms: None,
    }
}

fn entry(server: &str, state: &str, offloaded: bool, controls: u32) -> TraceEntry {
    TraceEntry {
        cport: 40000,
        state: state.into(),
        server: server.parse().unwrap(),
        port: 80,
        expires_secs: 890,
        offloaded,
        worker: 0,
        controls,
    }
}

fn run(
    q: &TraceQuery,
    svc: Option<&ServiceSnap>,
    health: &[HealthRow],
    quorum: Option<TraceQuorum>,
    facts: FlowFacts,
) -> TraceReport {
    explain(Inputs {
        query: q,
        service: svc,
        health,
        quorum,
        facts,
        ha_role: None,
    })
}

fn said(r: &TraceReport, what: &str) -> bool {
    r.why.iter().any(|w| w.contains(what))
}

#[test]
fn no_service_says_so() {
    let r = run(&query(None), None, &[], None, FlowFacts::default());
    assert_eq!(r.service, None);
    assert!(said(&r, "no virtual service 198.18.0.100:80"), "{r:?}");
}

#[test]
fn an_entry_decides_and_an_offloaded_one_is_the_kernels() {
    let svc = service(SchedulerKind::Rr, &[1, 1]);
    let facts = FlowFacts {
        entries: vec![entry("198.18.0.12", "ESTABLISHED", true, 0)],
        template: None,
        predicted: Some(("198.18.0.11".parse().unwrap(), 80)),
    };
    let r = run(&query(Some(40000)), Some(&svc), &[], None, facts);
    assert!(said(&r, "ESTABLISHED to 198.18.0.12:80"), "{r:?}");
    assert!(said(&r, "the kernel program carries it"), "{r:?}");
    assert!(said(&r, "frames follow the entry"), "{r:?}");
    assert!(!r.ecmp_agree);
    assert!(said(&r, "only this director"), "{r:?}");
}

#[test]
fn rr_names_its_candidates_and_no_certainty() {
    let svc = service(SchedulerKind::Rr, &[1, 0, 2]);
    let facts = FlowFacts {
        predicted: Some(("198.18.0.13".parse().unwrap(), 80)),
        ..FlowFacts::default()
    };
    let r = run(&query(None), Some(&svc), &[], None, facts);
    assert!(!r.deterministic && !r.ecmp_agree);
    assert!(said(&r, "depends on what arrives first"), "{r:?}");
    assert!(
        said(&r, "198.18.0.11:80 (weight 1), 198.18.0.13:80 (weight 2)"),
        "the quiesced server is no candidate: {r:?}"
    );
    assert!(said(&r, "directors may disagree"), "{r:?}");
}

#[test]
fn a_hashing_scheduler_predicts_and_directors_agree() {
    for k in [SchedulerKind::Sh, SchedulerKind::Mh] {
        let svc = service(k, &[1, 1]);
        let facts = FlowFacts {
            predicted: Some(("198.18.0.12".parse().unwrap(), 80)),
            ..FlowFacts::default()
        };
        let r = run(&query(None), Some(&svc), &[], None, facts);
        assert!(r.deterministic && r.ecmp_agree, "{k:?}");
        assert_eq!(r.next_server.as_deref(), Some("198.18.0.12:80"));
        assert!(said(&r, "hashes the flow"), "{r:?}");
        assert!(said(&r, "they agree"), "{r:?}");
    }
}

#[test]
fn a_template_pins_the_client() {
    let svc = service(SchedulerKind::Wlc, &[1, 1]);
    let t = entry("198.18.0.11", "NONE", false, 2);
    let facts = FlowFacts {
        template: Some(TraceEntry { cport: 0, ..t }),
        predicted: Some(("198.18.0.11".parse().unwrap(), 80)),
        ..FlowFacts::default()
    };
    let r = run(&query(None), Some(&svc), &[], None, facts);
    assert!(r.deterministic);
    assert!(said(&r, "pins the client to 198.18.0.11:80"), "{r:?}");
    assert!(said(&r, "controls 2 connection(s)"), "{r:?}");
}

#[test]
fn a_lost_quorum_names_the_sorry_server_and_the_servers_down() {
    let svc = service(SchedulerKind::Rr, &[0, 1]);
    let health = [
        row("198.18.0.11:80", "down", "connect refused"),
        row("198.18.0.12:80", "up", ""),
    ];
    let quorum = TraceQuorum {
        min_weight: 1,
        lost: true,
        sorry: Some("198.18.0.12:80".into()),
    };
    let facts = FlowFacts {
        predicted: Some(("198.18.0.12".parse().unwrap(), 80)),
        ..FlowFacts::default()
    };
    let r = run(&query(None), Some(&svc), &health, Some(quorum), facts);
    assert!(said(&r, "go to the sorry server 198.18.0.12:80"), "{r:?}");
    assert!(said(&r, "198.18.0.11:80 is down: connect refused"), "{r:?}");
    assert!(
        r.servers
            .iter()
            .any(|s| s.sorry && s.server == "198.18.0.12:80")
    );
}

#[test]
fn no_usable_server_is_a_refusal() {
    let svc = service(SchedulerKind::Rr, &[0]);
    let r = run(&query(None), Some(&svc), &[], None, FlowFacts::default());
    assert_eq!(r.next_server, None);
    assert!(said(&r, "is refused"), "{r:?}");
}
