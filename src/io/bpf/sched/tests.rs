//! The tables the programs schedule with, checked against what the C
//! program computes from them (its slot hashes, transcribed here from
//! uvs.bpf.c) and what uvs's own schedulers choose for the same flows.

use super::*;
use crate::lvs::sched::scheduler::fold;
use crate::lvs::service::{Persistence, SchedFlags, ServiceKey};
use crate::lvs::table::{DestEntry, ServiceEntry};
use crate::wire::MacAddr;
use std::net::{Ipv4Addr, Ipv6Addr};

const MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x100);

/// Real server `n` (id 100 + n) at `addr`, weight `w`, DR on link 0 with
/// a resolved MAC.
fn rs(n: u8, addr: IpAddr, w: u32) -> DestEntry {
    DestEntry {
        id: 100 + u64::from(n),
        addr,
        port: 80,
        forward: Forward::Route,
        weight: w,
        listed_weight: w,
        last_weight: w,
        mac: MacAddr([2, 0, 0, 0, 1, n]),
        link: 0,
        state: Default::default(),
    }
}

/// IPv4 real server `n`: 198.18.0.n.
fn rs4(n: u8, w: u32) -> DestEntry {
    rs(n, Ipv4Addr::new(198, 18, 0, n).into(), w)
}

/// IPv6 real server `n`: 2001:2::n.
fn rs6(n: u8, w: u32) -> DestEntry {
    rs(
        n,
        Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, n.into()).into(),
        w,
    )
}

/// Quiesced (weight 0 as a check's quiesce sets it; mh keeps its slots).
fn quiesced(mut d: DestEntry) -> DestEntry {
    (d.weight, d.listed_weight) = (0, 0);
    d
}

/// Its next hop not resolved yet: never scheduled, its listed weight kept.
fn unresolved(mut d: DestEntry) -> DestEntry {
    (d.weight, d.mac) = (0, MacAddr::ZERO);
    d
}

fn svc(key: ServiceKey, kind: SchedulerKind, dests: Vec<DestEntry>) -> ServiceEntry {
    ServiceEntry {
        id: 1,
        key,
        scheduler: kind,
        flags: SchedFlags::default(),
        ops: false,
        persistence: None,
        epoch: 0,
        log: Default::default(),
        dests,
        stats: Default::default(),
    }
}

fn tcp4(kind: SchedulerKind, dests: Vec<DestEntry>) -> ServiceEntry {
    svc(ServiceKey::addr(Protocol::Tcp, VIP, 80), kind, dests)
}

fn table(services: Vec<ServiceEntry>) -> Table {
    Table::new(1, services, Default::default())
}

/// uvs.bpf.c's mh_hash, transcribed.
fn c_mh_hash(addr: u32, port: u16) -> u32 {
    let mut z = ((u64::from(addr) << 32) | (u64::from(port) << 16)) ^ 2_654_435_761;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z ^ (z >> 32)) as u32
}

/// The real server id the program sends a new flow of service `key` from
/// `caddr`:`cport` to (uvs.bpf.c's slot_of, then `slots` and `reals`),
/// or `None` where the frame goes up to uvs.
fn program_pick(k: &KernelTable, key: &SvcKey, caddr: IpAddr, cport: u16) -> Option<u64> {
    let s = k.services.get(key)?;
    let caddr = fold(caddr);
    let port = if s.port != 0 { cport } else { 0 };
    let slot = match s.kind {
        SCHED_SH => {
            (caddr
                .wrapping_add(u32::from(port))
                .wrapping_mul(0x61C8_8647)
                >> 24)
                % s.count
        }
        SCHED_MH => c_mh_hash(caddr, port) % s.count,
        other => panic!("not a hashing kind: {other}"),
    };
    let r = k.slots[(s.first + slot) as usize];
    (r != NO_REAL).then(|| k.reals[r as usize].id)
}

/// The real server id uvs's own scheduler (fresh) gives the same flow.
fn uvs_pick(t: &Table, si: usize, caddr: IpAddr, cport: u16) -> Option<u64> {
    let s = &t.services[si];
    let mut st = SchedState::new(s.scheduler, &Member::of(&s.dests));
    let key = SchedKey::new(caddr, cport, s.key.addr);
    let i = st.schedule(&t.pool(si).unwrap(), &key)?;
    Some(s.dests[i].id)
}

