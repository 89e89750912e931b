//! Sockets and their options. rustix opens the sockets and sets the
//! options it knows (the receive buffer); the packet-socket, fanout and
//! filter options it has no wrapper for go through one generic pair,
//! [`setsockopt`] and [`getsockopt`], the only raw option calls.

use super::cvt;
use rustix::net::{AddressFamily, Protocol, SocketFlags, SocketType};
use std::io;
use std::mem;
use std::num::NonZeroU32;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// socket(2) with CLOEXEC, as an owned descriptor; `ty` may carry
/// SOCK_NONBLOCK.
pub fn socket(domain: libc::c_int, ty: libc::c_int, proto: libc::c_int) -> io::Result<OwnedFd> {
    let mut flags = SocketFlags::CLOEXEC;
    if ty & libc::SOCK_NONBLOCK != 0 {
        flags |= SocketFlags::NONBLOCK;
    }
    let ty = SocketType::from_raw((ty & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)) as u32);
    let proto = NonZeroU32::new(proto as u32).map(Protocol::from_raw);
    Ok(rustix::net::socket_with(
        AddressFamily::from_raw(domain as u16),
        ty,
        flags,
        proto,
    )?)
}

/// setsockopt(2) with a plain-data value (an int, a struct the kernel
/// reads), for the options rustix has no wrapper for.
pub fn setsockopt<T: Copy>(fd: impl AsFd, level: i32, name: i32, v: &T) -> io::Result<()> {
    // SAFETY: passes a pointer to a live T and its size; the kernel only
    // reads it.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_fd().as_raw_fd(),
            level,
            name,
            (v as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// getsockopt(2) into a plain-data value (an int, a struct of counters),
/// for the options rustix has no wrapper for. `T` must be valid zeroed
/// (integers and structs of them): what the kernel does not write stays
/// zero.
pub fn getsockopt<T: Copy>(fd: impl AsFd, level: i32, name: i32) -> io::Result<T> {
    // SAFETY: T is plain data (the caller's promise above), so zeroed is
    // a valid value.
    let mut v: T = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: the kernel writes at most len bytes into the live v.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_fd().as_raw_fd(),
            level,
            name,
            (&mut v as *mut T).cast(),
            &mut len,
        )
    })?;
    Ok(v)
}

/// Installs a classic BPF program with socket option `level`/`name`
/// (a fanout program, a socket filter); the kernel copies it.
pub fn attach_cbpf(
    fd: impl AsFd,
    level: i32,
    name: i32,
    prog: &[libc::sock_filter],
) -> io::Result<()> {
    let len = u16::try_from(prog.len()).map_err(|_| io::Error::other("program too long"))?;
    let fprog = libc::sock_fprog {
        len,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // The kernel copies the program during the call, while `prog` lives.
    setsockopt(fd, level, name, &fprog)
}

/// Raises a socket's receive buffer to `size`: SO_RCVBUFFORCE goes past
/// rmem_max (root), plain SO_RCVBUF (capped by rmem_max) is the fallback.
pub fn raise_rcvbuf(fd: impl AsFd, size: i32) -> io::Result<()> {
    use rustix::net::sockopt::{set_socket_recv_buffer_size, set_socket_recv_buffer_size_force};
    let size = usize::try_from(size).map_err(|_| io::Error::other("negative buffer size"))?;
    let fd = fd.as_fd();
    set_socket_recv_buffer_size_force(fd, size)
        .or_else(|_| set_socket_recv_buffer_size(fd, size))?;
    Ok(())
}

/// The process id of a Unix socket's peer (for a connected client: the
/// process that created the listening socket), by SO_PEERCRED. Raw:
/// rustix's `UCred` holds a non-zero pid, and the kernel gives 0 for a
/// peer outside this process's pid namespace.
pub fn peer_pid(fd: impl AsFd) -> io::Result<i32> {
    let cred: libc::ucred = getsockopt(fd, libc::SOL_SOCKET, libc::SO_PEERCRED)?;
    Ok(cred.pid)
}
