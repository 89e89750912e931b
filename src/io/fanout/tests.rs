//! The fanout program checked by running it: a small classic BPF
//! interpreter that behaves as the kernel does at the fanout hook.

use super::*;

/// [`run_as`] for an IP packet, its ethertype by its version.
fn run(prog: &[libc::sock_filter], pkt: &[u8]) -> u32 {
    let ethertype = match pkt.first().map(|b| b >> 4) {
        Some(6) => ETH_P_IPV6,
        _ => ETH_P_IP,
    };
    run_as(prog, ethertype as u16, pkt)
}

/// Runs a classic BPF program the way the kernel does for the fanout
/// hook (loads relative to the network header, the ethertype from
/// SKF_AD_PROTOCOL; a load past the end returns 0), for the instructions
/// [`program`] uses.
fn run_as(prog: &[libc::sock_filter], ethertype: u16, pkt: &[u8]) -> u32 {
    let (mut a, mut x, mut m) = (0u32, 0u32, [0u32; 16]);
    let mut pc = 0usize;
    let load = |off: u32, size: usize| -> Option<u32> {
        if off == AD_PROTOCOL {
            return Some(u32::from(ethertype));
        }
        let off = off.checked_sub(NET)? as usize;
        let b = pkt.get(off..off + size)?;
        Some(b.iter().fold(0u32, |v, &x| (v << 8) | u32::from(x)))
    };
    loop {
        let i = prog[pc];
        pc += 1;
        let size = match i.code & 0x18 {
            W => 4,
            H => 2,
            _ => 1,
        };
        match i.code & 0x07 {
            LD if i.code & 0xe0 == MEM => a = m[i.k as usize],
            LD if i.code & 0xe0 == IMM => a = i.k,
            LDX if i.code & 0xe0 == IMM => x = i.k,
            LD => {
                let off = match i.code & 0xe0 {
                    IND => i.k.wrapping_add(x),
                    _ => i.k,
                };
                match load(off, size) {
                    Some(v) => a = v,
                    None => return 0,
                }
            }
            ST => m[i.k as usize] = a,
            ALU => {
                let v = if i.code & X != 0 { x } else { i.k };
                a = match i.code & 0xf0 {
                    ADD => a.wrapping_add(v),
                    MUL => a.wrapping_mul(v),
                    AND => a & v,
                    LSH => a << v,
                    RSH => a >> v,
                    MOD => a % v,
                    XOR => a ^ v,
                    op => panic!("ALU op {op:#x} not expected"),
                }
            }
            JMP if i.code & 0xf0 == JA => pc += i.k as usize,
            JMP => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
            RET if i.code & RET_A != 0 => return a,
            RET => return i.k,
            MISC => x = a,
            c => panic!("class {c:#x} not expected"),
        }
    }
}

fn ip(proto: u8, src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, ihl: u8) -> Vec<u8> {
    let mut p = vec![0u8; usize::from(ihl) * 4];
    p[0] = 0x40 | ihl;
    p[9] = proto;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&[0u8; 16]);
    p
}

/// An ICMP error quoting `inner`.
fn icmp(src: [u8; 4], dst: [u8; 4], inner: &[u8]) -> Vec<u8> {
    let mut p = ip(1, src, dst, 0x0304, 0, 5);
    p.truncate(20 + 8);
    p.extend_from_slice(inner);
    p
}

const VIP: [u8; 4] = [198, 18, 0, 100];
const OTHER_VIP: [u8; 4] = [198, 18, 0, 101];
const RIP: [u8; 4] = [198, 19, 0, 10];
const ROUTER: [u8; 4] = [198, 18, 0, 1];

#[test]
fn both_directions_of_a_connection_reach_the_client_s_worker() {
    let vips = [Ipv4Addr::from(OTHER_VIP), Ipv4Addr::from(VIP)];
    let mut seen = [false; 3];
    for n in [1usize, 2, 3] {
        let prog = program(&vips, &[], n).unwrap();
        for c in 0..200u16 {
            let client = [198, 19, 1 + (c % 3) as u8, (c % 250) as u8 + 2];
            let cport = 30000 + c * 7;
            let want = worker_of(Ipv4Addr::from(client), cport, n) as u32;
            let req = ip(6, client, VIP, cport, 80, 5);
            let with_options = ip(17, client, VIP, cport, 53, 7);
            let reply = ip(6, RIP, client, 8080, cport, 5);
            // A router's "fragmentation needed" to the VIP about a
            // reply from it; a real server's about a forwarded request.
            let about_reply = icmp(ROUTER, VIP, &ip(6, VIP, client, 80, cport, 5));
            let about_req = icmp(RIP, client, &ip(6, client, RIP, cport, 8080, 6));
            for (what, p) in [
                ("request", &req),
                ("request with options", &with_options),
                ("NAT reply", &reply),
                ("ICMP about a reply", &about_reply),
                ("ICMP about a request", &about_req),
            ] {
                assert_eq!(run(&prog, p), want, "{what} of client {c}, {n} workers");
            }
            if n == 3 {
                seen[want as usize] = true;
            }
        }
    }
    assert_eq!(seen, [true; 3], "every worker gets clients");
}

