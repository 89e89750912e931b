//! Packet I/O behind a trait, so the data plane is one loop that can run on
//! AF_PACKET today, a faster ring later, and an in-memory queue in tests.

pub mod afpacket;
pub mod bpf;
pub mod fanout;
pub mod memory;
pub mod ring;
pub mod xdp;

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::wire::ipip::IpipRepr;

/// A frame buffer's size, the data plane's and a packet socket slot's:
/// large enough for a 64 KiB GSO super-frame.
pub const FRAME_BUF: usize = 65536 + 256;

/// How the kernel classified a received frame (sockaddr_ll.sll_pkttype).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PacketType {
    /// Addressed to this interface's MAC.
    #[default]
    Host,
    Broadcast,
    Multicast,
    /// Addressed to another MAC (flooded by a switch); never forwarded.
    OtherHost,
    Outgoing,
}

/// Generic segmentation offload: the frame is a TCP super-frame that must
/// be cut into `size`-byte segments before it goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gso {
    pub tcpv4: bool,
    /// A TCP/IPv6 super-frame (VIRTIO_NET_HDR_GSO_TCPV6).
    pub tcpv6: bool,
    pub size: u16,
}

/// A TCP super-frame sent whole (`PacketIo::send_gso`), as the kernel
/// is to cut it: into `gso.size`-byte segments, the L4 checksum left
/// partial (`csum` = start and offset, as received), `hdr_len` covering
/// the Ethernet, IP and TCP headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GsoTx {
    pub gso: Gso,
    pub csum: (u16, u16),
    pub hdr_len: u16,
}

/// What the backend knows about a frame besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxMeta {
    pub len: usize,
    pub pkt_type: PacketType,
    /// The L4 checksum was left for hardware (CHECKSUM_PARTIAL): the field
    /// at `start + offset` holds only the pseudo-header sum, and the sum
    /// must be completed over `start..` before the frame leaves.
    pub csum_partial: Option<(u16, u16)>,
    pub gso: Option<Gso>,
    /// Which of the director's links (interfaces, in `--interface` order)
    /// the frame arrived on.
    pub link: u8,
}

/// A source and sink of Ethernet frames on one or more links (the
/// director's interfaces, numbered from 0).
pub trait PacketIo {
    /// Receives one frame into `buf`. Returns `Ok(None)` when nothing
    /// arrived within `timeout`.
    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<RxMeta>>;

    /// Sends one complete frame (checksums finished, at most MTU-sized)
    /// on `link`.
    fn send(&mut self, link: u8, frame: &[u8]) -> io::Result<()>;

    /// Sends a TCP super-frame whole on `link`, for the kernel (or the
    /// NIC) to cut after it as `tx` says. `None`: this backend cannot, and
    /// the caller segments.
    fn send_gso(&mut self, _link: u8, _frame: &[u8], _tx: GsoTx) -> Option<io::Result<()>> {
        None
    }

    /// Adds `fd` to what `recv` waits on: when it is readable, `recv`
    /// returns `Ok(None)` at once (the data plane's [`Wake`]). Backends
    /// that never block ignore it.
    ///
    /// [`Wake`]: crate::host::sys::Wake
    fn wake_on(&mut self, _fd: i32) {}

    /// Sends whatever a batching backend still holds. The data plane needs
    /// no call (the backend flushes before it waits for frames); a sender
    /// that does not receive (`uvs probe`) does.
    fn flush(&mut self) {}

    /// Frames the backend accepted but could not send, since the last
    /// call (a batching backend learns of failures after `send`).
    fn tx_errors(&mut self) -> u64 {
        0
    }

    /// Frames the backend's receive queues dropped (full) since the last
    /// call: loss that never reached uvs and no other counter shows.
    fn rx_drops(&mut self) -> u64 {
        0
    }

    /// Frames that came through the XDP fast path since the last call.
    fn steered(&mut self) -> u64 {
        0
    }

    /// Katran's split: hands an established DR flow (or TUN, `h.tun`: the
    /// tc program's only) arriving on `link` to
    /// the backend's kernel program, which then forwards its frames itself
    /// (`h` says how) and passes up only SYN, FIN and RST, and one frame
    /// every `h.up_every_ms`. Written again for a flow already handed over,
    /// it refreshes the entry. `false`: this backend cannot (or its map
    /// refused), and uvs keeps forwarding.
    /// IPv4 and IPv6 flows alike, each in its family's map.
    fn offload<A: FlowFamily>(&mut self, _link: u8, _h: &Handover<A>) -> bool {
        false
    }

