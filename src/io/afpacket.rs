//! AF_PACKET backend with PACKET_VNET_HDR, batched: frames are received
//! with recvmmsg(2) and sent with sendmmsg(2), up to [`BATCH`] per system
//! call, and sends skip the qdisc layer (PACKET_QDISC_BYPASS, as a NIC
//! driver's own queue is the only one that matters for forwarding). What
//! is queued to send goes out when the queue is full or before the
//! backend waits for frames, so a frame never waits behind an idle link.
//!
//! pnet's datalink channel cannot be used here: it exposes neither the
//! packet type (sll_pkttype) nor the offload state of a frame, and it
//! truncates frames at 4 KiB. With PACKET_VNET_HDR the kernel prefixes every
//! frame with a virtio_net_hdr that says both whether the L4 checksum is
//! unfinished (VIRTIO_NET_HDR_F_NEEDS_CSUM, set exactly when
//! PACKET_AUXDATA would report TP_STATUS_CSUMNOTREADY) and whether the frame
//! is a GSO super-frame and its segment size, which segmentation needs and
//! auxdata does not carry.

use super::bpf::FlowMaps;
use super::fanout::{self, Fanout};
use super::ring::RxRing;
use super::{
    FRAME_BUF, FlowFamily, FlowTuple, Gso, GsoTx, Handover, KernelFlow, Offloaded, PacketIo,
    PacketType, RxMeta,
};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use crate::host::sys;
use crate::wire::ethernet::{EtherType, EthernetFrame};

const VNET_HDR_LEN: usize = 10;
const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
const VIRTIO_NET_HDR_GSO_TCPV4: u8 = 1;
const VIRTIO_NET_HDR_GSO_TCPV6: u8 = 4;
const VIRTIO_NET_HDR_GSO_ECN: u8 = 0x80;
const PACKET_VNET_HDR: libc::c_int = 15;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const PACKET_QDISC_BYPASS: libc::c_int = 20;
/// Frames per system call, each way.
pub const BATCH: usize = 32;
/// One frame with its vnet header: a 64 KiB GSO super-frame fits.
const SLOT: usize = VNET_HDR_LEN + FRAME_BUF;
/// An ARP socket's (`--offload`) batch and slot: ARP frames are small and
/// few.
const ARP_BATCH: usize = 8;
const ARP_SLOT: usize = VNET_HDR_LEN + 2048;

pub struct AfPacket {
    fd: OwnedFd,
    pub ifindex: i32,
    rx: sys::Mmsg,
    /// The next of the received batch to hand out.
    rx_next: usize,
    /// The last batch was full: more are likely waiting, so the next
    /// receive tries the socket before it waits. (After a short batch the
    /// socket is likely empty: the backend flushes and polls at once,
    /// sparing a system call per frame at low rates.)
    rx_full: bool,
    tx: sys::Mmsg,
    tx_failed: u64,
    /// `--io packet-ring`: frames come from a TPACKET_V3 ring, not `rx`.
    ring: Option<RxRing>,
}

impl AfPacket {
    /// Opens a socket that sees every frame on `ifname` (ETH_P_ALL), except
    /// the ones this host sends, with offload metadata.
    pub fn open(ifname: &str) -> io::Result<AfPacket> {
        AfPacket::open_with(ifname, false)
    }

    /// As `open`, receiving through a TPACKET_V3 ring if `ring`.
    pub fn open_with(ifname: &str, ring: bool) -> io::Result<AfPacket> {
        AfPacket::open_opts(ifname, ring, false, libc::ETH_P_ALL as u16)
    }

