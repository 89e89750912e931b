//! NAT (`-m`) through the data plane on two in-memory links: clients on
//! link 0, real servers on link 1 behind the director. Real frames in and
//! out, decoded and checksum-verified with etherparse. Here the rig and
//! the frames; the tests by topic below.

mod icmp;
mod nat66;
mod translation;

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use std::net::Ipv4Addr;
use uvs::control::proto::Op;
use uvs::dataplane::LinkParams;
use uvs::host::Prefix;
use uvs::io::RxMeta;
use uvs::lvs::service::{Forward, Protocol};
use uvs::lvs::table::{LinkRoute, NextHop};
use uvs::rig::{CL_MAC, VIP, dest, service, svc};
use uvs::wire::MacAddr;

const DIR0: [u8; 6] = uvs::rig::DIR_MAC;
const DIR1: [u8; 6] = [2, 0, 0, 0, 1, 1];
/// The director's IPv6 address on the server side.
const DIR1_ADDR6: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0x2001, 2, 0, 2, 0, 0, 0, 1);
const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const CLIENT: [u8; 4] = [198, 18, 0, 10];
const FAR_CLIENT: [u8; 4] = [198, 19, 7, 7];
const RIP1: [u8; 4] = [198, 18, 1, 11];
const RIP2: [u8; 4] = [198, 18, 1, 12];

fn rs_mac(ip: std::net::IpAddr) -> MacAddr {
    MacAddr([2, 0, 0, 0, 2, uvs::rig::last_octet(ip)])
}

/// NAT real servers are behind link 1.
fn server_hop(ip: std::net::IpAddr, _: Forward) -> NextHop {
    NextHop {
        link: 1,
        mac: rs_mac(ip),
    }
}

fn nat_dest(addr: [u8; 4], port: u16) -> uvs::control::proto::DestSpec {
    dest(std::net::Ipv4Addr::from(addr), port, Forward::Masq, 1)
}

fn nat_ops() -> Vec<Op> {
    let mut ops = service(
        svc(Protocol::Tcp, 80),
        "rr",
        &[nat_dest(RIP1, 8080), nat_dest(RIP2, 8080)],
    );
    ops.extend(service(
        svc(Protocol::Udp, 53),
        "rr",
        &[nat_dest(RIP1, 5353)],
    ));
    ops
}

/// The director's two links: clients (MTU 1500) and real servers.
fn links(server_mtu: u32) -> Vec<LinkParams> {
    let mut l = uvs::rig::one_link();
    l.push(LinkParams {
        mac: MacAddr(DIR1),
        mtu: server_mtu,
        addr: Ipv4Addr::new(198, 18, 1, 1),
        addr6: DIR1_ADDR6,
    });
    l
}

/// The director's routes: its client subnet on link 0, everything else
/// via a router there.
fn routes() -> Vec<LinkRoute> {
    vec![
        LinkRoute {
            dst: "198.18.0.0/24".parse().unwrap(),
            link: 0,
            gateway_mac: None,
        },
        LinkRoute {
            dst: Prefix::DEFAULT,
            link: 0,
            gateway_mac: Some(MacAddr(ROUTER_MAC)),
        },
    ]
}

struct Rig(uvs::rig::Rig);

impl std::ops::Deref for Rig {
    type Target = uvs::rig::Rig;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Rig {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Rig {
    fn new() -> Rig {
        Rig::with_links(links(1500))
    }

    fn with_links(links: Vec<LinkParams>) -> Rig {
        let mut r = uvs::rig::Rig::build(links, server_hop, routes(), &nat_ops());
        r.io.take_sent();
        Rig(r)
    }

    /// Feeds one frame on `link`; what was sent, with links.
    fn feed(&mut self, frame: Vec<u8>, link: u8, meta: RxMeta) -> Vec<(u8, Vec<u8>)> {
        self.0.feed_on(frame, link, meta)
    }

    /// A connection from CLIENT:`cport` opened with a SYN: the client's
    /// end and the real server it went to.
    fn connect(&mut self, cport: u16) -> (([u8; 4], u16), [u8; 4]) {
        let syn = self.syn(cport);
        ((CLIENT, cport), rip_of(&seen(&syn)))
    }

    /// A client's SYN from CLIENT:`cport` to VIP:80; the one frame sent.
    fn syn(&mut self, cport: u16) -> Vec<u8> {
        let f = tcp_frame((CL_MAC, DIR0), (CLIENT, cport), (VIP, 80), "S", b"");
        let mut out = self.feed(f, 0, RxMeta::default());
        assert_eq!(out.len(), 1);
        out.remove(0).1
    }
}

fn tcp_frame(
    macs: ([u8; 6], [u8; 6]),
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    flags: &str,
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv4(src.0, dst.0, 64)
        .tcp(src.1, dst.1, 1000, 64000);
    let b = crate::with_flags(b, flags);
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

fn udp_frame(macs: ([u8; 6], [u8; 6]), src: ([u8; 4], u16), dst: ([u8; 4], u16)) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv4(src.0, dst.0, 64)
        .udp(src.1, dst.1)
        .write(&mut v, b"NAME")
        .unwrap();
    v
}

/// Decodes a sent frame: MACs, addresses and ports, TTL, and whether the
/// IP and L4 checksums are both right.
#[derive(Debug, PartialEq)]
struct Seen {
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    ttl: u8,
    checksums_ok: bool,
}

fn seen(f: &[u8]) -> Seen {
    let p = SlicedPacket::from_ethernet(f).unwrap();
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        panic!("not IPv4")
    };
    let h = ip.header().to_header();
    let ip_ok = h.header_checksum == h.calc_header_checksum();
    let (sp, dp, l4_ok) = match p.transport.unwrap() {
        TransportSlice::Tcp(t) => (
            t.source_port(),
            t.destination_port(),
            t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap() == t.checksum(),
        ),
        TransportSlice::Udp(u) => (
            u.source_port(),
            u.destination_port(),
            u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap() == u.checksum(),
        ),
        _ => panic!("not TCP/UDP"),
    };
    Seen {
        dst_mac: f[0..6].try_into().unwrap(),
        src_mac: f[6..12].try_into().unwrap(),
        src: (h.source.into(), sp),
        dst: (h.destination.into(), dp),
        ttl: h.time_to_live,
        checksums_ok: ip_ok && l4_ok,
    }
}

fn rip_of(s: &Seen) -> [u8; 4] {
    s.dst.0.octets()
}

/// A TCP segment from real server `rip`:8080 to client `c`, as it arrives
/// on the director's server link.
fn from_rip(rip: [u8; 4], c: ([u8; 4], u16), flags: &str, payload: &[u8]) -> Vec<u8> {
    tcp_frame((rs_mac(rip.into()).0, DIR1), (rip, 8080), c, flags, payload)
}
