//! The AF_XDP backend: an XDP program on each director link steers the
//! frames uvs handles (to a VIP; NAT replies from a real server's port)
//! into an AF_XDP socket per receive queue, and passes everything else to
//! the kernel. Beside the sockets the link keeps its AF_PACKET socket,
//! which sees what the kernel gets: ARP, ICMP, a frame the maps do not
//! claim yet. So the XDP maps only decide how fast a frame reaches uvs,
//! never whether it does.
//!
//! The program (uvs.bpf.c) is built with clang by build.rs and embedded;
//! a uvs built without clang has no XDP and says so. The same object holds
//! the tc program that forwards offloaded flows for the AF_PACKET backends
//! (`Steering::attach_tc`), which share the flow maps (`flows.rs`).

pub mod flows;
pub mod xsk;

use super::afpacket::AfPacketLinks;
use super::{FlowTuple, Gso, Handover, Offloaded, PacketIo, PacketType, RxMeta};
use crate::lvs::service::Forward;
use crate::lvs::table::Table;
pub use flows::FlowMaps;
use std::collections::BTreeSet;
use std::io;
use std::net::Ipv4Addr;
use std::time::Duration;
use xsk::Xsk;

#[cfg(uvs_xdp)]
static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/uvs.bpf.o"));

/// The key of `nat_servers`: a NAT real server's address, port and
/// protocol, as the program reads them (network order).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct RsKey {
    addr: [u8; 4],
    port: [u8; 2],
    proto: u8,
    pad: u8,
}

// SAFETY: plain bytes with no padding of the compiler's.
unsafe impl aya::Pod for RsKey {}

/// What the maps should hold for a table.
#[derive(Debug, Default, PartialEq, Eq)]
struct Claims {
    vips: BTreeSet<[u8; 4]>,
    nat: BTreeSet<RsKey>,
    locals: BTreeSet<[u8; 4]>,
}

impl Claims {
    fn of(table: &Table, locals: &[Ipv4Addr]) -> Claims {
        let mut c = Claims {
            locals: locals.iter().map(|a| a.octets()).collect(),
            ..Claims::default()
        };
        for s in &table.services {
            c.vips.insert(s.key.addr.octets());
            for d in s.dests.iter().filter(|d| d.forward == Forward::Masq) {
                c.nat.insert(RsKey {
                    addr: d.addr.octets(),
                    port: d.port.to_be_bytes(),
                    proto: s.key.protocol.number(),
                    pad: 0,
                });
            }
        }
        c
    }
}

/// The XDP program attached to one link, with its maps.
struct LinkProgram {
    bpf: aya::Ebpf,
    mode: &'static str,
}

/// The XDP programs of all director links, and what their maps hold.
pub struct Steering {
    links: Vec<LinkProgram>,
    held: Claims,
    /// What `fast` holds: whether the programs forward offloaded flows.
    fast: Option<bool>,
    /// The tc program (`attach_tc`): it forwards offloaded flows only,
    /// and steers nothing, so the claim maps stay empty.
    tc: bool,
}

fn e(what: &str, err: impl std::fmt::Display) -> String {
    format!("{what}: {err}")
}