#[test]
fn other_frames_and_short_ones_go_somewhere_without_fault() {
    let prog = program(&[Ipv4Addr::from(VIP)], &[], 2).unwrap();
    assert_eq!(run(&prog, &ip(47, RIP, VIP, 1, 2, 5)), 0, "GRE: worker 0");
    assert_eq!(run(&prog, &[0x45, 0, 0]), 0, "truncated: worker 0");
    let mut cut = ip(6, RIP, VIP, 1, 2, 5);
    cut.truncate(21);
    assert_eq!(run(&prog, &cut), 0);
    assert!(run(&prog, &ip(17, [1, 2, 3, 4], VIP, 9, 9, 5)) < 2);
}

/// An ARP request from a sender whose MAC's second byte is TCP's
/// protocol number, which the program once read as an IPv4 header's
/// protocol (byte 9), hashing the frame to a worker by ARP's bytes.
#[test]
fn arp_and_other_ethertypes_go_to_worker_0() {
    let prog = program(&[Ipv4Addr::from(VIP)], &[], 4).unwrap();
    let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
    arp.extend([0x02, 6, 0, 0, 0, 9]);
    arp.extend([198, 18, 0, 10, 0, 0, 0, 0, 0, 0]);
    arp.extend(VIP);
    for (port, mac) in [(1u8, 6u8), (2, 17), (3, 1), (4, 6)] {
        arp[9] = mac;
        arp[13] = port;
        assert_eq!(run_as(&prog, 0x0806, &arp), 0, "ARP, MAC byte {mac}");
    }
    // The same bytes as an IPv4 frame's would be hashed: the ethertype
    // decides, not the bytes.
    let hashed: Vec<u32> = (0..32u8)
        .map(|b| {
            let mut p = ip(6, [198, 18, 0, b], VIP, 1000 + u16::from(b), 80, 5);
            p[9] = 6;
            run_as(&prog, 0x0800, &p)
        })
        .collect();
    assert!(
        hashed.iter().any(|&w| w != 0),
        "IPv4 frames hashed: {hashed:?}"
    );
    let lldp = ip(6, [198, 18, 0, 7], VIP, 1007, 80, 5);
    assert_eq!(run_as(&prog, 0x88cc, &lldp), 0, "LLDP");
    assert_eq!(run_as(&prog, 0x86dd, &[0x45, 0, 0]), 0, "IPv6, cut short");
}

#[test]
fn too_many_vips_are_refused_with_the_limit() {
    let vips: Vec<Ipv4Addr> = (0..MAX_VIPS as u32 + 1).map(Ipv4Addr::from).collect();
    let e = program(&vips, &[], 2).unwrap_err().to_string();
    assert!(e.contains(&format!("at most {MAX_VIPS}")), "{e}");
    let ok = program(&vips[..MAX_VIPS], &[], 2).unwrap();
    assert!(ok.len() <= 4096);
}

/// A TCP or UDP segment over IPv6 (40-byte fixed header), or any next
/// header with a payload of `rest`.
fn ip6(next: u8, src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16) -> Vec<u8> {
    let mut p = vec![0u8; 40];
    p[0] = 0x60;
    p[6] = next;
    p[7] = 64;
    p[8..24].copy_from_slice(&src.octets());
    p[24..40].copy_from_slice(&dst.octets());
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&[0u8; 16]);
    p
}

