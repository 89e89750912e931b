//! One AF_XDP socket on one receive queue, with its own UMEM: the four
//! rings mapped from the kernel and a fixed pool of frames, so receiving
//! and sending are loads and stores on shared memory, and the only system
//! calls are a kick to transmit (copy mode needs it) and a poll to wait.
//!
//! The socket calls (options, ring offsets, bind, the transmit kick,
//! statistics) are rustix's safe AF_XDP wrappers; the rings themselves are
//! written here rather than taken from xsk-rs (which builds libxdp and
//! libbpf from C) or the `xdp` crate: the protocol is four single-producer
//! rings and the part uvs needs is small (docs/io.md).

use crate::host::sys::Mapping;
use rustix::net::sockopt;
use rustix::net::xdp::{
    SocketAddrXdp, SocketAddrXdpFlags, XDP_PGOFF_RX_RING, XDP_PGOFF_TX_RING,
    XDP_UMEM_PGOFF_COMPLETION_RING, XDP_UMEM_PGOFF_FILL_RING, XdpDesc, XdpDescOptions,
    XdpRingFlags, XdpRingOffset, XdpUmemReg, XdpUmemRegFlags,
};
use rustix::net::{AddressFamily, SendFlags, SocketFlags, SocketType};
use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

/// One frame of the UMEM: a page, so a 1500-byte frame and the kernel's
/// headroom always fit.
pub const FRAME: u32 = 4096;
/// Entries in each ring.
const RING: u32 = 2048;
/// Frames in the UMEM: the fill ring's share, then the transmit pool.
const FRAMES: u32 = 2 * RING;

/// A ring shared with the kernel: producer and consumer indexes that run
/// freely (wrapping), `RING` entries of `T`, and the kernel's flags word.
struct Ring<T> {
    _map: Mapping,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    desc: *mut T,
    /// Our side's index, published with a release store.
    local: u32,
    /// The other side's index as last read (acquire).
    seen: u32,
}

impl<T: Copy> Ring<T> {
    fn map(fd: &OwnedFd, off: &XdpRingOffset, pgoff: u64) -> io::Result<Ring<T>> {
        // Linux 5.4 on, as XDP_USE_NEED_WAKEUP.
        let flags = off
            .flags
            .ok_or_else(|| io::Error::other("AF_XDP rings without a flags word (Linux < 5.4)"))?;
        let len = off.desc as usize + RING as usize * mem::size_of::<T>();
        let m = Mapping::new(Some(fd.as_fd()), len, pgoff)?;
        let base = m.ptr.as_ptr();
        // SAFETY: the offsets come from the kernel for this mapping.
        unsafe {
            Ok(Ring {
                producer: base.add(off.producer as usize).cast(),
                consumer: base.add(off.consumer as usize).cast(),
                flags: base.add(flags as usize).cast(),
                desc: base.add(off.desc as usize).cast(),
                _map: m,
                local: 0,
                seen: 0,
            })
        }
    }

    fn load(p: *const AtomicU32) -> u32 {
        // SAFETY: p points into the live mapping, 4-byte aligned.
        unsafe { (*p).load(Ordering::Acquire) }
    }

    fn store(p: *const AtomicU32, v: u32) {
        // SAFETY: as for load.
        unsafe { (*p).store(v, Ordering::Release) }
    }

    fn needs_wakeup(&self) -> bool {
        Self::load(self.flags) & XdpRingFlags::XDP_RING_NEED_WAKEUP.bits() != 0
    }

    fn slot(&self, i: u32) -> *mut T {
        // SAFETY: masked into the ring's RING entries.
        unsafe { self.desc.add((i & (RING - 1)) as usize) }
    }

    // Producer side (fill, tx): `local` is our producer.

    /// Room for one more entry.
    fn has_room(&mut self) -> bool {
        if self.local.wrapping_sub(self.seen) < RING {
            return true;
        }
        self.seen = Self::load(self.consumer);
        self.local.wrapping_sub(self.seen) < RING
    }