impl Steering {
    /// Loads the program and attaches it to every link (the driver's
    /// native XDP, else the kernel's generic XDP), retrying for up to 2 s
    /// while another program holds a link (a director handing over).
    pub fn attach(ifnames: &[String]) -> Result<Steering, String> {
        #[cfg(not(uvs_xdp))]
        {
            let _ = ifnames;
            Err("this uvs was built without its XDP program (clang and libbpf-dev were missing at build time)".into())
        }
        #[cfg(uvs_xdp)]
        {
            use aya::programs::{Xdp, XdpMode};
            let mut links = Vec::new();
            for name in ifnames {
                let mut bpf =
                    aya::Ebpf::load(PROGRAM).map_err(|x| e("loading the XDP program", x))?;
                let prog: &mut Xdp = bpf
                    .program_mut("uvs_steer")
                    .ok_or("the XDP program has no uvs_steer")?
                    .try_into()
                    .map_err(|x| e("uvs_steer", x))?;
                prog.load()
                    .map_err(|x| e("the kernel refused the XDP program", x))?;
                let deadline = std::time::Instant::now() + Duration::from_secs(2);
                let mode = loop {
                    match prog.attach(name, XdpMode::Driver) {
                        Ok(_) => break "native",
                        Err(first) => match prog.attach(name, XdpMode::Skb) {
                            Ok(_) => break "generic",
                            Err(_) if std::time::Instant::now() < deadline => {
                                std::thread::sleep(Duration::from_millis(50))
                            }
                            Err(_) => return Err(e(&format!("attaching XDP to {name}"), first)),
                        },
                    }
                };
                links.push(LinkProgram { bpf, mode });
            }
            Ok(Steering {
                links,
                held: Claims::default(),
                fast: None,
                tc: false,
            })
        }
    }

    /// Loads the tc program (`uvs_tc_forward`) and attaches it to every
    /// link's ingress, for the AF_PACKET backends' `--offload`. TCX (Linux
    /// 6.6) ties it to uvs's descriptors, so it goes when uvs does, crash
    /// included; an older kernel gets a clsact qdisc and a filter. On a
    /// veth whose peer is in another namespace the program hands frames
    /// to the peer, unless `egress` (`--offload-egress`).
    pub fn attach_tc(ifnames: &[String], egress: bool) -> Result<Steering, String> {
        #[cfg(not(uvs_xdp))]
        {
            let _ = (ifnames, egress);
            Err("this uvs was built without its BPF programs (clang and libbpf-dev were missing at build time)".into())
        }
        #[cfg(uvs_xdp)]
        {
            use aya::programs::{SchedClassifier, TcAttachType, tc};
            let mut links = Vec::new();
            for name in ifnames {
                let to_peer = !egress && crate::host::sys::peer_in_other_namespace(name);
                let mut bpf = aya::EbpfLoader::new()
                    .override_global("to_peer", &u32::from(to_peer), true)
                    .load(PROGRAM)
                    .map_err(|x| e("loading the tc program", x))?;
                let prog: &mut SchedClassifier = bpf
                    .program_mut("uvs_tc_forward")
                    .ok_or("the BPF object has no uvs_tc_forward")?
                    .try_into()
                    .map_err(|x| e("uvs_tc_forward", x))?;
                prog.load()
                    .map_err(|x| e("the kernel refused the tc program", x))?;
                // Only the netlink fallback needs the qdisc; there already is fine.
                let _ = tc::qdisc_add_clsact(name);
                prog.attach(name, TcAttachType::Ingress)
                    .map_err(|x| e(&format!("attaching the tc program to {name}"), x))?;
                let mode = match to_peer {
                    true => "tc, to the veth peer",
                    false => "tc",
                };
                links.push(LinkProgram { bpf, mode });
            }
            Ok(Steering {
                links,
                held: Claims::default(),
                fast: None,
                tc: true,
            })
        }
    }

