//! Property-based fuzzing on the stable toolchain (proptest): the wire
//! views, the data plane's per-frame entry point, the restore parser, the
//! control protocol, config files, keepalived.conf and the HA messages
//! (heartbeats and sync) get mutated valid inputs and random bytes. Each
//! target runs 2,000 cases by default (what CI runs); a deep run is
//!
//!     PROPTEST_CASES=1000000 cargo test --release --test fuzz
//!
//! (docs/testing.md). Beyond "no panic", each target checks what must
//! hold whatever the input: what the director sends fits its link, the
//! connection table stays within its limit and keeps forwarding, errors
//! name their line, and a refused change leaves the model as it was.

mod support;

use etherparse::PacketBuilder;
use proptest::prelude::*;
use proptest::test_runner::Config;
use std::cell::RefCell;
use std::net::Ipv4Addr;
use std::sync::LazyLock;
use support::rig::{CL_MAC, DIR_MAC, Rig, VIP, dest, service, svc};
use uvs::admin::restore;
use uvs::control::model::Model;
use uvs::control::proto::{Op, Request};
use uvs::dataplane::LinkParams;
use uvs::io::{Gso, PacketType, RxMeta};
use uvs::lvs::service::{Forward, Protocol};
use uvs::lvs::table::{LinkRoute, NextHop};
use uvs::wire::icmp::IcmpErrorRepr;
use uvs::wire::{
    ArpPacket, ArpRepr, EthernetFrame, Icmpv4Packet, Ipv4Packet, MacAddr, TcpPacket, UdpPacket,
};

fn config() -> Config {
    // Config::default() reads PROPTEST_CASES.
    let mut c = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 2000;
    }
    c.failure_persistence = None;
    c
}

const DIR1: [u8; 6] = [2, 0, 0, 0, 1, 1];
const CLIENT: [u8; 4] = [198, 18, 0, 10];
const RIP_NAT: [u8; 4] = [198, 18, 1, 11];
const MAX_CONNS: usize = 4096;

/// DR on TCP 80, TUN on UDP 54, NAT on TCP 8080 and UDP 53.
fn ops() -> Vec<Op> {
    let rs = |a: [u8; 4], port, f| dest(a.into(), port, f, 1);
    let mut ops = service(
        svc(Protocol::Tcp, 80),
        "wrr",
        &[
            rs([198, 18, 0, 11], 80, Forward::Route),
            rs([198, 18, 0, 12], 80, Forward::Route),
        ],
    );
    ops.extend(service(
        svc(Protocol::Udp, 54),
        "rr",
        &[rs([198, 18, 0, 13], 54, Forward::Tunnel)],
    ));
    ops.extend(service(
        svc(Protocol::Tcp, 8080),
        "lc",
        &[rs(RIP_NAT, 8080, Forward::Masq)],
    ));
    ops.extend(service(
        svc(Protocol::Udp, 53),
        "wlc",
        &[rs(RIP_NAT, 5353, Forward::Masq)],
    ));
    ops
}

fn hop(ip: Ipv4Addr, f: Forward) -> NextHop {
    NextHop {
        link: u8::from(f == Forward::Masq),
        mac: MacAddr([2, 0, 0, 0, 2, ip.octets()[3]]),
    }
}

fn links() -> Vec<LinkParams> {
    let mut l = support::rig::one_link();
    l.push(LinkParams {
        mac: MacAddr(DIR1),
        mtu: 1400,
        addr: Ipv4Addr::new(198, 18, 1, 1),
    });
    l
}

fn rig() -> Rig {
    let routes = vec![LinkRoute {
        dst: "198.18.0.0/24".parse().unwrap(),
        link: 0,
        gateway_mac: None,
    }];
    let mut r = Rig::build_max(links(), hop, routes, &ops(), MAX_CONNS);
    r.io.take_sent();
    r
}

fn frame(b: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut v = Vec::new();
    b(&mut v);
    v
}