    /// Takes a flow back from the kernel program; what it forwarded.
    fn unoffload<A: FlowFamily>(&mut self, _link: u8, _flow: &FlowTuple<A>) -> Option<Offloaded> {
        None
    }

    /// Frames the kernel program forwarded itself since the last call.
    fn offloaded_frames(&mut self) -> u64 {
        0
    }

    /// What the kernel program did without uvs since the last call: the
    /// flows it scheduled itself and those of its TCP flows that their
    /// client's ACK established, oldest first, each given to `each`.
    /// Called before each received frame is handled, so a frame of such a
    /// flow never meets uvs before its flow does.
    fn kernel_flows(&mut self, _each: &mut impl FnMut(KernelFlow)) {}

    /// Whether the kernel program may schedule new flows (uvs's
    /// connection table has room for them).
    fn set_room(&mut self, _room: bool) {}

    /// New flows and establishments the kernel program could not report
    /// since the last call (its ring was full): the flows came up to uvs.
    fn kernel_ring_full(&mut self) -> u64 {
        0
    }

    /// What the kernel program forwarded to each real server of `ids`
    /// (uvs's ids) so far, all links and CPUs summed, given to `each` as
    /// (id, packets, bytes) running totals; from now on it counts those
    /// servers' frames by id. A server counted before and not in `ids`
    /// is given its last totals and no longer counted by id (its flows'
    /// frames are counted in the flows, added at take-back).
    fn real_counts(&mut self, _ids: &[u64], _each: &mut impl FnMut(u64, u64, u64)) {}
}

/// What the kernel program tells uvs of a flow it carries
/// ([`PacketIo::kernel_flows`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelFlow {
    /// The link its frames arrive on.
    pub link: u8,
    pub flow: AnyFlow,
    /// The client's MAC (its frames' source).
    pub client_mac: [u8; 6],
    pub what: KernelFlowEvent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelFlowEvent {
    /// The program scheduled the flow at its first frame (with these TCP
    /// flags: a SYN; 0 for UDP) to real server `dest_id`, and forwarded
    /// it: `packets` frames on the wire (a super-frame is several) of
    /// `bytes` IP bytes, which uvs counts (the flow's own counts in the
    /// program start after them).
    New {
        dest_id: u64,
        tcp_flags: u8,
        packets: u64,
        bytes: u64,
    },
    /// The client's first ACK of a TCP flow the program scheduled passed.
    Established,
    /// A UDP flow the program scheduled (to real server `dest_id`) sent
    /// its second datagram: no longer a one-packet entry.
    Seen { dest_id: u64 },
    /// The client's FIN or RST (a frame with these flags) on a flow the
    /// program carries, which it forwarded and goes on forwarding.
    Close { tcp_flags: u8 },
}

/// A flow's client-side 5-tuple, as the kernel program keys it (in map
/// `flows`, or `flows6` for an IPv6 one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowTuple<A = Ipv4Addr> {
    pub saddr: A,
    pub daddr: A,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
}

/// A flow handed to the kernel program: its frames go out of the link
/// they came in on, to `dmac` from `smac`, and one every `up_every_ms`
/// still goes up to uvs (its timer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handover<A = Ipv4Addr> {
    pub flow: FlowTuple<A>,
    pub dmac: [u8; 6],
    pub smac: [u8; 6],
    pub up_every_ms: u64,
    /// TUN (an IPv4 flow to an IPv4 real server): the outer header's
    /// ends, the director's tunnel source and the real server; `dmac` is
    /// then the next hop's. `None`: DR.
    pub tun: Option<IpipRepr>,
    /// uvs's id of the real server: the program counts the flow's frames
    /// under it ([`PacketIo::real_counts`]).
    pub dest_id: u64,
}

impl<A> Handover<A> {
    /// The same hand-over of `flow` (`self`'s flow with its family named).
    pub fn of<B>(&self, flow: FlowTuple<B>) -> Handover<B> {
        Handover {
            flow,
            dmac: self.dmac,
            smac: self.smac,
            up_every_ms: self.up_every_ms,
            tun: self.tun,
            dest_id: self.dest_id,
        }
    }
}

/// A flow tuple with its family named, for a backend's per-family maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnyFlow {
    V4(FlowTuple<Ipv4Addr>),
    V6(FlowTuple<Ipv6Addr>),
}

/// An address family whose flows the kernel programs forward: names a
/// generic tuple's family, so a backend picks that family's map.
pub trait FlowFamily: crate::lvs::addr::Addr {
    fn any(t: FlowTuple<Self>) -> AnyFlow;
}

