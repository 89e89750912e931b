use super::*;
use crate::control::proto::DestSpec;
use crate::control::proto::ServiceDef;
use crate::lvs::service::{Forward, Persistence, ServiceKey};
use crate::lvs::stats::StatsSnapshot;

fn dest(a: [u8; 4], port: u16, w: u32, act: u32, inact: u32) -> DestSnap {
    DestSnap {
        spec: DestSpec {
            addr: a.into(),
            port,
            forward: Forward::Route,
            weight: w,
            uthreshold: 0,
            lthreshold: 0,
            slow_start: 0,
        },
        active: act,
        inactive: inact,
        persistent: 0,
        ramp_to: None,
        stats: StatsSnapshot::default(),
        rates: Default::default(),
    }
}

/// The format of `-n` with these columns.
fn numeric(columns: Columns) -> Format {
    Format {
        numeric: true,
        columns,
        ..Format::default()
    }
}

fn snap() -> Snapshot {
    Snapshot {
        timeouts: Timeouts::default(),
        services: vec![
            ServiceSnap {
                def: ServiceDef {
                    key: ServiceKey::addr(
                        Protocol::Udp,
                        std::net::Ipv4Addr::new(192, 168, 0, 100),
                        53,
                    ),
                    scheduler: "rr".into(),
                    flags: Default::default(),
                    ops: false,
                    persistent: None,
                },
                stats: StatsSnapshot::default(),
                rates: Default::default(),
                dests: vec![dest([10, 0, 0, 21], 53, 1, 0, 0)],
            },
            ServiceSnap {
                def: ServiceDef {
                    key: ServiceKey::addr(
                        Protocol::Tcp,
                        std::net::Ipv4Addr::new(192, 168, 0, 100),
                        80,
                    ),
                    scheduler: "wrr".into(),
                    flags: Default::default(),
                    ops: false,
                    persistent: None,
                },
                rates: Default::default(),
                stats: StatsSnapshot {
                    conns: 14209,
                    inpkts: 111769,
                    outpkts: 0,
                    inbytes: 7207174,
                    outbytes: 0,
                },
                // Newest first, as the daemon keeps them.
                dests: vec![
                    dest([192, 168, 0, 12], 80, 1, 4, 13),
                    dest([192, 168, 0, 11], 80, 3, 12, 40),
                ],
            },
        ],
    }
}

#[test]
fn list_numeric_matches_ipvsadm() {
    let f = numeric(Columns::Plain);
    let expect = concat!(
        "IP Virtual Server version 1.2.1 (size=4096)\n",
        "Prot LocalAddress:Port Scheduler Flags\n",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
        "TCP  192.168.0.100:80 wrr\n",
        "  -> 192.168.0.11:80              Route   3      12         40        \n",
        "  -> 192.168.0.12:80              Route   1      4          13        \n",
        "UDP  192.168.0.100:53 rr\n",
        "  -> 10.0.0.21:53                 Route   1      0          0         \n",
    );
    assert_eq!(list_all(&snap(), &f), expect);
}

/// ipvs-reference.md §1.6's rendering of ipvsadm 1.31's formats.
#[test]
fn persistence_is_listed_and_saved_as_ipvsadm_does() {
    let mut sn = snap();
    sn.services[0].def.persistent = Some(Persistence::new(360));
    sn.services[1].def.persistent = Some(Persistence {
        netmask: [255, 255, 255, 0].into(),
        ..Persistence::new(600)
    });
    sn.services[1].dests[1].persistent = 7;
    let f = numeric;
    let l = list_all(&sn, &f(Columns::Plain));
    assert!(l.contains("\nTCP  192.168.0.100:80 wrr persistent 600 mask 255.255.255.0\n"));
    assert!(l.contains("\nUDP  192.168.0.100:53 rr persistent 360\n"));
    let s = list_all(&sn, &f(Columns::Rule));
    assert!(s.contains("-A -t 192.168.0.100:80 -s wrr -p 600 -M 255.255.255.0\n"));
    assert!(s.contains("-A -u 192.168.0.100:53 -s rr -p 360\n"));
    let p = list_all(&sn, &f(Columns::PersistentConn));
    assert!(p.contains(
        "\n  -> 192.168.0.11:80              3         7           12         40        \n"
    ));
}

#[test]
fn stats_columns_and_largenum() {
    let f = numeric(Columns::Stats);
    let s = list_all(&snap(), &f);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(
        lines[1],
        "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes"
    );
    assert_eq!(lines[2], "  -> RemoteAddress:Port");
    assert_eq!(
        lines[3],
        "TCP  192.168.0.100:80                14209   111769        0  7207174        0"
    );
    let mut o = String::new();
    largenum(&mut o, 123_456_789, false);
    largenum(&mut o, 2_000_000_000, false);
    largenum(&mut o, 123_456_789, true);
    assert_eq!(o, "  123456K    2000M 123456789");
}

