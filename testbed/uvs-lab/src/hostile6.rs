//! `hostile6`: a flood of malformed and hostile IPv6 frames at a director,
//! sent from a packet socket so that nothing in this host's stack cleans
//! them up first: extension-header chains that are too long, truncated or
//! out of order, payload lengths that lie, truncated and garbage TCP, UDP,
//! ICMPv6 errors quoting garbage, neighbour discovery with bad options,
//! fragments, and random bytes after a valid header. Every frame is
//! addressed to one MAC and one destination address (the VIP); the end-to-end
//! test checks that the director survives and its live connections with it.

use serde_json::json;
use std::net::Ipv6Addr;

const ETH_P_IPV6: u16 = 0x86dd;
const DEST_OPTS: u8 = 60;
const HOP_BY_HOP: u8 = 0;
const FRAGMENT: u8 = 44;
const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMPV6: u8 = 58;

/// Where the frames go and where they say they come from.
pub struct Target {
    pub interface: String,
    pub dst_mac: [u8; 6],
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
}

/// A small deterministic generator (xorshift64), so a failing run can be
/// repeated with the same frames.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// One's-complement sum of 16-bit words.
fn sum(data: &[u8], mut acc: u32) -> u32 {
    for c in data.chunks(2) {
        let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
        acc += u32::from(w);
    }
    acc
}

/// The checksum of an upper-layer packet over the IPv6 pseudo-header.
fn checksum6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, body: &[u8]) -> u16 {
    let mut acc = sum(&src.octets(), 0);
    acc = sum(&dst.octets(), acc);
    acc += body.len() as u32 + u32::from(next);
    acc = sum(body, acc);
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

fn tcp_header(sport: u16, dport: u16, doff_words: u8, flags: u8) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[12] = doff_words << 4;
    t[13] = flags;
    t[14] = 0xff;
    t
}

/// An extension header of 8 bytes (`next`, length 0, PadN).
fn ext8(next: u8) -> Vec<u8> {
    vec![next, 0, 1, 4, 0, 0, 0, 0]
}

fn fragment(next: u8, offset_units: u16, more: bool, id: u32) -> Vec<u8> {
    let mut f = vec![next, 0];
    f.extend_from_slice(&((offset_units << 3) | u16::from(more)).to_be_bytes());
    f.extend_from_slice(&id.to_be_bytes());
    f
}