/// Valid frames of every kind the data plane handles, with the link they
/// arrive on: the fuzzer's starting points.
static SEEDS: LazyLock<Vec<(Vec<u8>, u8)>> = LazyLock::new(|| {
    let to_vip = |ttl| PacketBuilder::ethernet2(CL_MAC, DIR_MAC).ipv4(CLIENT, VIP, ttl);
    let syn = frame(|v| {
        to_vip(64)
            .tcp(40000, 80, 1, 64000)
            .syn()
            .write(v, b"")
            .unwrap()
    });
    let ack = frame(|v| {
        to_vip(64)
            .tcp(40000, 80, 2, 64000)
            .ack(1)
            .write(v, &[7u8; 600])
            .unwrap()
    });
    let tun = frame(|v| to_vip(9).udp(40001, 54).write(v, &[1u8; 1450]).unwrap());
    let nat = frame(|v| to_vip(64).udp(40002, 53).write(v, b"NAME").unwrap());
    let nat_syn = frame(|v| {
        to_vip(64)
            .tcp(40003, 8080, 1, 64000)
            .syn()
            .write(v, b"")
            .unwrap()
    });
    let reply = frame(|v| {
        PacketBuilder::ethernet2([2, 0, 0, 0, 2, 11], DIR1)
            .ipv4(RIP_NAT, CLIENT, 64)
            .udp(5353, 40002)
            .write(v, b"rs1")
            .unwrap()
    });
    let tcp_reply = frame(|v| {
        PacketBuilder::ethernet2([2, 0, 0, 0, 2, 11], DIR1)
            .ipv4(RIP_NAT, CLIENT, 64)
            .tcp(8080, 40003, 9, 64000)
            .syn()
            .ack(2)
            .write(v, b"")
            .unwrap()
    });
    // An ICMP error from a router about a packet the client sent to the
    // VIP (quoting its header and 8 bytes), and one from the NAT server.
    let quote = |src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16| {
        let mut q = frame(|v| {
            PacketBuilder::ipv4(src, dst, 60)
                .udp(sport, dport)
                .write(v, b"12345678")
                .unwrap()
        });
        q.truncate(28);
        q
    };
    let icmp = |eth_src, eth_dst, src, dst, q: Vec<u8>| {
        frame(|v| {
            PacketBuilder::ethernet2(eth_src, eth_dst)
                .ipv4(src, dst, 64)
                .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                    etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded {
                        next_hop_mtu: 1280,
                    },
                ))
                .write(v, &q)
                .unwrap()
        })
    };
    let icmp_in = icmp(CL_MAC, DIR_MAC, CLIENT, VIP, quote(VIP, CLIENT, 53, 40002));
    let icmp_out = icmp(
        [2, 0, 0, 0, 2, 11],
        DIR1,
        RIP_NAT,
        CLIENT,
        quote(CLIENT, RIP_NAT, 40002, 5353),
    );
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&CL_MAC);
    arp.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&CL_MAC);
    arp.extend_from_slice(&CLIENT);
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&VIP);
    vec![
        (syn, 0),
        (ack, 0),
        (tun, 0),
        (nat, 0),
        (nat_syn, 0),
        (reply, 1),
        (tcp_reply, 1),
        (icmp_in, 0),
        (icmp_out, 1),
        (arp, 0),
    ]
});

/// A seed changed by up to eight byte flips (biased towards the headers)
/// and perhaps truncated, or plain random bytes.
fn mutated(seeds: &'static [(Vec<u8>, u8)]) -> impl Strategy<Value = (Vec<u8>, u8)> {
    let flips = prop::collection::vec((any::<u16>(), any::<u8>(), any::<bool>()), 0..8);
    let from_seed = (0..seeds.len(), flips, any::<u16>(), any::<bool>()).prop_map(
        move |(i, flips, cut, do_cut)| {
            let (mut f, link) = seeds[i].clone();
            for (at, x, header) in flips {
                let n = if header { f.len().min(64) } else { f.len() };
                if n > 0 {
                    f[usize::from(at) % n] ^= x;
                }
            }
            if do_cut {
                f.truncate(usize::from(cut) % (f.len() + 1));
            }
            (f, link)
        },
    );
    let random = (prop::collection::vec(any::<u8>(), 0..256), 0u8..3);
    prop_oneof![8 => from_seed, 1 => random]
}

fn meta() -> impl Strategy<Value = RxMeta> {
    (
        0u8..6,
        prop::option::weighted(0.2, (any::<u16>(), any::<u16>())),
        prop::option::weighted(0.2, (any::<bool>(), any::<u16>())),
    )
        .prop_map(|(t, csum, gso)| RxMeta {
            pkt_type: match t {
                0 => PacketType::Broadcast,
                1 => PacketType::Multicast,
                2 => PacketType::OtherHost,
                _ => PacketType::Host,
            },
            csum_partial: csum.map(|(s, o)| (s % 120, o % 40)),
            gso: gso.map(|(tcpv4, size)| Gso { tcpv4, size }),
            ..RxMeta::default()
        })
}

