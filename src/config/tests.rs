use super::*;
use crate::lvs::service::{SchedulerKind, ServiceKey};
use std::net::Ipv4Addr;

fn cfg(text: &str) -> Result<Config, ConfigError> {
    parse(Path::new("uvs.toml"), text.as_bytes())
}

const GOOD: &str = include_str!("../../tests/fixtures/config/good.toml");

#[test]
fn a_good_file_with_a_bom_and_crlf_loads() {
    let c = cfg(GOOD).unwrap();
    assert_eq!(c.director.interfaces, vec!["eth0"]);
    assert_eq!(c.director.max_conns, Some(5000));
    assert_eq!(c.services.len(), 2);
    let rs = &c.services[0].real_servers;
    assert_eq!(
        (rs[0].port, rs[0].weight, rs[0].forward),
        (80, 3, Forward::Route)
    );
    assert_eq!((rs[1].port, rs[1].forward), (8080, Forward::Masq));
    assert_eq!(c.services[1].def.scheduler, SchedulerKind::Wlc.name());
    let crlf = format!("\u{feff}{}", GOOD.replace('\n', "\r\n"));
    assert_eq!(cfg(&crlf).unwrap(), c);
}

fn error_at(text: &str) -> (usize, usize, String) {
    let e = cfg(text).unwrap_err();
    assert_eq!(e.file, Path::new("uvs.toml"));
    (e.line, e.column, e.msg)
}

#[test]
fn errors_name_the_line_and_column() {
    // Unknown key.
    let (l, c, m) = error_at("[director]\ninterfaces = [\"eth0\"]\nintreface = \"x\"\n");
    assert_eq!((l, c), (3, 1), "{m}");
    assert!(m.contains("intreface"), "{m}");
    // Wrong type.
    let (l, _, m) = error_at("[director]\nmax_conns = \"many\"\n");
    assert_eq!(l, 2, "{m}");
    // Bad address, with a BOM and CRLF in front.
    let text = "\u{feff}[[service]]\r\nprotocol = \"tcp\"\r\naddress = \"198.18.0.999:80\"\r\n";
    let (l, c, m) = error_at(text);
    assert_eq!((l, c), (3, 11), "{m}");
    assert!(m.contains("198.18.0.999:80"), "{m}");
    // Duplicate service, naming the first.
    let dup = "[[service]]\nprotocol = \"tcp\"\naddress = \"198.18.0.100:80\"\n\n\
               [[service]]\nprotocol = \"TCP\"\naddress = \"198.18.0.100:80\"\n";
    let (l, _, m) = error_at(dup);
    assert_eq!(l, 7, "{m}");
    assert!(m.contains("defined twice (first on line 3)"), "{m}");
    // A VIP that can never be one.
    let (l, _, m) = error_at("[[service]]\nprotocol = \"udp\"\naddress = \"224.0.0.1:53\"\n");
    assert_eq!(l, 3);
    assert!(m.contains("multicast"), "{m}");
    // Unknown scheduler, forward method, bad weight.
    let svc = "[[service]]\nprotocol = \"tcp\"\naddress = \"198.18.0.100:80\"\n";
    let (l, _, m) = error_at(&format!("{svc}scheduler = \"lblc\"\n"));
    assert_eq!(l, 4);
    assert!(m.contains("rr, wrr, lc, wlc"), "{m}");
    let rs = "[[service.real_server]]\naddress = \"198.18.0.11\"\n";
    let (l, _, m) = error_at(&format!("{svc}{rs}forward = \"gre\"\n"));
    assert_eq!(l, 6, "{m}");
    let (l, _, m) = error_at(&format!("{svc}{rs}weight = -1\n"));
    assert_eq!(l, 6, "{m}");
    // A port is needed for a service.
    let (_, _, m) = error_at("[[service]]\nprotocol = \"tcp\"\naddress = \"198.18.0.100\"\n");
    assert!(m.contains("needs a port"), "{m}");
    // Not UTF-8: the line of the first bad byte.
    let e = parse(Path::new("x"), b"[director]\n\xff\n").unwrap_err();
    assert_eq!(e.line, 2);
    // Garbage of any kind is an error, never a panic.
    for junk in [
        "[",
        "[[service]]",
        "a = ",
        "\u{0}",
        "[director]\ninterfaces = 3",
    ] {
        assert!(cfg(junk).is_err(), "{junk:?}");
    }
}

