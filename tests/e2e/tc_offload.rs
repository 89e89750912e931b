//! `--offload` on the AF_PACKET backends: the tc program on the link's
//! ingress forwards established DR flows itself, IPv4 and IPv6, GSO
//! super-frames whole, and uvs's packet sockets, bound to IPv4, ARP and
//! IPv6, see only what the program passes on. The lab's director link is a veth whose peer (the
//! switch's port) is in another namespace: by default the program hands
//! frames to that peer (bpf_redirect_peer), with `--offload-egress` out
//! of the link's transmit (bpf_redirect).

use crate::support::{Fam, Lab, RS1, RS2, VIP};
use std::time::{Duration, Instant};

/// Frames the director's eth0 transmitted.
fn dir_tx_packets(l: &Lab) -> u64 {
    let o = l.sh("dir", "cat /sys/class/net/eth0/statistics/tx_packets");
    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
}

/// Frames the director's eth0 received (the program's too: a veth counts
/// them before tc).
fn dir_rx_packets(l: &Lab) -> u64 {
    let o = l.sh("dir", "cat /sys/class/net/eth0/statistics/rx_packets");
    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
}

/// On each AF_PACKET backend: a long TCP connection whose uvs timer (2 s)
/// is shorter than its life keeps going (a frame every half second still
/// reaches uvs), its frames are forwarded by the program (its FIN too,
/// reported), and the program's count reaches the real server's while it
/// lives; a UDP flow is handed over after its second datagram; uploads
/// with the client's segmentation offload on arrive intact while uvs sees
/// almost none of their frames. The director's ARP (answering for the VIP) works
/// through its ARP socket. Handed to the veth's peer, the UDP flow's
/// frames skip eth0's transmit; with `--offload-egress` they go out of it.
#[test]
fn established_dr_flows_are_forwarded_by_the_tc_program() {
    if !crate::support::fixed_backend_run() {
        return;
    }
    dr_flows_through_tc(Fam::V4);
}

/// The same for IPv6 DR flows to `[VIP6]` (the programs' `flows6` map):
/// TCP and UDP handed over, the program's count in `--stats`, uploads
/// intact with the client's segmentation offload on (super-frames whole
/// through tc).
#[test]
fn established_ipv6_dr_flows_are_forwarded_by_the_tc_program() {
    if !crate::support::fixed_backend_run() {
        return;
    }
    dr_flows_through_tc(Fam::V6);
}

fn dr_flows_through_tc(fam: Fam) {
    for (io, egress) in [("packet", false), ("packet-ring", true), ("packet", true)] {
        let Some(mut l) = Lab::up(2) else { return };
        l.fam = fam;
        l.start_servers(2);
        let mut args = vec!["--io", io, "-i", "eth0", "--offload"];
        if egress {
            args.push("--offload-egress");
        }
        l.start_director_with(&args);
        let io = format!(
            "{fam:?}, {io}{}",
            if egress { " --offload-egress" } else { "" }
        );
        let log = l.log("director.log");
        let how = match egress {
            true => "forwarded by the tc program (eth0: tc)",
            false => "forwarded by the tc program (eth0: tc, to the veth peer)",
        };
        assert!(log.contains(how), "{io}: {log}");
        l.dr_services("rr", 1, 1);
        l.adm("--set 2 120 300");
        l.stick_bg(400, 10, "stick.json");
        let answered = l.stick_answered("stick.json");
        assert_eq!(answered, 400, "{io}: {}", l.log("director.log"));
        let fwd = l.dp_counter_settled("offload_forwarded");
        let rx = l.dp_counter("rx_frames");
        println!("{io}: TCP: offload_forwarded {fwd}, rx_frames {rx}");
        // The 400 requests and their ACKs, less what went up (the
        // handshake, a frame every half second).
        assert!(fwd >= 300, "{io}: offload_forwarded {fwd}");
        assert!(rx < 200, "{io}: uvs saw only what it must: {rx}");
        let inpkts = l.tcp_inpkts();
        assert!(
            inpkts >= 400 && inpkts > rx,
            "{io}: rx_frames {rx}, inpkts {inpkts}"
        );

        let tx0 = dir_tx_packets(&l);
        l.udp_flow_for_offload();
        let fwd_udp = l.dp_counter_settled("offload_forwarded") - fwd;
        let tx_udp = dir_tx_packets(&l) - tx0;
        println!("{io}: UDP: offload_forwarded {fwd_udp}, eth0 tx_packets {tx_udp}");
        assert!(fwd_udp >= 1500, "{io}: UDP offload_forwarded {fwd_udp}");
        match egress {
            true => assert!(tx_udp >= fwd_udp, "{io}: eth0 sent {tx_udp}"),
            // What uvs itself sent (the flow's first datagrams, ARP).
            false => assert!(tx_udp < 100, "{io}: eth0 sent {tx_udp}"),
        }
        // The program scheduled both flows itself (rr is in its table):
        // uvs entered them from its reports and handed nothing over.
        assert_eq!(l.dp_counter("kernel_scheduled"), 2, "{io}");
        assert_eq!(l.dp_counter("offloads"), 0, "{io}");

        // Uploads with the client's offloads on: super-frames through the
        // program whole, counted as the segments they become.
        let (fwd0, rx0) = (l.dp_counter("offload_forwarded"), l.dp_counter("rx_frames"));
        for _ in 0..2 {
            let u = l.upload(5_000_000);
            assert_eq!(u["intact"], true, "{io}: {u}");
            assert_eq!(u["received"].as_u64(), Some(5_000_000), "{io}: {u}");
        }
        let fwd_up = l.dp_counter_settled("offload_forwarded") - fwd0;
        let rx_up = l.dp_counter("rx_frames") - rx0;
        println!("{io}: uploads: offload_forwarded {fwd_up}, rx_frames {rx_up}");
        // 10 MB is about 6,900 full segments.
        assert!(fwd_up >= 6_000, "{io}: offload_forwarded {fwd_up}");
        assert!(rx_up < 100, "{io}: uvs saw {rx_up} frames of two uploads");
        for rs in ["rs1", "rs2"] {
            let n = l.nstat(rs);
            assert_eq!(n.get("TcpInCsumErrors").copied().unwrap_or(0), 0, "{rs}");
        }
    }
}