    /// Writes an entry (after `has_room`); `publish` makes it visible.
    fn put(&mut self, v: T) {
        // SAFETY: slot() is in bounds; has_room() kept the kernel off it.
        unsafe { self.slot(self.local).write(v) };
        self.local = self.local.wrapping_add(1);
    }

    fn publish(&self) {
        Self::store(self.producer, self.local);
    }

    /// Entries published but not yet consumed by the kernel.
    fn in_flight(&self) -> u32 {
        self.local.wrapping_sub(Self::load(self.consumer))
    }

    // Consumer side (rx, completion): `local` is our consumer, `seen` the
    // kernel's producer.

    fn take(&mut self) -> Option<T> {
        if self.local == self.seen {
            self.seen = Self::load(self.producer);
            if self.local == self.seen {
                return None;
            }
        }
        // SAFETY: between our consumer and the kernel's producer.
        let v = unsafe { self.slot(self.local).read() };
        self.local = self.local.wrapping_add(1);
        Some(v)
    }

    fn release(&self) {
        Self::store(self.consumer, self.local);
    }
}

/// How the kernel runs the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Frames are copied between the driver and the UMEM (veth, any NIC).
    Copy,
    /// The NIC's DMA uses the UMEM itself.
    ZeroCopy,
}

pub struct Xsk {
    fd: OwnedFd,
    umem: Mapping,
    fill: Ring<u64>,
    comp: Ring<u64>,
    rx: Ring<XdpDesc>,
    tx: Ring<XdpDesc>,
    /// Transmit frames not in the kernel's hands.
    free: Vec<u64>,
    /// Transmit descriptors written since the last kick.
    unsent: u32,
    pub mode: Mode,
    pub queue: u32,
}

// SAFETY: the rings and the UMEM are mappings this value owns; only it
// reads or writes them on our side, so moving it to the data-plane thread
// is sound.
unsafe impl Send for Xsk {}

impl Xsk {
    /// Opens a socket bound to `queue` of `ifindex`, zero-copy where the
    /// driver can, copy mode otherwise, with every receive frame posted.
    pub fn open(ifindex: u32, queue: u32) -> io::Result<Xsk> {
        let fd = rustix::net::socket_with(
            AddressFamily::XDP,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            None,
        )?;
        let umem = Mapping::new(None, (FRAMES * FRAME) as usize, 0)?;
        let reg = XdpUmemReg {
            addr: umem.ptr.as_ptr() as u64,
            len: umem.len as u64,
            chunk_size: FRAME,
            headroom: 0,
            flags: XdpUmemRegFlags::empty(),
            tx_metadata_len: 0,
        };
        sockopt::set_xdp_umem_reg(&fd, reg)?;
        sockopt::set_xdp_umem_fill_ring_size(&fd, RING)?;
        sockopt::set_xdp_umem_completion_ring_size(&fd, RING)?;
        sockopt::set_xdp_rx_ring_size(&fd, RING)?;
        sockopt::set_xdp_tx_ring_size(&fd, RING)?;
        let off = sockopt::xdp_mmap_offsets(&fd)?;
        let mut x = Xsk {
            fill: Ring::map(&fd, &off.fr, XDP_UMEM_PGOFF_FILL_RING)?,
            comp: Ring::map(&fd, &off.cr, XDP_UMEM_PGOFF_COMPLETION_RING)?,
            rx: Ring::map(&fd, &off.rx, XDP_PGOFF_RX_RING)?,
            tx: Ring::map(&fd, &off.tx, XDP_PGOFF_TX_RING)?,
            free: (RING..FRAMES).map(|i| u64::from(i * FRAME)).collect(),
            unsent: 0,
            umem,
            fd,
            mode: Mode::Copy,
            queue,
        };
        for i in 0..RING {
            x.fill.put(u64::from(i * FRAME));
        }
        x.fill.publish();
        let bind = |flags: SocketAddrXdpFlags| {
            let sa = SocketAddrXdp::new(
                flags | SocketAddrXdpFlags::XDP_USE_NEED_WAKEUP,
                ifindex,
                queue,
            );
            rustix::net::bind(&x.fd, &sa)
        };
        if bind(SocketAddrXdpFlags::XDP_ZEROCOPY).is_ok() {
            x.mode = Mode::ZeroCopy;
        } else {
            bind(SocketAddrXdpFlags::XDP_COPY)?;
        }
        Ok(x)
    }

