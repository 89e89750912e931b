//! Data-plane cost per frame, measured through the in-memory backend (no
//! syscalls): what the forwarding logic itself costs, for new connections,
//! established ones and GSO super-frames. Prints figures; asserts nothing.
//! Run: cargo bench --bench forward

use etherparse::{Ethernet2Header, IpHeaders, PacketBuilder, PacketBuilderStep};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Instant;
use uvs::io::memory::ReplayIo;
use uvs::io::{Gso, RxMeta};
use uvs::lvs::service::{Forward, Protocol, ServiceKey};
use uvs::lvs::table::NextHop;
use uvs::rig::{Rig, VIP6, dest, one_link, service, svc};
use uvs::wire::MacAddr;

/// One service on VIP:80 with one real server, forwarded by `fwd`.
fn rig(fwd: Forward) -> Rig {
    let d = dest(Ipv4Addr::new(198, 18, 0, 11), 80, fwd, 1);
    rig_of(&service(svc(Protocol::Tcp, 80), "wrr", &[d]))
}

/// The same on `[VIP6]:80` with real server 2001:2::11.
fn rig6(fwd: Forward) -> Rig {
    let d = dest(RS6, 80, fwd, 1);
    let key = ServiceKey::addr(Protocol::Tcp, VIP6, 80);
    rig_of(&service(key, "wrr", &[d]))
}

const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x10);
const RS6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x11);

fn rig_of(ops: &[uvs::control::proto::Op]) -> Rig {
    let hop = |_, _| NextHop {
        link: 0,
        mac: MacAddr([2, 0, 0, 0, 1, 1]),
    };
    Rig::build(one_link(), hop, Vec::new(), ops)
}

/// The client's frames start alike: its MAC to the director's.
fn from_client() -> PacketBuilderStep<Ethernet2Header> {
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 10], [2, 0, 0, 0, 0, 2])
}

/// A client's TCP segment to the VIP's port 80 over `ip` (a SYN, or
/// `payload` bytes on an established connection).
fn tcp(ip: PacketBuilderStep<IpHeaders>, sport: u16, syn: bool, payload: usize) -> Vec<u8> {
    let b = if syn {
        ip.tcp(sport, 80, 1, 1000).syn()
    } else {
        ip.tcp(sport, 80, 2, 1000).ack(1)
    };
    let mut v = Vec::new();
    b.write(&mut v, &vec![0x5a; payload]).unwrap();
    v
}

fn frame(sport: u16, syn: bool, payload: usize) -> Vec<u8> {
    let ip = from_client().ipv4([198, 18, 0, 10], [198, 18, 0, 100], 64);
    tcp(ip, sport, syn, payload)
}

/// The same to `[VIP6]:80`.
fn frame6(sport: u16, syn: bool, payload: usize) -> Vec<u8> {
    let ip = from_client().ipv6(CLIENT6.octets(), VIP6.octets(), 64);
    tcp(ip, sport, syn, payload)
}

/// `n` connections from ports 10000 on: each one's SYN, then a segment
/// of `payload` bytes on each, received with `meta`.
fn established(n: u16, payload: usize, meta: RxMeta) -> Vec<(Vec<u8>, RxMeta)> {
    let mut m: Vec<_> = (0..n)
        .map(|p| (frame(10000 + p, true, 0), RxMeta::default()))
        .collect();
    m.extend((0..n).map(|p| (frame(10000 + p, false, payload), meta)));
    m
}

/// A NAT real server's reply to client port `dport`.
fn reply(dport: u16, payload: usize) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 1, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([198, 18, 0, 11], [198, 18, 0, 10], 64)
        .tcp(80, dport, 5, 1000)
        .ack(2)
        .write(&mut v, &vec![0x5a; payload])
        .unwrap();
    v
}

fn run(name: &str, frames: Vec<(Vec<u8>, RxMeta)>, n: usize, warm: usize) {
    run_with(Forward::Route, name, frames, n, warm)
}

fn run_with(fwd: Forward, name: &str, frames: Vec<(Vec<u8>, RxMeta)>, n: usize, warm: usize) {
    run_on(rig(fwd), name, frames, n, warm)
}

