//! An interface's facts, read from the kernel directly: its index and
//! name (rustix's netdevice calls), its MAC, MTU, flags and driver (the
//! ifreq ioctls, raw: rustix has only the index and name ones), whether
//! it is a veth whose peer is elsewhere (sysfs), the TUN device, and every
//! IPv4 address of the host (getifaddrs, raw: rustix has none).

use super::{cvt, socket};
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, OwnedFd};

/// A socket for the interface ioctls (any socket will do).
fn ioctl_socket() -> io::Result<OwnedFd> {
    socket(libc::AF_INET, libc::SOCK_DGRAM, 0)
}

/// A number an interface shows in sysfs (`/sys/class/net/IF/FIELD`).
fn sysfs_u32(ifname: &str, field: &str) -> Option<u32> {
    std::fs::read_to_string(format!("/sys/class/net/{ifname}/{field}"))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
}

/// An interface's receive queues in use (sysfs `queues/rx-N`): a NIC's
/// channels, one for a veth (until `ethtool -L` gives it more).
pub fn rx_queues(ifname: &str) -> Option<usize> {
    let dir = std::fs::read_dir(format!("/sys/class/net/{ifname}/queues")).ok()?;
    let n = dir
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count();
    (n > 0).then_some(n)
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

/// An ioctl on an `ifreq` for interface `ifname`, its error naming the
/// interface.
fn ifreq_ioctl(
    fd: &OwnedFd,
    ifname: &str,
    op: libc::Ioctl,
    req: &mut libc::ifreq,
) -> io::Result<()> {
    // SAFETY: req is a live ifreq with the name set; the kernel reads
    // and writes only within it (or what it points at, which the caller
    // keeps alive and large enough).
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), op, req as *mut libc::ifreq) })
        .map(|_| ())
        .map_err(|e| io::Error::other(format!("interface '{ifname}': {e}")))
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
    let fd = ioctl_socket()?;
    // `info` is live and large enough for the kernel to fill.
    ifreq_ioctl(&fd, ifname, libc::SIOCETHTOOL, &mut req)?;
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
    let here = ioctl_socket().and_then(|fd| Ok(rustix::net::netdevice::index_to_name(&fd, link)?));
    match here {
        Ok(peer) => sysfs_u32(&peer, "iflink") != Some(index),
        Err(_) => true,
    }
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
    if name.contains('\0') {
        return Err(io::Error::other("interface name contains NUL"));
    }
    let i = ioctl_socket()
        .and_then(|fd| Ok(rustix::net::netdevice::name_to_index(&fd, name)?))
        .map_err(|e| match e.raw_os_error() {
            // ENODEV is "no such interface" (a name too long for one
            // included); anything else (out of descriptors, say) says
            // nothing about the interface.
            Some(libc::ENODEV) | None | Some(0) => io::Error::new(
                io::ErrorKind::NotFound,
                format!("no interface named '{name}'"),
            ),
            _ => io::Error::other(format!("interface '{name}': {e}")),
        })?;
    Ok(i as i32)
}

/// The MAC address and MTU of an interface, read with ioctls.
pub fn link_info(ifname: &str) -> io::Result<([u8; 6], u32)> {
    let mut req = ifreq(ifname)?;
    let fd = ioctl_socket()?;
    ifreq_ioctl(&fd, ifname, libc::SIOCGIFHWADDR, &mut req)?;
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
    let fd = ioctl_socket()?;
    ifreq_ioctl(&fd, ifname, libc::SIOCGIFFLAGS, &mut req)?;
    // SAFETY: SIOCGIFFLAGS filled ifru_flags.
    Ok(u32::from(unsafe { req.ifr_ifru.ifru_flags } as u16))
}

/// Whether flags say the link carries traffic: up and running (carrier).
pub fn link_is_up(flags: u32) -> bool {
    let want = (libc::IFF_UP | libc::IFF_RUNNING) as u32;
    flags & want == want
}

const TUNSETIFF: libc::Ioctl = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_MULTI_QUEUE: libc::c_short = 0x0100;

/// Creates (or attaches to) TUN device `name` and sets it up.
pub fn open_tun(name: &str) -> io::Result<OwnedFd> {
    tun_with(name, IFF_TUN | IFF_NO_PI)
}

/// As `open_tun`, as one queue of a multi-queue device: several
/// processes may hold it at once (an old and a new director across a
/// takeover), and the kernel deletes the device when the last holder's
/// descriptor closes, however that process ended (even `kill -9`).
pub fn open_shared_tun(name: &str) -> io::Result<OwnedFd> {
    tun_with(name, IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE)
}

fn tun_with(name: &str, flags: libc::c_short) -> io::Result<OwnedFd> {
    // std opens with O_CLOEXEC.
    let fd: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(|e| io::Error::other(format!("/dev/net/tun: {e}")))?
        .into();
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_flags = flags;
    // SAFETY: req is a valid ifreq.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &mut req) })
        .map_err(|e| io::Error::other(format!("TUNSETIFF {name}: {e}")))?;
    // Bring it up.
    let s = ioctl_socket()?;
    let mut req = ifreq(name)?;
    // SAFETY: valid ifreq; SIOCGIFFLAGS fills ifru_flags.
    cvt(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
    // SAFETY: reading the union member SIOCGIFFLAGS wrote.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: valid ifreq.
    cvt(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS, &mut req) })?;
    Ok(fd)
}

/// Every IPv4 and IPv6 address of this host's interfaces (getifaddrs);
/// empty if the call fails.
pub fn local_addrs() -> Vec<std::net::IpAddr> {
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
        p = ifa.ifa_next;
        if ifa.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: a non-null ifa_addr points at a sockaddr of its family:
        // sockaddr_in for AF_INET, sockaddr_in6 for AF_INET6.
        match i32::from(unsafe { (*ifa.ifa_addr).sa_family }) {
            libc::AF_INET => {
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                out.push(std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)).into());
            }
            libc::AF_INET6 => {
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                out.push(std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr).into());
            }
            _ => {}
        }
    }
    // SAFETY: frees the list from getifaddrs, once.
    unsafe { libc::freeifaddrs(head) };
    out
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
}