    /// As `open_with`; `closed`: a filter drops every frame until the
    /// fanout program is in place ([`Fanout::update`] removes it): a
    /// socket about to join a fanout group must not queue the frames it
    /// sees alone before it joins, nor frames the group hands out before
    /// the program does (all to the first worker). `ethertype`: what the
    /// socket receives (ETH_P_ALL: every frame, before the tc hook; one
    /// ethertype: its frames, after the hook).
    fn open_opts(ifname: &str, ring: bool, closed: bool, ethertype: u16) -> io::Result<AfPacket> {
        let ifindex = sys::ifindex(ifname)?;
        let proto = ethertype.to_be();
        let (batch, slot) = match i32::from(ethertype) {
            libc::ETH_P_ARP => (ARP_BATCH, ARP_SLOT),
            _ => (BATCH, SLOT),
        };
        let fd = sys::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK,
            i32::from(proto),
        )?;
        let on: libc::c_int = 1;
        sys::setsockopt(&fd, libc::SOL_PACKET, PACKET_VNET_HDR, &on)?;
        sys::setsockopt(&fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, &on)?;
        // A burst of new connections must not overflow the queue.
        sys::raise_rcvbuf(&fd, 8 << 20)?;
        // Best effort: without it the qdisc is one more queue.
        let _ = sys::setsockopt(&fd, libc::SOL_PACKET, PACKET_QDISC_BYPASS, &on);
        if closed {
            let drop_all = [libc::sock_filter {
                code: 0x06,
                jt: 0,
                jf: 0,
                k: 0,
            }];
            sys::attach_cbpf(&fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &drop_all)?;
        }
        // The ring before the bind: no frame is queued outside it.
        let ring = match ring {
            true => Some(
                RxRing::attach(&fd)
                    .map_err(|e| io::Error::other(format!("TPACKET_V3 ring: {e}")))?,
            ),
            false => None,
        };
        sys::bind_packet(&fd, proto, ifindex)?;
        if matches!(i32::from(ethertype), libc::ETH_P_ALL | libc::ETH_P_IPV6) {
            // Best effort: a NIC that filters multicast keeps the IPv6
            // VIPs' solicitations from uvs otherwise (veths do not).
            let _ = sys::allmulti(&fd, ifindex);
        }
        Ok(AfPacket {
            fd,
            ifindex,
            rx: sys::Mmsg::new(batch, slot),
            rx_next: 0,
            rx_full: false,
            tx: sys::Mmsg::new(batch, slot),
            tx_failed: 0,
            ring,
        })
    }

    fn wait(&self, events: i16, timeout: Duration) -> io::Result<bool> {
        let mut p = [libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events,
            revents: 0,
        }];
        Ok(sys::poll(&mut p, timeout)? > 0)
    }

    /// The next received frame, copied into `buf`: from the batch in hand,
    /// or from a new batch (one recvmmsg) when that is used up, if the
    /// socket was `ready` (polled) or the last batch was full.
    fn try_recv(&mut self, buf: &mut [u8], ready: bool) -> io::Result<Option<RxMeta>> {
        if let Some(r) = &mut self.ring {
            return match r.next(VNET_HDR_LEN)? {
                Some(s) => frame_meta(s.bytes, s.pkt_type, s.truncated, buf),
                None => Ok(None),
            };
        }
        if self.rx.received(self.rx_next).is_none() {
            if !ready && !self.rx_full {
                return Ok(None);
            }
            self.rx_next = 0;
            let n = self.rx.recv(&self.fd)?;
            self.rx_full = n == self.rx.capacity();
            if n == 0 {
                return Ok(None);
            }
        }
        let Some((b, pkt_type, truncated)) = self.rx.received(self.rx_next) else {
            return Ok(None);
        };
        self.rx_next += 1;
        frame_meta(b, pkt_type, truncated, buf)
    }
}