/// Without `--offload` the program is not attached: every frame of the
/// same connection reaches uvs, and nothing is counted as offloaded.
#[test]
fn without_offload_uvs_sees_every_frame() {
    if !crate::support::fixed_backend_run() {
        return;
    }
    let Some(mut l) = Lab::up_dr(&["--io", "packet", "-i", "eth0"]) else {
        return;
    };
    l.stick_bg(200, 5, "stick.json");
    assert_eq!(l.stick_answered("stick.json"), 200);
    let rx = l.dp_counter_settled("rx_frames");
    assert!(rx >= 200, "rx_frames {rx}");
    assert_eq!(l.dp_counter("offload_forwarded"), 0);
    assert_eq!(l.dp_counter("offloads"), 0);
}

/// The UDP service's InPkts, from `--stats --exact`.
fn udp_inpkts(l: &Lab) -> u64 {
    l.service_stats("UDP")[1]
}

/// The real server of the one UDP connection `-Lnc` lists.
fn udp_conn_server(l: &Lab) -> &'static str {
    let conns = l.adm("-Lnc");
    let line = conns
        .lines()
        .find(|x| x.starts_with("UDP"))
        .unwrap_or_else(|| panic!("no UDP connection: {conns}"));
    match line.ends_with(&format!("{RS1}:53")) {
        true => RS1,
        false => RS2,
    }
}