thread_local! {
    /// One rig for the whole run, so connections made by earlier cases
    /// meet later ones (replies, ICMP errors, reuse, eviction).
    static RIG: RefCell<Rig> = RefCell::new(rig());
}

/// What the director sends must be a whole Ethernet frame that fits the
/// link it goes out on.
fn check_sent(sent: &[(u8, Vec<u8>)]) -> Result<(), TestCaseError> {
    let mtus = [1500usize, 1400];
    for (link, f) in sent {
        let mtu = *mtus.get(usize::from(*link)).ok_or_else(|| {
            TestCaseError::fail(format!("sent on link {link}, which does not exist"))
        })?;
        prop_assert!(
            f.len() >= 14 && f.len() <= mtu + 14,
            "{} bytes on link {link}",
            f.len()
        );
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        prop_assert!(
            matches!(eth.ethertype(), 0x0800 | 0x0806),
            "sent ethertype {:#x}: {:02x?}",
            eth.ethertype(),
            f
        );
        if eth.ethertype() == 0x0800 {
            let ip = Ipv4Packet::new_checked(&f[14..]);
            prop_assert!(ip.is_ok(), "sent an IPv4 frame that does not parse");
            prop_assert!(ip.unwrap().verify_checksum(), "bad IPv4 header checksum");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn per_frame_entry_point((f, link) in mutated(&SEEDS), m in meta()) {
        RIG.with_borrow_mut(|r| {
            r.io.take_sent_links();
            r.io.push_with(f, RxMeta { link, ..m });
            r.poll();
            check_sent(&r.io.take_sent_links())?;
            prop_assert!(r.dp.conn_count() <= MAX_CONNS);
            // The director still forwards: a NAT flow from a fixed port.
            let canary = SEEDS[3].0.clone();
            let out = r.feed_on(canary, 0, RxMeta::default());
            prop_assert_eq!(out.len(), 1, "the canary flow was not forwarded");
            prop_assert_eq!(out[0].0, 1);
            Ok(())
        })?;
    }

    #[test]
    fn wire_views((f, _) in mutated(&SEEDS)) {
        if let Ok(eth) = EthernetFrame::new_checked(&f[..]) {
            let _ = (eth.dst_addr(), eth.src_addr(), eth.ethertype(), eth.payload().len());
        }
        for at in [0usize, 14] {
            let Some(b) = f.get(at..) else { continue };
            if let Ok(ip) = Ipv4Packet::new_checked(b) {
                let _ = (ip.header_len(), ip.tos(), ip.total_len(), ip.ident(), ip.dont_frag());
                let _ = (ip.is_fragment(), ip.frag_offset(), ip.ttl(), ip.protocol());
                let _ = (ip.checksum(), ip.src_addr(), ip.dst_addr(), ip.verify_checksum());
                prop_assert!(ip.header_len() >= 20 && ip.total_len() <= b.len());
                prop_assert_eq!(ip.payload().len(), ip.total_len() - ip.header_len());
                let _ = uvs::wire::ipip::inner(b);
                let p = ip.payload();
                if let Ok(t) = TcpPacket::new_checked(p) {
                    let _ = (t.seq_number(), t.header_len(), t.flags(), t.syn(), t.ack());
                    let _ = (t.fin(), t.rst(), t.checksum());
                    prop_assert!(t.header_len() >= 20 && t.header_len() <= p.len());
                }
                if let Ok(u) = UdpPacket::new_checked(p) {
                    let _ = (u.len(), u.is_empty(), u.checksum(), u.payload().len());
                    let _ = uvs::wire::udp::UdpRepr::parse(&u);
                }
                if let Ok(i) = Icmpv4Packet::new_checked(p) {
                    let _ = (i.msg_type(), i.code(), i.checksum(), i.rest(), i.data().len());
                    // An error parsed and written again is the same error.
                    if let Ok(e) = IcmpErrorRepr::parse(&i) {
                        let mut out = vec![0u8; e.buffer_len()];
                        let n = e.emit(&mut out).unwrap();
                        let again = Icmpv4Packet::new_checked(&out[..n]).unwrap();
                        let e2 = IcmpErrorRepr::parse(&again).unwrap();
                        prop_assert_eq!(e.error, e2.error);
                        prop_assert_eq!(e.quote, e2.quote);
                        let sum = uvs::wire::checksum::finish(uvs::wire::checksum::sum(&out[..n]));
                        prop_assert_eq!(sum, 0, "ICMP checksum does not verify");
                    }
                }
            }
            if let Ok(a) = ArpPacket::new_checked(b) {
                let _ = (a.hardware_type(), a.protocol_type(), a.hardware_len());
                let _ = (a.protocol_len(), a.operation(), a.target_hw(), a.target_ip());
                if let Ok(r) = ArpRepr::parse(&a) {
                    let mut out = vec![0u8; r.buffer_len()];
                    r.emit(&mut out).unwrap();
                    let again = ArpRepr::parse(&ArpPacket::new_checked(&out[..]).unwrap());
                    prop_assert_eq!(again.ok(), Some(r));
                }
            }
        }
    }
}

const SAVE: &str = "-A -t 198.18.0.100:80 -s wrr\r\n\
-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 3\n\
-a -t 198.18.0.100:80 -r 198.18.0.12:80 -i -w 1\n\
# a comment\n\
\n\
-A -u 198.18.0.100:53 -s rr\n\
-a -u 198.18.0.100:53 -r 198.18.1.11:5353 -m -w 1\n\
--set 900 120 300\n";

fn fake_hop(ip: Ipv4Addr, f: Forward) -> Result<NextHop, uvs::control::model::OpError> {
    Ok(hop(ip, f))
}

/// Bytes of a text, mutated: byte flips, a line repeated or dropped, a
/// token from ipvsadm's vocabulary spliced in; with or without a BOM.
fn text_mutations(base: &'static str) -> impl Strategy<Value = Vec<u8>> {
    const TOKENS: &[&str] = &[
        "-A",
        "-a",
        "-E",
        "-e",
        "-d",
        "-D",
        "-C",
        "-t",
        "-u",
        "-f",
        "-s",
        "-r",
        "-g",
        "-i",
        "-m",
        "-w",
        "-x",
        "-y",
        "-p",
        "--set",
        "4294967296",
        "-1",
        "0",
        "::1",
        "1.2.3.4:99999",
        "\u{feff}",
        "\r",
        "\t",
        " ",
        "\"",
        "{",
        "}",
        "null",
        "[",
        "]",
        ":",
        ",",
        "\u{0}",
    ];
    let edits = prop::collection::vec((any::<u16>(), 0u8..4, 0..TOKENS.len(), any::<u8>()), 0..6);
    (edits, any::<bool>()).prop_map(move |(edits, bom)| {
        let mut b = base.as_bytes().to_vec();
        for (at, kind, tok, x) in edits {
            let at = usize::from(at) % (b.len() + 1);
            match kind {
                0 => {
                    if at < b.len() {
                        b[at] ^= x;
                    }
                }
                1 => {
                    let t = TOKENS[tok].as_bytes();
                    b.splice(at..at, t.iter().copied());
                }
                2 => {
                    let end = (at + usize::from(x)).min(b.len());
                    b.drain(at..end);
                }
                _ => {
                    let line: Vec<u8> = b[at..].split(|c| *c == b'\n').next().unwrap().to_vec();
                    b.splice(at..at, line.into_iter().chain([b'\n']));
                }
            }
        }
        if bom {
            b.splice(0..0, [0xef, 0xbb, 0xbf]);
        }
        b
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn restore_parser(input in text_mutations(SAVE)) {
        let lines = input.split(|c| *c == b'\n').count();
        match restore::parse("uvsadm", &input) {
            Err(e) => {
                prop_assert!(e.line >= 1 && e.line <= lines + 1, "line {} of {lines}", e.line);
                prop_assert!(!e.msg.is_empty());
            }
            Ok(ops) => {
                let ops: Vec<Op> = ops.into_iter().map(|(_, o)| o).collect();
                let before = base();
                let snap = before.snapshot();
                if let Err((i, e)) = before.apply_all(&ops, &mut fake_hop, &mut |_, _| {}) {
                    prop_assert!(i < ops.len());
                    prop_assert!(!e.to_string().is_empty());
                }
                prop_assert_eq!(before.snapshot(), snap);
            }
        }
    }

    #[test]
    fn control_protocol(input in text_mutations(&REQUEST)) {
        let Ok(Request::Apply(ops)) = serde_json::from_slice::<Request>(&input) else {
            return Ok(());
        };
        let before = base();
        let snap = before.snapshot();
        match before.apply_all(&ops, &mut fake_hop, &mut |_, _| {}) {
            Ok(after) => {
                // What was accepted can be listed and published.
                let _ = after.snapshot();
                let _ = after.table(1);
            }
            Err((i, e)) => {
                prop_assert!(i < ops.len());
                prop_assert!(!e.to_string().is_empty());
            }
        }
        prop_assert_eq!(before.snapshot(), snap);
    }
}

/// The model the restore and protocol cases start from.
fn base() -> Model {
    Model::with_tun_source(Some(support::rig::DIR_ADDR))
        .apply_all(&ops(), &mut fake_hop, &mut |_, _| {})
        .unwrap()
}

/// A valid control request (the restore seed as one `Apply`), as the
/// client sends it.
static REQUEST: LazyLock<&'static str> = LazyLock::new(|| {
    let ops = restore::parse("uvsadm", SAVE.as_bytes()).unwrap();
    let ops: Vec<Op> = ops.into_iter().map(|(_, o)| o).collect();
    let json = serde_json::to_string(&Request::Apply(ops)).unwrap();
    Box::leak(json.into_boxed_str())
});

/// The documented config example and the keepalived fixture, mutated.
static CONFIG_DOC: LazyLock<&'static str> = LazyLock::new(|| {
    let doc = include_str!("../docs/config.md");
    let block = doc
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .unwrap();
    Box::leak(block.to_string().into_boxed_str())
});