fn run_on(r: Rig, name: &str, frames: Vec<(Vec<u8>, RxMeta)>, n: usize, warm: usize) {
    let mut r = r.with_io(ReplayIo::new(frames));
    let bytes = r.io.mean_len();
    for _ in 0..warm {
        r.poll();
    }
    r.io.sent = 0;
    let t = Instant::now();
    for _ in 0..n {
        r.poll();
    }
    let el = t.elapsed().as_secs_f64();
    println!(
        "{name:<34} {:>8.0} ns/frame {:>7.2} Mframes/s {:>7.2} Gbit/s  ({} frames out per frame in)",
        el * 1e9 / n as f64,
        n as f64 / el / 1e6,
        (n * bytes * 8) as f64 / el / 1e9,
        r.io.sent as f64 / n as f64,
    );
}

fn main() {
    println!(
        "uvs data plane, in-memory backend (logic only, no syscalls); {} CPUs",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let est: Vec<_> = (0..10_000u16)
        .map(|p| (frame(10000 + p, false, 10), RxMeta::default()))
        .collect();
    let syns: Vec<_> = (0..10_000u16)
        .map(|p| (frame(10000 + p, true, 0), RxMeta::default()))
        .collect();
    // Warm with SYNs so the established frames find their connections.
    let mut mixed = syns.clone();
    mixed.extend(est.clone());
    run(
        "established TCP, 64-byte frames",
        mixed.clone(),
        1_000_000,
        0,
    );
    run("new connections (SYN)", syns, 200_000, 0);
    let m2 = established(10_000, 1448, RxMeta::default());
    run("established TCP, 1514-byte frames", m2, 500_000, 0);
    let partial = RxMeta {
        csum_partial: Some((34, 16)),
        ..RxMeta::default()
    };
    let m3 = established(1000, 1448, partial);
    run("1514-byte, checksum completion", m3, 500_000, 0);
    let gso = RxMeta {
        gso: Some(Gso {
            tcpv4: true,
            tcpv6: false,
            size: 1448,
        }),
        csum_partial: Some((34, 16)),
        ..RxMeta::default()
    };
    let m4 = established(100, 62_000, gso);
    run("64 KB GSO super-frame, segmented", m4, 40_000, 0);
    // NAT: the same established flows translated on the way in, and the
    // real server's replies (from 198.18.0.11:80) translated back.
    run_with(
        Forward::Masq,
        "NAT established TCP, 64-byte frames",
        mixed,
        1_000_000,
        0,
    );
    let mut m5: Vec<_> = (0..10_000u16)
        .map(|p| (frame(10000 + p, true, 0), RxMeta::default()))
        .collect();
    m5.extend((0..10_000u16).map(|p| (reply(10000 + p, 1448), RxMeta::default())));
    run_with(
        Forward::Masq,
        "NAT replies, 1514-byte frames",
        m5,
        500_000,
        0,
    );
    // IPv6: the same flows to [VIP6]:80, by DR and by NAT66.
    let syns6: Vec<_> = (0..10_000u16)
        .map(|p| (frame6(10000 + p, true, 0), RxMeta::default()))
        .collect();
    let mut mixed6 = syns6.clone();
    mixed6.extend((0..10_000u16).map(|p| (frame6(10000 + p, false, 10), RxMeta::default())));
    let name = "IPv6 established TCP, 84-byte frames";
    run_on(rig6(Forward::Route), name, mixed6.clone(), 1_000_000, 0);
    run_on(
        rig6(Forward::Route),
        "IPv6 new connections (SYN)",
        syns6,
        200_000,
        0,
    );
    let name = "NAT66 established TCP, 84-byte frames";
    run_on(rig6(Forward::Masq), name, mixed6, 1_000_000, 0);
    println!(
        "connection entry: {} bytes of key+value (hash table adds ~1 byte of control per slot)",
        std::mem::size_of::<(uvs::lvs::conn::ConnKey, uvs::dataplane::conn::Conn)>()
    );
    use uvs::dataplane::conn_table::ConnTable;
    println!(
        "connection table slot with its links: {} bytes (IPv4), {} bytes (IPv6)",
        ConnTable::<Ipv4Addr>::SLOT_BYTES,
        ConnTable::<std::net::Ipv6Addr>::SLOT_BYTES
    );
}