#[test]
fn rate_columns() {
    let mut sn = snap();
    sn.services[1].rates = crate::lvs::stats::Rates {
        cps: 12,
        inpps: 340,
        outpps: 0,
        inbps: 51234,
        outbps: 0,
    };
    sn.services[1].dests[1].rates = crate::lvs::stats::Rates {
        cps: 8,
        inpps: 230,
        outpps: 0,
        inbps: 40000,
        outbps: 0,
    };
    let f = numeric(Columns::Rate);
    let s = list_all(&sn, &f);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(
        lines[1],
        "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS"
    );
    assert_eq!(
        lines[3],
        "TCP  192.168.0.100:80                   12      340        0    51234        0"
    );
    assert_eq!(
        lines[4],
        "  -> 192.168.0.11:80                     8      230        0    40000        0"
    );
}

#[test]
fn save_format() {
    let f = numeric(Columns::Rule);
    assert_eq!(
        list_all(&snap(), &f),
        "-A -t 192.168.0.100:80 -s wrr\n\
-a -t 192.168.0.100:80 -r 192.168.0.11:80 -g -w 3\n\
-a -t 192.168.0.100:80 -r 192.168.0.12:80 -g -w 1\n\
-A -u 192.168.0.100:53 -s rr\n\
-a -u 192.168.0.100:53 -r 10.0.0.21:53 -g -w 1\n"
    );
}

#[test]
fn wrapping_address_order() {
    // 200.0.0.1 - 10.0.0.1 overflows int: ipvsadm lists 200.x first.
    let mut s = snap();
    s.services.truncate(1);
    s.services[0].dests = vec![
        dest([10, 0, 0, 1], 53, 1, 0, 0),
        dest([200, 0, 0, 1], 53, 1, 0, 0),
    ];
    let out = list_all(&s, &numeric(Columns::Plain));
    let a = out.find("200.0.0.1").unwrap();
    let b = out.find("10.0.0.1").unwrap();
    assert!(a < b);
}

/// A `-Lnc` row's connection: its client, virtual and real server ends
/// (address text and port), state and seconds left.
fn conn(protocol: Protocol, ends: [(&str, u16); 3], state: &str, expires_secs: u64) -> ConnInfo {
    let [(c, cport), (v, vport), (d, dport)] = ends.map(|(a, p)| (a.parse().unwrap(), p));
    ConnInfo {
        protocol,
        caddr: c,
        cport,
        vaddr: v,
        vport,
        daddr: d,
        dport,
        state: state.into(),
        expires_secs,
    }
}

/// One connection's `-Lnc` row.
fn row(c: &ConnInfo) -> String {
    let mut out = String::new();
    conn_line(&mut out, c, true);
    out
}

#[test]
fn connection_listing() {
    let ends = [
        ("203.0.113.7", 51514),
        ("192.168.0.100", 80),
        ("192.168.0.11", 80),
    ];
    let c = conn(Protocol::Tcp, ends, "ESTABLISHED", 898);
    assert_eq!(
        list_conns(&[c], true),
        "IPVS connection entries\npro expire state       source             virtual            destination\n\
TCP 14:58  ESTABLISHED 203.0.113.7:51514  192.168.0.100:80   192.168.0.11:80\n"
    );
    // A firewall-mark service's template: protocol IP, the mark as its
    // virtual address (ipvs-reference.md's fwmark-7 template).
    let t = conn(
        Protocol::Ip,
        [("203.0.113.7", 0), ("0.0.0.7", 0), ("10.0.0.21", 0)],
        "NONE",
        359,
    );
    assert_eq!(
        row(&t),
        "IP  05:59  NONE        203.0.113.7:0      0.0.0.7:0          10.0.0.21:0\n"
    );
}