const KEEPALIVED: &str = include_str!("fixtures/keepalived/keepalived.conf");

proptest! {
    #![proptest_config(config())]

    /// A config file of any shape: checked with a place for every error,
    /// never a panic; what loads turns into ops that apply or fail with a
    /// message.
    #[test]
    fn config_file(input in text_mutations(&CONFIG_DOC)) {
        match uvs::config::parse(std::path::Path::new("fuzz.toml"), &input) {
            Err(e) => {
                let lines = input.split(|c| *c == b'\n').count();
                prop_assert!(e.line <= lines + 1, "line {} of {lines}: {}", e.line, e.msg);
                prop_assert!(!e.msg.is_empty());
            }
            Ok(c) => {
                let ops = c.ops_from(&uvs::config::Config::default());
                let m = Model::with_tun_source(Some(support::rig::DIR_ADDR));
                if let Err((i, e)) = m.apply_all(&ops, &mut fake_hop, &mut |_, _| {}) {
                    prop_assert!(i < ops.len());
                    prop_assert!(!e.to_string().is_empty());
                }
            }
        }
    }

    /// keepalived.conf of any shape: an import or an error, never a
    /// panic; what it prints is a config the director loads.
    #[test]
    fn keepalived_import(input in text_mutations(KEEPALIVED)) {
        let dir = std::env::temp_dir().join(format!("uvs-fuzz-ka-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("keepalived.conf");
        let _ = std::fs::remove_file(&f);
        std::fs::write(&f, &input).unwrap();
        check_import(&f)?;
    }
}

proptest! {
    // The fast generator: most of a case's time went to ChaCha in a debug
    // build.
    #![proptest_config(Config {
        rng_algorithm: proptest::test_runner::RngAlgorithm::XorShift,
        ..config()
    })]

    /// keepalived.conf built from statements and braces: one-line blocks,
    /// braces glued to words, includes (of a config, of a file that is
    /// not config, of itself, of /dev/zero), deep nesting and many
    /// repeats. Written once a statement or brace a line and once with
    /// the braces glued or spaced on shared lines, it imports the same;
    /// a file that is not config is never shown.
    #[test]
    fn keepalived_one_line_blocks(
        main in ka_tokens(),
        inc in ka_tokens(),
        depth in 0usize..20,
        repeat in prop_oneof![8 => Just(1usize), 1 => 2usize..200],
        glue in any::<u64>(),
    ) {
        let mut main_toks = Vec::new();
        for _ in 0..depth {
            main_toks.push(KaTok::Stmt(0));
            main_toks.push(KaTok::Open);
        }
        for _ in 0..repeat {
            main_toks.extend(main.iter().cloned());
        }
        main_toks.extend(std::iter::repeat_n(KaTok::Close, depth));
        let mut outcomes = Vec::new();
        for (n, one_line) in [(0, false), (1, true)] {
            let dir = std::env::temp_dir()
                .join(format!("uvs-fuzz-ka1-{}", std::process::id()))
                .join(n.to_string());
            std::fs::create_dir_all(&dir).unwrap();
            // New files rather than truncated ones: ext4 flushes a file
            // truncated and written again when it is closed.
            let write = |name: &str, text: &str| {
                let _ = std::fs::remove_file(dir.join(name));
                std::fs::write(dir.join(name), text).unwrap();
            };
            write("shadow", SHADOW);
            write("inc.conf", &ka_text(&inc, one_line, glue));
            write("keepalived.conf", &ka_text(&main_toks, one_line, glue));
            let f = dir.join("keepalived.conf");
            outcomes.push(check_import(&f)?);
        }
        let (a, b) = (&outcomes[0], &outcomes[1]);
        prop_assert_eq!(a, b, "one statement a line and one-line blocks differ");
    }
}

