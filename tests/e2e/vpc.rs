//! The cloud-VPC lab (lab.sh --vpc): a switch with port security that only
//! admits each port's own (MAC, IPv4) pairs, plus the VIP as an allowed
//! address pair. DR's frames (a client's source address from the
//! director's MAC) must die there, TUN's must pass; and `uvs probe` must
//! tell the two labs apart before any service is configured, over IPv4
//! and over IPv6 (the switch checks (MAC, IPv6) pairs too).

use crate::support::holds;
use crate::support::{Lab, RS1, RS1_6, VIP, VIP6, tally};

/// Client stand-ins inside the lab's ranges (the defaults are the
/// documentation addresses).
const CLIENT: &str = "198.19.0.1";
const CLIENT6: &str = "2001:2:0:ff::1";

fn outcome<'a>(v: &'a serde_json::Value, case: &str) -> &'a serde_json::Value {
    v["outcomes"]
        .as_array()
        .and_then(|a| a.iter().find(|o| o["case"] == case))
        .unwrap_or_else(|| panic!("no case {case} in {v}"))
}

/// The probe's verdict: whether DR works, whether TUN does.
fn works(v: &serde_json::Value) -> (Option<bool>, Option<bool>) {
    let w = &v["verdict"];
    (w["dr_works"].as_bool(), w["tun_works"].as_bool())
}

/// The probe's recommendation, in words.
fn recommendation(v: &serde_json::Value) -> &str {
    v["verdict"]["recommendation"].as_str().unwrap_or("")
}

/// The VPC lab with one real server that has its tunnel device.
fn vpc_lab() -> Option<Lab> {
    let mut l = Lab::up_with(1, &["--vpc"])?;
    l.start_tunnel("rs1");
    Some(l)
}

#[test]
fn vpc_switch_drops_dr_and_passes_tun() {
    let Some(mut l) = vpc_lab() else {
        return;
    };
    l.start_server("rs1");
    l.start_director();
    l.adm(&format!("-A -t {VIP}:80 -s rr"));
    l.adm(&format!("-a -t {VIP}:80 -r {RS1} -g"));
    l.adm(&format!("-A -u {VIP}:53 -s rr"));
    l.adm(&format!("-a -u {VIP}:53 -r {RS1} -g"));
    let d0 = l.switch_drops();

    // DR: the director forwards, the switch drops, the client gets nothing.
    let t = l.tcp_names(2);
    assert_eq!(tally(&t, "rs1"), (0, Some(2)), "{t}");
    let u = l.udp_names(2, 31000);
    assert_eq!(tally(&u, "rs1"), (0, Some(2)), "{u}");
    let d1 = l.switch_drops();
    assert!(d1 >= d0 + 4, "switch drop counter {d0} -> {d1}");
    let fwd = l.dp_counter("forwarded");
    assert!(
        fwd >= 4,
        "the director did forward (and the switch dropped): {fwd}"
    );

    // The same real server switched to TUN: everything answers, nothing
    // more is dropped.
    l.adm(&format!("-e -t {VIP}:80 -r {RS1} -i"));
    l.adm(&format!("-e -u {VIP}:53 -r {RS1} -i"));
    let t = l.tcp_names(5);
    assert_eq!(tally(&t, "rs1"), (5, Some(0)), "{t}");
    let u = l.udp_names(5, 32000);
    assert_eq!(tally(&u, "rs1"), (5, Some(0)), "{u}");
    let up = l.upload(2000000);
    assert_eq!(up["intact"], true, "{up}");
    assert_eq!(
        l.switch_drops(),
        d1,
        "TUN traffic was dropped by the switch"
    );
}

#[test]
fn probe_recommends_tun_in_the_vpc_lab() {
    let Some(mut l) = vpc_lab() else {
        return;
    };
    l.start_responder("rs1");
    let d0 = l.switch_drops();
    let (code, v) = l.probe(&["--to", RS1, "--vip", VIP, "--method", "dr"]);
    assert_eq!(code, 1, "DR must be reported as failing: {v}");
    assert_eq!(v["verdict"]["dr_works"], false, "{v}");
    assert_eq!(v["verdict"]["tun_works"], true, "{v}");
    let f = outcome(&v, "dr-foreign");
    assert_eq!(
        (f["sent"].as_bool(), f["arrived"].as_bool()),
        (Some(true), Some(false)),
        "{v}"
    );
    for c in ["plain", "dr-director", "tun"] {
        assert_eq!(outcome(&v, c)["delivered"], true, "{c}: {v}");
    }
    assert!(
        v["verdict"]["findings"][0].as_str().unwrap().contains(
            "drops frames with foreign source addresses: DR will not work here, use TUN (-i)"
        ),
        "{v}"
    );
    assert!(
        l.switch_drops() >= d0 + 3,
        "the switch dropped the spoofed probes"
    );
    let (code, _) = l.probe(&["--to", RS1, "--vip", VIP, "--method", "tun"]);
    assert_eq!(code, 0);
    // The text form carries the same verdict.
    let o = l.exec(
        "dir",
        env!("CARGO_BIN_EXE_uvs"),
        &["probe", "--to", RS1, "--vip", VIP],
    );
    let s = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{s}");
    holds(&s, "verdict: use TUN (-i)");
}

