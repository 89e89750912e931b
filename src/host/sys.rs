//! Every raw system call uvs makes, wrapped once so the unsafe parts live
//! here: sockets and their options, the packet-socket calls of the
//! AF_PACKET backend (bind, poll, recvmmsg and sendmmsg over [`Mmsg`]), receiving and writing
//! on a descriptor, the interface ioctls (index, MAC, MTU, flags) and the
//! TUN device. They use libc directly (docs/architecture.md says why and
//! what could replace it).

use std::ffi::CString;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A negative return is `errno`.
pub fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// socket(2) with CLOEXEC, as an owned descriptor.
pub fn socket(domain: libc::c_int, ty: libc::c_int, proto: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2).
    let fd = cvt(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) })?;
    // SAFETY: fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn setsockopt_int(fd: i32, level: i32, name: i32, v: i32) -> io::Result<()> {
    setsockopt_bytes(fd, level, name, &v)
}

/// setsockopt(2) with a plain-data value.
pub fn setsockopt_bytes<T>(fd: i32, level: i32, name: i32, v: &T) -> io::Result<()> {
    // SAFETY: passes a pointer to a live T and its size.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            v as *const T as *const libc::c_void,
            mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// A number an interface shows in sysfs (`/sys/class/net/IF/FIELD`).
fn sysfs_u32(ifname: &str, field: &str) -> Option<u32> {
    std::fs::read_to_string(format!("/sys/class/net/{ifname}/{field}"))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
}

/// An interface's index and its link's (`iflink`), when they differ: the
/// interface is one end of a pair (veth and the like).
fn pair_link(ifname: &str) -> Option<(u32, u32)> {
    match (sysfs_u32(ifname, "ifindex"), sysfs_u32(ifname, "iflink")) {
        (Some(a), Some(b)) if a != b => Some((a, b)),
        _ => None,
    }
}

/// Whether an interface is one end of a pair (veth and the like): its
/// link (`iflink`) is another interface.
pub fn is_virtual_pair(ifname: &str) -> bool {
    pair_link(ifname).is_some()
}

/// An interface's driver as ethtool names it ("veth", "netkit", "e1000e"),
/// by SIOCETHTOOL's ETHTOOL_GDRVINFO.
pub fn link_driver(ifname: &str) -> io::Result<String> {
    const ETHTOOL_GDRVINFO: u32 = 0x3;
    // struct ethtool_drvinfo: the command, then the driver's name (32
    // bytes) and fields this does not read.
    #[repr(C)]
    struct DrvInfo {
        cmd: u32,
        driver: [u8; 32],
        rest: [u8; 160],
    }
    let mut info = DrvInfo {
        cmd: ETHTOOL_GDRVINFO,
        driver: [0; 32],
        rest: [0; 160],
    };
    let mut req = ifreq(ifname)?;
    req.ifr_ifru.ifru_data = (&mut info as *mut DrvInfo).cast();
    let fd = socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?;
    // SAFETY: req names the interface and points at a live, large enough
    // ethtool_drvinfo for the kernel to fill.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCETHTOOL, &mut req) })
        .map_err(|e| io::Error::other(format!("interface '{ifname}': {e}")))?;
    let n = info.driver.iter().position(|&b| b == 0).unwrap_or(32);
    Ok(String::from_utf8_lossy(&info.driver[..n]).into_owned())
}

/// Whether `ifname` is a veth (or netkit) whose peer lives in another
/// network namespace, a container's link: a tc program can then hand a
/// frame straight to the peer's receive path (bpf_redirect_peer), which
/// drops it for any other link. Errs to no: a peer in this namespace is
/// an interface here whose link is `ifname`.
pub fn peer_in_other_namespace(ifname: &str) -> bool {
    if !matches!(link_driver(ifname).as_deref(), Ok("veth" | "netkit")) {
        return false;
    }
    let Some((index, link)) = pair_link(ifname) else {
        return false;
    };
    let mut name = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: name has the IF_NAMESIZE bytes if_indextoname writes at most.
    let here = unsafe { libc::if_indextoname(link, name.as_mut_ptr()) };
    if here.is_null() {
        return true;
    }
    // SAFETY: if_indextoname wrote a NUL-terminated name.
    let peer = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }.to_string_lossy();
    sysfs_u32(&peer, "iflink") != Some(index)
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of bpf_ktime_get_ns (and,
/// a tick coarser, of bpf_ktime_get_coarse_ns).
pub fn monotonic_ns() -> u64 {
    // SAFETY: timespec is plain data.
    let mut t: libc::timespec = unsafe { mem::zeroed() };
    // SAFETY: passes a live timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    (t.tv_sec as u64) * 1_000_000_000 + t.tv_nsec as u64
}

pub fn getsockopt_int(fd: i32, level: i32, name: i32) -> io::Result<i32> {
    let mut v: i32 = 0;
    let mut len = mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: passes a live c_int and its size.
    cvt(unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            &mut v as *mut i32 as *mut libc::c_void,
            &mut len,
        )
    })?;
    Ok(v)
}

