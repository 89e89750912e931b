use super::table::OPTIONS;
use super::*;
use crate::control::proto::{Op, ServiceDef};
use crate::lvs::service::Persistence;

fn run(s: &str) -> Result<Parsed, Fail> {
    let v: Vec<String> = s.split_whitespace().map(String::from).collect();
    match parse("ipvsadm", &v)? {
        Invocation::Run(p) => Ok(*p),
        other => panic!("unexpected {other:?}"),
    }
}

fn err(s: &str) -> String {
    run(s).unwrap_err().msg
}

#[test]
fn bundled_short_options() {
    let p = run("-Ln").unwrap();
    assert_eq!(p.cmd, Cmd::List);
    assert!(p.has(Opt::Numeric));
    let p = run("-At 198.18.0.100:80 -s wrr").unwrap();
    assert_eq!(p.cmd, Cmd::Add);
    assert_eq!(p.port, 80);
    assert_eq!(p.scheduler, "wrr");
    let p = run("-Lnc").unwrap();
    assert!(p.has(Opt::Connection));
    let p = run("-a -u 198.18.0.100:53 -r 198.18.0.11:5353 -g -w 3").unwrap();
    // DR forces the real-server port to the service port.
    assert_eq!(p.dest.port, 53);
    assert_eq!(p.dest.weight, 3);
    let p = run("-a -t 198.18.0.100:80 -r 198.18.0.11").unwrap();
    assert_eq!((p.dest.port, p.dest.forward), (80, Forward::Route));
    // NAT keeps the mapped port, and defaults to the service's.
    let p = run("-a -t 198.18.0.100:80 -r 198.18.2.11:8080 -m").unwrap();
    assert_eq!((p.dest.port, p.dest.forward), (8080, Forward::Masq));
    let p = run("-a -t 198.18.0.100:80 -r 198.18.2.11 -m").unwrap();
    assert_eq!((p.dest.port, p.dest.forward), (80, Forward::Masq));
}

#[test]
fn defaults_like_ipvsadm() {
    assert_eq!(run("-A -t 198.18.0.100:80").unwrap().scheduler, "wlc");
    assert_eq!(
        run("-A -t 198.18.0.100:80 -p").unwrap().persistent,
        Some(360)
    );
    assert_eq!(
        run("-A -t 198.18.0.100:80 -p 60 -s rr").unwrap().persistent,
        Some(60)
    );
    let p = run("--set 10 0 20").unwrap();
    assert_eq!(
        p.timeouts,
        Timeouts {
            tcp: 10,
            tcpfin: 0,
            udp: 20
        }
    );
}

#[test]
fn ipvsadm_error_texts() {
    assert_eq!(
        err("-A"),
        "You need to supply the 'service-address' option for the 'add-service' command"
    );
    assert_eq!(
        err("-a -t 198.18.0.100:80"),
        "You need to supply the 'real-server' option for the 'add-server' command"
    );
    assert_eq!(
        err("-A -t 198.18.0.100:80 -w 3"),
        "Illegal 'weight' option with the 'add-service' command"
    );
    assert_eq!(
        err("-L -c -t 198.18.0.100:80"),
        "The option 'service-address' conflicts with the 'connection' option in the 'list' command"
    );
    assert_eq!(
        err("-A -t 198.18.0.300:80"),
        "illegal virtual server address[:port] specified"
    );
    assert_eq!(
        err("-A -t 80"),
        "illegal virtual server address[:port] specified"
    );
    assert_eq!(
        err("-a -t 198.18.0.100:80 -r nohost.invalid"),
        "illegal real server address[:port] specified"
    );
    assert_eq!(
        err("-a -t 198.18.0.100:80 -r 198.18.0.11 -w 70000"),
        "illegal weight specified"
    );
    assert_eq!(
        err("-a -t 198.18.0.100:80 -r 198.18.0.11 -w x"),
        "illegal weight specified"
    );
    assert_eq!(
        err("-A -t 198.18.0.100"),
        "Zero port specified for non-persistent service"
    );
    assert_eq!(
        err("-A -t 198.18.0.100:80 -E"),
        "multiple commands specified"
    );
    assert_eq!(
        err("-A -t 198.18.0.100:80 -t 198.18.0.100:81"),
        "multiple 'service-address' options specified"
    );
    assert_eq!(err("--set 1 2"), "--set option requires 3 timeout values");
    assert_eq!(err("--set 1 2 x"), "invalid timeout value `x' specified");
    assert_eq!(err("-C extra"), "unexpected argument extra");
    assert_eq!(
        err("-L --timeout --stats"),
        "options conflicts in the list command"
    );
    assert_eq!(
        err("-a -t 198.18.0.100:80 -r 198.18.0.11 --tun-type gue"),
        "Tunnel options conflict with forward method"
    );
    assert_eq!(
        err("-a -t 198.18.0.100:80 -r 198.18.0.11 -i --tun-type gue"),
        "You need to supply the 'tun-port' option for the 'gue' tunnel type"
    );
    let f = run("-n -L").unwrap_err();
    assert_eq!(
        (f.msg.as_str(), f.code),
        (
            "Try `ipvsadm -h' or 'ipvsadm --help' for more information.",
            255
        )
    );
    let f = run("-L --bogus").unwrap_err();
    assert_eq!((f.msg.as_str(), f.code), ("--bogus: unknown option", 255));
    let f = run("-a -t 198.18.0.100:80 -r").unwrap_err();
    assert_eq!(f.msg, "-r: missing argument");
}