/// Waits until the sweep has ended every connection (a removed real
/// server's go within a pass, about a second, taken back first).
fn until_no_conns(l: &Lab, what: &str) {
    let t = Instant::now();
    while l.dp_counter("conns") > 0 {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{what}: connections left: {}{}",
            l.adm("-Lnc"),
            l.log("director.log")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until uvs has taken in every frame sent so far (its `rx_frames`
/// stands still): without the program a burst waits in the socket's
/// queue, and a real server removed meanwhile would not get the rest,
/// which the program forwarded at once.
fn until_taken_in(l: &Lab) {
    let mut last = l.dp_counter("rx_frames");
    let t = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = l.dp_counter("rx_frames");
        if now == last || t.elapsed() > Duration::from_secs(5) {
            return;
        }
        last = now;
    }
}

/// What one run of `removals` counted.
struct Counted {
    /// Datagrams the client sent, both flows, and how many of them the
    /// director's link did not receive.
    sent: u64,
    lost: u64,
    /// The UDP service's InPkts after the health check's removal, and
    /// after `uvsadm -d`.
    after_check: u64,
    after_del: u64,
    /// Frames the packet sockets' rings dropped (uvs never saw them).
    socket_drops: u64,
}

/// A UDP service of two real servers whose exec checks (a flag file each)
/// remove them on failure: a flow of 2,000 datagrams, then its server's
/// check fails; a second flow, then its server goes with `uvsadm -d`.
fn removals(io: &str, offload: bool) -> Option<Counted> {
    let mut l = Lab::up(2)?;
    l.start_servers(2);
    let dir = l.dir.clone();
    let flag = |rs: &str| dir.join(format!("up-{rs}"));
    let mut cfg = format!(
        "[[service]]\nprotocol = \"udp\"\naddress = \"{VIP}:53\"\nscheduler = \"rr\"\n\
         on_failure = \"remove\"\n"
    );
    for rs in [RS1, RS2] {
        std::fs::write(flag(rs), "").unwrap();
        cfg += &format!(
            "[[service.real_server]]\naddress = \"{rs}\"\n\
             [service.real_server.check]\ntype = \"exec\"\ncommand = \"test -e {}\"\n\
             interval = 0.2\ntimeout = 0.2\nfall = 1\nwarmup = 0.2\n",
            flag(rs).display()
        );
    }
    let path = l.dir.join("uvs.toml");
    std::fs::write(&path, cfg).unwrap();
    let mut args = vec!["--io", io, "-i", "eth0", "--config", path.to_str().unwrap()];
    if offload {
        args.push("--offload");
    }
    l.start_director_with(&args);
    let what = format!("{io}, offload {offload}");
    let rx0 = dir_rx_packets(&l);

    let sent1 = l.udp_flow_for_offload();
    until_taken_in(&l);
    let first = udp_conn_server(&l);
    std::fs::remove_file(flag(first)).unwrap();
    until_no_conns(&l, &what);
    let log = l.log("director.log");
    assert!(
        log.contains(&format!("{first}:53 down (removed)")),
        "{what}: {log}"
    );
    let after_check = udp_inpkts(&l);

    let sent2 = l.udp_flow_for_offload();
    until_taken_in(&l);
    let second = udp_conn_server(&l);
    assert_ne!(first, second, "{what}");
    l.adm(&format!("-d -u {VIP}:53 -r {second}"));
    until_no_conns(&l, &what);
    let after_del = udp_inpkts(&l);

    // Both flows scheduled by the program (rr is in its table).
    let scheduled = l.dp_counter("kernel_scheduled");
    assert_eq!(scheduled, if offload { 2 } else { 0 }, "{what}");
    let sent = sent1 + sent2;
    Some(Counted {
        sent,
        lost: sent.saturating_sub(dir_rx_packets(&l) - rx0),
        after_check,
        after_del,
        socket_drops: l.dp_counter_settled("rx_socket_drops"),
    })
}

/// Defect 3: a real server removed while the program forwards its flow
/// (by a health check with `on_failure = remove`, or by `uvsadm -d`)
/// takes the flow back when the sweep reaches it, after the table lost
/// the server; what the program forwarded still counts for the service.
/// The same traffic with and without `--offload` ends with the same
/// InPkts. The removals come once uvs has taken in every frame, so no
/// frame is in flight then; the margin is what neither run can count
/// alike: frames lost on the way to the director (a burst of 2,000 can
/// overflow a queue of the lab's bridge), frames uvs's socket dropped
/// without the program (the program takes them ahead of the socket), and
/// two for a frame the program counts between uvs's reading of its entry
/// and its removal. Runs on `packet`, once per suite.
#[test]
fn offloaded_packets_stay_counted_when_their_real_server_is_removed() {
    if !crate::support::fixed_backend_run() {
        return;
    }
    let io = "packet";
    let Some(off) = removals(io, false) else {
        return;
    };
    let Some(on) = removals(io, true) else { return };
    println!(
        "{io}: UDP InPkts after the check's removal: {} without offload, {} with; after -d: {} \
         and {}; sent {} and {}, lost on the way {} and {}, socket drops {} and {}",
        off.after_check,
        on.after_check,
        off.after_del,
        on.after_del,
        off.sent,
        on.sent,
        off.lost,
        on.lost,
        off.socket_drops,
        on.socket_drops
    );
    let margin = off.lost + on.lost + off.socket_drops + on.socket_drops + 2;
    for (c, run) in [(&off, "without"), (&on, "with")] {
        assert!(
            c.after_del <= c.sent && c.after_del + c.lost + c.socket_drops + 2 >= c.sent,
            "{run} offload: InPkts {} of {} sent",
            c.after_del,
            c.sent
        );
    }
    assert!(
        off.after_check.abs_diff(on.after_check) <= margin,
        "after the check's removal: {} without offload, {} with (margin {margin})",
        off.after_check,
        on.after_check
    );
    assert!(
        off.after_del.abs_diff(on.after_del) <= margin,
        "after -d: {} without offload, {} with (margin {margin})",
        off.after_del,
        on.after_del
    );
}