/// What an import came to, without its places (the two writings of one
/// file differ in lines): the config's services, or the error count;
/// and the warning count.
#[derive(Debug, PartialEq)]
enum KaOutcome {
    Config(String, usize),
    Refused(usize, usize),
}

/// Imports `f`; what must hold of any import: a config the director
/// loads (its file checks and its table), or errors that each name a
/// place; no line of the file that is not config (SHADOW) shown.
fn check_import(f: &std::path::Path) -> Result<KaOutcome, TestCaseError> {
    let shown = |lines: &[String]| lines.iter().any(|l| l.contains(SECRET));
    match uvs::import::keepalived::import(f) {
        Ok(i) => {
            prop_assert!(!i.config.contains(SECRET) && !shown(&i.warnings));
            for l in &i.warnings {
                placed(f, l)?;
            }
            let c = uvs::config::parse(std::path::Path::new("imported.toml"), i.config.as_bytes());
            let c = c.map_err(|e| TestCaseError::fail(format!("{e}\n{}", i.config)))?;
            let ops = c.ops_from(&uvs::config::Config::default());
            let m = Model::with_tun_source(Some(support::rig::DIR_ADDR));
            if let Err((_, e)) = m.apply_all(&ops, &mut fake_hop, &mut |_, _| {}) {
                return Err(TestCaseError::fail(format!(
                    "the director refuses it: {e}\n{}",
                    i.config
                )));
            }
            let body = i
                .config
                .split_once("\n[director]")
                .map_or("", |x| x.1)
                .to_string();
            Ok(KaOutcome::Config(body, i.warnings.len()))
        }
        Err(e) => {
            prop_assert!(!e.errors.is_empty());
            prop_assert!(!shown(&e.errors) && !shown(&e.warnings));
            for l in e.errors.iter().chain(&e.warnings) {
                placed(f, l)?;
            }
            Ok(KaOutcome::Refused(e.errors.len(), e.warnings.len()))
        }
    }
}

