//! uvs's refresh of a flow the program carries (a frame of it that came
//! up anyway, handed over again: flows.rs's `write`) after the program
//! reported the client's FIN: the flow stays closing, so that the SYN
//! that reuses its port is a new flow the program schedules, not one sent
//! up to uvs.

use super::super::super::flows::write;
use super::*;
use crate::io::{FlowTuple, Handover};

/// A flow of rr's scheduled, established and closing; uvs's refresh;
/// then its port again.
pub(super) fn refresh_after_fin(rig: &mut Rig, hook: Hook) {
    let (c, _) = hook.client();
    let syn = tcp4(c, VIP, 40100, 80, SYN);
    let Some(di) = rig.forwards(hook, "refresh: SYN", &syn, RR) else {
        return;
    };
    let fin = tcp4(c, VIP, 40100, 80, FIN | ACK);
    for (what, frame) in [("ACK", tcp4(c, VIP, 40100, 80, ACK)), ("FIN", fin.clone())] {
        if rig.forwards(hook, &format!("refresh: {what}"), &frame, RR) != Some(di) {
            rig.fail(format!(
                "{hook:?}: refresh: {what}: not to the SYN's server"
            ));
        }
    }
    rig.events();
    let d = &rig.table.services[RR].dests[di];
    let h = Handover {
        flow: FlowTuple {
            saddr: Ipv4Addr::from(c),
            daddr: Ipv4Addr::from(VIP),
            sport: 40100,
            dport: 80,
            proto: 6,
        },
        dmac: d.mac.0,
        smac: DIR_MAC,
        up_every_ms: 60_000,
        tun: None,
        dest_id: d.id,
    };
    if !write(&mut rig.flows, FlowKey::of(&h.flow), &h) {
        rig.fail(format!("{hook:?}: refresh: the write failed"));
    }
    let state = rig.flow(&fin).map(|f| f.state);
    if state != Some(FLOW_CLOSING) {
        rig.fail(format!(
            "{hook:?}: refresh: state {state:?} after uvs's write"
        ));
    }
    rig.scheduled_anew(hook, "refresh: the port again", &syn);
}
