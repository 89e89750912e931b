//! `uvs audit` of IPv6 VIPs on dumps of the lab's real server, one per
//! mistake (tests/fixtures/audit/ipv6, made by its make.sh): each is
//! found with the fix that repairs it, and the correct server passes.

use crate::text::holds;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use uvs::audit::{self, Finding, HostState, Mode, Options, Status, source};

const VIP6: &str = "2001:2::100";

fn dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/audit/ipv6")
        .join(case)
}

fn opts(mode: Mode, vips: &[&str]) -> Options {
    Options {
        mode,
        vips: vips.iter().map(|v| v.parse::<IpAddr>().unwrap()).collect(),
        director: false,
        interface: None,
        director_addr: None,
    }
}

fn state(case: &str) -> HostState {
    source::from_dump(&dir(case)).unwrap_or_else(|e| panic!("{case}: {e}"))
}

fn audit_case(case: &str, mode: Mode) -> (HostState, Vec<Finding>) {
    let h = state(case);
    let f = audit::audit(&h, &opts(mode, &[VIP6]));
    (h, f)
}

#[track_caller]
fn find<'a>(f: &'a [Finding], check: &str) -> &'a Finding {
    f.iter()
        .find(|x| x.check == check)
        .unwrap_or_else(|| panic!("no check {check}: {f:#?}"))
}

fn fixes(x: &Finding) -> Vec<String> {
    x.fixes.iter().map(|f| f.command()).collect()
}

/// The only finding that is not OK in `f` is `check`, with this status,
/// value and fix commands.
#[track_caller]
fn only(f: &[Finding], check: &str, status: Status, value: &str, fix: &[&str]) {
    let bad: Vec<&str> = f
        .iter()
        .filter(|x| x.status != Status::Ok)
        .map(|x| x.check.as_str())
        .collect();
    assert_eq!(bad, vec![check], "{f:#?}");
    let x = find(f, check);
    assert_eq!((x.status, x.value.as_str()), (status, value), "{check}");
    assert_eq!(fixes(x), fix, "{check}");
}

#[test]
fn the_lab_real_server_passes_for_ipv6_and_for_both_families() {
    let (h, f) = audit_case("good", Mode::Dr);
    assert_eq!(audit::exit_code(&f), 0, "{}", audit::render(&h, &f));
    let vip = find(&f, &format!("VIP {VIP6} configured"));
    assert_eq!(vip.value, "/128 on lo");
    let p = find(&f, "proxy_ndp eth0");
    assert_eq!(
        p.value,
        "proxy_ndp 0, forwarding 0; no proxy entry for a VIP"
    );
    holds(&p.why, "what arp_ignore=1 does for ARP");
    // No ARP findings for an IPv6 VIP alone; both families' when mixed.
    assert!(f.iter().all(|x| !x.check.starts_with("arp_")));
    let both = audit::audit(&h, &opts(Mode::Dr, &["198.18.0.100", VIP6]));
    assert_eq!(audit::exit_code(&both), 0);
    for c in [
        "VIP 198.18.0.100 configured",
        "arp_ignore eth0",
        "disable_ipv6 eth0",
    ] {
        assert_eq!(find(&both, c).status, Status::Ok, "{c}");
    }
    // An IPv4 VIP alone: no IPv6 findings.
    let v4 = audit::audit(&h, &opts(Mode::Dr, &["198.18.0.100"]));
    assert!(v4.iter().all(|x| !x.check.contains("ipv6")), "{v4:#?}");
}

