use super::*;
use crate::admin::format::{Columns, Format};
use crate::control::proto::{DestSpec, ServiceDef};
use crate::lvs::service::{Persistence, Protocol, SchedFlags, ServiceKey};
use serde_json::{Value, json};

fn dest(addr: &str, port: u16, forward: Forward, w: u32, act: u32, inact: u32) -> DestSnap {
    DestSnap {
        spec: DestSpec {
            addr: addr.parse().unwrap(),
            port,
            forward,
            weight: w,
            uthreshold: 5,
            lthreshold: 2,
            slow_start: 0,
        },
        active: act,
        inactive: inact,
        persistent: 4,
        ramp_to: None,
        stats: StatsSnapshot {
            conns: 7,
            inpkts: 70,
            outpkts: 60,
            inbytes: 7000,
            outbytes: 6_000_000_000,
        },
        rates: Rates {
            cps: 3,
            inpps: 30,
            outpps: 20,
            inbps: 3000,
            outbps: 2000,
        },
    }
}

fn service(key: ServiceKey, sched: &str, dests: Vec<DestSnap>) -> ServiceSnap {
    ServiceSnap {
        def: ServiceDef {
            key,
            scheduler: sched.into(),
            flags: SchedFlags::default(),
            ops: false,
            persistent: None,
        },
        stats: StatsSnapshot {
            conns: 14,
            ..StatsSnapshot::default()
        },
        rates: Rates {
            cps: 6,
            ..Rates::default()
        },
        dests,
    }
}

/// The daemon's order is not the listing's: the JSON sorts as the text.
fn snap() -> Snapshot {
    let vip = "198.18.0.100".parse::<std::net::IpAddr>().unwrap();
    let mut web = service(
        ServiceKey::addr(Protocol::Tcp, vip, 80),
        "wrr",
        vec![
            dest("198.18.0.12", 80, Forward::Route, 1, 0, 3),
            dest("198.18.0.11", 80, Forward::Tunnel, 3, 2, 1),
        ],
    );
    web.def.persistent = Some(Persistence {
        netmask: "255.255.255.0".parse().unwrap(),
        ..Persistence::new(600)
    });
    let mut dns6 = service(
        ServiceKey::addr(
            Protocol::Udp,
            "2001:2::100".parse::<std::net::IpAddr>().unwrap(),
            53,
        ),
        "sh",
        vec![dest("2001:2::11", 53, Forward::Route, 2, 0, 0)],
    );
    dns6.def.flags = SchedFlags(SchedFlags::FALLBACK | SchedFlags::PORT);
    let mark = service(
        ServiceKey::mark(7),
        "rr",
        vec![dest("198.18.2.11", 8080, Forward::Masq, 1, 0, 0)],
    );
    Snapshot {
        services: vec![dns6, web, mark],
        timeouts: Default::default(),
    }
}