    /// How the program runs on each link ("native" or "generic").
    pub fn modes(&self) -> Vec<&'static str> {
        self.links.iter().map(|l| l.mode).collect()
    }

    /// Points link `link`'s receive queue `queue` at `sock`.
    pub fn register(&mut self, link: usize, sock: &Xsk) -> Result<(), String> {
        let l = self.links.get_mut(link).ok_or("no such link")?;
        let map = l
            .bpf
            .map_mut("xsks")
            .ok_or("the XDP program has no xsks map")?;
        let mut xsks: aya::maps::XskMap<_> = map.try_into().map_err(|x| e("xsks", x))?;
        xsks.set(sock.queue, sock.fd(), 0)
            .map_err(|x| e(&format!("registering queue {}", sock.queue), x))
    }

    /// Every link's offloaded-flow map and forwarded-frame counter, for
    /// the data plane (they leave the control plane's hands).
    pub fn take_flow_maps(&mut self) -> Result<FlowMaps, String> {
        let mut maps = Vec::new();
        for l in &mut self.links {
            let flows = l
                .bpf
                .take_map("flows")
                .ok_or("the XDP program has no flows map")?;
            let fwd = l
                .bpf
                .take_map("forwarded")
                .ok_or("the XDP program has no forwarded map")?;
            maps.push((
                flows.try_into().map_err(|x| e("flows", x))?,
                fwd.try_into().map_err(|x| e("forwarded", x))?,
            ));
        }
        Ok(FlowMaps::new(maps))
    }

    /// Makes the maps claim what `table` serves: inserts what is new and
    /// removes what is gone, so a frame in flight never meets an empty map.
    pub fn update(&mut self, table: &Table, locals: &[Ipv4Addr]) -> Result<(), String> {
        // A backup forwards nothing, offloaded flows included.
        let fast = !table.standby;
        if self.fast != Some(fast) {
            for l in &mut self.links {
                let map = l
                    .bpf
                    .map_mut("fast")
                    .ok_or("the XDP program has no fast map")?;
                let mut a: aya::maps::Array<_, u32> = map.try_into().map_err(|x| e("fast", x))?;
                a.set(0, u32::from(fast), 0).map_err(|x| e("fast", x))?;
            }
            self.fast = Some(fast);
        }
        if self.tc {
            return Ok(());
        }
        let want = Claims::of(table, locals);
        if want == self.held {
            return Ok(());
        }
        for l in &mut self.links {
            sync_set(&mut l.bpf, "vips", &self.held.vips, &want.vips)?;
            sync_set(&mut l.bpf, "nat_servers", &self.held.nat, &want.nat)?;
            sync_set(&mut l.bpf, "locals", &self.held.locals, &want.locals)?;
        }
        self.held = want;
        Ok(())
    }
}

fn sync_set<K: aya::Pod + Ord>(
    bpf: &mut aya::Ebpf,
    name: &str,
    held: &BTreeSet<K>,
    want: &BTreeSet<K>,
) -> Result<(), String> {
    let map = bpf
        .map_mut(name)
        .ok_or_else(|| format!("the XDP program has no {name} map"))?;
    let mut m: aya::maps::HashMap<_, K, u8> = map.try_into().map_err(|x| e(name, x))?;
    for k in want.difference(held) {
        m.insert(k, 1, 0).map_err(|x| e(name, x))?;
    }
    for k in held.difference(want) {
        // Already gone is fine.
        let _ = m.remove(k);
    }
    Ok(())
}

/// The receive queues of an interface (its AF_XDP sockets, one each).
fn rx_queues(ifname: &str) -> u32 {
    std::fs::read_dir(format!("/sys/class/net/{ifname}/queues"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count() as u32
        })
        .unwrap_or(1)
        .clamp(1, 64)
}

/// One AF_XDP socket with the link it serves and that link's MAC (to
/// classify a frame as the kernel would: for us, broadcast, or another
/// host's).
struct Queue {
    link: u8,
    mac: [u8; 6],
    xsk: Xsk,
    /// The socket's drop count as last reported (the kernel's counts from
    /// the socket's start).
    drops: u64,
}

/// The backend: AF_XDP sockets for steered frames, the links' AF_PACKET
/// sockets for the rest (and for super-frames the kernel must segment).
pub struct XdpLinks {
    queues: Vec<Queue>,
    pkt: AfPacketLinks,
    /// Where the next receive starts, so one busy queue cannot starve.
    next: usize,
    /// Frames received on the AF_XDP sockets since `steered()` last took
    /// them.
    steered: u64,
    /// The AF_XDP and packet sockets' poll set, built once.
    pfds: Vec<libc::pollfd>,
    /// Each link's offloaded flows and the program's forwarded count.
    flows: FlowMaps,
}