/// `n` client addresses and ports of either family (xorshift).
fn clients(n: usize, v6: bool) -> Vec<(IpAddr, u16)> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let a: IpAddr = match v6 {
                false => Ipv4Addr::from(x as u32).into(),
                true => Ipv6Addr::from(u128::from(x) << 64 | u128::from(x.rotate_left(17))).into(),
            };
            (a, (x >> 40) as u16)
        })
        .collect()
}

/// The service's key in `k`, checked present.
fn key_in(k: &KernelTable, s: &ServiceEntry) -> SvcKey {
    let key = key_of(s.key.addr, s.key.port, s.key.protocol);
    assert!(k.services.contains_key(&key), "{:?} scheduled", s.key);
    key
}

/// For every client: the program's server is uvs's, where uvs's is one
/// the program can send to (`usable`), and none otherwise.
fn same_choices(t: &Table, usable: impl Fn(u64) -> bool) {
    let k = KernelTable::of(t, 0, MAC);
    for (si, s) in t.services.iter().enumerate() {
        let key = key_in(&k, s);
        let v6 = s.key.addr.is_ipv6();
        let mut went = BTreeMap::<Option<u64>, usize>::new();
        for (caddr, cport) in clients(4000, v6) {
            let want = uvs_pick(t, si, caddr, cport).filter(|id| usable(*id));
            let got = program_pick(&k, &key, caddr, cport);
            assert_eq!(got, want, "{:?}: {caddr}:{cport}", s.key);
            *went.entry(got).or_default() += 1;
        }
        // Every server with a weight gets some of the clients.
        for d in s.dests.iter().filter(|d| d.weight > 0 && usable(d.id)) {
            assert!(went.contains_key(&Some(d.id)), "{:?}: {went:?}", s.key);
        }
    }
}

#[test]
fn sh_sends_each_client_where_uvs_would_quiesced_servers_and_sh_port_included() {
    let dests = || vec![rs4(11, 1), rs4(12, 3), quiesced(rs4(13, 2)), rs4(14, 2)];
    let mut port = tcp4(SchedulerKind::Sh, dests());
    port.key.port = 81;
    port.flags = SchedFlags(SchedFlags::PORT);
    let six = vec![rs6(11, 2), quiesced(rs6(12, 1)), rs6(13, 1)];
    let t = table(vec![
        tcp4(SchedulerKind::Sh, dests()),
        port,
        svc(
            ServiceKey::addr(Protocol::Udp, VIP6, 53),
            SchedulerKind::Sh,
            six,
        ),
    ]);
    same_choices(&t, |_| true);
    let k = KernelTable::of(&t, 0, MAC);
    let sh = &k.services[&key_of(VIP.into(), 81, Protocol::Tcp)];
    assert_eq!((sh.kind, sh.count, sh.port), (SCHED_SH, 256, 1));
    // The quiesced server's buckets passed on to others: in the IPv4
    // services' 512 buckets, it has none.
    assert!(
        k.slots[..512]
            .iter()
            .all(|s| k.reals[*s as usize].id != 113)
    );
}

#[test]
fn sh_leaves_the_clients_of_a_server_it_cannot_send_to_with_uvs() {
    let mut nat = rs4(12, 1);
    nat.forward = Forward::Masq;
    let t = table(vec![tcp4(SchedulerKind::Sh, vec![rs4(11, 1), nat])]);
    same_choices(&t, |id| id != 112);
}