/// A received frame with its vnet header in front, copied into `buf`,
/// and what the header and packet type say about it.
fn frame_meta(
    b: &[u8],
    pkt_type: u8,
    truncated: bool,
    buf: &mut [u8],
) -> io::Result<Option<RxMeta>> {
    if b.len() < VNET_HDR_LEN {
        return Err(io::Error::other("frame shorter than its vnet header"));
    }
    let (vnet, frame) = b.split_at(VNET_HDR_LEN);
    let len = frame.len();
    if len > buf.len() || truncated {
        return Err(io::Error::other(format!(
            "frame of {len} bytes or more truncated to {}",
            buf.len().min(len)
        )));
    }
    buf[..len].copy_from_slice(frame);
    let rd = |i: usize| u16::from_ne_bytes([vnet[i], vnet[i + 1]]);
    let flags = vnet[0];
    let gso_type = vnet[1] & !VIRTIO_NET_HDR_GSO_ECN;
    let meta = RxMeta {
        len,
        pkt_type: match pkt_type {
            0 => PacketType::Host,
            1 => PacketType::Broadcast,
            2 => PacketType::Multicast,
            4 => PacketType::Outgoing,
            _ => PacketType::OtherHost,
        },
        csum_partial: (flags & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0).then(|| (rd(6), rd(8))),
        gso: (gso_type != 0).then(|| Gso {
            tcpv4: gso_type == VIRTIO_NET_HDR_GSO_TCPV4,
            tcpv6: gso_type == VIRTIO_NET_HDR_GSO_TCPV6,
            size: rd(4),
        }),
        link: 0,
    };
    Ok(Some(meta))
}

impl PacketIo for AfPacket {
    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<RxMeta>> {
        if let Some(m) = self.try_recv(buf, false)? {
            return Ok(Some(m));
        }
        self.flush();
        if self.wait(libc::POLLIN, timeout)? {
            return self.try_recv(buf, true);
        }
        Ok(None)
    }

    /// One socket is one link: `link` is ignored.
    fn send(&mut self, _link: u8, frame: &[u8]) -> io::Result<()> {
        self.send_frame(frame)
    }

    fn send_gso(&mut self, _link: u8, frame: &[u8], tx: GsoTx) -> Option<io::Result<()>> {
        Some(self.send_super(frame, tx))
    }

    fn rx_drops(&mut self) -> u64 {
        sys::packet_drops(&self.fd).unwrap_or(0)
    }

    fn tx_errors(&mut self) -> u64 {
        std::mem::take(&mut self.tx_failed)
    }

    fn flush(&mut self) {
        AfPacket::flush(self)
    }
}

impl Drop for AfPacket {
    /// What is still queued goes out (a director that stops, a probe).
    fn drop(&mut self) {
        AfPacket::flush(self);
    }
}

/// Several interfaces, one AF_PACKET socket each, polled together: link `i`
/// is the `i`-th socket. (One unbound socket would see every interface of
/// the host, the busy management interface included.)
pub struct AfPacketLinks {
    socks: Vec<AfPacket>,
    /// With `--offload`: each link's ARP socket, then each link's IPv6
    /// socket, in link order (`socks` then take IPv4 only, so that they
    /// see a frame after the tc program has passed it).
    arp: Vec<AfPacket>,
    /// Where the next receive starts, so a busy link cannot starve another.
    next: usize,
    /// The sockets' poll set, built once (no allocation per wait).
    pfds: Vec<libc::pollfd>,
    /// With `--offload`: the tc program's offloaded flows.
    flows: Option<FlowMaps>,
}

impl AfPacketLinks {
    pub fn open(ifnames: &[String]) -> io::Result<AfPacketLinks> {
        AfPacketLinks::open_with(ifnames, false)
    }

    /// As `open`, each socket receiving through a TPACKET_V3 ring if
    /// `ring`.
    pub fn open_with(ifnames: &[String], ring: bool) -> io::Result<AfPacketLinks> {
        let socks = open_each(ifnames, ring, libc::ETH_P_ALL)?;
        Ok(AfPacketLinks::of(socks, Vec::new(), None))
    }