/// ipvs-reference.md's rendering: mark services sort first by mark
/// (after every -t/-u service, whose mark is 0), `ops` and `-o`.
#[test]
fn fwmark_and_ops_as_ipvsadm_prints_them() {
    let mut sn = snap();
    sn.services[0].def.ops = true;
    let mut fwm = sn.services[0].clone();
    fwm.def.key = ServiceKey::mark(7);
    (fwm.def.scheduler, fwm.def.ops) = ("wlc".into(), false);
    fwm.dests = vec![dest([10, 0, 0, 21], 0, 0, 0, 3)];
    fwm.dests[0].spec.forward = Forward::Masq;
    sn.services.insert(0, fwm);
    let f = numeric;
    let l = list_all(&sn, &f(Columns::Plain));
    assert!(
        l.ends_with(concat!(
            "UDP  192.168.0.100:53 rr ops\n",
            "  -> 10.0.0.21:53                 Route   1      0          0         \n",
            "FWM  7 wlc\n",
            "  -> 10.0.0.21:0                  Masq    0      0          3         \n",
        )),
        "{l}"
    );
    let s = list_all(&sn, &f(Columns::Rule));
    assert!(s.contains("-A -u 192.168.0.100:53 -s rr -o\n"), "{s}");
    assert!(
        s.ends_with("-A -f 7 -s wlc\n-a -f 7 -r 10.0.0.21:0 -m -w 0\n"),
        "{s}"
    );
}

/// ipvsadm writes an IPv6 service as `[addr]:port`, sorts it after the
/// IPv4 ones (AF_INET < AF_INET6) and does not cut its name, so a
/// 39-character address pushes the columns right.
#[test]
fn an_ipv6_service_is_named_sorted_and_saved_as_ipvsadm_does() {
    let mut sn = snap();
    let long: std::net::Ipv6Addr = "fd12:3456:789a:bcde:f012:3456:789a:bcde".parse().unwrap();
    let mut v6 = sn.services[1].clone();
    v6.def.key = ServiceKey::addr(Protocol::Tcp, long, 80);
    v6.def.scheduler = "rr".into();
    v6.dests.clear();
    let mut short = v6.clone();
    short.def.key = ServiceKey::addr(
        Protocol::Tcp,
        "2001:db8::80".parse::<std::net::Ipv6Addr>().unwrap(),
        80,
    );
    sn.services.insert(0, v6);
    sn.services.insert(1, short);
    let l = list_all(&sn, &numeric(Columns::Plain));
    let services: Vec<&str> = l.lines().filter(|l| !l.starts_with(' ')).skip(2).collect();
    // The family before the protocol; 0xfd123456 - 0x20010db8 wraps
    // negative as an int, so fd12:… sorts before 2001:… as in libipvs.
    assert_eq!(
        services,
        [
            "TCP  192.168.0.100:80 wrr",
            "UDP  192.168.0.100:53 rr",
            "TCP  [fd12:3456:789a:bcde:f012:3456:789a:bcde]:80 rr",
            "TCP  [2001:db8::80]:80 rr",
        ]
    );
    let s = list_all(&sn, &numeric(Columns::Rule));
    assert!(s.contains("\n-A -t [2001:db8::80]:80 -s rr\n"), "{s}");
    let st = list_all(&sn, &numeric(Columns::Stats));
    assert!(
        st.contains(
            "\nTCP  [fd12:3456:789a:bcde:f012:3456:789a:bcde]:80    14209   111769        0  7207174        0\n"
        ),
        "{st}"
    );
    // Names are looked up for IPv4 only, as ipvsadm's are.
    assert_eq!(
        addrport(long.into(), 80, Protocol::Tcp, false),
        "[fd12:3456:789a:bcde:f012:3456:789a:bcde]:http"
    );
}

/// ipvsadm cuts a real server's name at 28 characters by its service's
/// family: never for an IPv6 service, always for an IPv4 one (even a
/// tunnel's IPv6 real server).
#[test]
fn real_server_names_are_cut_by_their_service_family() {
    let long: std::net::Ipv6Addr = "fd12:3456:789a:bcde:f012:3456:789a:bcde".parse().unwrap();
    let mut sn = snap();
    sn.services.truncate(1);
    let mut d = dest([0; 4], 8080, 1, 0, 0);
    d.spec.addr = long.into();
    sn.services[0].dests = vec![d];
    let mut v6 = sn.services[0].clone();
    v6.def.key = ServiceKey::addr(Protocol::Udp, long, 53);
    sn.services.push(v6);
    let l = list_all(&sn, &numeric(Columns::Plain));
    let rows: Vec<&str> = l.lines().filter(|l| l.starts_with("  -> [")).collect();
    assert_eq!(
        rows,
        [
            "  -> [fd12:3456:789a:bcde:f012:34 Route   1      0          0         ",
            "  -> [fd12:3456:789a:bcde:f012:3456:789a:bcde]:8080 Route   1      0          0         ",
        ]
    );
}

/// An IPv6 connection's row: ipvsadm's print_conn writes each end as
/// `[addr]:port` in the same 18-character columns, which a longer one
/// pushes right.
#[test]
fn an_ipv6_connection_is_listed_as_ipvsadm_lists_it() {
    let ends = [
        ("2001:2::10", 5000),
        ("2001:2::100", 53),
        ("2001:2:0:1::11", 53),
    ];
    assert_eq!(
        row(&conn(Protocol::Udp, ends, "UDP", 299)),
        "UDP 04:59  UDP         [2001:2::10]:5000  [2001:2::100]:53   [2001:2:0:1::11]:53\n"
    );
}

