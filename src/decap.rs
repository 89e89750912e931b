//! `uvs decap`: the real-server end of TUN for hosts without the kernel's
//! ipip module (containers, minimal kernels). A raw IPPROTO_IPIP socket
//! receives every protocol-4 packet (its presence also stops the kernel's
//! "protocol unreachable" answers); the outer header is stripped and the
//! inner packet is written to a TUN device, which hands it to the local
//! stack as if it had arrived there. The VIP stays on lo (or goes on the
//! TUN device); rp_filter must be 0, or 2 with the VIP on the TUN device.

use crate::sys::{self, cvt, ifreq};
use crate::wire::{Ipv4Packet, ip_proto};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

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
    let s = sys::socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?;
    let mut req = ifreq(name)?;
    // SAFETY: valid ifreq; SIOCGIFFLAGS fills ifru_flags.
    cvt(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
    // SAFETY: reading the union member SIOCGIFFLAGS wrote.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: valid ifreq.
    cvt(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS, &mut req) })?;
    Ok(fd)
}

/// The inner packet of an IP-in-IP packet as a raw socket delivers it
/// (outer header included), or `None` if it is not one.
pub fn inner(packet: &[u8]) -> Option<&[u8]> {
    let outer = Ipv4Packet::new_checked(packet).ok()?;
    if outer.protocol() != ip_proto::IPIP || outer.is_fragment() {
        return None;
    }
    let inner = &packet[outer.header_len()..outer.total_len()];
    let p = Ipv4Packet::new_checked(inner).ok()?;
    Some(&inner[..p.total_len()])
}

/// Runs the decapsulator until killed.
pub fn run(device: &str) -> Result<(), String> {
    let tun = open_tun(device).map_err(|e| e.to_string())?;
    let raw = sys::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_IPIP)
        .map_err(|e| format!("raw IPIP socket: {e} (run as root)"))?;
    // A raw socket with a full receive queue no longer counts as a taker
    // for the protocol (Linux 6.x raw_v4_input), and the kernel then answers
    // "protocol 4 unreachable": give bursts room. Best effort: a smaller
    // buffer still works for lighter loads.
    let _ = sys::raise_rcvbuf(&raw, 32 << 20);
    eprintln!("uvs decap: IP-in-IP packets are delivered through {device}");
    let mut buf = vec![0u8; 65536];
    loop {
        // SAFETY: buf is valid for its length.
        let n = unsafe {
            libc::recv(
                raw.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                0,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("receiving: {e}"));
        }
        let Some(p) = inner(&buf[..n as usize]) else {
            continue;
        };
        // SAFETY: p is valid for its length.
        let w = unsafe { libc::write(tun.as_raw_fd(), p.as_ptr() as *const libc::c_void, p.len()) };
        if w < 0 {
            eprintln!(
                "uvs decap: writing to {device}: {}",
                io::Error::last_os_error()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4::Ipv4Repr;

    #[test]
    fn strips_the_outer_header_only_for_ipip() {
        let mut inner_pkt = vec![0u8; 28];
        Ipv4Repr {
            src: [198, 18, 0, 10].into(),
            dst: [198, 18, 0, 100].into(),
            protocol: 17,
            payload_len: 8,
            ttl: 63,
            tos: 0,
            ident: 1,
            dont_frag: false,
        }
        .emit(&mut inner_pkt)
        .unwrap();
        let mut pkt = vec![0u8; 20];
        Ipv4Repr {
            src: [198, 18, 0, 2].into(),
            dst: [198, 18, 0, 11].into(),
            protocol: 4,
            payload_len: 28,
            ttl: 63,
            tos: 0,
            ident: 0,
            dont_frag: true,
        }
        .emit(&mut pkt)
        .unwrap();
        pkt.extend_from_slice(&inner_pkt);
        assert_eq!(inner(&pkt), Some(&inner_pkt[..]));
        pkt[9] = 17;
        assert_eq!(inner(&pkt), None);
        assert_eq!(inner(&pkt[..30]), None);
        assert_eq!(inner(&[]), None);
    }
}
