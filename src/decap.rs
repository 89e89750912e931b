//! `uvs decap`: the real-server end of TUN for hosts without the kernel's
//! ipip module (containers, minimal kernels). A raw IPPROTO_IPIP socket
//! receives every protocol-4 packet (its presence also stops the kernel's
//! "protocol unreachable" answers); the outer header is stripped and the
//! inner packet is written to a TUN device, which hands it to the local
//! stack as if it had arrived there. The VIP stays on lo (or goes on the
//! TUN device); rp_filter must be 0, or 2 with the VIP on the TUN device.

use crate::host::sys;
use crate::wire::ipip;
use std::io;

/// Why the decapsulator stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The TUN device could not be created.
    #[error(transparent)]
    Tun(io::Error),
    #[error("raw IPIP socket: {0} (run as root)")]
    Socket(#[source] io::Error),
    #[error("receiving: {0}")]
    Receive(#[source] io::Error),
}

/// Runs the decapsulator until killed.
pub fn run(device: &str) -> Result<(), Error> {
    let tun = sys::open_tun(device).map_err(Error::Tun)?;
    let raw =
        sys::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_IPIP).map_err(Error::Socket)?;
    // A raw socket with a full receive queue no longer counts as a taker
    // for the protocol (Linux 6.x raw_v4_input), and the kernel then answers
    // "protocol 4 unreachable": give bursts room. Best effort: a smaller
    // buffer still works for lighter loads.
    let _ = sys::raise_rcvbuf(&raw, 32 << 20);
    tracing::info!("decap: IP-in-IP packets are delivered through {device}");
    let mut buf = vec![0u8; 65536];
    loop {
        let n = match sys::recv(&raw, &mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::Receive(e)),
        };
        let Some(p) = ipip::inner(&buf[..n]) else {
            continue;
        };
        if let Err(e) = sys::write(&tun, p) {
            tracing::warn!("decap: writing to {device}: {e}");
        }
    }
}
