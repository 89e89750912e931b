//! UDP flows in test_sched's way: a flow scheduled to a VIP6 and
//! reported, its second datagram reported as seen, its server's frames
//! counted in real_counts, and a flow whose server left the table.

use super::*;

/// UDP to a VIP6: scheduled, entered in flows6, reported with family
/// 6 and the first datagram's size; its second datagram reported as
/// seen, the next forwarded unreported.
pub(super) fn udp_to_vip6(rig: &mut Rig, hook: Hook) {
    let (_, c6) = hook.client();
    let d = udp6((c6, VIP6), 5000, 53);
    let dest_id = rig.id(RR6, 0);
    let new = KernelFlowEvent::New {
        dest_id,
        tcp_flags: 0,
        packets: 1,
        bytes: d.len() as u64 - 14,
    };
    for (what, want) in [
        ("UDP to a VIP6", vec![event(&d, new)]),
        (
            "UDP to a VIP6, second datagram",
            vec![event(&d, KernelFlowEvent::Seen { dest_id })],
        ),
        ("UDP to a VIP6, third datagram", vec![]),
    ] {
        if rig.forwards(hook, what, &d, RR6) != Some(0) {
            rig.fail(format!("{hook:?}: {what}: not to the server"));
        }
        rig.expect_events(hook, what, &want);
    }
    rig.expect_flow(hook, &d, (RR6, 0), 0);
    // With an entry in real_counts, its server's frames are counted
    // there (uvs reads them while the flow lives), not in the flow.
    let before = rig.flow(&d).map(|f| f.packets);
    let counts = |rig: &mut Rig| -> (u64, u64) {
        let m: PerCpuHashMap<&mut MapData, u64, RealCount> =
            rig.bpf.map_mut("real_counts").unwrap().try_into().unwrap();
        m.get(&dest_id, 0).map_or((0, 0), |v| {
            v.iter()
                .fold((0, 0), |(p, b), c| (p + c.packets, b + c.bytes))
        })
    };
    {
        let mut m: PerCpuHashMap<&mut MapData, u64, RealCount> =
            rig.bpf.map_mut("real_counts").unwrap().try_into().unwrap();
        let zero = vec![RealCount::default(); aya::util::nr_cpus().unwrap()];
        m.insert(dest_id, PerCpuValues::try_from(zero).unwrap(), 0)
            .unwrap();
    }
    rig.forwards(hook, "UDP, counted by its server", &d, RR6);
    let got = (counts(rig), rig.flow(&d).map(|f| f.packets));
    if got != ((1, d.len() as u64 - 14), before) {
        rig.fail(format!("{hook:?}: real_counts, flow packets: {got:?}"));
    }
    rig.bpf
        .map_mut("real_counts")
        .map(|m| PerCpuHashMap::<_, u64, RealCount>::try_from(m).unwrap())
        .unwrap()
        .remove(&dest_id)
        .unwrap();
    // Another flow whose server leaves the table after its first
    // datagram: the second goes up, unreported, its entry gone.
    let e = udp6((c6, VIP6), 5001, 53);
    rig.forwards(hook, "UDP, another flow", &e, RR6);
    rig.events();
    fn ids(rig: &mut Rig) -> HashMap<&mut MapData, u64, u32> {
        rig.bpf.map_mut("real_ids").unwrap().try_into().unwrap()
    }
    ids(rig).remove(&dest_id).unwrap();
    rig.goes_up(hook, "UDP, its server gone", &e);
    ids(rig).insert(dest_id, 1, 0).unwrap();
}
