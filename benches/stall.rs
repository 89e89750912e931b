//! Pauses on the per-packet path under a flood, through the in-memory
//! backend: a live connection's packets are timed one by one while
//! millions of one-packet flood entries expire around them, and the
//! connection listing (`-Lnc`) is timed chunk by chunk. Side by side, the
//! old way: one full expiry pass and one whole listing. Also the table's
//! memory per entry. Prints figures; asserts nothing.
//!
//! Run: cargo bench --bench stall            (2,000,000 flood entries)
//!      UVS_BENCH_CONNS=4000000 cargo bench --bench stall

use etherparse::PacketBuilder;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use uvs::control::proto::Op;
use uvs::io::RxMeta;
use uvs::lvs::request::CONN_CHUNK;
use uvs::lvs::service::{Forward, Protocol, Timeouts};
use uvs::lvs::table::NextHop;
use uvs::rig::{CL_MAC, DIR_MAC, Rig, VIP, dest, one_link, service, svc};
use uvs::wire::{Ipv4Packet, MacAddr};

fn rig(max: usize) -> Rig {
    let rs = dest(Ipv4Addr::new(198, 18, 0, 11), 80, Forward::Route, 1);
    let mut ops = service(svc(Protocol::Tcp, 80), "rr", std::slice::from_ref(&rs));
    let mut rs53 = rs;
    rs53.port = 53;
    ops.extend(service(svc(Protocol::Udp, 53), "rr", &[rs53]));
    // Flood entries live 2 s, so they expire while the live flow is timed.
    ops.push(Op::SetTimeouts(Timeouts {
        tcp: 0,
        tcpfin: 0,
        udp: 2,
    }));
    let hop = |_, _| NextHop {
        link: 0,
        mac: MacAddr([2, 0, 0, 0, 1, 11]),
    };
    Rig::build_max(one_link(), hop, Vec::new(), &ops, max)
}

/// The flood's frames are written into one buffer, as a packet socket
/// would deliver them: no allocation per frame here either.
fn udp_template() -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(CL_MAC, DIR_MAC)
        .ipv4([198, 19, 0, 0], VIP, 64)
        .udp(1024, 53)
        .write(&mut v, b"x")
        .unwrap();
    v
}

/// Flood flow `i` in `f` (from the template): its own source address and
/// port, the IP checksum redone, no UDP checksum (0 is allowed).
fn udp_into(f: &mut [u8], i: u32) {
    let src = Ipv4Addr::new(198, 19, (i >> 16) as u8, (i >> 8) as u8);
    let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
    ip.set_src_addr(src);
    ip.fill_checksum();
    f[34..36].copy_from_slice(&(1024 + (i & 0xff) as u16).to_be_bytes());
    f[40..42].copy_from_slice(&[0, 0]);
}

fn flood(r: &mut Rig, n: u32) {
    let mut f = udp_template();
    for i in 0..n {
        udp_into(&mut f, i);
        let meta = RxMeta {
            len: f.len(),
            ..RxMeta::default()
        };
        r.dp.handle_frame(&mut r.io, &mut f, meta);
        if i % 64 == 0 {
            r.io.take_sent();
        }
    }
    r.io.take_sent();
}

fn tcp(syn: bool) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(CL_MAC, DIR_MAC).ipv4([198, 18, 0, 10], VIP, 64);
    let b = match syn {
        true => b.tcp(40000, 80, 1, 64000).syn(),
        false => b.tcp(40000, 80, 2, 64000).ack(1),
    };
    let mut v = Vec::new();
    b.write(&mut v, b"live").unwrap();
    v
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

/// Each of the live flow's packets timed through one turn of the loop
/// (housekeeping included), for `dur`.
fn time_live(r: &mut Rig, live: &[u8], dur: Duration) -> Vec<Duration> {
    let mut lat = Vec::new();
    let t = Instant::now();
    while t.elapsed() < dur {
        r.io.push_with(live.to_vec(), Default::default());
        let p = Instant::now();
        r.poll();
        lat.push(p.elapsed());
        r.io.take_sent();
    }
    lat
}