    pub fn fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    fn frame(&mut self, addr: u64, len: usize) -> Option<&mut [u8]> {
        let start = addr as usize;
        let end = start.checked_add(len)?;
        if end > self.umem.len || len > FRAME as usize {
            return None;
        }
        // SAFETY: in bounds of the UMEM, which lives as long as self; the
        // kernel does not touch a frame while it is ours (received and not
        // yet posted back, or not yet queued to send).
        Some(unsafe { std::slice::from_raw_parts_mut(self.umem.ptr.as_ptr().add(start), len) })
    }

    /// The next received frame, copied into `buf` (its frame goes straight
    /// back to the fill ring): its length, or `None` when the ring is
    /// empty. A descriptor the kernel should never give (out of the UMEM,
    /// larger than `buf`) is an error naming it.
    pub fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let Some(d) = self.rx.take() else {
            return Ok(None);
        };
        self.rx.release();
        let len = d.len as usize;
        let chunk = d.addr & !u64::from(FRAME - 1);
        let r = match self.frame(d.addr, len) {
            Some(f) if len <= buf.len() => {
                buf[..len].copy_from_slice(f);
                Ok(Some(len))
            }
            _ => Err(io::Error::other(format!(
                "AF_XDP queue {}: bad receive descriptor (address {:#x}, {len} bytes)",
                self.queue, d.addr
            ))),
        };
        // Room is certain: the fill ring holds at most RING frames.
        if self.fill.has_room() {
            self.fill.put(chunk);
            self.fill.publish();
        }
        r
    }

    /// Queues `frame` to send; `flush` (or a full batch) sends it.
    pub fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        if frame.len() > FRAME as usize {
            return Err(io::Error::other("frame larger than an AF_XDP frame"));
        }
        if self.free.is_empty() || !self.tx.has_room() {
            self.reap();
            if self.free.is_empty() || !self.tx.has_room() {
                self.kick();
                self.reap();
            }
        }
        let (Some(addr), true) = (self.free.pop(), self.tx.has_room()) else {
            return Err(io::Error::other("AF_XDP transmit ring stayed full"));
        };
        let Some(f) = self.frame(addr, frame.len()) else {
            return Err(io::Error::other("transmit frame outside the UMEM"));
        };
        f.copy_from_slice(frame);
        self.tx.put(XdpDesc {
            addr,
            len: frame.len() as u32,
            options: XdpDescOptions::empty(),
        });
        self.unsent += 1;
        if self.unsent >= 64 {
            self.flush();
        }
        Ok(())
    }

    /// Publishes what is queued and asks the kernel to send it.
    pub fn flush(&mut self) {
        if self.unsent > 0 {
            self.tx.publish();
            self.unsent = 0;
            self.kick();
        }
        self.reap();
    }

    /// Whether the kernel still has frames of ours to send.
    pub fn sending(&self) -> bool {
        self.tx.in_flight() > 0
    }

    fn kick(&mut self) {
        if self.tx.needs_wakeup() || self.mode == Mode::Copy {
            // A zero-length send is the AF_XDP transmit kick.
            let _ = rustix::net::send(&self.fd, &[], SendFlags::DONTWAIT);
        }
    }

    /// Takes back the frames the kernel has sent.
    fn reap(&mut self) {
        let mut any = false;
        while let Some(addr) = self.comp.take() {
            self.free.push(addr & !u64::from(FRAME - 1));
            any = true;
        }
        if any {
            self.comp.release();
        }
    }

    /// Receive frames the kernel dropped because the rings were full or
    /// the fill ring empty, since the socket opened.
    pub fn drops(&self) -> u64 {
        match sockopt::xdp_statistics(&self.fd) {
            Ok(s) => s.rx_dropped + s.rx_ring_full.unwrap_or(0),
            Err(_) => 0,
        }
    }
}