/// ipvsadm's parse_service: `[v6]:port`, or a bare IPv6 address without
/// a port; brackets without a port, or around anything but IPv6, are
/// refused.
#[test]
fn ipv6_service_addresses_are_parsed_as_ipvsadm_does() {
    let p = run("-A -t [2001:db8::80]:80 -s rr").unwrap();
    let v6: std::net::Ipv6Addr = "2001:db8::80".parse().unwrap();
    assert_eq!(
        p.service_key(),
        Some(ServiceKey::addr(Protocol::Tcp, v6, 80))
    );
    let p = run("-A -u 2001:db8::80 -s rr -p").unwrap();
    assert_eq!((p.addr, p.port), (Some(v6.into()), 0));
    for bad in [
        "[2001:db8::80]",
        "[2001:db8::80]80",
        "[198.18.0.1]:80",
        "[zz::1]:80",
    ] {
        assert_eq!(
            err(&format!("-A -t {bad}")),
            "illegal virtual server address[:port] specified",
            "{bad}"
        );
    }
    let p = run("-a -t [2001:db8::80]:80 -r [2001:db8::1]:8080 -m").unwrap();
    assert_eq!(
        (p.dest.addr, p.dest.port),
        ("2001:db8::1".parse().unwrap(), 8080)
    );
}

#[test]
fn unsupported_features_are_named() {
    let p = run("-A -u 198.18.0.100:5060 --pe sip").unwrap();
    assert!(to_op(&p).unwrap_err().msg.contains("Persistence engines"));
    let p = run("-a -t 198.18.0.100:80 -r 198.18.0.11 -x 10").unwrap();
    assert!(to_op(&p).unwrap_err().msg.contains("thresholds"));
}

#[test]
fn the_option_table_is_in_column_order_and_every_rule_row_is_complete() {
    for (i, d) in OPTIONS.iter().enumerate() {
        assert_eq!(d.opt as usize, i, "{}", d.name);
        assert_eq!(d.rules.len(), 14, "{}", d.name);
    }
    let h = help();
    assert!(h.contains("-m NAT"), "{h}");
    assert!(!h.contains("not available"), "{h}");
    assert!(h.contains("--add-service"), "{h}");
}

#[test]
fn garbage_never_panics() {
    for s in [
        "-",
        "--",
        "-\u{e9}",
        "--=",
        "-t",
        "-A -t :",
        "-A -t [::1]:80",
        "-a -t 1.2.3.4:80 -r 1.2.3.4:99999",
        "-L -n -n",
        "--start-daemon",
        "--start-daemon bogus",
        "-p -p",
        "-A -t 1.2.3.4:http -s",
    ] {
        let v: Vec<String> = s.split_whitespace().map(String::from).collect();
        let _ = parse("uvsadm", &v);
    }
}

/// `-b` as ipvsadm 1.31 parses it: checked against the scheduler
/// wherever `-s` stands, sh-* only with sh and mh-* only with mh.
#[test]
fn sched_flags_follow_the_scheduler() {
    let p = run("-A -t 198.18.0.100:80 -b sh-port,sh-fallback -s sh").unwrap();
    assert_eq!(p.flags, SchedFlags(3));
    assert_eq!(
        run("-A -t 198.18.0.100:80 -s rr -b flag-2").unwrap().flags,
        SchedFlags(2)
    );
    assert_eq!(
        err("-A -t 198.18.0.100:80 -s mh -b sh-port"),
        "incompatible scheduler flag `sh-port'"
    );
    assert_eq!(
        err("-A -t 198.18.0.100:80 -b mh-port"),
        "incompatible scheduler flag `mh-port'"
    );
    assert_eq!(
        err("-A -t 198.18.0.100:80 -s mh -b mh-prt"),
        "invalid scheduler flag `mh-prt'"
    );
    let op = check::to_op(&run("-E -t 198.18.0.100:80 -s mh -b mh-port").unwrap());
    assert!(
        matches!(
            op,
            Ok(Some(crate::control::proto::Op::EditService(ServiceDef {
                flags: SchedFlags(2),
                ..
            })))
        ),
        "{op:?}"
    );
}