fn parsed(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn a_listing_has_the_text_listings_facts_under_stable_names() {
    let v = parsed(&list_all(&snap(), &Parts::default()));
    let web = json!({
        "protocol": "TCP", "fwmark": null, "family": "ipv4",
        "address": "198.18.0.100", "port": 80, "scheduler": "wrr", "flags": [],
        "ops": false, "persistent": {"timeout": 600, "mask": "255.255.255.0"},
        "servers": [
            {"address": "198.18.0.11", "port": 80, "forward": "Tunnel", "weight": 3,
             "active": 2, "inactive": 1},
            {"address": "198.18.0.12", "port": 80, "forward": "Route", "weight": 1,
             "active": 0, "inactive": 3},
        ],
    });
    // ipvsadm's order: IPv4 before IPv6, and the mark last (libipvs
    // compares the fwmark first: 7 - 0 > 0).
    assert_eq!(v["services"][0], web, "{v:#}");
    assert_eq!(v["services"][1]["family"], "ipv6");
    assert_eq!(v["services"][1]["flags"], json!(["sh-fallback", "sh-port"]));
    assert_eq!(v["services"][1]["persistent"], Value::Null);
    let mark = &v["services"][2];
    assert_eq!(
        (
            &mark["fwmark"],
            &mark["protocol"],
            &mark["address"],
            &mark["port"]
        ),
        (&json!(7), &Value::Null, &Value::Null, &Value::Null)
    );
    assert_eq!(mark["servers"][0]["forward"], "Masq");
}

#[test]
fn services_and_servers_come_in_the_text_listings_order() {
    let s = snap();
    for nosort in [false, true] {
        let f = Format {
            numeric: true,
            nosort,
            ..Format::default()
        };
        let text = crate::admin::format::list_all(&s, &f);
        let v = parsed(&list_all(
            &s,
            &Parts {
                nosort,
                ..Parts::default()
            },
        ));
        let mut from_json = Vec::new();
        for svc in v["services"].as_array().unwrap() {
            from_json.push(match svc["fwmark"].as_u64() {
                Some(m) => format!("FWM  {m}"),
                None => match svc["family"].as_str() {
                    Some("ipv6") => {
                        format!("[{}]:{}", svc["address"].as_str().unwrap(), svc["port"])
                    }
                    _ => format!("{}:{}", svc["address"].as_str().unwrap(), svc["port"]),
                },
            });
            for d in svc["servers"].as_array().unwrap() {
                let a = d["address"].as_str().unwrap();
                let a = if a.contains(':') {
                    format!("[{a}]")
                } else {
                    a.to_string()
                };
                from_json.push(format!("-> {a}:{}", d["port"]));
            }
        }
        let from_text: Vec<&str> = text.lines().skip(3).collect();
        assert_eq!(from_text.len(), from_json.len(), "{text}");
        for (t, j) in from_text.iter().zip(&from_json) {
            assert!(t.contains(j.as_str()), "text {t:?}, JSON {j:?}\n{text}");
        }
    }
}

#[test]
fn each_listing_variant_adds_its_columns_facts() {
    let s = snap();
    let plain = parsed(&list_all(&s, &Parts::default()));
    let d = &plain["services"][0]["servers"][0];
    for k in ["stats", "rates", "uthreshold", "persistent_conns", "tunnel"] {
        assert!(d.get(k).is_none(), "{k} without its switch: {d}");
    }
    assert!(plain["services"][0].get("stats").is_none());
    let all = Parts {
        stats: true,
        rates: true,
        thresholds: true,
        persistent_conns: true,
        tunnel: true,
        nosort: false,
    };
    let v = parsed(&list_all(&s, &all));
    let svc = &v["services"][0];
    assert_eq!(svc["stats"]["conns"], 14);
    assert_eq!(svc["rates"]["cps"], 6);
    let d = &svc["servers"][0];
    // Counters exact, where the text says 6000M.
    assert_eq!(
        d["stats"],
        json!({"conns": 7, "inpkts": 70, "outpkts": 60, "inbytes": 7000, "outbytes": 6_000_000_000u64})
    );
    assert_eq!(
        d["rates"],
        json!({"cps": 3, "inpps": 30, "outpps": 20, "inbps": 3000, "outbps": 2000})
    );
    assert_eq!((&d["uthreshold"], &d["lthreshold"]), (&json!(5), &json!(2)));
    assert_eq!(d["persistent_conns"], 4);
    assert_eq!(d["tunnel"], "ipip");
    assert_eq!(svc["servers"][1]["tunnel"], "none");
    let text = crate::admin::format::list_all(
        &s,
        &Format {
            numeric: true,
            columns: Columns::Stats,
            ..Format::default()
        },
    );
    assert!(text.contains("6000M"), "{text}");
}

#[test]
fn one_service_is_a_table_of_one() {
    let s = snap();
    let v = parsed(&list_service(&s.services[1], &Parts::default()));
    assert_eq!(v["services"].as_array().unwrap().len(), 1);
    assert_eq!(v["services"][0]["port"], 80);
}

#[test]
fn connections_stream_as_one_array() {
    let c = |sport: u16, state: &str| ConnInfo {
        protocol: Protocol::Tcp,
        caddr: "198.18.0.10".parse().unwrap(),
        cport: sport,
        vaddr: "198.18.0.100".parse().unwrap(),
        vport: 80,
        daddr: "198.18.0.11".parse().unwrap(),
        dport: 80,
        state: state.into(),
        expires_secs: 119,
    };
    assert_eq!(parsed(&list_conns(&[])), json!({"connections": []}));
    let v = parsed(&list_conns(&[
        c(40000, "TIME_WAIT"),
        c(40001, "ESTABLISHED"),
    ]));
    assert_eq!(
        v["connections"][0],
        json!({
            "protocol": "TCP", "state": "TIME_WAIT", "expires_secs": 119,
            "source_address": "198.18.0.10", "source_port": 40000,
            "virtual_address": "198.18.0.100", "virtual_port": 80,
            "destination_address": "198.18.0.11", "destination_port": 80,
        })
    );
    assert_eq!(v["connections"][1]["state"], "ESTABLISHED");
}

#[test]
fn timeouts_daemons_and_status_are_objects() {
    let t = parsed(&list_timeout(&Timeouts::default()));
    assert_eq!(t, json!({"tcp": 900, "tcpfin": 120, "udp": 300}));
    assert_eq!(parsed(&list_daemon(None)), json!({"daemons": []}));
    let pairs = vec![("zeta".to_string(), 2), ("alpha".to_string(), 1)];
    let s = status(&pairs);
    assert!(s.find("zeta") < s.find("alpha"), "the text's order: {s}");
    assert_eq!(parsed(&s), json!({"zeta": 2, "alpha": 1}));
}
