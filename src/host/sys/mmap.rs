//! Shared memory mapped from the kernel (a packet socket's TPACKET_V3
//! ring, an AF_XDP socket's rings) or fresh (an AF_XDP UMEM), through
//! rustix, unmapped on drop.

use rustix::mm::{MapFlags, ProtFlags, mmap, mmap_anonymous, munmap};
use std::io;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;

/// A mapping of shared memory, unmapped on drop.
pub struct Mapping {
    pub ptr: NonNull<u8>,
    pub len: usize,
}

impl Mapping {
    /// `len` bytes of `fd` from `offset` (shared), or of fresh memory
    /// (`None`); populated at once either way.
    pub fn new(fd: Option<BorrowedFd<'_>>, len: usize, offset: u64) -> io::Result<Mapping> {
        let prot = ProtFlags::READ | ProtFlags::WRITE;
        // SAFETY: a fresh mapping at an address the kernel picks; the
        // kernel checks fd and offset.
        let p = unsafe {
            match fd {
                Some(fd) => mmap(
                    std::ptr::null_mut(),
                    len,
                    prot,
                    MapFlags::SHARED | MapFlags::POPULATE,
                    fd,
                    offset,
                ),
                // Populated now: no page faults on the data path, and the
                // memory shows in the director's size from the start.
                None => mmap_anonymous(
                    std::ptr::null_mut(),
                    len,
                    prot,
                    MapFlags::PRIVATE | MapFlags::POPULATE,
                ),
            }
        }?;
        Ok(Mapping {
            ptr: NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap gave null"))?,
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what new() mapped, which nothing uses
        // once its owner drops it.
        let _ = unsafe { munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