/// An IPv6 service's persistence shows its prefix (`mask 64`, `-M 64`)
/// unless it is /128; an IPv6 mark service is `FWM  7 IPv6` and
/// `-f 7 -6`, after the IPv4 one of its mark (AF_INET < AF_INET6).
/// What `-S` writes parses back into the same services (`-R`).
#[test]
fn ipv6_persistence_and_mark_services_as_ipvsadm_prints_them() {
    let mut sn = snap();
    sn.services.truncate(1);
    let v6 = |a: &str| a.parse::<std::net::Ipv6Addr>().unwrap();
    let mut web = sn.services[0].clone();
    web.def.key = ServiceKey::addr(Protocol::Tcp, v6("2001:2::100"), 80);
    web.def.persistent = Some(Persistence {
        prefix6: 64,
        ..Persistence::new(600)
    });
    web.dests = vec![dest([0; 4], 80, 1, 0, 0)];
    web.dests[0].spec.addr = v6("2001:2:0:1::11").into();
    let mut whole = web.clone();
    whole.def.key.port = 0;
    whole.def.persistent = Some(Persistence::new(360));
    let mut fwm = sn.services[0].clone();
    fwm.def.key = ServiceKey::mark(7);
    fwm.def.scheduler = "wlc".into();
    fwm.dests = vec![dest([10, 0, 0, 21], 0, 1, 0, 0)];
    let mut fwm6 = web.clone();
    fwm6.def.key = ServiceKey::mark_of(7, true);
    fwm6.def.scheduler = "wlc".into();
    fwm6.dests[0].spec.port = 0;
    sn.services.extend([fwm6, fwm, web, whole]);
    let l = list_all(&sn, &numeric(Columns::Plain));
    let lines: Vec<&str> = l.lines().skip(3).collect();
    assert_eq!(
        lines,
        [
            "UDP  192.168.0.100:53 rr",
            "  -> 10.0.0.21:53                 Route   1      0          0         ",
            "TCP  [2001:2::100]:0 rr persistent 360",
            "  -> [2001:2:0:1::11]:80          Route   1      0          0         ",
            "TCP  [2001:2::100]:80 rr persistent 600 mask 64",
            "  -> [2001:2:0:1::11]:80          Route   1      0          0         ",
            "FWM  7 wlc",
            "  -> 10.0.0.21:0                  Route   1      0          0         ",
            "FWM  7 IPv6 wlc persistent 600 mask 64",
            "  -> [2001:2:0:1::11]:0           Route   1      0          0         ",
        ]
    );
    let s = list_all(&sn, &numeric(Columns::Rule));
    let want = concat!(
        "-A -u 192.168.0.100:53 -s rr\n",
        "-a -u 192.168.0.100:53 -r 10.0.0.21:53 -g -w 1\n",
        "-A -t [2001:2::100]:0 -s rr -p 360\n",
        "-a -t [2001:2::100]:0 -r [2001:2:0:1::11]:80 -g -w 1\n",
        "-A -t [2001:2::100]:80 -s rr -p 600 -M 64\n",
        "-a -t [2001:2::100]:80 -r [2001:2:0:1::11]:80 -g -w 1\n",
        "-A -f 7 -s wlc\n",
        "-a -f 7 -r 10.0.0.21:0 -g -w 1\n",
        "-A -f 7 -6 -s wlc -p 600 -M 64\n",
        "-a -f 7 -6 -r [2001:2:0:1::11]:0 -g -w 1\n",
    );
    assert_eq!(s, want);
    // `-R`: each line back to the service it was written from.
    let restored: Vec<ServiceDef> = s
        .lines()
        .filter(|l| l.starts_with("-A"))
        .map(|l| {
            let v: Vec<String> = l.split_whitespace().map(String::from).collect();
            let crate::admin::args::Invocation::Run(p) =
                crate::admin::args::parse("ipvsadm", &v).unwrap()
            else {
                panic!("{l}")
            };
            match crate::admin::args::to_op(&p).unwrap() {
                Some(crate::control::proto::Op::AddService(d)) => d,
                other => panic!("{l}: {other:?}"),
            }
        })
        .collect();
    let mut want: Vec<ServiceDef> = sn.services.iter().map(|s| s.def.clone()).collect();
    want.sort_by_key(|d| (d.key.fwmark, d.key.addr.is_ipv6(), d.key.port));
    assert_eq!(restored, want);
}