impl XdpLinks {
    /// Opens a socket on every receive queue of every link and registers
    /// it with that link's program.
    pub fn open(
        ifnames: &[String],
        macs: &[[u8; 6]],
        steering: &mut Steering,
    ) -> Result<XdpLinks, String> {
        let pkt = AfPacketLinks::open(ifnames).map_err(|x| format!("cannot capture on {x}"))?;
        let mut queues = Vec::new();
        for (i, name) in ifnames.iter().enumerate() {
            let idx = crate::host::sys::ifindex(name).map_err(|x| e(name, x))? as u32;
            for q in 0..rx_queues(name) {
                let xsk =
                    Xsk::open(idx, q).map_err(|x| e(&format!("AF_XDP on {name} queue {q}"), x))?;
                steering.register(i, &xsk)?;
                queues.push(Queue {
                    link: i as u8,
                    mac: macs.get(i).copied().unwrap_or_default(),
                    xsk,
                    drops: 0,
                });
            }
        }
        let pfds = crate::host::sys::pollin(queues.iter().map(|q| q.xsk.fd()).chain(pkt.fds()));
        let flows = steering.take_flow_maps()?;
        Ok(XdpLinks {
            queues,
            pkt,
            next: 0,
            steered: 0,
            pfds,
            flows,
        })
    }

    /// "copy" or "zero-copy" for each socket, for the start's log line.
    pub fn modes(&self) -> Vec<&'static str> {
        self.queues
            .iter()
            .map(|q| match q.xsk.mode {
                xsk::Mode::Copy => "copy",
                xsk::Mode::ZeroCopy => "zero-copy",
            })
            .collect()
    }

    fn try_queues(&mut self, buf: &mut [u8]) -> io::Result<Option<RxMeta>> {
        let n = self.queues.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            let q = &mut self.queues[i];
            if let Some(len) = q.xsk.recv(buf)? {
                self.next = (i + 1) % n;
                self.steered += 1;
                return Ok(Some(RxMeta {
                    len,
                    pkt_type: classify(&buf[..len], &q.mac),
                    csum_partial: unfinished_checksum(&buf[..len]),
                    gso: None,
                    link: q.link,
                }));
            }
        }
        Ok(None)
    }
}

/// Where an unfinished TCP or UDP checksum is (start and offset, as a
/// vnet header gives them), in a frame that arrived with one.
///
/// XDP hands over bytes only, and a frame from a local sender on a virtual
/// link (veth, a VM's tap) still carries CHECKSUM_PARTIAL: its checksum
/// field holds just the folded pseudo-header sum, for hardware that never
/// comes. A real NIC always delivers finished checksums. So a field equal
/// to that sum in a segment whose checksum does not verify is taken as
/// unfinished, and the data plane finishes it as it does for AF_PACKET.
/// (A damaged segment matches by chance once in 65,536; Ethernet's CRC
/// has already dropped nearly all of those.)
pub fn unfinished_checksum(frame: &[u8]) -> Option<(u16, u16)> {
    use crate::wire::{checksum, ethernet, ip_proto, ipv4::Ipv4Packet, tcp, udp};
    let eth = ethernet::EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != ethernet::EtherType::IPV4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.is_fragment() {
        return None;
    }
    let off = match ip.protocol() {
        ip_proto::TCP => tcp::CHECKSUM_OFFSET,
        ip_proto::UDP => udp::CHECKSUM_OFFSET,
        _ => return None,
    };
    let seg = ip.payload();
    let field = u16::from_be_bytes([*seg.get(off)?, *seg.get(off + 1)?]);
    let pseudo = checksum::pseudo_header(
        ip.src_addr(),
        ip.dst_addr(),
        ip.protocol(),
        seg.len() as u32,
    );
    if field != checksum::fold(pseudo) || checksum::fold(pseudo + checksum::sum(seg)) == 0xffff {
        return None;
    }
    let start = ethernet::HEADER_LEN + ip.header_len();
    Some((start as u16, off as u16))
}

