//! AF_PACKET backend with PACKET_VNET_HDR.
//!
//! pnet's datalink channel cannot be used here: it exposes neither the
//! packet type (sll_pkttype) nor the offload state of a frame, and it
//! truncates frames at 4 KiB. With PACKET_VNET_HDR the kernel prefixes every
//! frame with a virtio_net_hdr that says both whether the L4 checksum is
//! unfinished (VIRTIO_NET_HDR_F_NEEDS_CSUM, set exactly when
//! PACKET_AUXDATA would report TP_STATUS_CSUMNOTREADY) and whether the frame
//! is a GSO super-frame and its segment size, which segmentation needs and
//! auxdata does not carry.

use super::{Gso, PacketIo, PacketType, RxMeta};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use crate::host::sys::{self, setsockopt_int};

const VNET_HDR_LEN: usize = 10;
const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
const VIRTIO_NET_HDR_GSO_TCPV4: u8 = 1;
const VIRTIO_NET_HDR_GSO_ECN: u8 = 0x80;
const PACKET_VNET_HDR: libc::c_int = 15;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

pub struct AfPacket {
    fd: OwnedFd,
    pub ifindex: i32,
}

impl AfPacket {
    /// Opens a socket that sees every frame on `ifname` (ETH_P_ALL), except
    /// the ones this host sends, with offload metadata.
    pub fn open(ifname: &str) -> io::Result<AfPacket> {
        let ifindex = sys::ifindex(ifname)?;
        let proto = (libc::ETH_P_ALL as u16).to_be();
        let fd = sys::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK,
            i32::from(proto),
        )?;
        let f = fd.as_raw_fd();
        setsockopt_int(f, libc::SOL_PACKET, PACKET_VNET_HDR, 1)?;
        setsockopt_int(f, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)?;
        // A burst of new connections must not overflow the queue.
        sys::raise_rcvbuf(&fd, 8 << 20)?;
        sys::bind_packet(&fd, proto, ifindex)?;
        Ok(AfPacket { fd, ifindex })
    }

    fn wait(&self, events: i16, timeout: Duration) -> io::Result<bool> {
        let mut p = [libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events,
            revents: 0,
        }];
        Ok(sys::poll(&mut p, timeout)? > 0)
    }

    fn try_recv(&mut self, buf: &mut [u8]) -> io::Result<Option<RxMeta>> {
        let mut vnet = [0u8; VNET_HDR_LEN];
        let mut iov = [sys::iovec_mut(&mut vnet), sys::iovec_mut(buf)];
        let Some(m) = sys::recvmsg_packet(&self.fd, &mut iov)? else {
            return Ok(None);
        };
        let n = m.len;
        if n < VNET_HDR_LEN {
            return Err(io::Error::other("frame shorter than its vnet header"));
        }
        let len = n - VNET_HDR_LEN;
        if len > buf.len() || m.truncated {
            return Err(io::Error::other(format!(
                "frame of {len} bytes truncated to {}",
                buf.len()
            )));
        }
        let rd = |i: usize| u16::from_ne_bytes([vnet[i], vnet[i + 1]]);
        let flags = vnet[0];
        let gso_type = vnet[1] & !VIRTIO_NET_HDR_GSO_ECN;
        let meta = RxMeta {
            len,
            pkt_type: match m.pkt_type {
                0 => PacketType::Host,
                1 => PacketType::Broadcast,
                2 => PacketType::Multicast,
                4 => PacketType::Outgoing,
                _ => PacketType::OtherHost,
            },
            csum_partial: (flags & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0).then(|| (rd(6), rd(8))),
            gso: (gso_type != 0).then(|| Gso {
                tcpv4: gso_type == VIRTIO_NET_HDR_GSO_TCPV4,
                size: rd(4),
            }),
            link: 0,
        };
        Ok(Some(meta))
    }
}

impl PacketIo for AfPacket {
    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<RxMeta>> {
        if let Some(m) = self.try_recv(buf)? {
            return Ok(Some(m));
        }
        if self.wait(libc::POLLIN, timeout)? {
            return self.try_recv(buf);
        }
        Ok(None)
    }

    /// One socket is one link: `link` is ignored.
    fn send(&mut self, _link: u8, frame: &[u8]) -> io::Result<()> {
        self.send_frame(frame)
    }

    fn rx_drops(&mut self) -> u64 {
        sys::packet_drops(&self.fd).unwrap_or(0)
    }
}

/// Several interfaces, one AF_PACKET socket each, polled together: link `i`
/// is the `i`-th socket. (One unbound socket would see every interface of
/// the host, the busy management interface included.)
pub struct AfPacketLinks {
    socks: Vec<AfPacket>,
    /// Where the next receive starts, so a busy link cannot starve another.
    next: usize,
}

impl AfPacketLinks {
    pub fn open(ifnames: &[String]) -> io::Result<AfPacketLinks> {
        if ifnames.is_empty() || ifnames.len() > usize::from(u8::MAX) {
            return Err(io::Error::other("between 1 and 255 interfaces"));
        }
        let socks = ifnames
            .iter()
            .map(|n| AfPacket::open(n).map_err(|e| io::Error::other(format!("{n}: {e}"))))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(AfPacketLinks { socks, next: 0 })
    }

    fn try_each(&mut self, buf: &mut [u8]) -> io::Result<Option<RxMeta>> {
        let n = self.socks.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            if let Some(mut m) = self.socks[i].try_recv(buf)? {
                self.next = (i + 1) % n;
                m.link = i as u8;
                return Ok(Some(m));
            }
        }
        Ok(None)
    }
}

impl PacketIo for AfPacketLinks {
    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<RxMeta>> {
        if let Some(m) = self.try_each(buf)? {
            return Ok(Some(m));
        }
        let mut fds: Vec<libc::pollfd> = self
            .socks
            .iter()
            .map(|s| libc::pollfd {
                fd: s.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        if sys::poll(&mut fds, timeout)? == 0 {
            return Ok(None);
        }
        self.try_each(buf)
    }

    fn send(&mut self, link: u8, frame: &[u8]) -> io::Result<()> {
        match self.socks.get_mut(usize::from(link)) {
            Some(s) => s.send_frame(frame),
            None => Err(io::Error::other(format!("no link {link}"))),
        }
    }

    fn rx_drops(&mut self) -> u64 {
        self.socks.iter_mut().map(|s| s.rx_drops()).sum()
    }
}

impl AfPacket {
    fn send_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        let vnet = [0u8; VNET_HDR_LEN];
        let iov = [sys::iovec(&vnet), sys::iovec(frame)];
        for _ in 0..8 {
            let Err(e) = sys::sendmsg(&self.fd, &iov) else {
                return Ok(());
            };
            match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::ENOBUFS) | Some(libc::EINTR) => {
                    self.wait(libc::POLLOUT, Duration::from_millis(5))?;
                }
                _ => return Err(e),
            }
        }
        Err(io::Error::other("transmit queue stayed full"))
    }
}
