//! `--offload` on the AF_PACKET backends: the tc program on the link's
//! ingress forwards established DR flows itself, GSO super-frames whole,
//! and uvs's packet sockets, bound to IPv4 and ARP, see only what the
//! program passes on. The lab's director link is a veth whose peer (the
//! switch's port) is in another namespace: by default the program hands
//! frames to that peer (bpf_redirect_peer), with `--offload-egress` out
//! of the link's transmit (bpf_redirect).

mod support;
use support::Lab;

/// Frames the director's eth0 transmitted.
fn dir_tx_packets(l: &Lab) -> u64 {
    let o = l.sh("dir", "cat /sys/class/net/eth0/statistics/tx_packets");
    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
}

/// On each AF_PACKET backend: a long TCP connection whose uvs timer (2 s)
/// is shorter than its life keeps going (a frame every half second still
/// reaches uvs), its frames are forwarded by the program, and its FIN
/// takes it back with the program's count added to the real server's; a
/// UDP flow is handed over after its second datagram; uploads with the
/// client's segmentation offload on arrive intact while uvs sees almost
/// none of their frames. The director's ARP (answering for the VIP) works
/// through its ARP socket. Handed to the veth's peer, the UDP flow's
/// frames skip eth0's transmit; with `--offload-egress` they go out of it.
#[test]
fn established_dr_flows_are_forwarded_by_the_tc_program() {
    for (io, egress) in [("packet", false), ("packet-ring", true), ("packet", true)] {
        let Some(mut l) = Lab::up(2) else { return };
        l.start_servers(2);
        let mut args = vec!["--io", io, "-i", "eth0", "--offload"];
        if egress {
            args.push("--offload-egress");
        }
        l.start_director_with(&args);
        let io = format!("{io}{}", if egress { " --offload-egress" } else { "" });
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
        // handshake, the FIN, a frame every half second).
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
        assert_eq!(l.dp_counter("offloads"), 2, "{io}");

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
    let Some(mut l) = Lab::up(2) else { return };
    l.start_servers(2);
    l.start_director_with(&["--io", "packet", "-i", "eth0"]);
    l.dr_services("rr", 1, 1);
    l.stick_bg(200, 5, "stick.json");
    assert_eq!(l.stick_answered("stick.json"), 200);
    let rx = l.dp_counter_settled("rx_frames");
    assert!(rx >= 200, "rx_frames {rx}");
    assert_eq!(l.dp_counter("offload_forwarded"), 0);
    assert_eq!(l.dp_counter("offloads"), 0);
}
