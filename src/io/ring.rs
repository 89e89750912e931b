//! A TPACKET_V3 receive ring for the AF_PACKET backend (`--io
//! packet-ring`): the kernel writes frames into blocks of memory shared
//! with uvs and hands a block over when it is full or `RETIRE_MS` after
//! its first frame, so a busy link costs no system call per batch at all
//! (recvmmsg costs one per 32 frames), only a poll when uvs has read
//! everything. The price is latency at low rates: a frame can wait in a
//! block that is not full until its retire timer fires (`RETIRE_MS`,
//! rounded up to a jiffy by the kernel: 4 ms at HZ=250). Sending stays batched
//! sendmmsg (a TX ring saves little over it for forwarding).
//!
//! Layouts from linux/if_packet.h: a block starts with
//! `tpacket_block_desc` (version, offset_to_priv, then `tpacket_hdr_v1`:
//! block_status, num_pkts, offset_to_first_pkt, ...); each frame starts
//! with `tpacket3_hdr` (tp_next_offset, ..., tp_snaplen, tp_len,
//! tp_status, tp_mac, ...), followed by its `sockaddr_ll`, then (with
//! PACKET_VNET_HDR) the virtio_net_hdr just before the frame at tp_mac.

use crate::host::sys::{self, Mapping};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

const PACKET_VERSION: i32 = 10;
const PACKET_RX_RING: i32 = 5;
const TPACKET_V3: i32 = 2;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
/// A frame the ring could not hold whole (tp_snaplen < tp_len).
const TP_STATUS_COPY: u32 = 1 << 1;
/// Blocks of 256 KiB (a 64 KiB super-frame fits), 32 of them: 8 MiB per
/// socket, the receive buffer the plain backend asks for.
const BLOCK: u32 = 256 << 10;
const BLOCKS: u32 = 32;
const FRAME: u32 = 2048;
const RETIRE_MS: u32 = 1;
/// tpacket3_hdr's size, aligned (TPACKET_ALIGN): where sockaddr_ll starts.
const HDR3: usize = 48;
const SLL_PKTTYPE: usize = 10;

#[repr(C)]
#[derive(Clone, Copy)]
struct Req3 {
    block_size: u32,
    block_nr: u32,
    frame_size: u32,
    frame_nr: u32,
    retire_blk_tov: u32,
    sizeof_priv: u32,
    feature_req_word: u32,
}

/// One received frame in the ring: its bytes (from `tp_mac - before`),
/// its sll_pkttype, and whether it was cut short.
pub struct Slot<'a> {
    pub bytes: &'a [u8],
    pub pkt_type: u8,
    pub truncated: bool,
}

pub struct RxRing {
    map: Mapping,
    /// The block being read.
    block: usize,
    /// In it: the next frame's offset (0: the block is not open) and
    /// how many frames are left.
    next: usize,
    left: u32,
}

// SAFETY: the ring's mapping is owned by this value alone; only the
// thread that holds it reads the blocks on our side, so moving it to the
// data-plane thread is sound.
unsafe impl Send for RxRing {}

impl RxRing {
    /// Sets `fd` (a packet socket, not bound yet) to TPACKET_V3 and maps
    /// its receive ring.
    pub fn attach(fd: &OwnedFd) -> io::Result<RxRing> {
        sys::setsockopt(fd, libc::SOL_PACKET, PACKET_VERSION, &TPACKET_V3)?;
        let req = Req3 {
            block_size: BLOCK,
            block_nr: BLOCKS,
            frame_size: FRAME,
            frame_nr: BLOCK / FRAME * BLOCKS,
            retire_blk_tov: RETIRE_MS,
            sizeof_priv: 0,
            feature_req_word: 0,
        };
        sys::setsockopt(fd, libc::SOL_PACKET, PACKET_RX_RING, &req)?;
        let map = Mapping::new(Some(fd.as_fd()), (BLOCK * BLOCKS) as usize, 0)?;
        Ok(RxRing {
            map,
            block: 0,
            next: 0,
            left: 0,
        })
    }

    fn block_base(&self, i: usize) -> *mut u8 {
        // SAFETY: i < BLOCKS, inside the mapping.
        unsafe { self.map.ptr.as_ptr().add(i * BLOCK as usize) }
    }

    /// The block's status word, shared with the kernel.
    fn status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: block_status is the aligned u32 at offset 8 of the
        // block descriptor, which lives as long as the mapping.
        unsafe { &*(self.block_base(i).add(8) as *const AtomicU32) }
    }

    fn read_u32(&self, off: usize) -> u32 {
        let base = self.block_base(self.block);
        let mut b = [0u8; 4];
        // SAFETY: callers keep off + 4 within the block.
        unsafe { std::ptr::copy_nonoverlapping(base.add(off), b.as_mut_ptr(), 4) };
        u32::from_ne_bytes(b)
    }

    fn read_u16(&self, off: usize) -> u16 {
        let base = self.block_base(self.block);
        let mut b = [0u8; 2];
        // SAFETY: as read_u32.
        unsafe { std::ptr::copy_nonoverlapping(base.add(off), b.as_mut_ptr(), 2) };
        u16::from_ne_bytes(b)
    }

    /// The next frame, with `before` bytes ahead of its MAC header (the
    /// vnet header), or `None` when the kernel has handed over nothing
    /// more. The frame stays valid until the next call.
    pub fn next(&mut self, before: usize) -> io::Result<Option<Slot<'_>>> {
        let block = BLOCK as usize;
        if self.next == 0 {
            if self.status(self.block).load(Ordering::Acquire) & TP_STATUS_USER == 0 {
                return Ok(None);
            }
            self.left = self.read_u32(12);
            self.next = self.read_u32(16) as usize;
        }
        if self.left == 0 || self.next == 0 || self.next + HDR3 + 20 > block {
            // Done with this block (or it made no sense): give it back.
            self.status(self.block)
                .store(TP_STATUS_KERNEL, Ordering::Release);
            self.block = (self.block + 1) % BLOCKS as usize;
            self.next = 0;
            return self.next(before);
        }
        let at = self.next;
        let next_off = self.read_u32(at) as usize;
        let snaplen = self.read_u32(at + 12) as usize;
        let len = self.read_u32(at + 16) as usize;
        let status = self.read_u32(at + 20);
        let mac = self.read_u16(at + 24) as usize;
        let pkt_type = {
            let base = self.block_base(self.block);
            // SAFETY: at + HDR3 + 20 <= block, checked above.
            unsafe { *base.add(at + HDR3 + SLL_PKTTYPE) }
        };
        self.left -= 1;
        match next_off {
            0 => self.left = 0,
            n => self.next = at + n,
        }
        let start = (at + mac).checked_sub(before);
        let end = at + mac + snaplen;
        let Some(start) = start.filter(|_| end <= block && mac >= HDR3) else {
            return Err(io::Error::other("a ring frame outside its block"));
        };
        // SAFETY: start..end lies inside the block (checked), which the
        // kernel does not touch until it is given back.
        let bytes = unsafe {
            std::slice::from_raw_parts(self.block_base(self.block).add(start), end - start)
        };
        Ok(Some(Slot {
            bytes,
            pkt_type,
            truncated: snaplen < len || status & TP_STATUS_COPY != 0,
        }))
    }
}