/// Installs a classic BPF program with socket option `level`/`name`
/// (a fanout program, a socket filter); the kernel copies it.
pub fn attach_cbpf(
    fd: &impl AsRawFd,
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
    setsockopt_bytes(fd.as_raw_fd(), level, name, &fprog)
}

/// Raises a socket's receive buffer to `size`: SO_RCVBUFFORCE goes past
/// rmem_max (root), plain SO_RCVBUF (capped by rmem_max) is the fallback.
pub fn raise_rcvbuf(fd: &impl AsRawFd, size: i32) -> io::Result<()> {
    let f = fd.as_raw_fd();
    setsockopt_int(f, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, size)
        .or_else(|_| setsockopt_int(f, libc::SOL_SOCKET, libc::SO_RCVBUF, size))
}

/// An `ifreq` with the interface name set, or an error for a name the
/// kernel could not hold.
pub fn ifreq(name: &str) -> io::Result<libc::ifreq> {
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

/// The interface index of `name`, or an error naming it.
pub fn ifindex(name: &str) -> io::Result<i32> {
    let c = CString::new(name).map_err(|_| io::Error::other("interface name contains NUL"))?;
    // SAFETY: c is a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        // ENODEV is "no such interface"; anything else (out of
        // descriptors, say) says nothing about the interface.
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::ENODEV) | None | Some(0) => io::Error::new(
                io::ErrorKind::NotFound,
                format!("no interface named '{name}'"),
            ),
            _ => io::Error::other(format!("interface '{name}': {e}")),
        });
    }
    Ok(i as i32)
}

/// The MAC address and MTU of an interface, read with ioctls.
pub fn link_info(ifname: &str) -> io::Result<([u8; 6], u32)> {
    let mut req = ifreq(ifname)?;
    let fd = socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?;
    // SAFETY: req is a valid ifreq with the name set.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) })
        .map_err(|e| io::Error::other(format!("interface '{ifname}': {e}")))?;
    let mut mac = [0u8; 6];
    // SAFETY: SIOCGIFHWADDR filled ifru_hwaddr.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    for (d, s) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *d = *s as u8;
    }
    // SAFETY: as above, for SIOCGIFMTU.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFMTU, &mut req) })?;
    // SAFETY: SIOCGIFMTU filled ifru_mtu.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu } as u32;
    Ok((mac, mtu))
}

/// An interface's flags (`IFF_UP`, `IFF_RUNNING`, `IFF_LOOPBACK`, ...).
pub fn link_flags(ifname: &str) -> io::Result<u32> {
    let mut req = ifreq(ifname)?;
    let fd = socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?;
    // SAFETY: req is a valid ifreq with the name set.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })
        .map_err(|e| io::Error::other(format!("interface '{ifname}': {e}")))?;
    // SAFETY: SIOCGIFFLAGS filled ifru_flags.
    Ok(u32::from(unsafe { req.ifr_ifru.ifru_flags } as u16))
}