#[test]
fn mh_slots_are_uvs_choices_and_a_quiesced_servers_slots_go_up() {
    let mut port = tcp4(SchedulerKind::Mh, vec![rs4(11, 1), rs4(12, 2), rs4(13, 1)]);
    port.key.port = 81;
    port.flags = SchedFlags(SchedFlags::PORT);
    let quiet = tcp4(
        SchedulerKind::Mh,
        vec![rs4(11, 1), quiesced(rs4(12, 2)), rs4(13, 1)],
    );
    let six = vec![rs6(11, 1), rs6(12, 1)];
    let t = table(vec![
        quiet,
        port,
        svc(
            ServiceKey::addr(Protocol::Tcp, VIP6, 443),
            SchedulerKind::Mh,
            six,
        ),
    ]);
    // Where uvs (without mh-fallback) has no destination, neither has the
    // program: a quiesced server's clients come up.
    same_choices(&t, |_| true);
    let k = KernelTable::of(&t, 0, MAC);
    let s = &k.services[&key_of(VIP.into(), 80, Protocol::Tcp)];
    assert_eq!((s.kind, s.count, s.port), (SCHED_MH, 4093, 0));
    let slots = &k.slots[s.first as usize..][..s.count as usize];
    let (up, theirs): (Vec<u32>, Vec<u32>) = slots.iter().partition(|s| **s == NO_REAL);
    // The quiesced server kept its share of the lookup table (about
    // half), and those slots hold no server.
    assert!(up.len() > 1500 && up.len() < 2600, "{}", up.len());
    assert!(theirs.iter().all(|s| k.reals[*s as usize].id != 112));
    // With mh-fallback uvs passes them on; the program still sends them up.
    let mut fb = t.services[0].clone();
    fb.flags = SchedFlags(SchedFlags::FALLBACK);
    let k2 = KernelTable::of(&table(vec![fb]), 0, MAC);
    assert_eq!(k2.slots, slots);
}

/// The servers ids the program walks for service `s` (its sequence, from
/// position 0 as each CPU starts).
fn sequence(k: &KernelTable, s: &ServiceEntry) -> Vec<u64> {
    let v = &k.services[&key_in(k, s)];
    assert_eq!(v.kind, SCHED_SEQ);
    k.slots[v.first as usize..][..v.count as usize]
        .iter()
        .map(|r| k.reals[*r as usize].id)
        .collect()
}

/// `n` picks of uvs's own scheduler for service `si`, from a fresh state.
fn uvs_sequence(t: &Table, si: usize, n: usize) -> Vec<u64> {
    let s = &t.services[si];
    let mut st = SchedState::new(s.scheduler, &Member::of(&s.dests));
    let pool = t.pool(si).unwrap();
    let key = SchedKey::new(Ipv4Addr::UNSPECIFIED.into(), 0, s.key.addr);
    (0..n)
        .map(|_| s.dests[st.schedule(&pool, &key).unwrap()].id)
        .collect()
}

/// How many times each id is in `seq`.
fn counts(seq: &[u64]) -> BTreeMap<u64, usize> {
    let mut m = BTreeMap::new();
    for id in seq {
        *m.entry(*id).or_default() += 1;
    }
    m
}

#[test]
fn rr_and_wrr_sequences_are_one_turn_of_uvs_own_order_in_exact_proportions() {
    let cases = [
        (
            SchedulerKind::Rr,
            vec![rs4(11, 1), rs4(12, 5), quiesced(rs4(13, 1)), rs4(14, 2)],
            vec![(111, 1), (112, 1), (114, 1)],
        ),
        (
            SchedulerKind::Wrr,
            vec![rs4(11, 2), rs4(12, 6), quiesced(rs4(13, 4)), rs4(14, 4)],
            vec![(111, 1), (112, 3), (114, 2)],
        ),
        (
            SchedulerKind::Wrr,
            vec![rs4(11, 5), rs4(12, 3), rs4(13, 1)],
            vec![(111, 5), (112, 3), (113, 1)],
        ),
        // A server whose MAC is not resolved yet keeps its listed weight
        // in wrr's marks (gcd 1 here, not 3): the turn is uvs's whole
        // cycle, not the first third of it.
        (
            SchedulerKind::Wrr,
            vec![rs4(11, 3), rs4(12, 6), unresolved(rs4(13, 1))],
            vec![(111, 3), (112, 6)],
        ),
    ];
    for (kind, dests, want) in cases {
        let t = table(vec![tcp4(kind, dests)]);
        let k = KernelTable::of(&t, 0, MAC);
        let seq = sequence(&k, &t.services[0]);
        assert_eq!(counts(&seq), want.into_iter().collect(), "{kind:?} {seq:?}");
        assert_eq!(seq, uvs_sequence(&t, 0, seq.len()), "{kind:?}");
        // The next turn of uvs's scheduler is the same again: the
        // program's walk repeats uvs's order.
        assert_eq!(
            uvs_sequence(&t, 0, 2 * seq.len())[seq.len()..],
            seq[..],
            "{kind:?}"
        );
    }
}