/// A finding names a file of the import's directory and a line that the
/// file has (`FILE:LINE: …`, or `FILE: …` for the file as a whole).
fn placed(f: &std::path::Path, l: &str) -> Result<(), TestCaseError> {
    let dir = f.parent().unwrap().display().to_string();
    let rest = l.strip_prefix(&dir).and_then(|r| r.strip_prefix('/'));
    let rest = rest.ok_or_else(|| TestCaseError::fail(format!("not placed: {l}")))?;
    let (name, after) = rest.split_once(':').unwrap_or((rest, ""));
    let bytes = std::fs::read(f.with_file_name(name))
        .map_err(|e| TestCaseError::fail(format!("{name}: {e}: {l}")))?;
    let lines = String::from_utf8_lossy(&bytes).lines().count();
    if let Some(line) = after
        .split(':')
        .next()
        .and_then(|n| n.parse::<usize>().ok())
    {
        prop_assert!(line >= 1 && line <= lines, "no line {} in {}", line, name);
    }
    Ok(())
}

/// A file shaped like /etc/shadow, and the secret in it.
const SECRET: &str = "S3cretSa1tNeverShown";
const SHADOW: &str = "root:$6$S3cretSa1tNeverShown$Xq9vZp0rRk4mW2yT7uQ1sE8bN5cV:19000:0:99999:7:::\n\
S3cretSa1tNeverShown\n";