#[test]
fn each_ipv6_mistake_is_found_with_its_fix() {
    let vip = |s: &str| format!("VIP {VIP6} {s}");
    let (_, f) = audit_case("vip-absent", Mode::Dr);
    only(
        &f,
        &vip("configured"),
        Status::Fail,
        "absent",
        &["ip -6 addr add 2001:2::100/128 dev lo"],
    );
    let (_, f) = audit_case("vip-prefix64", Mode::Dr);
    only(
        &f,
        &vip("prefix"),
        Status::Fail,
        "/64 on lo",
        &[
            "ip -6 addr del 2001:2::100/64 dev lo",
            "ip -6 addr add 2001:2::100/128 dev lo",
        ],
    );
    let (_, f) = audit_case("vip-on-eth0", Mode::Dr);
    only(
        &f,
        &vip("not on eth0"),
        Status::Fail,
        "2001:2::100/64 on eth0",
        &["ip -6 addr del 2001:2::100/64 dev eth0"],
    );
    let (_, f) = audit_case("eth0-ipv6-off", Mode::Dr);
    only(
        &f,
        "disable_ipv6 eth0",
        Status::Fail,
        "1",
        &["sysctl -w net.ipv6.conf.eth0.disable_ipv6=0"],
    );
    let (_, f) = audit_case("forwarding", Mode::Dr);
    only(
        &f,
        "ipv6 forwarding eth0",
        Status::Fail,
        "1 (all=1), accept_ra=1",
        &["sysctl -w net.ipv6.conf.all.forwarding=0"],
    );
    let (_, f) = audit_case("keep-addr-off", Mode::Dr);
    only(
        &f,
        "keep_addr_on_down lo",
        Status::Warn,
        "0 (all=0, lo=0)",
        &["sysctl -w net.ipv6.conf.lo.keep_addr_on_down=1"],
    );
    let (_, f) = audit_case("dadfailed", Mode::Dr);
    only(
        &f,
        "ipv6 addresses eth0",
        Status::Fail,
        "2001:2::11/64 (dadfailed)",
        &[
            "ip -6 addr del 2001:2::11/64 dev eth0",
            "ip -6 addr add 2001:2::11/64 dev eth0",
        ],
    );
}

#[test]
fn ipv6_off_on_lo_and_proxy_ndp_fail_twice() {
    // IPv6 off on lo took the VIP with it: both are reported, and --fix
    // turns IPv6 on (sysctls first) before adding the VIP back.
    let (_, f) = audit_case("lo-ipv6-off", Mode::Dr);
    assert_eq!(find(&f, "disable_ipv6 lo").status, Status::Fail);
    assert_eq!(find(&f, &format!("VIP {VIP6} configured")).value, "absent");
    let plan = audit::fix::plan(&f);
    assert_eq!(
        plan.sysctls.get("net.ipv6.conf.lo.disable_ipv6"),
        Some(&"0".to_string())
    );
    assert_eq!(
        plan.addresses,
        vec!["ip -6 addr add 2001:2::100/128 dev lo"]
    );

    // A proxy entry for the VIP, live (proxy_ndp and forwarding on).
    let (_, f) = audit_case("proxy-ndp", Mode::Dr);
    let p = find(&f, "proxy_ndp eth0");
    assert_eq!(
        (p.status, p.value.as_str()),
        (
            Status::Fail,
            "proxy_ndp 1, forwarding 1; proxy entry for 2001:2::100"
        )
    );
    assert_eq!(fixes(p), ["ip -6 neigh del proxy 2001:2::100 dev eth0"]);
    assert_eq!(find(&f, "ipv6 forwarding eth0").status, Status::Fail);
    // The same entry with forwarding off is a warning (it waits).
    let mut h = state("proxy-ndp");
    for k in ["all", "eth0", "lo", "default"] {
        h.sysctl
            .insert(format!("net.ipv6.conf.{k}.forwarding"), "0".into());
    }
    let f = audit::audit(&h, &opts(Mode::Dr, &[VIP6]));
    assert_eq!(find(&f, "proxy_ndp eth0").status, Status::Warn);
    // Without neigh-proxy.json the entries are unknown.
    h.proxies6 = None;
    let f = audit::audit(&h, &opts(Mode::Dr, &[VIP6]));
    let p = find(&f, "proxy_ndp eth0");
    assert_eq!(
        (p.status, p.value.as_str()),
        (
            Status::Ok,
            "proxy_ndp 1, forwarding 0; proxy entries unknown"
        )
    );
}

