//! The packet I/O backends as `--io`, `--workers` and `--offload` ask
//! for them: `auto` is AF_PACKET with the tc program (established flows,
//! and the new ones it can schedule, stay in the kernel), without it if it
//! cannot be attached (saying why); `xdp` is AF_XDP.

use super::Error;
use crate::host::sys;
use crate::io::afpacket::AfPacketLinks;
use crate::io::bpf::Steering;
use crate::io::fanout::Fanout;
use crate::io::xdp::XdpLinks;
use crate::io::{Backend, IoKind, Offload, OpenError};

/// Each worker's packet I/O, and what keeps the kernel's side in step
/// with the table (the programs' maps, the fanout program).
type WorkersIo = (Vec<Backend>, Option<Steering>, Option<Fanout>);

/// The I/O of each of `workers` workers, as `kind` asks for it, with the
/// kernel programs that steer frames to it (AF_XDP: one worker) or
/// forward and schedule flows (`offload`).
pub(super) fn open_workers_io(
    kind: IoKind,
    workers: usize,
    ifnames: &[String],
    macs: &[[u8; 6]],
    (offload, peer_program): (Offload, bool),
) -> Result<WorkersIo, Error> {
    if kind != IoKind::Xdp {
        let (ring, why) = match kind {
            IoKind::PacketRing => (true, "--io packet-ring"),
            IoKind::Packet => (false, "--io packet"),
            _ => (false, "--io auto"),
        };
        return open_packet(ifnames, macs, (ring, workers), offload, why);
    }
    // XDP_TX on a veth is lost unless the peer runs an XDP program.
    let pair = ifnames.iter().find(|n| sys::is_virtual_pair(n));
    if let Some(name) = pair.filter(|_| offload.is_on() && !peer_program) {
        return Err(Error::XdpPeer(name.clone()));
    }
    let mut s = Steering::attach(ifnames).map_err(|e| Error::Xdp(e.into()))?;
    let links = XdpLinks::open(ifnames, macs, &mut s).map_err(Error::Xdp)?;
    tracing::info!(
        "packet I/O: AF_XDP ({} XDP; sockets: {}), other traffic to the kernel and \
         uvs's packet sockets",
        s.modes().join(", "),
        links.modes().join(", ")
    );
    if offload.is_on() {
        s.schedule_new_flows(macs);
        tracing::info!(
            "--offload: established DR flows (IPv4 and IPv6) are forwarded by the XDP \
             program (XDP_TX), which schedules new ones itself where it can (docs/io.md)"
        );
        if let Some(name) = pair {
            tracing::info!(
                "{name} has a peer (a veth?): XDP_TX frames reach it as --xdp-peer-program \
                 says its XDP program lets them (docs/io.md)"
            );
        }
    }
    Ok((vec![Backend::Xdp(links)], Some(s), None))
}

/// AF_PACKET (a TPACKET_V3 receive ring if `ring`) for `workers`
/// workers, with the tc program for `offload` when it can be attached
/// (else, saying why, without); `why`: what chose it, for the log line.
fn open_packet(
    ifnames: &[String],
    macs: &[[u8; 6]],
    (ring, workers): (bool, usize),
    offload: Offload,
    why: &str,
) -> Result<WorkersIo, Error> {
    let what = match ring {
        true => "AF_PACKET, TPACKET_V3 receive ring, batched send",
        false => "AF_PACKET, batched",
    };
    let mut flows = None;
    let mut steering = None;
    if offload.is_on() {
        match Steering::attach_tc(ifnames, offload == Offload::Egress)
            .and_then(|mut s| Ok((s.take_flow_maps(workers)?, s)))
        {
            Ok((f, mut s)) => {
                s.schedule_new_flows(macs);
                let how: Vec<String> = ifnames
                    .iter()
                    .zip(s.modes())
                    .map(|(n, m)| format!("{n}: {m}"))
                    .collect();
                tracing::info!(
                    "packet I/O: {what} ({why}); --offload: established DR flows are \
                     forwarded by the tc program ({}), super-frames whole, and new ones \
                     scheduled by it where it can (docs/io.md)",
                    how.join(", ")
                );
                flows = Some(f);
                steering = Some(s);
            }
            Err(e) => tracing::info!("--offload unavailable, uvs forwards every frame: {e}"),
        }
    }
    if workers == 1 {
        let links = match flows.and_then(|mut f| f.pop()) {
            Some(f) => AfPacketLinks::open_offload(ifnames, ring, f),
            None => {
                tracing::info!("packet I/O: {what} ({why})");
                AfPacketLinks::open_with(ifnames, ring)
            }
        };
        let links = links.map_err(OpenError::Capture)?;
        return Ok((vec![Backend::Packet(links)], steering, None));
    }
    let offloads = flows.is_some();
    let (sets, fanout, ignores) =
        AfPacketLinks::open_workers(ifnames, workers, ring, flows).map_err(OpenError::Capture)?;
    tracing::info!(
        "packet I/O: {what} ({why}), {workers} workers: each link's frames spread by client \
         address and port (PACKET_FANOUT, classic BPF){}",
        match offloads {
            true => ", and so are the tc program's reports of the flows it schedules",
            false => "",
        }
    );
    if !ignores {
        tracing::warn!(
            "this kernel cannot keep the host's own frames out of a fanout group \
             (Linux 6.5 can): the workers see what the director sends too, at some cost"
        );
    }
    let ios = sets.into_iter().map(Backend::Packet).collect();
    Ok((ios, steering, Some(fanout)))
}