#[test]
fn fwmark_services_and_one_packet_scheduling_become_ops() {
    use crate::control::proto::Op;
    use crate::lvs::service::ServiceKey;
    let p = run("-A -f 100 -s wrr -o").unwrap();
    let want = Op::AddService(ServiceDef {
        key: ServiceKey::mark(100),
        scheduler: "wrr".into(),
        flags: Default::default(),
        persistent: None,
        ops: true,
    });
    assert_eq!(to_op(&p).unwrap(), Some(want));
    // A real server of a mark service keeps the port given (0 if none),
    // whatever the method.
    let p = run("-a -f 100 -r 198.18.0.11 -g -w 2").unwrap();
    let Some(Op::AddDest { key, dest }) = to_op(&p).unwrap() else {
        panic!("not AddDest");
    };
    assert_eq!((key, dest.port, dest.weight), (ServiceKey::mark(100), 0, 2));
    let f = run("-A -t 198.18.0.100:80 -o").unwrap_err();
    assert_eq!(
        f.msg,
        "One-Packet Scheduling is only for UDP virtual services"
    );
    assert_eq!(
        run("-A -f 0").unwrap_err().msg,
        "invalid fwmark value `0' specified"
    );
    let p = run("-A -f 7 -6").unwrap();
    let Some(Op::AddService(d)) = to_op(&p).unwrap() else {
        panic!("not AddService");
    };
    assert_eq!(d.key, ServiceKey::mark_of(7, true));
    assert_ne!(d.key, ServiceKey::mark(7));
    assert_eq!(err("-A -6 -f 7"), "-6 used before -f\n");
}

/// `-M` as ipvsadm 1.31 reads it: by the family of the service given
/// before it. An IPv6 service's is a prefix length through C's atoi
/// (1..128); an IPv6 service given after `-M`, or `-6` after it, puts
/// the granularity back to /128.
#[test]
fn an_ipv6_services_netmask_is_a_prefix_length() {
    let p = run("-A -t [2001:2::100]:80 -s rr -p 60 -M 64").unwrap();
    assert_eq!((p.netmask, p.prefix6), (None, Some(64)));
    let Some(Op::AddService(d)) = to_op(&p).unwrap() else {
        panic!("not AddService");
    };
    let want = Persistence {
        prefix6: 64,
        ..Persistence::new(60)
    };
    assert_eq!(d.persistent, Some(want));
    for (arg, len) in [("128", 128), ("1", 1), ("+48", 48), ("56abc", 56)] {
        let p = run(&format!("-A -u 2001:2::100 -p -M {arg}")).unwrap();
        assert_eq!(p.prefix6, Some(len), "{arg}");
    }
    // atoi of 2^32 + 64 is 64 on a 64-bit long, as ipvsadm reads it.
    assert_eq!(
        run("-A -t [2001:2::100]:80 -p -M 4294967360")
            .unwrap()
            .prefix6,
        Some(64)
    );
    for bad in ["0", "129", "-64", "ffff::", "255.255.255.0", "x"] {
        assert_eq!(
            err(&format!("-A -t [2001:2::100]:80 -p -M {bad}")),
            "illegal ipv6 netmask specified",
            "{bad}"
        );
    }
    // Given before the IPv6 service, a mask is dropped for /128.
    let p = run("-A -M 255.255.255.0 -t [2001:2::100]:80 -p").unwrap();
    assert_eq!((p.netmask, p.prefix6), (None, None));
    // An IPv4 service's is still dotted.
    let p = run("-A -t 198.18.0.100:80 -p -M 255.255.255.0").unwrap();
    assert_eq!(p.netmask, Some(Ipv4Addr::new(255, 255, 255, 0)));
    assert_eq!(
        err("-A -t 198.18.0.100:80 -p -M 64x"),
        "illegal virtual server persistent mask specified"
    );
    // A mark service's family is known at `-6`.
    let p = run("-A -f 7 -6 -p -M 64").unwrap();
    assert_eq!(p.prefix6, Some(64));
    let p = run("-A -f 7 -M 255.255.255.0 -6 -p").unwrap();
    assert_eq!((p.netmask, p.prefix6), (None, None));
}

/// `--json` is uvs's own listing switch: with `-L` and any of its
/// variants, with no other command; `-h` lists it.
#[test]
fn json_goes_with_the_list_command_only() {
    for ok in [
        "-Ln --json",
        "-Lnc --json",
        "-L --stats --rate --json -X",
        "-L --timeout --json",
    ] {
        assert!(run(ok).unwrap().has(Opt::Json), "{ok}");
    }
    let p = run("-Ln --stats --rate --json").unwrap();
    let parts = p.json_parts();
    assert!(parts.stats && parts.rates && !parts.thresholds);
    assert_eq!(
        err("-S --json"),
        "Illegal 'json' option with the 'save' command"
    );
    assert_eq!(
        err("-A -t 198.18.0.100:80 --json"),
        "Illegal 'json' option with the 'add-service' command"
    );
    assert_eq!(err("-L --json --json"), "multiple 'json' options specified");
    assert!(help().contains("--json"));
}
