//! The ring full, in test_sched's way: what the programs do when uvs has
//! not read their reports yet.

use super::*;

/// A full ring: a new flow goes up (counted), an establishment waits
/// for the next ACK (counted); once uvs read the ring, both pass. The
/// number of flows the ring held.
pub(super) fn ring_full(rig: &mut Rig, hook: Hook) -> usize {
    let (c, _) = hook.client();
    let syn = tcp4(c, VIP, 42000, 80, SYN);
    let Some(di) = rig.forwards(hook, "ring: a SYN", &syn, RR) else {
        return 0;
    };
    rig.events();
    let (full_new, full_est) = (rig.count(1), rig.count(2));
    let mut held = 0;
    let (refused, (verdict, out)) = loop {
        let d = udp4(c, VIP, 43000 + held as u16, 53);
        let got = rig.run(hook, &d);
        if got.0 != hook.forwards() || held == 10_000 {
            break (d, got);
        }
        held += 1;
    };
    if verdict != hook.up() || out != refused || rig.flow(&refused).is_some() {
        let what = "a new flow, the ring full";
        rig.fail(format!(
            "{hook:?}: {what}: verdict {verdict}, not up as it came"
        ));
    }
    let ack = tcp4(c, VIP, 42000, 80, ACK);
    rig.forwards(hook, "an ACK, the ring full", &ack, RR);
    rig.expect_flow(hook, &ack, (RR, di), FLOW_SYN);
    let rose = (rig.count(1) - full_new, rig.count(2) - full_est);
    if rose != (1, 1) {
        rig.fail(format!(
            "{hook:?}: ring full: sched_counts[1], [2] rose by {rose:?}"
        ));
    }
    let news = rig.events().len();
    if news != held {
        rig.fail(format!(
            "{hook:?}: ring full: {news} events for {held} flows"
        ));
    }
    rig.forwards(hook, "an ACK, the ring read", &ack, RR);
    let est = event(&ack, KernelFlowEvent::Established);
    rig.expect_events(hook, "an ACK, the ring read", &[est]);
    rig.expect_flow(hook, &ack, (RR, di), 0);
    rig.forwards(hook, "a new flow, the ring read", &refused, WRR);
    rig.events();
    held
}