#[test]
fn probe_recommends_either_in_the_plain_lab_and_tun_across_a_router() {
    let Some(mut l) = Lab::up_with(1, &["--routed"]) else {
        return;
    };
    for n in ["rs1", "rr1"] {
        l.start_tunnel(n);
        l.start_responder(n);
    }
    let (code, v) = l.probe(&["--to", RS1, "--vip", VIP, "--method", "dr"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(works(&v), (Some(true), Some(true)), "{v}");
    assert!(recommendation(&v).starts_with("both"), "{v}");
    // The real server behind the router: DR cannot even be tried.
    let (code, v) = l.probe(&["--to", "198.18.1.11", "--vip", VIP, "--method", "dr"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(outcome(&v, "dr-foreign")["sent"], false, "{v}");
    assert_eq!(outcome(&v, "tun")["delivered"], true, "{v}");
    assert_eq!(v["verdict"]["tun_works"], true, "{v}");
    // No responder on that port: the probe says it could not run (3).
    let (code, _) = l.probe(&["--to", RS1, "--vip", VIP, "--port", "7500"]);
    assert_eq!(code, 3);
}

/// DR6 dies at the VPC switch (a client's IPv6 source from the director's
/// MAC), TUN6 (IPv6-in-IPv6 from the director's own address) passes.
#[test]
fn probe_over_ipv6_reports_dr6_failing_and_tun6_passing_in_the_vpc_lab() {
    let Some(mut l) = vpc_lab() else {
        return;
    };
    l.start_responder("rs1");
    let d0 = l.switch_drops();
    let args = ["--to", RS1_6, "--vip", VIP6, "--client", CLIENT6];
    let (code, v) = l.probe(&[&args[..], &["--method", "dr"]].concat());
    assert_eq!(code, 1, "DR must be reported as failing: {v}");
    assert_eq!(v["verdict"]["dr_works"], false, "{v}");
    assert_eq!(v["verdict"]["tun_works"], true, "{v}");
    assert_eq!(v["verdict"]["tunnel"], "IPv6-in-IPv6", "{v}");
    assert_eq!(v["director"], "2001:2::2", "{v}");
    let f = outcome(&v, "dr-foreign");
    assert_eq!(
        (f["sent"].as_bool(), f["arrived"].as_bool()),
        (Some(true), Some(false)),
        "{v}"
    );
    for c in ["plain", "dr-director", "tun"] {
        assert_eq!(outcome(&v, c)["delivered"], true, "{c}: {v}");
    }
    assert!(
        v["verdict"]["findings"][0]
            .as_str()
            .unwrap()
            .contains("drops frames with foreign source addresses"),
        "{v}"
    );
    assert!(
        l.switch_drops() >= d0 + 3,
        "the switch dropped the spoofed probes"
    );
    let (code, _) = l.probe(&[&args[..], &["--method", "tun"]].concat());
    assert_eq!(code, 0);
    let mut text = vec!["probe"];
    text.extend_from_slice(&args);
    let o = l.exec("dir", env!("CARGO_BIN_EXE_uvs"), &text);
    let s = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{s}");
    holds(
        &s,
        "TUN (IPv6-in-IPv6, client -> VIP inside)   arrived   delivered",
    );
    holds(&s, "verdict: use TUN (-i)");
}

/// On the plain lab both IPv6 paths pass; an IPv4 VIP to the IPv6 real
/// server is IPv4-in-IPv6 (DR cannot cross families); and a server behind
/// the router is reached by TUN6 only.
#[test]
fn probe_over_ipv6_passes_both_in_the_plain_lab_and_4in6_and_across_a_router() {
    let Some(mut l) = Lab::up_with(1, &["--routed"]) else {
        return;
    };
    for n in ["rs1", "rr1"] {
        l.start_tunnel(n);
        l.start_responder(n);
    }
    let (code, v) = l.probe(&[
        "--to", RS1_6, "--vip", VIP6, "--client", CLIENT6, "--method", "dr",
    ]);
    assert_eq!(code, 0, "{v}");
    for c in ["plain", "dr-foreign", "dr-director", "tun"] {
        assert_eq!(outcome(&v, c)["delivered"], true, "{c}: {v}");
    }
    assert_eq!(works(&v), (Some(true), Some(true)), "{v}");
    assert!(recommendation(&v).contains("no 40-byte MTU loss"), "{v}");
    // The IPv4 VIP to the IPv6 server: only the tunnel, IPv4 inside.
    let (code, v) = l.probe(&["--to", RS1_6, "--vip", VIP, "--client", CLIENT]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["verdict"]["tunnel"], "IPv4-in-IPv6", "{v}");
    assert_eq!(outcome(&v, "dr-foreign")["sent"], false, "{v}");
    assert_eq!(outcome(&v, "tun")["delivered"], true, "{v}");
    assert!(
        v["verdict"]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f.as_str().unwrap().contains("different families")),
        "{v}"
    );
    // Behind the router: DR cannot even be tried.
    let rr1 = "2001:2:0:1::11";
    let (code, v) = l.probe(&[
        "--to", rr1, "--vip", VIP6, "--client", CLIENT6, "--method", "dr",
    ]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(outcome(&v, "dr-foreign")["sent"], false, "{v}");
    assert_eq!(outcome(&v, "tun")["delivered"], true, "{v}");
    // A client stand-in of the other family is refused, naming it (3).
    let (code, _) = l.probe(&["--to", RS1_6, "--vip", VIP6, "--client", CLIENT]);
    assert_eq!(code, 3);
}