#[test]
fn forwarding_keep_addr_and_kernel_without_ipv6_variants() {
    // accept_ra=2 keeps taking RAs with forwarding on: only information.
    let mut h = state("forwarding");
    h.sysctl
        .insert("net.ipv6.conf.eth0.accept_ra".into(), "2".into());
    let f = audit::audit(&h, &opts(Mode::Dr, &[VIP6]));
    assert_eq!(find(&f, "ipv6 forwarding eth0").status, Status::Info);
    assert_eq!(audit::exit_code(&f), 0);
    // all=-1 overrides lo=1: both are set right.
    let mut h = state("good");
    h.sysctl
        .insert("net.ipv6.conf.all.keep_addr_on_down".into(), "-1".into());
    let f = audit::audit(&h, &opts(Mode::Dr, &[VIP6]));
    let k = find(&f, "keep_addr_on_down lo");
    assert_eq!(
        (k.status, k.value.as_str()),
        (Status::Warn, "-1 (all=-1, lo=1)")
    );
    assert_eq!(
        fixes(k),
        [
            "sysctl -w net.ipv6.conf.all.keep_addr_on_down=0",
            "sysctl -w net.ipv6.conf.lo.keep_addr_on_down=1"
        ]
    );
    // A kernel without IPv6 has no net.ipv6 keys at all.
    h.sysctl.retain(|k, _| !k.starts_with("net.ipv6."));
    let f = audit::audit(&h, &opts(Mode::Dr, &[VIP6]));
    assert_eq!(find(&f, "ipv6").status, Status::Fail);
}

#[test]
fn tun_needs_an_ipv6_decapsulator_with_ipv6_on() {
    let (_, f) = audit_case("tun-decap-ipv6-off", Mode::Tun);
    let d = find(&f, "decapsulator ipv6");
    assert_eq!(
        (d.status, d.value.as_str()),
        (Status::Ok, "uvs decap is running")
    );
    let t = find(&f, "disable_ipv6 uvs-decap0");
    assert_eq!(t.status, Status::Fail);
    assert_eq!(
        fixes(t),
        ["sysctl -w net.ipv6.conf.uvs-decap0.disable_ipv6=0"]
    );
    // Without a TUN device the check is on conf/default, which a new
    // device inherits; a kernel ip6tnl device that is up decapsulates.
    let (mut h, f) = audit_case("good", Mode::Tun);
    assert_eq!(find(&f, "disable_ipv6 default").status, Status::Ok);
    assert_eq!(
        find(&f, "decapsulator ipv6").value,
        "none (no ip6tnl or sit device, no uvs decap)"
    );
    h.links.push(uvs::host::Link {
        name: "ip6tnl0".into(),
        up: true,
        mtu: 1452,
        loopback: false,
        tunnel: false,
    });
    h.tunnels6.push("ip6tnl0".into());
    h.sysctl
        .insert("net.ipv6.conf.ip6tnl0.disable_ipv6".into(), "0".into());
    let f = audit::audit(&h, &opts(Mode::Tun, &[VIP6]));
    assert_eq!(find(&f, "decapsulator ipv6").status, Status::Ok);
    assert_eq!(find(&f, "disable_ipv6 ip6tnl0").status, Status::Ok);
}

#[test]
fn the_binary_takes_ipv6_vips_and_prints_the_fix() {
    let o = Command::new(env!("CARGO_BIN_EXE_uvs"))
        .args(["audit", "--mode", "dr", "--vip", VIP6, "--from-dump"])
        .arg(dir("vip-on-eth0"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let text = String::from_utf8_lossy(&o.stdout);
    holds(
        &text,
        "FAIL VIP 2001:2::100 not on eth0  2001:2::100/64 on eth0",
    );
    holds(&text, "-- fix: ip -6 addr del 2001:2::100/64 dev eth0");
    holds(&text, "1 failed, 0 warnings, 8 ok");
}