#[test]
fn a_reload_applies_only_the_difference() {
    let old = cfg(GOOD).unwrap();
    assert!(old.ops_from(&old).is_empty());
    let start = old.ops_from(&Config::default());
    assert_eq!(start.len(), 2 + 2 + 1);
    // Weight changed, a server added, the UDP service removed.
    let new_text = GOOD
        .replace("weight = 3", "weight = 5")
        .replace(
            "forward = \"nat\"",
            "forward = \"nat\"\n\n  [[service.real_server]]\n  address = \"198.18.0.13\"",
        )
        .replace(
            "[[service]]\nprotocol = \"udp\"\naddress = \"198.18.0.100:53\"\n",
            "",
        );
    let new = cfg(&new_text).unwrap();
    let ops = new.ops_from(&old);
    let names: Vec<String> = ops
        .iter()
        .map(|o| {
            format!("{o:?}")
                .split([' ', '{', '('])
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(names, ["DelService", "EditDest", "AddDest"], "{ops:?}");
}

/// The complete example of docs/config.md (its first TOML block).
fn documented_example() -> &'static str {
    let doc = include_str!("../../docs/config.md");
    doc.split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a toml block in docs/config.md")
}

#[test]
fn the_documented_example_loads() {
    let c = cfg(documented_example()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.director.interfaces, vec!["eth0"]);
    assert_eq!(c.director.tun_source, Some(Ipv4Addr::new(198, 18, 0, 2)));
    // Two -t/-u services and one of firewall mark 100.
    assert_eq!(c.services.len(), 3);
    let fwm = &c.services[2];
    assert_eq!(
        (fwm.def.key, fwm.real_servers[0].port),
        (ServiceKey::mark(100), 0)
    );
    let rule = &c.marks[&100][0];
    assert_eq!(
        rule.iptables(100),
        "iptables -t mangle -A PREROUTING -d 198.18.0.100/32 -p tcp -m multiport --dports 80,443 -j MARK --set-mark 100"
    );
    assert!(c.services[1].def.ops && !c.services[0].def.ops);
    assert_eq!(c.services[0].real_servers[1].forward, Forward::Tunnel);
    assert_eq!(c.services[1].real_servers[0].port, 5353);
    assert_eq!(c.services[1].def.persistent, None);
    assert_eq!(
        fwm.def.persistent,
        Some(crate::lvs::service::Persistence {
            timeout: 600,
            netmask: Ipv4Addr::new(255, 255, 255, 0),
            prefix6: 128,
        })
    );
    assert_eq!(c.services[0].def.persistent, None);
    let http = c.services[0].real_servers[0].check.as_ref().unwrap();
    assert_eq!(http.kind_name(), "HTTP");
    assert_eq!((http.rise, http.fall, http.port), (1, 3, Some(80)));
    let own = c.services[0].real_servers[1].check.as_ref().unwrap();
    assert_eq!(own.kind, crate::control::check::CheckKind::Tcp);
    assert_eq!(own.interval, std::time::Duration::from_millis(500));
    assert_eq!(c.services[0].on_failure, FailAction::Quiesce);
    let q = &c.services[0].quorum;
    assert_eq!(q.min_weight, 1);
    assert_eq!(
        q.sorry.as_ref().map(|r| r.addr),
        Some(Ipv4Addr::new(198, 18, 0, 13).into())
    );
    assert!(q.down_cmd.as_deref().unwrap().contains("lost"));
    assert!(c.services[1].real_servers[0].check.is_none());
    assert_eq!(
        c.timeouts,
        Some(Timeouts {
            tcp: 900,
            tcpfin: 120,
            udp: 300
        })
    );
}

#[test]
fn checks_are_checked_too() {
    let svc = "[[service]]\nprotocol = \"tcp\"\naddress = \"198.18.0.100:80\"\n[service.check]\n";
    let (l, _, m) = error_at(&format!("{svc}type = \"icmp\"\n"));
    assert_eq!(l, 5);
    assert!(m.contains("tcp, http, udp, dns or exec"), "{m}");
    let (l, _, m) = error_at(&format!("{svc}type = \"exec\"\n"));
    assert_eq!(l, 5);
    assert!(m.contains("needs `command`"), "{m}");
    let (l, _, m) = error_at(&format!("{svc}type = \"tcp\"\ninterval = \"1s\"\n"));
    assert_eq!(l, 6);
    assert!(m.contains("seconds"), "{m}");
    let (l, _, m) = error_at(&format!("{svc}type = \"tcp\"\ninterval = 0\n"));
    assert_eq!(l, 6, "{m}");
    let (l, _, m) = error_at(&format!(
        "{svc}type = \"http\"\nstatus = [200, \"300-2\"]\n"
    ));
    assert_eq!(l, 6, "{m}");
    let (l, _, m) = error_at(&format!("{svc}type = \"tcp\"\nfall = 0\n"));
    assert_eq!(l, 6, "{m}");
    let (l, _, m) = error_at(&format!("{svc}type = \"tcp\"\nretries = 3\n"));
    assert_eq!(l, 6, "{m}");
    let (l, _, m) = error_at(&format!("{svc}type = \"tcp\"\ndynamic = true\n"));
    assert_eq!(l, 5, "{m}");
    assert!(m.contains("exec"), "{m}");
    let (l, _, m) = error_at(&format!(
        "{svc}type = \"tcp\"\nretry = 2\nretry_delay = 0\n"
    ));
    assert_eq!(l, 7, "{m}");
    // keepalived's retries: an exec check without `dynamic` is not dynamic.
    let c = cfg(&format!(
        "{svc}type = \"exec\"\ncommand = \"true\"\nretry = 2\nretry_delay = 0.5\n\
         [[service.real_server]]\naddress = \"198.18.0.11\"\n"
    ))
    .unwrap();
    let spec = c.services[0].real_servers[0].check.clone().unwrap();
    assert_eq!(
        (spec.kind, spec.retry, spec.retry_delay),
        (
            crate::control::check::CheckKind::Exec {
                command: "true".into(),
                dynamic: false
            },
            2,
            std::time::Duration::from_millis(500)
        )
    );
    let on =
        "[[service]]\nprotocol = \"tcp\"\naddress = \"198.18.0.100:80\"\non_failure = \"panic\"\n";
    let (l, _, m) = error_at(on);
    assert_eq!(l, 4, "{m}");
    // A changed check alone changes no table entry on reload.
    let base = format!("{svc}type = \"tcp\"\n[[service.real_server]]\naddress = \"198.18.0.11\"\n");
    let a = cfg(&base).unwrap();
    let b = cfg(&base.replace("type = \"tcp\"", "type = \"tcp\"\nfall = 5")).unwrap();
    assert_ne!(a, b);
    assert!(b.ops_from(&a).is_empty());
}

/// The file types write what they read (the keepalived importer writes
/// through them): a file read and written again loads the same.
#[test]
fn the_file_types_write_what_they_read() {
    for text in [GOOD, documented_example()] {
        let file: File = toml::from_str(text).unwrap();
        let written = toml::to_string(&file).unwrap();
        assert_eq!(cfg(&written).unwrap(), cfg(text).unwrap(), "{written}");
    }
}

#[test]
fn marks_are_checked_and_reloaded_around_their_services() {
    let mark =
        "[[mark]]\nid = 100\nprotocol = \"tcp\"\nvip = \"198.18.0.100\"\nports = \"80,443\"\n";
    let svc = "[[service]]\nfwmark = 100\n[[service.real_server]]\naddress = \"198.18.0.11\"\n";
    let with = cfg(&format!("{mark}{svc}")).unwrap();
    let (l, _, m) = error_at(svc);
    assert_eq!(l, 2, "{m}");
    assert!(m.contains("no [[mark]] with id = 100"), "{m}");
    let clash = mark
        .replace("id = 100", "id = 200")
        .replace("80,443", "400:500");
    let (l, _, m) = error_at(&format!("{mark}{clash}"));
    assert_eq!(l, 7, "{m}");
    assert!(
        m.contains("TCP port 443 of 198.18.0.100 is in mark 100 and in mark 200"),
        "{m}"
    );
    let (_, _, m) = error_at(&mark.replace("80,443", "80,x"));
    assert!(m.contains("--dports"), "{m}");
    let both = svc.replace("fwmark = 100", "fwmark = 100\nprotocol = \"tcp\"");
    let (_, _, m) = error_at(&format!("{mark}{both}"));
    assert!(m.contains("not both"), "{m}");
    let ops = "[[service]]\nprotocol = \"tcp\"\naddress = \"198.18.0.100:80\"\nops = true\n";
    let (l, _, m) = error_at(ops);
    assert_eq!(
        (l, m.as_str()),
        (4, "One-Packet Scheduling is only for UDP virtual services")
    );
    // The mark before its service; gone after it.
    let names = |ops: Vec<Op>| -> Vec<String> {
        let n = ops.iter().map(|o| format!("{o:?}"));
        n.map(|s| s.split([' ', '(']).next().unwrap().to_string())
            .collect()
    };
    let empty = Config::default();
    assert_eq!(
        names(with.ops_from(&empty)),
        ["SetMark", "AddService", "AddDest"]
    );
    assert_eq!(names(empty.ops_from(&with)), ["DelService", "SetMark"]);
}

/// Addresses of either family: `[v6]:port` as in ipvsadm, an IPv6
/// address alone for a real server (its port is the service's).
#[test]
fn ipv6_addresses_are_read_and_a_bad_one_is_named() {
    let c = cfg(
        "[[service]]\nprotocol = \"tcp\"\naddress = \"[2001:2::100]:80\"\n\
                 [[service.real_server]]\naddress = \"2001:2::11\"\n",
    )
    .unwrap();
    let s = &c.services[0];
    assert_eq!(s.def.key.socket().to_string(), "[2001:2::100]:80");
    assert_eq!(
        s.real_servers[0].addr,
        "2001:2::11".parse::<IpAddr>().unwrap()
    );
    let (line, _, msg) = error_at("[[service]]\nprotocol = \"tcp\"\naddress = \"2001:2::100\"\n");
    assert_eq!(
        (line, msg.as_str()),
        (3, "`2001:2::100` needs a port: ADDRESS:PORT")
    );
    let (line, _, msg) = error_at("[[service]]\nprotocol = \"tcp\"\naddress = \"[ff02::1]:80\"\n");
    assert_eq!(line, 3);
    assert!(
        msg.contains("ff02::1 cannot be a VIP: it is a multicast address"),
        "{msg}"
    );
    let (_, _, msg) = error_at("[[service]]\nprotocol = \"tcp\"\naddress = \"2001:2::zz:80\"\n");
    assert!(
        msg.contains("is not an IP address and port (IPv6: `[ADDRESS]:PORT`)"),
        "{msg}"
    );
}

/// An IPv6 service's `persistence_mask` is a prefix length (ipvsadm's
/// `-M 64` for it), an IPv4 one's a dotted mask.
#[test]
fn an_ipv6_services_persistence_mask_is_a_prefix_length() {
    let svc = |mask: &str| {
        format!(
            "[[service]]\nprotocol = \"tcp\"\naddress = \"[2001:2::100]:0\"\n\
             persistence_timeout = 600\npersistence_mask = \"{mask}\"\n"
        )
    };
    for (mask, len) in [("64", 64), ("/48", 48), ("128", 128)] {
        let p = cfg(&svc(mask)).unwrap().services[0].def.persistent.unwrap();
        assert_eq!((p.timeout, p.prefix6), (600, len), "{mask}");
        assert_eq!(p.netmask, crate::lvs::service::Persistence::DEFAULT_NETMASK);
    }
    for bad in ["0", "129", "255.255.255.0", "ffff:ffff::"] {
        let (line, _, msg) = error_at(&svc(bad));
        assert_eq!(line, 5, "{bad}");
        assert!(
            msg.contains("a prefix length 1..128 for an IPv6 service"),
            "{msg}"
        );
    }
}

/// A `[[mark]]` may name an IPv6 VIP; `ipv6 = true` makes a fwmark
/// service the mark's IPv6 one (`-f 7 -6`), which needs an IPv6 rule, as
/// the IPv4 one needs an IPv4 rule.
#[test]
fn an_ipv6_mark_service_serves_its_marks_ipv6_rules() {
    let mark = "[[mark]]\nid = 7\nprotocol = \"tcp\"\nvip = \"2001:2::100\"\nports = \"80,443\"\n";
    let svc = "[[service]]\nfwmark = 7\nipv6 = true\npersistence_timeout = 60\n\
               persistence_mask = \"64\"\n[[service.real_server]]\naddress = \"2001:2::11\"\n";
    let c = cfg(&format!("{mark}{svc}")).unwrap();
    let s = &c.services[0];
    assert_eq!(s.def.key, ServiceKey::mark_of(7, true));
    assert_eq!(s.def.persistent.map(|p| p.prefix6), Some(64));
    assert_eq!(c.marks[&7][0].vip, "2001:2::100".parse::<IpAddr>().unwrap());
    let v4 = svc
        .replace("ipv6 = true\n", "")
        .replace("\"64\"", "\"255.255.255.0\"");
    let (l, _, m) = error_at(&format!("{mark}{v4}"));
    assert_eq!(l, 7, "{m}");
    assert!(m.contains("[[mark]] 7 has no IPv4 vip"), "{m}");
    let plain = "[[service]]\nprotocol = \"tcp\"\naddress = \"198.18.0.100:80\"\nipv6 = true\n";
    let (_, _, m) = error_at(plain);
    assert!(m.contains("`ipv6` is for a fwmark service"), "{m}");
    let (_, _, m) = error_at(&mark.replace("2001:2::100", "ff02::1"));
    assert!(m.contains("ff02::1 cannot be a VIP"), "{m}");
}

/// `via_vip`: TCP checks of IPv4 DR and TUN servers only, each refusal
/// naming its place and why.
#[test]
fn via_vip_is_for_tcp_checks_of_dr_and_tun_servers() {
    let svc = "[[service]]\nprotocol = \"tcp\"\naddress = \"198.18.0.100:80\"\n[service.check]\n";
    let rs = |fwd: &str| {
        format!("[[service.real_server]]\naddress = \"198.18.0.11\"\nforward = \"{fwd}\"\n")
    };
    for fwd in ["dr", "tun"] {
        let c = cfg(&format!("{svc}type = \"tcp\"\nvia_vip = true\n{}", rs(fwd))).unwrap();
        assert!(
            c.services[0].real_servers[0]
                .check
                .as_ref()
                .unwrap()
                .via_vip
        );
    }
    let (l, _, m) = error_at(&format!(
        "{svc}type = \"http\"\nvia_vip = true\n{}",
        rs("dr")
    ));
    assert_eq!(l, 6, "{m}");
    assert!(m.contains("`via_vip` is for tcp checks"), "{m}");
    let (l, _, m) = error_at(&format!(
        "{svc}type = \"tcp\"\nvia_vip = true\n{}",
        rs("nat")
    ));
    assert_eq!(l, 8, "{m}");
    assert!(m.contains("NAT"), "{m}");
    let v6 = "[[service]]\nprotocol = \"tcp\"\naddress = \"[2001:2::100]:80\"\n[service.check]\n\
              type = \"tcp\"\nvia_vip = true\n[[service.real_server]]\naddress = \"2001:2::11\"\n";
    assert!(error_at(v6).2.contains("IPv4"));
}
