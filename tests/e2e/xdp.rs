//! The AF_XDP backend (`--io xdp`) on the namespace lab: VIP traffic and
//! NAT replies come through the XDP program's sockets, while traffic to
//! the director's own addresses (an operator's ssh, the director's own
//! connections to a real server) still reaches its kernel; the program
//! goes with the director.

use crate::support::holds;
use crate::support::{Fam, Lab, VIP, VIP6, count, lab_tool, wait_until};

const DIRECTOR: &str = "198.18.0.2";
const NAT1: &str = "198.18.2.11";

fn xdp_attached(l: &Lab, ifname: &str) -> bool {
    let o = l.exec("dir", "ip", &["link", "show", ifname]);
    String::from_utf8_lossy(&o.stdout).contains("prog/xdp")
}

#[test]
fn xdp_takes_vip_traffic_and_leaves_the_directors_own_to_the_kernel() {
    if !crate::support::fixed_backend_run() {
        return;
    }
    let Some(mut l) = Lab::up_with(1, &["--nat"]) else {
        return;
    };
    l.start_server_on("nat1", &["--tcp", "8080"]);
    // "ssh" to the director: a listener on its own address.
    l.start_server_on("dir", &["--tcp", "2222"]);
    let pid = l.start_director_with(&["--io", "xdp", "-i", "eth0", "-i", "eth1"]);
    let log = l.log("director.log");
    holds(&log, "packet I/O: AF_XDP");
    assert!(xdp_attached(&l, "eth0") && xdp_attached(&l, "eth1"));
    l.adm(&format!("-A -t {VIP}:80 -s rr"));
    l.adm(&format!("-a -t {VIP}:80 -r {NAT1}:8080 -m"));

    let t = l.tcp_names(100);
    assert_eq!(count(&t, "nat1"), 100, "{t}");
    // Both ways steered: the client's frames on eth0 and the replies from
    // NAT1:8080 on eth1 (at least a SYN and an ACK each way).
    let steered = l.dp_counter_settled("xdp_rx");
    assert!(steered >= 400, "xdp_rx {steered}");

    // The director's own address from a client: the kernel answers.
    let target = format!("{DIRECTOR}:2222");
    let own = l.client(&["tcp-names", "--target", &target, "--count", "20"]);
    assert_eq!(count(&own, "dir"), 20, "{own}");
    // The director's own connections (from 198.18.2.1) to a NAT real
    // server's port, as a health check makes: the replies are the
    // kernel's, not uvs's.
    directors_own(&l, &format!("{NAT1}:8080"), steered);
    // An address the director gains while running is its own too: the
    // maps learn it within 5 s (no table change is needed), and its
    // connections to NAT1:8080 work.
    l.sh("dir", "ip addr add 198.18.2.5/24 dev eth1");
    std::thread::sleep(std::time::Duration::from_secs(6));
    let target = format!("{NAT1}:8080");
    let o = l.exec(
        "dir",
        &lab_tool(),
        &[
            "tcp-names",
            "--target",
            &target,
            "--count",
            "20",
            "--source",
            "198.18.2.5",
        ],
    );
    let later: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&o.stderr)));
    assert_eq!(count(&later, "nat1"), 20, "{later}");
    assert_eq!(l.dp_counter_settled("xdp_rx"), steered);

    // The program goes with the director.
    l.sh("dir", &format!("kill {pid}"));
    wait_until(
        std::time::Duration::from_secs(5),
        || !xdp_attached(&l, "eth0") && !xdp_attached(&l, "eth1"),
        || "the XDP program stayed attached after the director stopped".into(),
    );
}

/// IPv6 as IPv4: frames to `[VIP6]` and NAT66 replies from a real
/// server's port come through the sockets (`vips6`, `nat_servers6`), with
/// the client's unfinished TCP checksums finished; the director's own
/// IPv6 connections to that port stay the kernel's (`locals6`).
#[test]
fn xdp_takes_vip6_traffic_and_nat66_replies_and_leaves_the_directors_own_to_the_kernel() {
    if !crate::support::fixed_backend_run() {
        return;
    }
    let Some(mut l) = Lab::up_with(1, &["--nat"]) else {
        return;
    };
    const NAT1_6: &str = "2001:2:0:2::11";
    l.start_server_on("nat1", &["--tcp", "8080"]);
    l.start_director_with(&["--io", "xdp", "-i", "eth0", "-i", "eth1"]);
    holds(&l.log("director.log"), "packet I/O: AF_XDP");
    l.adm(&format!("-A -t [{VIP6}]:80 -s rr"));
    l.adm(&format!("-a -t [{VIP6}]:80 -r [{NAT1_6}]:8080 -m"));
    let vip = format!("[{VIP6}]:80");
    let t = l.client(&["tcp-names", "--target", &vip, "--count", "100"]);
    assert_eq!(count(&t, "nat1"), 100, "{t}");
    // An upload with the client's offloads on: partial checksums finished.
    let up = l.client(&["upload", "--target", &vip, "--bytes", "2000000"]);
    assert_eq!(up["intact"], true, "{up}");
    let steered = l.dp_counter_settled("xdp_rx");
    assert!(steered >= 400, "xdp_rx {steered}");
    directors_own(&l, &format!("[{NAT1_6}]:8080"), steered);
}