impl FlowFamily for Ipv4Addr {
    fn any(t: FlowTuple<Self>) -> AnyFlow {
        AnyFlow::V4(t)
    }
}

impl FlowFamily for Ipv6Addr {
    fn any(t: FlowTuple<Self>) -> AnyFlow {
        AnyFlow::V6(t)
    }
}

/// What the kernel program forwarded of one flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offloaded {
    pub packets: u64,
    pub bytes: u64,
}

/// Which packet I/O `uvs director` uses (`--io`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum IoKind {
    /// AF_PACKET with the tc program (`--offload`): established DR
    /// flows and the new flows it can schedule stay in the kernel; without
    /// the program if it cannot be attached (the reason is logged). One
    /// worker; several use AF_PACKET alone.
    #[default]
    Auto,
    /// AF_XDP with uvs's XDP program, or the start fails with the reason.
    Xdp,
    /// Batched AF_PACKET sockets only.
    Packet,
    /// AF_PACKET with a TPACKET_V3 receive ring (no system call per
    /// received batch; a few ms more latency at low rates).
    PacketRing,
}

/// Whether established DR flows go to a kernel program (`--offload`), and
/// where the tc program sends their frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Offload {
    #[default]
    Off,
    /// On a veth whose peer is in another namespace, the tc program hands
    /// a frame to the peer's receive path (bpf_redirect_peer); elsewhere
    /// out of the link's transmit.
    On,
    /// Always out of the link's transmit (`--offload-egress`), so the
    /// link's egress qdisc, tc egress and captures see the frames.
    Egress,
}

impl Offload {
    pub fn is_on(self) -> bool {
        self != Offload::Off
    }
}

/// The director's backend, chosen at start.
pub enum Backend {
    Packet(afpacket::AfPacketLinks),
    Xdp(xdp::XdpLinks),
}

/// What failed opening a backend.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A packet socket (the error names the interface).
    #[error("cannot capture on {0}")]
    Capture(#[source] io::Error),
    /// The interface itself (its index).
    #[error("{link}: {source}")]
    Link {
        link: String,
        #[source]
        source: io::Error,
    },
    /// An AF_XDP socket.
    #[error("AF_XDP on {link} queue {queue}: {source}")]
    Xsk {
        link: String,
        queue: u32,
        #[source]
        source: io::Error,
    },
    /// The kernel program that steers to the sockets.
    #[error(transparent)]
    Program(#[from] bpf::Error),
}

macro_rules! each {
    ($self:ident, $b:ident => $e:expr) => {
        match $self {
            Backend::Packet($b) => $e,
            Backend::Xdp($b) => $e,
        }
    };
}

impl PacketIo for Backend {
    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<RxMeta>> {
        each!(self, b => b.recv(buf, timeout))
    }
    fn send(&mut self, link: u8, frame: &[u8]) -> io::Result<()> {
        each!(self, b => b.send(link, frame))
    }
    fn send_gso(&mut self, link: u8, frame: &[u8], tx: GsoTx) -> Option<io::Result<()>> {
        each!(self, b => b.send_gso(link, frame, tx))
    }
    fn flush(&mut self) {
        each!(self, b => b.flush())
    }
    fn wake_on(&mut self, fd: i32) {
        each!(self, b => b.wake_on(fd))
    }
    fn tx_errors(&mut self) -> u64 {
        each!(self, b => b.tx_errors())
    }
    fn offload<A: FlowFamily>(&mut self, link: u8, h: &Handover<A>) -> bool {
        each!(self, b => b.offload(link, h))
    }
    fn unoffload<A: FlowFamily>(&mut self, link: u8, flow: &FlowTuple<A>) -> Option<Offloaded> {
        each!(self, b => b.unoffload(link, flow))
    }
    fn offloaded_frames(&mut self) -> u64 {
        each!(self, b => b.offloaded_frames())
    }
    fn kernel_flows(&mut self, each: &mut impl FnMut(KernelFlow)) {
        each!(self, b => b.kernel_flows(each))
    }
    fn set_room(&mut self, room: bool) {
        each!(self, b => b.set_room(room))
    }
    fn kernel_ring_full(&mut self) -> u64 {
        each!(self, b => b.kernel_ring_full())
    }
    fn real_counts(&mut self, ids: &[u64], each: &mut impl FnMut(u64, u64, u64)) {
        each!(self, b => b.real_counts(ids, each))
    }
    fn rx_drops(&mut self) -> u64 {
        each!(self, b => b.rx_drops())
    }
    fn steered(&mut self) -> u64 {
        each!(self, b => b.steered())
    }
}