/// Statements the generated keepalived.conf files are made of: valid
/// ones, wrong ones (duplicates come from repeats), includes, comments.
const KA_STATEMENTS: &[&str] = &[
    "virtual_server 198.18.0.100 80",
    "virtual_server 198.18.0.101 53",
    "virtual_server group G",
    "virtual_server_group G",
    "198.18.0.102 80",
    "virtual_server 0.0.0.0 0",
    "virtual_server 198.18.0.103 99999",
    "virtual_server fwmark 7",
    "protocol TCP",
    "protocol UDP",
    "lb_kind NAT",
    "lb_kind DR",
    "lb_kind TUN",
    "lb_algo wrr",
    "persistence_timeout 50",
    "quorum 2",
    "quorum_up \"/bin/true up\"",
    "delay_loop 1",
    "inhibit_on_failure",
    "sorry_server 198.18.0.13 80",
    "real_server 198.18.0.11 80",
    "real_server 198.18.0.12",
    "real_server 198.18.0.100 80",
    "real_server 198.18.0.11 8080",
    "weight 3",
    "weight 3 HTTP_GET",
    "weight -5",
    "TCP_CHECK",
    "HTTP_GET",
    "MISC_CHECK",
    "DNS_CHECK",
    "url",
    "path / status_code 200",
    "path /",
    "status_code 200 300-399 x",
    "digest 9b3a0c85a887a256d6939da88aabd8cd",
    "connect_timeout 2",
    "connect_port 8080",
    "connect_port 0",
    "retry 3",
    "misc_path \"/bin/true {x}\"",
    "misc_dynamic",
    "name example.com",
    "global_defs",
    "vrrp_instance VI_1",
    "include inc.conf",
    "include shadow",
    "include /dev/zero",
    "include keepalived.conf",
    "include *.conf",
    "include {inc,shadow}",
    "unknown_option 1",
    "$VIP=198.18.0.100",
    "! a comment { }",
];

#[derive(Debug, Clone)]
enum KaTok {
    Stmt(usize),
    Open,
    Close,
}

fn ka_tokens() -> impl Strategy<Value = Vec<KaTok>> {
    let tok = prop_oneof![
        3 => (0..KA_STATEMENTS.len()).prop_map(KaTok::Stmt),
        2 => Just(KaTok::Open),
        2 => Just(KaTok::Close),
    ];
    prop::collection::vec(tok, 0..48)
}

/// The tokens as text: each on a line of its own, or (`one_line`, the
/// separators drawn from `glue`'s bits) braces glued to their neighbours or spaced on shared lines. Two
/// statements always have a line end between them, and an include or a
/// comment ends its line: keepalived would read them as one otherwise.
fn ka_text(toks: &[KaTok], one_line: bool, glue: u64) -> String {
    let mut out = String::new();
    let mut prev_stmt = false;
    for (i, t) in toks.iter().enumerate() {
        let sep = match (one_line, glue.rotate_left(2 * i as u32) & 3) {
            (false, _) => "\n",
            (true, 0) => "",
            (true, 1) => " ",
            (true, 2) => "\t ",
            (true, _) => "\n",
        };
        match t {
            KaTok::Stmt(s) => {
                let s = KA_STATEMENTS[*s];
                out.push_str(if prev_stmt { "\n" } else { sep });
                out.push_str(s);
                let ends_line = s.starts_with(['!', '#']) || s.starts_with("include");
                if ends_line {
                    out.push('\n');
                }
                prev_stmt = !ends_line;
            }
            KaTok::Open | KaTok::Close => {
                out.push_str(sep);
                out.push(if matches!(t, KaTok::Open) { '{' } else { '}' });
                prev_stmt = false;
            }
        }
    }
    out.push('\n');
    out
}

/// A valid sync message with a few records, and a heartbeat, under KEY.
const HA_KEY: &[u8] = b"a shared secret of enough length";