/// The packet type from the destination MAC, as the kernel sets
/// sll_pkttype (XDP gives only the bytes).
fn classify(frame: &[u8], mac: &[u8; 6]) -> PacketType {
    match frame.get(..6) {
        Some(d) if d == mac => PacketType::Host,
        Some(d) if d == [0xff; 6] => PacketType::Broadcast,
        Some(d) if d[0] & 1 == 1 => PacketType::Multicast,
        _ => PacketType::OtherHost,
    }
}

impl PacketIo for XdpLinks {
    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<RxMeta>> {
        if let Some(m) = self.try_queues(buf)? {
            return Ok(Some(m));
        }
        if let Some(m) = self.pkt.try_each(buf, false)? {
            return Ok(Some(m));
        }
        self.flush();
        // Frames still in the kernel's hands to send: come back soon to
        // take their buffers back.
        let wait = match self.queues.iter().any(|q| q.xsk.sending()) {
            true => timeout.min(Duration::from_millis(1)),
            false => timeout,
        };
        if crate::host::sys::poll(&mut self.pfds, wait)? == 0 {
            return Ok(None);
        }
        if let Some(m) = self.try_queues(buf)? {
            return Ok(Some(m));
        }
        self.pkt.try_each(buf, true)
    }

    fn send(&mut self, link: u8, frame: &[u8]) -> io::Result<()> {
        // The link's first queue sends (any queue's socket can).
        match self.queues.iter_mut().find(|q| q.link == link) {
            Some(q) => q.xsk.send(frame),
            None => self.pkt.send(link, frame),
        }
    }

    /// Super-frames go out whole through the packet socket, whose vnet
    /// header asks the kernel to segment them.
    fn send_gso(
        &mut self,
        link: u8,
        frame: &[u8],
        gso: Gso,
        csum: (u16, u16),
        hdr_len: u16,
    ) -> Option<io::Result<()>> {
        self.pkt.send_gso(link, frame, gso, csum, hdr_len)
    }

    fn flush(&mut self) {
        for q in &mut self.queues {
            q.xsk.flush();
        }
        self.pkt.flush();
    }

    fn wake_on(&mut self, fd: i32) {
        self.pfds.extend(crate::host::sys::pollin([fd].into_iter()));
    }

    fn tx_errors(&mut self) -> u64 {
        self.pkt.tx_errors()
    }

    fn steered(&mut self) -> u64 {
        std::mem::take(&mut self.steered)
    }

    fn offload(&mut self, link: u8, h: &Handover) -> bool {
        self.flows.offload(link, h)
    }

    fn unoffload(&mut self, link: u8, flow: &FlowTuple) -> Option<Offloaded> {
        self.flows.unoffload(link, flow)
    }

    fn offloaded_frames(&mut self) -> u64 {
        self.flows.offloaded_frames()
    }

