//! The packet-socket calls of the AF_PACKET backend (and of ARP probes
//! and captures), raw: rustix has no `sockaddr_ll`, no PACKET_STATISTICS
//! and no recvmmsg (its sendmmsg would need the headers [`Mmsg`] shares
//! with receiving).

use super::{cvt, cvt_len, getsockopt};
use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// Binds a packet socket to protocol `proto` (network order) on
/// interface `ifindex`.
pub fn bind_packet(fd: &OwnedFd, proto: u16, ifindex: i32) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = ifindex;
    let (p, n) = (
        &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
        mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
    );
    // SAFETY: sll is a valid sockaddr_ll and its size is passed.
    cvt(unsafe { libc::bind(fd.as_raw_fd(), p, n) }).map(|_| ())
}

/// Asks interface `ifindex` to pass up every multicast frame while the
/// socket is open (PACKET_MR_ALLMULTI, dropped with the socket): neighbour
/// solicitations for an IPv6 VIP go to its solicited-node group, which
/// only the VIP's owner joins, and the VIP is not configured here.
pub fn allmulti(fd: &OwnedFd, ifindex: i32) -> io::Result<()> {
    let mr = libc::packet_mreq {
        mr_ifindex: ifindex,
        mr_type: libc::PACKET_MR_ALLMULTI as u16,
        mr_alen: 0,
        mr_address: [0; 8],
    };
    super::setsockopt(fd, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mr)
}

/// Frames a packet socket dropped because its receive buffer was full
/// since the last call (PACKET_STATISTICS resets on read).
pub fn packet_drops(fd: impl AsFd) -> io::Result<u64> {
    let st: libc::tpacket_stats = getsockopt(fd, libc::SOL_PACKET, libc::PACKET_STATISTICS)?;
    Ok(u64::from(st.tp_drops))
}

/// A packet socket's frame: its length (at most the buffer's), the link
/// type and whether the host sent it (PACKET_OUTGOING).
pub fn recv_packet(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<(usize, u16, bool)> {
    // SAFETY: sockaddr_ll is plain data.
    let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: buf and sll are valid for the lengths given.
    let n = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
            libc::MSG_TRUNC,
            &mut sll as *mut _ as *mut libc::sockaddr,
            &mut len,
        )
    };
    let n = cvt_len(n)?.min(buf.len());
    Ok((n, sll.sll_hatype, sll.sll_pkttype == libc::PACKET_OUTGOING))
}

/// Buffers and headers for recvmmsg(2) and sendmmsg(2) of up to `n`
/// frames of up to `size` bytes each, built once: no allocation and one
/// system call per batch. The headers point into the buffers, which never
/// move (the vectors are never grown after `new`).
pub struct Mmsg {
    bufs: Vec<u8>,
    size: usize,
    iov: Vec<libc::iovec>,
    names: Vec<libc::sockaddr_ll>,
    hdrs: Vec<libc::mmsghdr>,
    lens: Vec<usize>,
    /// Receive: frames received by the last call. Send: frames queued.
    count: usize,
    /// Send: frames of the queue already sent.
    sent: usize,
}

// SAFETY: the raw pointers in the headers point only into the buffers
// this value owns, so moving it to another thread moves them together.
unsafe impl Send for Mmsg {}