fn ha_seeds() -> Vec<Vec<u8>> {
    use uvs::ha::sync::{Body, SyncMsg};
    use uvs::ha::witness::Kind;
    use uvs::lvs::conn::{ConnState, PortableConn};
    use uvs::lvs::sync::{Digest, Record};
    let conn = PortableConn {
        protocol: Protocol::Tcp,
        caddr: Ipv4Addr::new(198, 18, 0, 10),
        cport: 40000,
        vaddr: VIP.into(),
        vport: 80,
        raddr: Ipv4Addr::new(198, 18, 0, 11),
        rport: 80,
        fwd: Forward::Route,
        state: ConnState::Udp,
        expires_in_ms: 1000,
        client_link: 0,
        client_mac: [2, 0, 0, 0, 0, 1],
        seen_twice: false,
    };
    let udp = PortableConn {
        protocol: Protocol::Udp,
        ..conn
    };
    let msg = |body| {
        SyncMsg {
            boot: 1,
            seq: 7,
            sent_ms: 1000,
            body,
        }
        .emit(HA_KEY)
    };
    vec![
        msg(Body::Records(vec![
            Record::Upsert(udp),
            Record::Remove(udp.key()),
        ])),
        msg(Body::Digest(Digest { count: 1, sum: 2 })),
        msg(Body::Nack { from: 1, to: 3 }),
        uvs::ha::msg::Heartbeat {
            boot: 1,
            seq: 2,
            sent_ms: 3,
            priority: 100,
            active: true,
            ready: false,
            hears_witness: true,
            heard_seq: 1,
        }
        .emit(HA_KEY)
        .to_vec(),
        witness_msg(Kind::Director {
            priority: 100,
            holding: true,
            claiming: true,
            dead_ms: 1000,
        }),
        witness_msg(Kind::Witness {
            vote_for_you: true,
            grantee: Ipv4Addr::new(198, 18, 0, 2),
            answers: 2,
        }),
    ]
}

/// A witness message of `kind` under KEY, on the wire.
fn witness_msg(kind: uvs::ha::witness::Kind) -> Vec<u8> {
    uvs::ha::witness::WitnessMsg {
        boot: 1,
        seq: 2,
        sent_ms: 3,
        kind,
    }
    .emit(HA_KEY)
    .to_vec()
}

static HA_SEEDS: LazyLock<Vec<Vec<u8>>> = LazyLock::new(ha_seeds);

proptest! {
    #![proptest_config(config())]

    /// HA datagrams of any shape (sync messages, heartbeats, witness
    /// messages, mutations of valid ones, random bytes): refused or taken,
    /// never a panic, and without the key nothing altered is ever taken;
    /// the witness and a director's view of it take them without a panic.
    #[test]
    fn ha_messages(seed in 0..6usize, edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6), cut in any::<usize>(), random in proptest::collection::vec(any::<u8>(), 0..1500)) {
        use uvs::ha::sync::{Inbox, SyncMsg};
        let base = &HA_SEEDS[seed];
        let mut m = base.clone();
        for (at, b) in &edits {
            let i = at % m.len();
            m[i] = *b;
        }
        m.truncate(cut % (m.len() + 1) + usize::from(edits.is_empty()) * m.len());
        for input in [&m, &random] {
            let mut inbox = Inbox::default();
            if let Ok(msg) = SyncMsg::parse(input, HA_KEY) {
                prop_assert_eq!(input, base, "an altered message was taken");
                inbox.take(msg, std::time::Instant::now());
            }
            if let Ok(h) = uvs::ha::msg::Heartbeat::parse(input, HA_KEY) {
                prop_assert_eq!(&h.emit(HA_KEY)[..], &input[..]);
            }
            if let Ok(w) = uvs::ha::witness::WitnessMsg::parse(input, HA_KEY) {
                prop_assert_eq!(&w.emit(HA_KEY)[..], &input[..]);
            }
            let now = std::time::Instant::now();
            let dir = std::net::SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 5405);
            let mut voter = uvs::ha::witness::Voter::new(HA_KEY.to_vec(), &[*dir.ip()], std::time::Duration::ZERO, now);
            let answer = voter.receive(dir, input, now, 1);
            prop_assert!(answer.reply.is_none() || input == base, "an altered message was answered");
            let mut view = uvs::ha::witness::WitnessView::new(dir);
            view.receive(input, HA_KEY, now, std::time::Duration::from_secs(1));
            prop_assert!(!view.votes_for_us(now), "a vote without a message of ours");
        }
    }
}
