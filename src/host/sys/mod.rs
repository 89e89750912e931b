//! The system calls uvs makes beyond std, each wrapped once. Where
//! `rustix` covers a call it is used (sockets, socket options it knows,
//! eventfd, mmap, the clock, AF_XDP); what it does not cover stays on raw
//! `libc`, in this module only, with every `unsafe` here
//! (docs/architecture.md lists those calls and why). By concept:
//! - `sockopt`: sockets and their options, one generic get/set for the
//!   options rustix has no wrapper for;
//! - `link`: an interface's facts by ioctl and sysfs (index, MAC, MTU,
//!   flags, driver, veth peer), the TUN device, the host's addresses;
//! - `packet`: the packet-socket calls of the AF_PACKET backend (bind,
//!   recvfrom, statistics, recvmmsg and sendmmsg over [`Mmsg`]);
//! - `poll`: waiting on descriptors, and the data plane's [`Wake`];
//! - `mmap`: shared-memory [`Mapping`]s (packet and AF_XDP rings).

mod link;
mod mmap;
mod packet;
mod poll;
mod sockopt;

pub use link::{
    ifindex, ifreq, is_virtual_pair, link_driver, link_flags, link_info, link_is_up, local_addrs,
    open_shared_tun, open_tun, peer_in_other_namespace, rx_queues,
};
pub use mmap::Mapping;
pub use packet::{Mmsg, allmulti, bind_packet, packet_drops, recv_packet};
pub use poll::{Wake, poll, pollin};
pub use sockopt::{attach_cbpf, getsockopt, peer_pid, raise_rcvbuf, setsockopt, socket};

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

/// A negative return is `errno`.
fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A negative length returned is `errno`.
fn cvt_len(r: isize) -> io::Result<usize> {
    usize::try_from(r).map_err(|_| io::Error::last_os_error())
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of bpf_ktime_get_ns (and,
/// a tick coarser, of bpf_ktime_get_coarse_ns).
pub fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64) * 1_000_000_000 + t.tv_nsec as u64
}

/// Sets the process's file-creation mask and returns the previous one.
pub fn umask(mask: u32) -> u32 {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(mask)).as_raw_mode()
}

/// recv(2) into `buf`; the length received.
pub fn recv(fd: impl AsFd, buf: &mut [u8]) -> io::Result<usize> {
    let (n, _) = rustix::net::recv(fd, buf, rustix::net::RecvFlags::empty())?;
    Ok(n)
}

/// write(2) of all of `buf` in one call (a TUN device takes a packet per
/// write).
pub fn write(fd: impl AsFd, buf: &[u8]) -> io::Result<()> {
    rustix::io::write(fd, buf)?;
    Ok(())
}

/// BPF_MAP_LOOKUP_AND_DELETE_ELEM: the value under `key` in BPF map `fd`,
/// copied into `value` (the map's value size) and removed in one system
/// call (hash and LRU maps: Linux 5.14). `Ok(false)`: no such key. aya
/// has the call only for queues and stacks; the raw call is one syscall
/// with the kernel's `bpf_attr` for element commands.
pub fn bpf_lookup_and_delete(fd: BorrowedFd<'_>, key: &[u8], value: &mut [u8]) -> io::Result<bool> {
    const BPF_MAP_LOOKUP_AND_DELETE_ELEM: libc::c_long = 21;
    /// The element commands' part of `union bpf_attr`.
    #[repr(C)]
    struct Attr {
        map_fd: u32,
        pad: u32,
        key: u64,
        value: u64,
        flags: u64,
    }
    let attr = Attr {
        map_fd: fd.as_raw_fd() as u32,
        pad: 0,
        key: key.as_ptr() as u64,
        value: value.as_mut_ptr() as u64,
        flags: 0,
    };
    // SAFETY: `attr` points at `key` and `value`, live for the call; the
    // kernel reads the key's and writes the value's size (the map's,
    // which the caller's buffers have).
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_LOOKUP_AND_DELETE_ELEM,
            &attr as *const Attr,
            size_of::<Attr>() as libc::c_uint,
        )
    };
    match r {
        0 => Ok(true),
        _ => match io::Error::last_os_error() {
            e if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            e => Err(e),
        },
    }
}