impl Mmsg {
    pub fn new(n: usize, size: usize) -> Mmsg {
        let mut m = Mmsg {
            bufs: vec![0u8; n * size],
            size,
            // SAFETY: iovec, sockaddr_ll and mmsghdr are plain data; zero
            // is a valid value of each.
            iov: vec![unsafe { mem::zeroed() }; n],
            names: vec![unsafe { mem::zeroed() }; n],
            hdrs: vec![unsafe { mem::zeroed() }; n],
            lens: vec![0; n],
            count: 0,
            sent: 0,
        };
        let base = m.bufs.as_mut_ptr();
        for i in 0..n {
            // SAFETY: i * size is within bufs (n * size bytes).
            m.iov[i].iov_base = unsafe { base.add(i * size) }.cast();
            m.iov[i].iov_len = size;
            m.hdrs[i].msg_hdr.msg_iov = &mut m.iov[i];
            m.hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        m
    }

    pub fn capacity(&self) -> usize {
        self.hdrs.len()
    }

    /// Receives up to `capacity` frames without waiting; how many (0:
    /// none waiting, or a signal came).
    pub fn recv(&mut self, fd: &OwnedFd) -> io::Result<usize> {
        let namelen = mem::size_of::<libc::sockaddr_ll>() as u32;
        for i in 0..self.hdrs.len() {
            self.iov[i].iov_len = self.size;
            self.hdrs[i].msg_hdr.msg_name = (&mut self.names[i] as *mut libc::sockaddr_ll).cast();
            self.hdrs[i].msg_hdr.msg_namelen = namelen;
            self.hdrs[i].msg_hdr.msg_flags = 0;
        }
        // SAFETY: every header points at live buffers of the sizes given,
        // owned by self for the duration of the call.
        let r = unsafe {
            libc::recvmmsg(
                fd.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                self.hdrs.len() as libc::c_uint,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                std::ptr::null_mut(),
            )
        };
        self.count = match cvt(r) {
            Ok(n) => n as usize,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                0
            }
            Err(e) => return Err(e),
        };
        Ok(self.count)
    }

    /// Received frame `i`: its bytes (cut at the buffer), its packet type
    /// (sll_pkttype) and whether it was larger than the buffer.
    pub fn received(&self, i: usize) -> Option<(&[u8], u8, bool)> {
        if i >= self.count {
            return None;
        }
        let len = self.hdrs[i].msg_len as usize;
        let truncated = self.hdrs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0 || len > self.size;
        let b = &self.bufs[i * self.size..i * self.size + len.min(self.size)];
        Some((b, self.names[i].sll_pkttype, truncated))
    }

    /// Send: the next free buffer, whole; `None` when the queue is full.
    pub fn slot(&mut self) -> Option<&mut [u8]> {
        let i = self.count;
        (i < self.hdrs.len()).then(|| &mut self.bufs[i * self.size..(i + 1) * self.size])
    }

    /// Send: queues the first `len` bytes of the buffer `slot` gave.
    pub fn commit(&mut self, len: usize) {
        let i = self.count;
        if i < self.hdrs.len() {
            self.lens[i] = len.min(self.size);
            self.count += 1;
        }
    }

    /// Send: frames queued and not sent yet.
    pub fn queued(&self) -> usize {
        self.count - self.sent
    }

    /// Send: one sendmmsg(2) of what is queued; returns how many went. The
    /// rest stays queued (the socket's queue was full); an empty queue
    /// starts over.
    pub fn send(&mut self, fd: &OwnedFd) -> io::Result<usize> {
        for i in self.sent..self.count {
            self.iov[i].iov_len = self.lens[i];
            self.hdrs[i].msg_hdr.msg_name = std::ptr::null_mut();
            self.hdrs[i].msg_hdr.msg_namelen = 0;
        }
        let n = self.count - self.sent;
        if n == 0 {
            return Ok(0);
        }
        // SAFETY: headers sent..count point at live, filled buffers.
        let r = unsafe {
            libc::sendmmsg(
                fd.as_raw_fd(),
                self.hdrs.as_mut_ptr().add(self.sent),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        let sent = cvt(r)? as usize;
        self.sent += sent;
        if self.sent == self.count {
            (self.sent, self.count) = (0, 0);
        }
        Ok(sent)
    }

    /// Send: gives up on the first frame still queued.
    pub fn skip_one(&mut self) {
        if self.sent < self.count {
            self.sent += 1;
        }
        if self.sent == self.count {
            (self.sent, self.count) = (0, 0);
        }
    }

    /// Send: drops what is queued (after an error that would repeat).
    pub fn discard(&mut self) -> usize {
        let n = self.queued();
        (self.sent, self.count) = (0, 0);
        n
    }
}
