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
    ifindex, ifreq, is_virtual_pair, link_driver, link_flags, link_info, local_addrs, open_tun,
    peer_in_other_namespace,
};
pub use mmap::Mapping;
pub use packet::{Mmsg, allmulti, bind_packet, packet_drops, recv_packet};
pub use poll::{Wake, poll, pollin};
pub use sockopt::{attach_cbpf, getsockopt, peer_pid, raise_rcvbuf, setsockopt, socket};

use std::io;
use std::os::fd::AsFd;

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