    fn rx_drops(&mut self) -> u64 {
        let mut n = self.pkt.rx_drops();
        for q in &mut self.queues {
            let now = q.xsk.drops();
            n += now.saturating_sub(q.drops);
            q.drops = now;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lvs::service::{Protocol, SchedulerKind, ServiceKey};
    use crate::lvs::table::{DestEntry, ServiceEntry};
    use crate::wire::{MacAddr, checksum};

    /// A UDP frame 10.0.0.1:1000 -> 10.0.0.2:53 with 4 bytes of payload,
    /// its checksum finished.
    fn udp_frame() -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 12];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = &mut f[14..34];
        ip.copy_from_slice(&[
            0x45, 0, 0, 32, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        let c = checksum::finish(checksum::sum(ip));
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f[34..46].copy_from_slice(&[0x03, 0xe8, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4]);
        let pseudo = checksum::pseudo_header([10, 0, 0, 1].into(), [10, 0, 0, 2].into(), 17, 12);
        let c = checksum::finish(pseudo + checksum::sum(&f[34..]));
        f[40..42].copy_from_slice(&c.to_be_bytes());
        f
    }

    #[test]
    fn a_finished_checksum_is_left_alone() {
        assert_eq!(unfinished_checksum(&udp_frame()), None);
    }

    #[test]
    fn a_partial_checksum_is_found_and_a_damaged_one_is_not() {
        let mut f = udp_frame();
        let pseudo = checksum::pseudo_header([10, 0, 0, 1].into(), [10, 0, 0, 2].into(), 17, 12);
        f[40..42].copy_from_slice(&checksum::fold(pseudo).to_be_bytes());
        assert_eq!(unfinished_checksum(&f), Some((34, 6)));
        // Any other wrong value is damage, for the receiver to drop.
        f[41] ^= 0x40;
        assert_eq!(unfinished_checksum(&f), None);
    }

    #[test]
    fn short_and_odd_frames_are_not_read_past_their_end() {
        let f = udp_frame();
        for n in 0..f.len() {
            assert_eq!(unfinished_checksum(&f[..n]), None, "{n} bytes");
        }
        let mut frag = udp_frame();
        frag[20] = 0x20; // more fragments
        assert_eq!(unfinished_checksum(&frag), None);
    }

    fn service(proto: Protocol, vip: [u8; 4], dests: &[([u8; 4], u16, Forward)]) -> ServiceEntry {
        ServiceEntry {
            id: 1,
            key: ServiceKey {
                protocol: proto,
                addr: vip.into(),
                port: 80,
            },
            scheduler: SchedulerKind::Rr,
            epoch: 0,
            dests: dests
                .iter()
                .map(|&(a, port, forward)| DestEntry {
                    id: 1,
                    addr: a.into(),
                    port,
                    forward,
                    weight: 1,
                    mac: MacAddr::ZERO,
                    link: 0,
                    state: Default::default(),
                })
                .collect(),
            stats: Default::default(),
        }
    }

    #[test]
    fn the_maps_claim_every_vip_and_only_nat_servers_replies() {
        let t = Table::new(
            1,
            vec![
                service(
                    Protocol::Tcp,
                    [198, 18, 0, 100],
                    &[([198, 18, 0, 11], 80, Forward::Route)],
                ),
                service(
                    Protocol::Udp,
                    [198, 18, 0, 101],
                    &[
                        ([198, 18, 2, 11], 5353, Forward::Masq),
                        ([198, 18, 0, 12], 53, Forward::Tunnel),
                    ],
                ),
            ],
            Default::default(),
        );
        let c = Claims::of(&t, &[[198, 18, 2, 1].into()]);
        assert_eq!(
            c.vips,
            [[198, 18, 0, 100], [198, 18, 0, 101]].into_iter().collect()
        );
        // Network order, as the program reads the headers.
        let nat: Vec<_> = c.nat.into_iter().collect();
        assert_eq!(
            nat,
            vec![RsKey {
                addr: [198, 18, 2, 11],
                port: [0x14, 0xe9],
                proto: 17,
                pad: 0
            }]
        );
        assert_eq!(c.locals, [[198, 18, 2, 1]].into_iter().collect());
        assert_eq!(std::mem::size_of::<RsKey>(), 8);
    }

    #[test]
    fn frames_are_classified_by_their_destination_mac() {
        let me = [2, 0, 0, 0, 0, 1];
        let mut f = udp_frame();
        f[..6].copy_from_slice(&me);
        assert_eq!(classify(&f, &me), PacketType::Host);
        f[..6].copy_from_slice(&[0xff; 6]);
        assert_eq!(classify(&f, &me), PacketType::Broadcast);
        f[..6].copy_from_slice(&[0x01, 0, 0x5e, 0, 0, 1]);
        assert_eq!(classify(&f, &me), PacketType::Multicast);
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        assert_eq!(classify(&f, &me), PacketType::OtherHost);
    }
}
