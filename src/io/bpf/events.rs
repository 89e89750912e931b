//! What the kernel programs tell uvs through their ring buffers (map
//! `events`, or a worker's in `worker_events`; struct flow_event in
//! maps.h): the flows they scheduled themselves, those of their TCP flows
//! that the client's ACK established, those of their UDP flows that sent
//! a second datagram, and the client's FIN or RST on a flow they carry.
//! Read in the data plane's loop before each frame it handles, so uvs
//! knows every flow the programs carry.

use super::maps::{EVENT_CLOSE, EVENT_ESTABLISHED, EVENT_NEW, EVENT_SEEN, FlowEvent};
use crate::io::{AnyFlow, FlowTuple, KernelFlow, KernelFlowEvent};
use std::net::{Ipv4Addr, Ipv6Addr};

/// The event in `bytes` (one ring record) from link `link`, or `None`
/// for a record that is not one (cut short, an unknown kind or family):
/// the ring is the kernel's, but nothing read from it may panic.
pub fn parse(link: u8, bytes: &[u8]) -> Option<KernelFlow> {
    if bytes.len() < size_of::<FlowEvent>() {
        return None;
    }
    // SAFETY: the length was checked; FlowEvent is plain bytes (any bit
    // pattern is a value) and read unaligned.
    let e: FlowEvent = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
    let (sport, dport) = (u16::from_be_bytes(e.sport), u16::from_be_bytes(e.dport));
    let flow = match e.family {
        4 => AnyFlow::V4(FlowTuple {
            saddr: Ipv4Addr::new(e.saddr[0], e.saddr[1], e.saddr[2], e.saddr[3]),
            daddr: Ipv4Addr::new(e.daddr[0], e.daddr[1], e.daddr[2], e.daddr[3]),
            sport,
            dport,
            proto: e.proto,
        }),
        6 => AnyFlow::V6(FlowTuple {
            saddr: Ipv6Addr::from(e.saddr),
            daddr: Ipv6Addr::from(e.daddr),
            sport,
            dport,
            proto: e.proto,
        }),
        _ => return None,
    };
    let what = match e.what {
        EVENT_NEW => KernelFlowEvent::New {
            dest_id: e.id,
            tcp_flags: e.tcp_flags,
            packets: e.segs.into(),
            bytes: e.bytes.into(),
        },
        EVENT_ESTABLISHED => KernelFlowEvent::Established,
        EVENT_SEEN => KernelFlowEvent::Seen { dest_id: e.id },
        EVENT_CLOSE => KernelFlowEvent::Close {
            tcp_flags: e.tcp_flags,
        },
        _ => return None,
    };
    Some(KernelFlow {
        link,
        flow,
        client_mac: e.cmac,
        what,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(family: u8, what: u8) -> Vec<u8> {
        let e = FlowEvent {
            saddr: [198, 19, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            daddr: [198, 18, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            sport: 40000u16.to_be_bytes(),
            dport: 80u16.to_be_bytes(),
            proto: 6,
            family,
            what,
            tcp_flags: 2,
            cmac: [2, 0, 0, 0, 0, 1],
            segs: 1,
            id: 7,
            bytes: 60,
            pad: 0,
        };
        // SAFETY: FlowEvent is plain bytes with no padding (maps.rs).
        let b: [u8; size_of::<FlowEvent>()] = unsafe { std::mem::transmute(e) };
        b.to_vec()
    }

    #[test]
    fn a_new_flow_record_reads_back_with_its_tuple_server_and_client() {
        let k = parse(1, &record(4, EVENT_NEW)).unwrap();
        assert_eq!(k.link, 1);
        assert_eq!(k.client_mac, [2, 0, 0, 0, 0, 1]);
        assert_eq!(
            k.what,
            KernelFlowEvent::New {
                dest_id: 7,
                tcp_flags: 2,
                packets: 1,
                bytes: 60
            }
        );
        let AnyFlow::V4(f) = k.flow else {
            panic!("not IPv4: {k:?}")
        };
        assert_eq!(
            (f.saddr, f.daddr, f.sport, f.dport, f.proto),
            (
                Ipv4Addr::new(198, 19, 1, 2),
                Ipv4Addr::new(198, 18, 0, 10),
                40000,
                80,
                6
            )
        );
        let six = parse(0, &record(6, EVENT_ESTABLISHED)).unwrap();
        assert!(matches!(six.flow, AnyFlow::V6(_)));
        assert_eq!(six.what, KernelFlowEvent::Established);
        let seen = parse(0, &record(4, EVENT_SEEN)).unwrap();
        assert_eq!(seen.what, KernelFlowEvent::Seen { dest_id: 7 });
        let fin = parse(0, &record(4, EVENT_CLOSE)).unwrap();
        assert_eq!(fin.what, KernelFlowEvent::Close { tcp_flags: 2 });
    }

    #[test]
    fn a_record_cut_short_or_of_an_unknown_kind_is_no_event() {
        let r = record(4, EVENT_NEW);
        for n in 0..r.len() {
            assert_eq!(parse(0, &r[..n]), None, "{n} bytes");
        }
        assert_eq!(parse(0, &record(5, EVENT_NEW)), None);
        assert_eq!(parse(0, &record(4, 9)), None);
    }
}