fn report(what: &str, mut lat: Vec<Duration>, expired: usize) {
    let over_1ms = lat
        .iter()
        .filter(|d| **d > Duration::from_millis(1))
        .count();
    let max = *lat.iter().max().unwrap();
    println!(
        "{what}: {} packets ({expired} entries expired meanwhile), median {:.2} µs, p99.9 \
         {:.1} µs, max {:.0} µs, {over_1ms} over 1 ms",
        lat.len(),
        pct(&mut lat, 0.5).as_secs_f64() * 1e6,
        pct(&mut lat, 0.999).as_secs_f64() * 1e6,
        max.as_secs_f64() * 1e6
    );
}

fn main() {
    // `cargo test --all-targets` runs this too (without --bench): then a
    // small smoke run that only checks the bench still works.
    let (full, n) = uvs::rig::bench_size("UVS_BENCH_CONNS", 2_000_000u32, 20_000);
    let live_for = Duration::from_millis(if full { 4000 } else { 300 });
    if !full {
        println!("(smoke run; figures: cargo bench --bench stall)");
    }
    let rss0 = rss_kib();
    let mut r = rig(n as usize + 16);
    let rss_empty = rss_kib();
    let live_syn = tcp(true);
    let live = tcp(false);
    r.feed(live_syn);
    r.feed(live.clone());

    // The noise floor: the same live flow with an empty table (whatever
    // else the machine does shows up here too).
    let base = time_live(&mut r, &live, live_for / 4);
    report("live flow, empty table (noise floor)", base, 0);

    // The flood: n one-packet UDP flows.
    let t = Instant::now();
    flood(&mut r, n);
    let fill = t.elapsed();
    let rss_full = rss_kib();
    let conns = r.dp.conn_count();
    println!(
        "flood: {conns} entries in {:.2} s ({:.2} M inserts/s); RSS {} MiB at start, {} MiB \
         with an empty table, {} MiB full: {:.0} bytes per entry",
        fill.as_secs_f64(),
        f64::from(n) / fill.as_secs_f64() / 1e6,
        rss0 / 1024,
        rss_empty / 1024,
        rss_full / 1024,
        (rss_full.saturating_sub(rss_empty) * 1024) as f64 / conns as f64
    );

    // The listing, chunk by chunk (what the daemon now does), and whole.
    let t = Instant::now();
    let (mut times, mut listed, mut from) = (Vec::new(), 0, Some(0));
    while let Some(f) = from {
        let c = Instant::now();
        let (part, next) = r.dp.conn_chunk(f, CONN_CHUNK);
        times.push(c.elapsed());
        listed += part.len();
        from = next;
    }
    let chunks = times.len();
    let worst = *times.iter().max().unwrap();
    println!(
        "-Lnc in chunks of {CONN_CHUNK}: {listed} entries in {chunks} chunks, {:.0} ms in all, \
         longest chunk {:.2} ms (the data plane forwards between chunks)",
        t.elapsed().as_secs_f64() * 1e3,
        worst.as_secs_f64() * 1e3
    );
    let t = Instant::now();
    let whole = r.dp.conn_list();
    let one_shot = t.elapsed();
    let rss_list = rss_kib();
    println!(
        "-Lnc in one piece (before): {} entries, the data plane stopped {:.0} ms, +{} MiB held",
        whole.len(),
        one_shot.as_secs_f64() * 1e3,
        rss_list.saturating_sub(rss_full) / 1024
    );
    drop(whole);

    // The live connection while the flood expires (2 s UDP timeout):
    // each packet's time through poll, housekeeping included.
    let lat = time_live(&mut r, &live, live_for);
    let expired = conns - r.dp.conn_count();
    report("live flow while the flood expires", lat, expired);

    // The old expiry: one full pass over a full table, once a second.
    let mut r = rig(n as usize + 16);
    flood(&mut r, n);
    let t = Instant::now();
    r.dp.expire(0);
    let visit = t.elapsed();
    let before = r.dp.conn_count();
    let t = Instant::now();
    r.dp.expire(u64::MAX);
    let remove = t.elapsed();
    println!(
        "the old expiry, one full pass over {before} entries (forwarding stopped meanwhile): \
         {:.0} ms with nothing due, {:.0} ms when the flood expires",
        visit.as_secs_f64() * 1e3,
        remove.as_secs_f64() * 1e3
    );
}