    /// As `open_with`, for the tc program's offload (`flows`, its maps):
    /// each link's frames come through three sockets, bound to IPv4, ARP
    /// and IPv6. A socket that sees every ethertype sees a frame before
    /// the tc hook, that is also the frames the program forwards.
    pub fn open_offload(
        ifnames: &[String],
        ring: bool,
        flows: FlowMaps,
    ) -> io::Result<AfPacketLinks> {
        let socks = open_each(ifnames, ring, libc::ETH_P_IP)?;
        let mut arp = open_each(ifnames, false, libc::ETH_P_ARP)?;
        arp.extend(open_each(ifnames, ring, libc::ETH_P_IPV6)?);
        Ok(AfPacketLinks::of(socks, arp, Some(flows)))
    }

    /// The links over these sockets (one per link, in link order; `arp`:
    /// each link's ARP socket, or none).
    fn of(socks: Vec<AfPacket>, arp: Vec<AfPacket>, flows: Option<FlowMaps>) -> AfPacketLinks {
        let mut pfds = sys::pollin(socks.iter().chain(&arp).map(|s| s.fd.as_raw_fd()));
        // The programs' events wake the data plane as frames do.
        if let Some(f) = &flows {
            pfds.extend(sys::pollin(f.event_fds().into_iter()));
        }
        AfPacketLinks {
            socks,
            arp,
            next: 0,
            pfds,
            flows,
        }
    }

    /// Link `link`'s socket to send `frame` by: its ARP or IPv6 socket for
    /// such a frame if it has one (a socket bound to IPv4 would mark it
    /// IPv4).
    fn sock_for(&mut self, link: u8, frame: &[u8]) -> Option<&mut AfPacket> {
        let i = usize::from(link);
        let kind = EthernetFrame::new_checked(frame).map(|f| f.ethertype());
        let at = match kind {
            Ok(EtherType::ARP) => i,
            Ok(EtherType::IPV6) => self.socks.len() + i,
            _ => return self.socks.get_mut(i),
        };
        match self.arp.get_mut(at) {
            Some(s) => Some(s),
            None => self.socks.get_mut(i),
        }
    }

    /// `workers` sets of links, each link's sockets in fanout groups whose
    /// program (installed by the control plane, `Fanout::update`) gives
    /// every frame of a connection to one worker. With the tc program's
    /// maps (`flows`, one set per worker): as `open_offload`, a group per
    /// link and ethertype (IPv4, IPv6); ARP reaches worker 0 alone (the
    /// others' ARP sockets send only). Also says whether the kernel keeps
    /// the host's own frames out of the groups.
    pub fn open_workers(
        ifnames: &[String],
        workers: usize,
        ring: bool,
        flows: Option<Vec<FlowMaps>>,
    ) -> io::Result<(Vec<AfPacketLinks>, Fanout, bool)> {
        if !(1..=fanout::MAX_WORKERS).contains(&workers) {
            return Err(io::Error::other(format!(
                "between 1 and {} workers",
                fanout::MAX_WORKERS
            )));
        }
        let types = match flows {
            Some(_) => vec![libc::ETH_P_IP, libc::ETH_P_ARP, libc::ETH_P_IPV6],
            None => vec![libc::ETH_P_ALL],
        };
        // [worker][ethertype][link]
        let mut sets: Vec<Vec<Vec<AfPacket>>> = (0..workers)
            .map(|_| types.iter().map(|_| Vec::new()).collect())
            .collect();
        let mut members = Vec::new();
        let mut closed = Vec::new();
        let mut ignores = true;
        for (t, &ethertype) in types.iter().enumerate() {
            for n in ifnames {
                let named = |e: io::Error| io::Error::other(format!("{n}: {e}"));
                if ethertype == libc::ETH_P_ARP {
                    for (w, set) in sets.iter_mut().enumerate() {
                        let s = AfPacket::open_opts(n, false, w > 0, ethertype as u16)
                            .map_err(named)?;
                        set[t].push(s);
                    }
                    continue;
                }
                let mut group = fanout::Group::new();
                for (w, set) in sets.iter_mut().enumerate() {
                    let s = AfPacket::open_opts(n, ring, true, ethertype as u16).map_err(named)?;
                    group
                        .join(&s.fd)
                        .map_err(|e| named(io::Error::other(format!("fanout group: {e}"))))?;
                    if w == 0 {
                        members.push(s.fd.try_clone().map_err(named)?);
                    }
                    closed.push(s.fd.try_clone().map_err(named)?);
                    set[t].push(s);
                }
                ignores &= group.ignores_outgoing();
            }
        }
        let mut flows = flows.map(|f| f.into_iter().map(Some).collect::<Vec<_>>());
        let links = sets
            .into_iter()
            .enumerate()
            .map(|(w, mut set)| {
                let f = flows.as_mut().and_then(|f| f.get_mut(w)?.take());
                let socks = set.remove(0);
                AfPacketLinks::of(socks, set.into_iter().flatten().collect(), f)
            })
            .collect();
        Ok((links, Fanout::new(members, closed, workers), ignores))
    }