/// Sets the process's file-creation mask and returns the previous one.
pub fn umask(mask: u32) -> u32 {
    // SAFETY: umask(2) cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

/// The process id of a Unix socket's peer (for a connected client: the
/// process that created the listening socket), by SO_PEERCRED.
pub fn peer_pid(fd: &impl AsRawFd) -> io::Result<i32> {
    // SAFETY: ucred is plain data.
    let mut cred: libc::ucred = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: passes a live ucred and its size.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut libc::ucred as *mut libc::c_void,
            &mut len,
        )
    })?;
    Ok(cred.pid)
}

/// Frames a packet socket dropped because its receive buffer was full
/// since the last call (PACKET_STATISTICS resets on read).
pub fn packet_drops(fd: &OwnedFd) -> io::Result<u64> {
    // SAFETY: tpacket_stats is plain data.
    let mut st: libc::tpacket_stats = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: passes a live tpacket_stats and its size.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            &mut st as *mut libc::tpacket_stats as *mut libc::c_void,
            &mut len,
        )
    })?;
    Ok(u64::from(st.tp_drops))
}

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;

/// Creates (or attaches to) TUN device `name` and sets it up.
pub fn open_tun(name: &str) -> io::Result<OwnedFd> {
    let path = CString::new("/dev/net/tun").expect("no NUL");
    // SAFETY: valid path, plain open(2).
    let raw = cvt(unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) })
        .map_err(|e| io::Error::other(format!("/dev/net/tun: {e}")))?;
    // SAFETY: fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_flags = IFF_TUN | IFF_NO_PI;
    // SAFETY: req is a valid ifreq.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &mut req) })
        .map_err(|e| io::Error::other(format!("TUNSETIFF {name}: {e}")))?;
    // Bring it up.
    let s = socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?;
    let mut req = ifreq(name)?;
    // SAFETY: valid ifreq; SIOCGIFFLAGS fills ifru_flags.
    cvt(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
    // SAFETY: reading the union member SIOCGIFFLAGS wrote.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: valid ifreq.
    cvt(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS, &mut req) })?;
    Ok(fd)
}

/// poll(2) on `fds` for at most `timeout`: how many are ready (0 when a
/// signal interrupted the wait).
pub fn poll(fds: &mut [libc::pollfd], timeout: std::time::Duration) -> io::Result<usize> {
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: fds is a live array of fds.len() pollfds.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    match cvt(r) {
        Ok(n) => Ok(n as usize),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(e) => Err(e),
    }
}

/// A poll(2) set that waits for input on each of `fds`; built once and
/// polled again and again (poll rewrites only `revents`).
pub fn pollin(fds: impl Iterator<Item = i32>) -> Vec<libc::pollfd> {
    fds.map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    })
    .collect()
}

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

/// A negative length returned is `errno`.
pub fn cvt_len(r: isize) -> io::Result<usize> {
    usize::try_from(r).map_err(|_| io::Error::last_os_error())
}

/// recv(2) into `buf`; the length received.
pub fn recv(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    let (p, n) = (buf.as_mut_ptr() as *mut libc::c_void, buf.len());
    // SAFETY: buf is valid for its length.
    cvt_len(unsafe { libc::recv(fd.as_raw_fd(), p, n, 0) })
}