/// Builds (with the clang the XDP program is built with) and attaches an
/// XDP program that passes every frame.
fn pass_program_on(l: &Lab, node: &str, ifname: &str) {
    let src = l.dir.join("pass.c");
    let obj = l.dir.join("pass.o");
    std::fs::write(
        &src,
        "#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n\
         SEC(\"xdp\") int pass(struct xdp_md *c) { return XDP_PASS; }\n\
         char LICENSE[] SEC(\"license\") = \"GPL\";\n",
    )
    .unwrap();
    let arch = std::env::consts::ARCH;
    let o = std::process::Command::new("clang")
        .args(["-O2", "-g", "-target", "bpf", "-c"])
        .arg(format!("-I/usr/include/{arch}-linux-gnu"))
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .output()
        .expect("clang");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cmd = format!("ip link set dev {ifname} xdp obj {} sec xdp", obj.display());
    let o = l.sh(node, &cmd);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A lab of two serving real servers of family `fam` where the XDP
/// program can forward, the director started with `args`.
pub(crate) fn xdp_forwarding_lab(fam: Fam, args: &[&str]) -> Option<Lab> {
    let mut l = Lab::up(2)?;
    l.fam = fam;
    l.start_servers(2);
    // Finished checksums from the client, as frames from a wire have:
    // the program leaves a veth's unfinished ones to uvs.
    let o = l.sh("cl", "ethtool -K eth0 tx off");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // XDP_TX on a veth reaches its peer only if the peer runs an XDP
    // program: a pass-everything one on the switch's port.
    pass_program_on(&l, "sw", "p-dir");
    l.start_director_with(args);
    Some(l)
}

/// Katran's split: established DR flows are forwarded by the XDP program
/// itself (`--offload`). A TCP connection whose uvs timer (2 s here) is
/// shorter than its life keeps going (a frame every half second still
/// reaches uvs and refreshes it), its FIN is reported and forwarded, and
/// what the program forwarded shows in the real server's counters as it
/// goes; a UDP flow is handed over after its second datagram. Without
/// --offload nothing is. IPv6 flows (to [VIP6]) alike.
#[test]
fn established_dr_flows_are_forwarded_by_the_xdp_program() {
    if !crate::support::fixed_backend_run() {
        return;
    }
    // IPv6 flows too, to [VIP6] (map flows6).
    for (fam, offload) in [(Fam::V4, true), (Fam::V4, false), (Fam::V6, true)] {
        let mut args = vec!["--io", "xdp", "-i", "eth0"];
        if offload {
            args.extend(["--offload", "--xdp-peer-program"]);
        }
        let Some(mut l) = xdp_forwarding_lab(fam, &args) else {
            return;
        };
        l.dr_services("rr", 1, 1);
        l.adm("--set 2 120 300");
        l.stick_bg(400, 10, "stick.json");
        let answered = l.stick_answered("stick.json");
        assert_eq!(
            answered,
            400,
            "{fam:?}, offload {offload}: {}",
            l.log("director.log")
        );
        let fwd = l.dp_counter_settled("offload_forwarded");
        let rx = l.dp_counter("rx_frames");
        println!("{fam:?}, offload {offload}: TCP: offload_forwarded {fwd}, rx_frames {rx}");
        l.udp_flow_for_offload();
        let fwd_udp = l.dp_counter_settled("offload_forwarded") - fwd;
        // Scheduled by the XDP program itself (rr is in its table), or
        // handed over by uvs.
        let offloads = l.dp_counter("offloads") + l.dp_counter("kernel_scheduled");
        println!(
            "{fam:?}, offload {offload}: UDP: offload_forwarded {fwd_udp}, offloads {offloads}"
        );
        if !offload {
            assert_eq!((fwd, fwd_udp, offloads), (0, 0, 0));
            continue;
        }
        // The connection's 400 requests and its ACKs, less what went up
        // (the handshake, a frame every half second).
        assert!(fwd >= 300, "offload_forwarded {fwd}");
        assert!(rx < 200, "uvs saw only what it must: {rx}");
        assert!(fwd_udp >= 1500, "UDP offload_forwarded {fwd_udp}");
        assert_eq!(offloads, 2);
        // Counted for the real server it went to: more than uvs itself
        // saw, the program's share read by real server (live counts).
        let inpkts = l.tcp_inpkts();
        assert!(
            inpkts >= 400 && inpkts > rx,
            "rx_frames {rx}, inpkts {inpkts}"
        );
    }
}

/// The director's own connections (from its NAT-side address) to a NAT
/// real server's port at `target`, as a health check makes: the replies
/// are the kernel's, not uvs's, so the program steers none of them.
fn directors_own(l: &Lab, target: &str, steered: u64) {
    let o = l.exec(
        "dir",
        &lab_tool(),
        &["tcp-names", "--target", target, "--count", "20"],
    );
    let mine: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&o.stderr)));
    assert_eq!(count(&mine, "nat1"), 20, "{mine}");
    let now = l.dp_counter_settled("xdp_rx");
    assert_eq!(
        now, steered,
        "the program took the director's own traffic to {target}"
    );
}

/// `--io xdp --offload` on a veth without `--xdp-peer-program` is refused
/// with the reason and the ways out, rather than losing every XDP_TX
/// frame to a peer that runs no XDP program (uvs cannot see the peer).
#[test]
fn xdp_offload_on_a_veth_is_refused_unless_its_peer_runs_a_program() {
    if !crate::support::fixed_backend_run() {
        return;
    }
    let Some(l) = Lab::up(1) else { return };
    let sock = l.dir.join("refused.sock");
    let o = l.exec(
        "dir",
        env!("CARGO_BIN_EXE_uvs"),
        &[
            "director",
            "--socket",
            sock.to_str().unwrap(),
            "--io",
            "xdp",
            "--offload",
            "-i",
            "eth0",
        ],
    );
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{e}");
    holds(&e, "eth0 is a veth");
    holds(&e, "--xdp-peer-program");
    holds(&e, "--io auto");
    // Nothing was attached.
    assert!(!xdp_attached(&l, "eth0"));
}