    /// Every socket, the links' then their ARP sockets.
    fn each(&mut self) -> impl Iterator<Item = &mut AfPacket> {
        self.socks.iter_mut().chain(&mut self.arp)
    }

    /// The sockets' descriptors, in link order, to poll with others.
    pub(crate) fn fds(&self) -> impl Iterator<Item = i32> + '_ {
        self.socks.iter().chain(&self.arp).map(|s| s.fd.as_raw_fd())
    }

    /// The next frame from any link's batch in hand, or from a socket
    /// that was `ready` (polled) or had a full batch.
    pub(crate) fn try_each(&mut self, buf: &mut [u8], ready: bool) -> io::Result<Option<RxMeta>> {
        let links = self.socks.len();
        let n = links + self.arp.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            let s = match self.socks.get_mut(i) {
                Some(s) => s,
                None => &mut self.arp[i - links],
            };
            if let Some(mut m) = s.try_recv(buf, ready)? {
                self.next = (i + 1) % n;
                m.link = (i % links) as u8;
                return Ok(Some(m));
            }
        }
        Ok(None)
    }
}

/// One socket per interface, receiving `ethertype`, in link order; an
/// error names the interface.
fn open_each(ifnames: &[String], ring: bool, ethertype: i32) -> io::Result<Vec<AfPacket>> {
    if ifnames.is_empty() || ifnames.len() > usize::from(u8::MAX) {
        return Err(io::Error::other("between 1 and 255 interfaces"));
    }
    ifnames
        .iter()
        .map(|n| {
            AfPacket::open_opts(n, ring, false, ethertype as u16)
                .map_err(|e| io::Error::other(format!("{n}: {e}")))
        })
        .collect()
}

impl PacketIo for AfPacketLinks {
    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<RxMeta>> {
        if let Some(m) = self.try_each(buf, false)? {
            return Ok(Some(m));
        }
        self.flush();
        if sys::poll(&mut self.pfds, timeout)? == 0 {
            return Ok(None);
        }
        self.try_each(buf, true)
    }

    fn send(&mut self, link: u8, frame: &[u8]) -> io::Result<()> {
        match self.sock_for(link, frame) {
            Some(s) => s.send_frame(frame),
            None => Err(io::Error::other(format!("no link {link}"))),
        }
    }

    /// By the socket of the frame's ethertype: an IPv6 super-frame sent
    /// on a socket bound to IPv4 would be marked IPv4 and fail to segment.
    fn send_gso(&mut self, link: u8, frame: &[u8], tx: GsoTx) -> Option<io::Result<()>> {
        let s = self.sock_for(link, frame)?;
        Some(s.send_super(frame, tx))
    }

    fn rx_drops(&mut self) -> u64 {
        self.each().map(|s| s.rx_drops()).sum()
    }

    fn tx_errors(&mut self) -> u64 {
        self.each().map(|s| s.tx_errors()).sum()
    }

    fn flush(&mut self) {
        self.each().for_each(AfPacket::flush);
    }

    fn wake_on(&mut self, fd: i32) {
        self.pfds.extend(sys::pollin([fd].into_iter()));
    }

