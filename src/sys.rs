//! The few raw syscalls shared by the packet sockets (AF_PACKET capture,
//! the IPIP raw socket of `uvs decap`, the probe responder) and the
//! interface ioctls, each wrapped once so the unsafe parts live here.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A negative return is `errno`.
pub(crate) fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// socket(2) with CLOEXEC, as an owned descriptor.
pub(crate) fn socket(
    domain: libc::c_int,
    ty: libc::c_int,
    proto: libc::c_int,
) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2).
    let fd = cvt(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) })?;
    // SAFETY: fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(crate) fn setsockopt_int(fd: i32, level: i32, name: i32, v: i32) -> io::Result<()> {
    // SAFETY: passes a pointer to a live c_int and its size.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &v as *const i32 as *const libc::c_void,
            mem::size_of::<i32>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// Raises a socket's receive buffer to `size`: SO_RCVBUFFORCE goes past
/// rmem_max (root), plain SO_RCVBUF (capped by rmem_max) is the fallback.
pub(crate) fn raise_rcvbuf(fd: &OwnedFd, size: i32) -> io::Result<()> {
    let f = fd.as_raw_fd();
    setsockopt_int(f, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, size)
        .or_else(|_| setsockopt_int(f, libc::SOL_SOCKET, libc::SO_RCVBUF, size))
}

/// An `ifreq` with the interface name set, or an error for a name the
/// kernel could not hold.
pub(crate) fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::other(format!(
            "bad interface name '{name}' (empty, or longer than 15 bytes)"
        )));
    }
    // SAFETY: ifreq is plain data.
    let mut r: libc::ifreq = unsafe { mem::zeroed() };
    for (d, s) in r.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    Ok(r)
}