/// An ICMPv6 message with its checksum filled in.
fn icmpv6(t: &Target, from: Ipv6Addr, kind: u8, code: u8, rest: &[u8]) -> Vec<u8> {
    let mut m = vec![kind, code, 0, 0];
    m.extend_from_slice(rest);
    let c = checksum6(from, t.dst, ICMPV6, &m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// A whole frame: Ethernet, an IPv6 header whose payload length is the
/// body's unless `payload_len` says otherwise, then the body.
fn frame(t: &Target, src_mac: [u8; 6], h: Header, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(54 + body.len());
    f.extend_from_slice(&t.dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
    f.push(h.version << 4);
    f.extend_from_slice(&[0, 0, 0]);
    let len = h.payload_len.unwrap_or(body.len() as u16);
    f.extend_from_slice(&len.to_be_bytes());
    f.push(h.next);
    f.push(h.hop);
    f.extend_from_slice(&h.src.octets());
    f.extend_from_slice(&t.dst.octets());
    f.extend_from_slice(body);
    f
}

#[derive(Clone, Copy)]
struct Header {
    version: u8,
    next: u8,
    hop: u8,
    payload_len: Option<u16>,
    src: Ipv6Addr,
}

/// The catalogue: every kind of hostile frame, built afresh for round `r`
/// (ports and random bytes change from round to round).
fn catalogue(t: &Target, src_mac: [u8; 6], r: u32, rng: &mut Rng) -> Vec<(&'static str, Vec<u8>)> {
    let h = Header {
        version: 6,
        next: TCP,
        hop: 64,
        payload_len: None,
        src: t.src,
    };
    let sport = 20000 + (r % 20000) as u16;
    let syn = tcp_header(sport, 80, 5, 0x02);
    let mut out = Vec::new();
    let mut add = |name, h: Header, body: Vec<u8>| out.push((name, frame(t, src_mac, h, &body)));
    // The base header, but for the first next header or the length.
    let next_is = |next| Header { next, ..h };
    let len_says = |n| Header {
        payload_len: Some(n),
        ..h
    };

    // Thirteen destination-options headers: one more than Linux follows.
    let mut long = Vec::new();
    for _ in 0..12 {
        long.extend(ext8(DEST_OPTS));
    }
    long.extend(ext8(TCP));
    long.extend(&syn);
    add("chain_too_long", next_is(DEST_OPTS), long);
    // A header that says it is 1,608 bytes long in a frame of 8.
    add(
        "chain_truncated",
        next_is(DEST_OPTS),
        vec![TCP, 200, 1, 4, 0, 0, 0, 0],
    );
    // Hop-by-Hop after another header.
    let mut late = ext8(HOP_BY_HOP);
    late.extend(ext8(TCP));
    late.extend(&syn);
    add("hop_by_hop_late", next_is(DEST_OPTS), late);
    // Two fragment headers.
    let mut two = fragment(FRAGMENT, 0, false, r);
    two.extend(fragment(TCP, 0, false, r));
    two.extend(&syn);
    add("two_fragment_headers", next_is(FRAGMENT), two);
    // A chain that ends in "no next header" at once.
    add("no_next_header", next_is(59), rng.bytes(16));
    // Payload lengths that lie both ways.
    add("payload_len_long", len_says(1400), syn.clone());
    add("payload_len_short", len_says(4), syn.clone());
    add("payload_len_zero_jumbo", len_says(0), syn.clone());
    // A header cut short, and another version in an IPv6 frame.
    let mut short = frame(t, src_mac, h, &syn);
    short.truncate(14 + 22);
    out.push(("header_truncated", short));
    out.push(("ethertype_only", frame(t, src_mac, h, &[])[..14].to_vec()));
    let mut add = |name, h: Header, body: Vec<u8>| out.push((name, frame(t, src_mac, h, &body)));
    // The base header, but for the first next header.
    let next_is = |next| Header { next, ..h };
    add("version_4", Header { version: 4, ..h }, syn.clone());
    // TCP whose data offset points past the packet or inside the header.
    add("tcp_doff_past_end", h, tcp_header(sport, 80, 15, 0x02));
    add("tcp_doff_too_small", h, tcp_header(sport, 80, 2, 0x02));
    add("tcp_cut", h, syn[..9].to_vec());
    // UDP whose length field lies.
    let mut udp = vec![0u8; 8];
    udp[0..2].copy_from_slice(&sport.to_be_bytes());
    udp[2..4].copy_from_slice(&53u16.to_be_bytes());
    udp[4..6].copy_from_slice(&0xffffu16.to_be_bytes());
    add("udp_len_lies", next_is(UDP), udp);
    add("udp_cut", next_is(UDP), vec![0x4e, 0x20, 0]);
    // Fragments: not first, and a first with more to come.
    let mut frag = fragment(TCP, 8, true, r);
    frag.extend(rng.bytes(24));
    add("fragment_later", next_is(FRAGMENT), frag);
    let mut first = fragment(TCP, 0, true, r);
    first.extend(&syn);
    add("fragment_first", next_is(FRAGMENT), first);
    // ICMPv6 errors quoting garbage, a cut header, or nothing.
    let mut ptb = 1280u32.to_be_bytes().to_vec();
    ptb.extend(rng.bytes(30));
    let m = icmpv6(t, t.src, 2, 0, &ptb);
    add("icmpv6_ptb_garbage", next_is(ICMPV6), m);
    let mut quoted = vec![0u8; 4];
    quoted.extend(frame(t, src_mac, Header { src: t.dst, ..h }, &syn)[14..40].to_vec());
    let m = icmpv6(t, t.src, 1, 4, &quoted);
    add("icmpv6_unreach_cut_quote", next_is(ICMPV6), m);
    let m = icmpv6(t, t.src, 3, 0, &[]);
    add("icmpv6_time_exceeded_empty", next_is(ICMPV6), m);
    // Neighbour discovery: an option of length 0 (a parser that trusts it
    // never ends), an option past the end, a solicitation cut short, and
    // an advertisement from the wrong hop limit.
    let ns_body = |opt: &[u8]| {
        let mut b = vec![0u8; 4];
        b.extend_from_slice(&t.dst.octets());
        b.extend_from_slice(opt);
        b
    };
    let nd = Header {
        next: ICMPV6,
        hop: 255,
        ..h
    };
    let m = icmpv6(t, t.src, 135, 0, &ns_body(&[1, 0, 0, 0, 0, 0, 0, 0]));
    add("ns_option_len_0", nd, m);
    let m = icmpv6(t, t.src, 135, 0, &ns_body(&[1, 9, 1, 2, 3, 4, 5, 6]));
    add("ns_option_past_end", nd, m);
    add("ns_cut", nd, icmpv6(t, t.src, 135, 0, &[0, 0, 0, 0, 0x20]));
    let m = icmpv6(t, t.src, 136, 0, &ns_body(&[2, 1, 6, 6, 6, 6, 6, 6]));
    add("na_hop_limit_64", Header { hop: 64, ..nd }, m);
    let mut bad = icmpv6(t, t.src, 135, 0, &ns_body(&[]));
    bad[2] ^= 0x55;
    add("ns_bad_checksum", nd, bad);
    // Random bytes after a valid header, under a random next header.
    let nexts = [0u8, 6, 17, 43, 44, 50, 51, 58, 59, 60, 135, 139, 140, 253];
    for name in ["random_1", "random_2", "random_3"] {
        let next = nexts[(rng.next() % nexts.len() as u64) as usize];
        let len = (rng.next() % 200) as usize;
        add(name, Header { next, ..h }, rng.bytes(len));
    }
    out
}

/// Sends `rounds` of the catalogue; how many frames went out of each kind.
pub fn flood(t: &Target, rounds: u32) -> serde_json::Value {
    match send_all(t, rounds) {
        Ok((sent, kinds)) => json!({ "sent": sent, "kinds": kinds }),
        Err(e) => json!({ "error": e.to_string() }),
    }
}

fn send_all(t: &Target, rounds: u32) -> std::io::Result<(u64, Vec<&'static str>)> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let name = std::ffi::CString::new(t.interface.as_str())?;
    // SAFETY: a NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return Err(std::io::Error::last_os_error());
    }
    let src_mac = own_mac(&t.interface)?;
    // SAFETY: plain socket(2) call; the descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero sockaddr_ll is valid; the fields are set below.
    let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_ifindex = ifindex as i32;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&t.dst_mac);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut sent, mut kinds) = (0u64, Vec::new());
    for r in 0..rounds {
        let frames = catalogue(t, src_mac, r, &mut rng);
        if r == 0 {
            kinds = frames.iter().map(|(k, _)| *k).collect();
        }
        for (_, f) in &frames {
            loop {
                // SAFETY: f and to are valid for the lengths given.
                let n = unsafe {
                    libc::sendto(
                        fd.as_raw_fd(),
                        f.as_ptr().cast(),
                        f.len(),
                        0,
                        (&to as *const libc::sockaddr_ll).cast(),
                        std::mem::size_of::<libc::sockaddr_ll>() as u32,
                    )
                };
                if n >= 0 {
                    sent += 1;
                    break;
                }
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::ENOBUFS) {
                    return Err(e);
                }
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        }
    }
    Ok((sent, kinds))
}

fn own_mac(interface: &str) -> std::io::Result<[u8; 6]> {
    let s = std::fs::read_to_string(format!("/sys/class/net/{interface}/address"))?;
    parse_mac(s.trim())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad MAC"))
}

pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut m = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut m {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(m)
}
