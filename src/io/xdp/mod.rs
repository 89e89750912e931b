//! The AF_XDP backend: the XDP program (`io/bpf/`) on each director link
//! steers the frames uvs handles (to a VIP; NAT replies from a real
//! server's port) into an AF_XDP socket per receive queue (`xsk.rs`), and
//! passes everything else to the kernel. Beside the sockets the link keeps
//! its AF_PACKET socket, which sees what the kernel gets: ARP, ICMP, a
//! frame the maps do not claim yet. So the XDP maps only decide how fast a
//! frame reaches uvs, never whether it does.

mod meta;
pub mod xsk;

use super::afpacket::AfPacketLinks;
use super::bpf::{FlowMaps, Steering};
use super::{FlowFamily, FlowTuple, GsoTx, Handover, Offloaded, OpenError, PacketIo, RxMeta};
use meta::{classify, unfinished_checksum};
use std::io;
use std::time::Duration;
use xsk::Xsk;

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
    ) -> Result<XdpLinks, OpenError> {
        let pkt = AfPacketLinks::open(ifnames).map_err(OpenError::Capture)?;
        let mut queues = Vec::new();
        for (i, name) in ifnames.iter().enumerate() {
            let idx = crate::host::sys::ifindex(name).map_err(|source| OpenError::Link {
                link: name.clone(),
                source,
            })? as u32;
            for queue in 0..rx_queues(name) {
                let xsk = Xsk::open(idx, queue).map_err(|source| OpenError::Xsk {
                    link: name.clone(),
                    queue,
                    source,
                })?;
                steering.register(i, xsk.queue, xsk.fd())?;
                queues.push(Queue {
                    link: i as u8,
                    mac: macs.get(i).copied().unwrap_or_default(),
                    xsk,
                    drops: 0,
                });
            }
        }
        let flows = steering.take_flow_maps(1)?.swap_remove(0);
        // The program's events wake the data plane as frames do.
        let pfds = crate::host::sys::pollin(
            queues
                .iter()
                .map(|q| q.xsk.fd())
                .chain(pkt.fds())
                .chain(flows.event_fds()),
        );
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
    fn send_gso(&mut self, link: u8, frame: &[u8], tx: GsoTx) -> Option<io::Result<()>> {
        self.pkt.send_gso(link, frame, tx)
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

    /// TUN flows stay with uvs: the XDP program does not wrap (only the
    /// tc program does).
    fn offload<A: FlowFamily>(&mut self, link: u8, h: &Handover<A>) -> bool {
        h.tun.is_none() && self.flows.offload(link, h)
    }

    fn unoffload<A: FlowFamily>(&mut self, link: u8, flow: &FlowTuple<A>) -> Option<Offloaded> {
        self.flows.unoffload(link, flow)
    }

    fn offloaded_frames(&mut self) -> u64 {
        self.flows.offloaded_frames()
    }

    fn kernel_flows(&mut self, each: &mut impl FnMut(crate::io::KernelFlow)) {
        self.flows.kernel_flows(each)
    }

    fn set_room(&mut self, room: bool) {
        self.flows.set_room(room)
    }

    fn kernel_ring_full(&mut self) -> u64 {
        self.flows.ring_full()
    }

    fn real_counts(&mut self, ids: &[u64], each: &mut impl FnMut(u64, u64, u64)) {
        self.flows.real_counts(ids, each)
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