    fn offload<A: FlowFamily>(&mut self, link: u8, h: &Handover<A>) -> bool {
        self.flows.as_mut().is_some_and(|f| f.offload(link, h))
    }

    fn unoffload<A: FlowFamily>(&mut self, link: u8, flow: &FlowTuple<A>) -> Option<Offloaded> {
        self.flows.as_mut()?.unoffload(link, flow)
    }

    fn offloaded_frames(&mut self) -> u64 {
        self.flows.as_mut().map_or(0, |f| f.offloaded_frames())
    }

    fn kernel_flows(&mut self, each: &mut impl FnMut(KernelFlow)) {
        if let Some(f) = &mut self.flows {
            f.kernel_flows(each)
        }
    }

    fn set_room(&mut self, room: bool) {
        if let Some(f) = &mut self.flows {
            f.set_room(room)
        }
    }

    fn kernel_ring_full(&mut self) -> u64 {
        self.flows.as_mut().map_or(0, |f| f.ring_full())
    }

    fn real_counts(&mut self, ids: &[u64], each: &mut impl FnMut(u64, u64, u64)) {
        if let Some(f) = &mut self.flows {
            f.real_counts(ids, each)
        }
    }
}

impl AfPacket {
    fn send_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        self.send_vnet(&[0u8; VNET_HDR_LEN], frame)
    }

    /// A TCP super-frame, whole: the vnet header asks the kernel to
    /// segment it (GSO, or the NIC's TSO) and to finish each checksum.
    fn send_super(&mut self, frame: &[u8], tx: GsoTx) -> io::Result<()> {
        let mut vnet = [0u8; VNET_HDR_LEN];
        vnet[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
        vnet[1] = match tx.gso.tcpv6 {
            true => VIRTIO_NET_HDR_GSO_TCPV6,
            false => VIRTIO_NET_HDR_GSO_TCPV4,
        };
        vnet[2..4].copy_from_slice(&tx.hdr_len.to_ne_bytes());
        vnet[4..6].copy_from_slice(&tx.gso.size.to_ne_bytes());
        vnet[6..8].copy_from_slice(&tx.csum.0.to_ne_bytes());
        vnet[8..10].copy_from_slice(&tx.csum.1.to_ne_bytes());
        self.send_vnet(&vnet, frame)
    }

    /// Queues one frame with its vnet header; a full queue is sent first.
    fn send_vnet(&mut self, vnet: &[u8; VNET_HDR_LEN], frame: &[u8]) -> io::Result<()> {
        if frame.len() + VNET_HDR_LEN > SLOT {
            return Err(io::Error::other("frame larger than a transmit slot"));
        }
        if self.tx.slot().is_none() {
            self.flush();
        }
        let Some(slot) = self.tx.slot() else {
            return Err(io::Error::other("transmit queue stayed full"));
        };
        slot[..VNET_HDR_LEN].copy_from_slice(vnet);
        slot[VNET_HDR_LEN..VNET_HDR_LEN + frame.len()].copy_from_slice(frame);
        self.tx.commit(VNET_HDR_LEN + frame.len());
        Ok(())
    }

    /// Sends what is queued: one sendmmsg, or a few when the socket's
    /// queue is full, waiting for room up to 5 ms each time. Frames that
    /// cannot go are counted (`tx_errors`).
    fn flush(&mut self) {
        for _ in 0..8 {
            if self.tx.queued() == 0 {
                return;
            }
            match self.tx.send(&self.fd) {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EAGAIN) | Some(libc::ENOBUFS) | Some(libc::EINTR)
                    ) => {}
                // The first frame is refused (too big for the link, say):
                // it goes, the rest are tried again.
                Err(_) => {
                    self.tx_failed += 1;
                    self.tx.skip_one();
                    continue;
                }
            }
            let _ = self.wait(libc::POLLOUT, Duration::from_millis(5));
        }
        self.tx_failed += self.tx.discard() as u64;
    }
}