/// write(2) of all of `buf` in one call (a TUN device takes a packet per
/// write).
pub fn write(fd: &OwnedFd, buf: &[u8]) -> io::Result<()> {
    let (p, n) = (buf.as_ptr() as *const libc::c_void, buf.len());
    // SAFETY: buf is valid for its length.
    cvt_len(unsafe { libc::write(fd.as_raw_fd(), p, n) }).map(|_| ())
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

/// Every IPv4 address of this host's interfaces (getifaddrs); empty if
/// the call fails.
pub fn local_ipv4s() -> Vec<std::net::Ipv4Addr> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs allocates a list that freeifaddrs frees below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut p = head;
    while !p.is_null() {
        // SAFETY: p is a node of the list getifaddrs returned.
        let ifa = unsafe { &*p };
        // SAFETY: an AF_INET ifa_addr points at a sockaddr_in.
        if !ifa.ifa_addr.is_null()
            && i32::from(unsafe { (*ifa.ifa_addr).sa_family }) == libc::AF_INET
        {
            let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
            out.push(std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
        }
        p = ifa.ifa_next;
    }
    // SAFETY: frees the list from getifaddrs, once.
    unsafe { libc::freeifaddrs(head) };
    out
}

/// Wakes a data-plane thread blocked in poll(2) on its sockets: the
/// control plane writes after it publishes a table or sends a request, so
/// an idle thread needs no short timeout to notice (each wake-up of an
/// idle core costs tens of microseconds in a VM). An eventfd, readable
/// until drained.
pub struct Wake(OwnedFd);

impl Wake {
    pub fn new() -> io::Result<Wake> {
        // SAFETY: eventfd(2) takes no pointers.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor this process owns.
        Ok(Wake(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// The descriptor to poll for reading.
    pub fn fd(&self) -> i32 {
        self.0.as_raw_fd()
    }

    /// Makes the descriptor readable (a full counter, which takes years of
    /// writes, leaves it readable all the same).
    pub fn wake(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live buffer.
        let _ = unsafe { libc::write(self.0.as_raw_fd(), one.as_ptr().cast(), 8) };
    }

    /// Makes it unreadable again until the next wake().
    pub fn drain(&self) {
        let mut v = [0u8; 8];
        // SAFETY: reads 8 bytes into a live buffer; EAGAIN when not woken.
        let _ = unsafe { libc::read(self.0.as_raw_fd(), v.as_mut_ptr().cast(), 8) };
    }
}

/// A mapping of shared memory, unmapped on drop.
pub struct Mapping {
    pub ptr: std::ptr::NonNull<u8>,
    pub len: usize,
}

impl Mapping {
    /// `len` bytes of `fd` from `offset` (shared), or of fresh memory
    /// (`None`); populated at once either way.
    pub fn new(fd: Option<i32>, len: usize, offset: u64) -> io::Result<Mapping> {
        let (flags, fd) = match fd {
            Some(fd) => (libc::MAP_SHARED | libc::MAP_POPULATE, fd),
            // Populated now: no page faults on the data path, and the
            // memory shows in the director's size from the start.
            None => (
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
            ),
        };
        // SAFETY: a fresh mapping; the kernel checks fd and offset.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                offset as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping {
            ptr: std::ptr::NonNull::new(p.cast())
                .ok_or_else(|| io::Error::other("mmap gave null"))?,
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what new() mapped.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loopback and a name that does not exist are no veth: the tc
    /// program must not hand their frames to a peer (the kernel drops a
    /// frame redirected to a peer that is not there).
    #[test]
    fn only_a_veth_has_a_peer_to_hand_frames_to() {
        assert!(!peer_in_other_namespace("lo"));
        assert!(!peer_in_other_namespace("uvs-no-such0"));
        let e = link_driver("uvs-no-such0").unwrap_err().to_string();
        assert!(e.contains("uvs-no-such0"), "{e}");
    }

    /// A wake makes the descriptor readable for poll until drained.
    #[test]
    fn a_wake_is_seen_by_poll_until_drained() {
        let w = Wake::new().unwrap();
        let mut p = pollin([w.fd()].into_iter());
        assert_eq!(poll(&mut p, std::time::Duration::ZERO).unwrap(), 0);
        w.wake();
        w.wake();
        assert_eq!(poll(&mut p, std::time::Duration::ZERO).unwrap(), 1);
        w.drain();
        assert_eq!(poll(&mut p, std::time::Duration::ZERO).unwrap(), 0);
    }
}