/// An ICMPv6 message of `kind` quoting `inner`.
fn icmp6(kind: u8, src: Ipv6Addr, dst: Ipv6Addr, inner: &[u8]) -> Vec<u8> {
    let mut p = ip6(58, src, dst, 0, 0);
    p.truncate(48);
    p[40] = kind;
    p.extend_from_slice(inner);
    p
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

#[test]
fn both_directions_of_an_ipv6_connection_reach_the_client_s_worker() {
    let vip = v6("2001:2::100");
    let (other, rip, router) = (v6("2001:2::101"), v6("2001:2:0:2::11"), v6("2001:2::1"));
    let mut seen = [false; 3];
    for n in [1usize, 2, 3] {
        let prog = program(&[Ipv4Addr::from(VIP)], &[other, vip], n).unwrap();
        for c in 0..200u16 {
            let client =
                Ipv6Addr::from(0x2001_0002_0000_0000_0000_0000_0000_1000u128 + u128::from(c % 37));
            let cport = 30000 + c * 7;
            let want = worker_of_ip(client.into(), cport, n) as u32;
            let req = ip6(6, client, vip, cport, 80);
            let udp = ip6(17, client, vip, cport, 53);
            let reply = ip6(6, rip, client, 8080, cport);
            // A router's packet too big to the VIP about a reply from it;
            // a real server's unreachable about a forwarded request.
            let about_reply = icmp6(2, router, vip, &ip6(6, vip, client, 80, cport));
            let about_req = icmp6(1, rip, client, &ip6(17, client, rip, cport, 5353));
            for (what, p) in [
                ("request", &req),
                ("UDP", &udp),
                ("NAT66 reply", &reply),
                ("ICMPv6 about a reply", &about_reply),
                ("ICMPv6 about a request", &about_req),
            ] {
                assert_eq!(run(&prog, p), want, "{what} of client {c}, {n} workers");
            }
            if n == 3 {
                seen[want as usize] = true;
            }
        }
    }
    assert_eq!(seen, [true; 3], "every worker gets IPv6 clients");
}

#[test]
fn the_ipv6_hash_folds_the_address_as_the_schedulers_do() {
    let a = v6("2001:2::10");
    let folded = 0x2001_0002 ^ 0x10;
    assert_eq!(
        worker_of_ip(a.into(), 4242, 5),
        worker_of(Ipv4Addr::from(folded), 4242, 5)
    );
    // A VIP differing in any one word is not the VIP.
    let vip = v6("2001:2::100");
    let prog = program(&[], &[vip], 2).unwrap();
    let client = v6("2001:2::77");
    for word in 0..4 {
        let mut near = vip.octets();
        near[4 * word + 3] ^= 1;
        let p = ip6(6, client, near.into(), 40000, 80);
        let want = worker_of_ip(Ipv6Addr::from(near).into(), 80, 2) as u32;
        assert_eq!(
            run(&prog, &p),
            want,
            "word {word}: hashed by its destination"
        );
    }
}

#[test]
fn ipv6_frames_with_extension_headers_ndp_and_short_ones_go_to_worker_0() {
    let vip = v6("2001:2::100");
    let prog = program(&[], &[vip], 4).unwrap();
    // Clients whose own hash is not worker 0.
    let client = (1..100u16)
        .map(|i| (v6(&format!("2001:2::{i:x}")), 40000 + i))
        .find(|&(c, p)| worker_of_ip(c.into(), p, 4) != 0)
        .unwrap();
    let (c, port) = client;
    let req = ip6(6, c, vip, port, 80);
    assert_ne!(run(&prog, &req), 0);
    for (what, next) in [
        ("Hop-by-Hop", 0),
        ("fragment", 44),
        ("routing", 43),
        ("no next", 59),
    ] {
        assert_eq!(run(&prog, &ip6(next, c, vip, port, 80)), 0, "{what}");
    }
    let ns = icmp6(135, c, vip, &[0u8; 24]);
    assert_eq!(run(&prog, &ns), 0, "neighbour solicitation");
    let echo = icmp6(128, c, vip, &[0u8; 8]);
    assert_eq!(run(&prog, &echo), 0, "echo request");
    for n in 0..42 {
        let r = run(&prog, &req[..n]);
        assert_eq!(r, 0, "{n} bytes");
    }
    let about = icmp6(1, v6("2001:2::1"), c, &ip6(6, c, vip, port, 80));
    for n in 48..90 {
        assert_eq!(run(&prog, &about[..n]), 0, "error cut at {n} bytes");
    }
}

#[test]
fn ipv6_vips_share_the_room_of_ipv4_ones() {
    let most6 = MAX_VIPS * V4_COST / V6_COST;
    let v6s: Vec<Ipv6Addr> = (0..most6 as u128 + 1)
        .map(|i| Ipv6Addr::from(0x2001_0002u128 << 96 | i))
        .collect();
    assert!(program(&[], &v6s, 2).is_err());
    let v6s = &v6s[..most6];
    let ok = program(&[], v6s, 2).unwrap();
    assert!(ok.len() <= 4096, "{}", ok.len());
    let v4s: Vec<Ipv4Addr> = (0..MAX_VIPS as u32).map(Ipv4Addr::from).collect();
    let e = program(&v4s, &v6s[..1], 2).unwrap_err().to_string();
    assert!(e.contains(&format!("{MAX_VIPS} IPv4 and 1 IPv6")), "{e}");
    let mixed = program(&v4s[..540], &v6s[..200], 2).unwrap();
    assert!(mixed.len() <= 4096, "{}", mixed.len());
}