#[test]
fn a_turn_longer_than_the_longest_sequence_stays_with_uvs() {
    let long = table(vec![tcp4(
        SchedulerKind::Wrr,
        vec![rs4(11, 4096), rs4(12, 1)],
    )]);
    assert!(KernelTable::of(&long, 0, MAC).services.is_empty());
    let just = table(vec![tcp4(
        SchedulerKind::Wrr,
        vec![rs4(11, 4095), rs4(12, 1)],
    )]);
    let k = KernelTable::of(&just, 0, MAC);
    assert_eq!(sequence(&k, &just.services[0]).len(), MAX_SEQ);
    // No server with a weight: nothing to walk.
    let none = table(vec![tcp4(SchedulerKind::Rr, vec![quiesced(rs4(11, 1))])]);
    assert!(KernelTable::of(&none, 0, MAC).services.is_empty());
}

#[test]
fn persistent_one_packet_mark_and_count_reading_services_stay_with_uvs() {
    let one = || vec![rs4(11, 1)];
    let mut persistent = tcp4(SchedulerKind::Rr, one());
    persistent.persistence = Some(Persistence::new(300));
    let mut ops = svc(
        ServiceKey::addr(Protocol::Udp, VIP, 53),
        SchedulerKind::Rr,
        one(),
    );
    ops.ops = true;
    let mark = svc(ServiceKey::mark(1), SchedulerKind::Rr, one());
    let mut t = vec![persistent, ops, mark];
    for kind in [
        SchedulerKind::Lc,
        SchedulerKind::Wlc,
        SchedulerKind::Sed,
        SchedulerKind::Nq,
        SchedulerKind::Ovf,
    ] {
        let mut s = tcp4(kind, one());
        s.key.port = 1000 + t.len() as u16;
        t.push(s);
    }
    let k = KernelTable::of(&table(t), 0, MAC);
    assert_eq!(k, KernelTable::default());
}

#[test]
fn only_dr_servers_on_this_link_with_a_mac_of_the_services_family_are_sent_to() {
    let mut nat = rs4(12, 1);
    nat.forward = Forward::Masq;
    let mut tun = rs4(13, 1);
    tun.forward = Forward::Tunnel;
    let mut other_link = rs4(14, 1);
    other_link.link = 1;
    // Not something the model publishes (an unresolved server has weight
    // 0), but the MAC alone keeps it out.
    let mut no_mac = rs4(15, 1);
    no_mac.mac = MacAddr::ZERO;
    let v6_of_v4 = rs6(16, 1);
    let four = tcp4(
        SchedulerKind::Rr,
        vec![rs4(11, 1), nat, tun, other_link, no_mac, v6_of_v4],
    );
    let six = svc(
        ServiceKey::addr(Protocol::Tcp, VIP6, 80),
        SchedulerKind::Rr,
        vec![rs6(21, 1), rs4(22, 1)],
    );
    let t = table(vec![four, six]);
    let k = KernelTable::of(&t, 0, MAC);
    let ids = |s: &ServiceEntry| {
        let v = &k.services[&key_in(&k, s)];
        k.slots[v.first as usize..][..v.count as usize]
            .iter()
            .map(|r| (*r != NO_REAL).then(|| k.reals[*r as usize].id))
            .collect::<Vec<_>>()
    };
    // Each server once (rr), newest first; those the program cannot send
    // to are slots that go up.
    let mut none = vec![None; 5];
    none.insert(0, Some(111));
    assert_eq!(ids(&t.services[0]), none);
    assert_eq!(ids(&t.services[1]), vec![Some(121), None]);
    // The real server entries: its MAC, this link's MAC, uvs's id.
    let r = k.reals[k.slots[0] as usize];
    assert_eq!((r.dmac, r.smac, r.id), ([2, 0, 0, 0, 1, 11], MAC, 111));
    // On link 1, only the server there.
    let k1 = KernelTable::of(&t, 1, [2, 0, 0, 0, 0, 3]);
    let v = &k1.services[&key_of(VIP.into(), 80, Protocol::Tcp)];
    let on1: Vec<u64> = k1.slots[v.first as usize..][..v.count as usize]
        .iter()
        .filter(|r| **r != NO_REAL)
        .map(|r| k1.reals[*r as usize].id)
        .collect();
    assert_eq!(on1, vec![114]);
}

/// With a tunnel source, an IPv4 service's IPv4 TUN servers are sent to
/// (the tc program wraps their frames): their entries carry the outer
/// header's ends. A TUN server of the other family, and an IPv6
/// service's, stay with uvs; without a tunnel source all do (above).
#[test]
fn ipv4_tun_servers_carry_the_outer_headers_ends_when_there_is_a_tunnel_source() {
    let tun = |mut d: DestEntry| {
        d.forward = Forward::Tunnel;
        d
    };
    let four = tcp4(SchedulerKind::Rr, vec![tun(rs4(11, 1)), tun(rs6(12, 1))]);
    let six = svc(
        ServiceKey::addr(Protocol::Tcp, VIP6, 80),
        SchedulerKind::Rr,
        vec![tun(rs6(21, 1))],
    );
    let src = Ipv4Addr::new(198, 18, 0, 2);
    let t = Table::with_tun_source(1, vec![four, six], Default::default(), src);
    let k = KernelTable::of(&t, 0, MAC);
    let reals = |s: &ServiceEntry| {
        let v = &k.services[&key_in(&k, s)];
        k.slots[v.first as usize..][..v.count as usize]
            .iter()
            .map(|r| (*r != NO_REAL).then(|| k.reals[*r as usize]))
            .collect::<Vec<_>>()
    };
    let four = reals(&t.services[0]);
    assert_eq!(four.len(), 2);
    assert!(four.contains(&None));
    let r = four.iter().flatten().next().copied().unwrap();
    assert_eq!(
        (r.id, r.dmac, r.tun_saddr, r.tun_daddr),
        (111, [2, 0, 0, 0, 1, 11], src.octets(), [198, 18, 0, 11])
    );
    assert_eq!(reals(&t.services[1]), vec![None]);
}

#[test]
fn services_are_keyed_as_the_c_struct_and_laid_out_one_after_another() {
    assert_eq!(
        key_of(VIP.into(), 80, Protocol::Tcp),
        SvcKey {
            addr: [198, 18, 0, 100, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            port: [0, 80],
            proto: 6,
            family: 4,
        }
    );
    assert_eq!(
        key_of(VIP6.into(), 0x1234, Protocol::Udp),
        SvcKey {
            addr: [0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0],
            port: [0x12, 0x34],
            proto: 17,
            family: 6,
        }
    );
    let mut lc = tcp4(SchedulerKind::Lc, vec![rs4(11, 1)]);
    lc.key.port = 81;
    let t = table(vec![
        tcp4(SchedulerKind::Wrr, vec![rs4(11, 1), rs4(12, 2)]),
        lc,
        svc(
            ServiceKey::addr(Protocol::Udp, VIP6, 53),
            SchedulerKind::Sh,
            vec![rs6(11, 1)],
        ),
    ]);
    let k = KernelTable::of(&t, 0, MAC);
    let wrr = k.services[&key_of(VIP.into(), 80, Protocol::Tcp)];
    let sh = k.services[&key_of(VIP6.into(), 53, Protocol::Udp)];
    // `index`: the service's place in the table (its seq_pos entry).
    assert_eq!((wrr.index, wrr.first, wrr.count), (0, 0, 3));
    assert_eq!((sh.index, sh.first, sh.count), (2, 3, 256));
    // A new flow comes up four times per timeout: SYN_RECV's 60 s, UDP's
    // 300 s (at most once a minute).
    assert_eq!(wrr.every_ns, 15_000_000_000);
    assert_eq!(sh.every_ns, 60_000_000_000);
    // Slots name reals of their own service.
    assert_eq!(k.reals.len(), 3);
    assert!(k.slots[3..].iter().all(|s| *s == 2));
}
